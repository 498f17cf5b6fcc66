// LeaderElection: which of several reelfarm-server processes on one PostgreSQL
// database leads. Leadership is a session-level advisory lock held on a session of its
// own; PostgreSQL frees it when that session ends (the leader exits, is killed, or
// loses the database), so a standby that polls takes over without a home-made
// consensus. Each new leader bumps `leadership.epoch`: its store fences writes with it
// (OpenPostgresJobStore) and its lease ids carry it (SchedulerOptions::lease_epoch).
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/status.h"

namespace reelfarm::scheduler {

class PgConnection;

class LeaderElection final {
 public:
  // Connects (failing fast on a wrong or unreachable URL) and migrates the schema.
  // `address` is what standbys tell clients to use while this server leads.
  static absl::StatusOr<std::unique_ptr<LeaderElection>> Create(const std::string& url,
                                                                std::string address);
  ~LeaderElection();
  LeaderElection(const LeaderElection&) = delete;
  LeaderElection& operator=(const LeaderElection&) = delete;

  // Tries once to become the leader; true when this server leads now, with a new
  // epoch(). UNAVAILABLE when the database cannot be reached (reconnects next time).
  absl::StatusOr<bool> TryAcquire();
  // Whether the lock is still ours: false once the leadership session broke.
  bool StillLeading();
  // Gives the leadership up (if the session still holds it).
  void Resign();
  // The epoch this server leads (0 when it does not).
  int64_t epoch() const;

  struct Leader {
    int64_t epoch = 0;
    std::string address;
  };
  // The leader as recorded in the database (the last one to take over).
  absl::StatusOr<Leader> CurrentLeader();

 private:
  LeaderElection(std::unique_ptr<PgConnection> conn, std::string address);

  const std::string address_;
  mutable absl::Mutex mu_;
  std::unique_ptr<PgConnection> conn_ ABSL_GUARDED_BY(mu_);
  int64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace reelfarm::scheduler
