// HaServer: reelfarm-server on PostgreSQL, active/standby. Several processes share one
// database; LeaderElection picks the one that serves. The others are standbys: they
// listen on their port and answer every call with UNAVAILABLE naming the leader (in
// the message and in the `reelfarm-leader` trailing metadata), so workers and clients
// given a list of servers move to it. When the leader dies (its database session ends)
// a standby takes the lock, loads the state and serves: a FarmServer whose store writes
// and lease ids carry the new epoch. A leader that loses the database (commits fail, or
// the leadership session breaks) stops serving writes, turns standby, and leads again
// (reloading the committed state) when it can.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include <grpcpp/server.h>
#include <prometheus/registry.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

#include "scheduler/leader_election.h"
#include "server/server.h"

namespace reelfarm::server {

class StandbyService;
struct StandbyAnswer;
class ForwardingCollectable;

// Trailing metadata key of a standby's UNAVAILABLE answers: the leader's address.
inline constexpr char kLeaderMetadataKey[] = "reelfarm-leader";

class HaServer final {
 public:
  // `options.store` is a postgres:// URL. Connects and migrates at once (a wrong or
  // unreachable database fails here, naming it), binds `options.listen`, and starts
  // as a standby that tries to lead. `advertise` is the address clients are told to
  // use while this server leads (default: the listen address with its bound port).
  static absl::StatusOr<std::unique_ptr<HaServer>> Start(ServerOptions options,
                                                         std::string advertise,
                                                         prometheus::Registry& registry);
  ~HaServer();  // Shutdown()

  int port() const { return port_; }
  const std::string& advertise() const { return advertise_; }
  // Gauges of the leading FarmServer (none while standby); register once.
  std::shared_ptr<prometheus::Collectable> metrics_collectable() const;
  // The epoch this server leads, 0 while standby.
  int64_t epoch() const { return leading_epoch_.load(); }
  // Stops serving (as leader or standby) and resigns the leadership.
  void Shutdown();

 private:
  HaServer(ServerOptions options, prometheus::Registry& registry);
  absl::Status StartStandby();
  void Loop();
  // Sleeps up to `ms` or until Shutdown(); false once shutting down.
  bool Pause(int ms) ABSL_LOCKS_EXCLUDED(stop_mu_);
  // What the standby answers: the leader named in the database, or why none is known.
  void UpdateStandbyAnswer();
  void SetStandbyAnswer(std::string message, std::string leader);

  ServerOptions options_;
  prometheus::Registry& registry_;
  std::string advertise_;
  int port_ = 0;
  std::unique_ptr<scheduler::LeaderElection> election_;
  std::shared_ptr<ForwardingCollectable> collectable_;
  std::shared_ptr<StandbyAnswer> answer_;
  std::unique_ptr<StandbyService> standby_service_;  // outlives standby_
  std::unique_ptr<grpc::Server> standby_;            // while not leading
  std::unique_ptr<FarmServer> farm_;                 // while leading
  std::atomic<int64_t> leading_epoch_{0};
  absl::Mutex stop_mu_;
  bool stop_ ABSL_GUARDED_BY(stop_mu_) = false;
  std::thread loop_;
};

}  // namespace reelfarm::server
