// FarmServer: wires the scheduler, its store, the storage root and the gRPC services,
// and runs the dispatcher loop that leases work, expires leases and feeds watchers.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/server.h>
#include <grpcpp/support/channel_arguments.h>
#include <prometheus/registry.h>

#include "absl/synchronization/notification.h"
#include "common/grpc_security.h"
#include "common/storage.h"
#include "scheduler/scheduler.h"
#include "server/auth.h"
#include "server/callback_threads.h"
#include "server/job_service.h"
#include "server/metrics.h"
#include "server/notifier.h"
#include "server/task_logs.h"
#include "server/worker_service.h"

namespace reelfarm::server {

struct ServerOptions {
  std::string listen = "127.0.0.1:7700";  // port 0 picks a free port
  std::string store;  // SQLite file, or postgres://... (see HaServer for active/standby)
  int64_t epoch = 0;  // PostgreSQL: the leader's epoch (fences writes, marks lease ids)
  std::string storage_root;
  std::string task_log_dir;  // task logs: DIR/<job>/<task>.log
  std::vector<std::string> model_path;
  scheduler::SchedulerOptions scheduler;
  Limits limits;
  // TLS on the gRPC port, or plaintext with `tls.insecure` (logged as a warning).
  common::ServerTlsOptions tls;
  // Tokens and roles (auth.h); empty: every caller is an admin (logged as a warning).
  std::string tokens_file;
  // A worker token known only to this process, for the local workers (may be empty).
  std::string local_worker_token;
  // WorkerService.Connect refuses a peer without a verified TLS client certificate.
  bool require_worker_cert = false;
  // Largest gRPC message the server takes (requests); larger ones get RESOURCE_EXHAUSTED.
  int max_message_bytes = 4 * 1024 * 1024;
  // Webhooks for jobs that end (notifier.h).
  NotifierOptions notify;
  // Retention (retention.h): ended jobs older than this are purged; 0 keeps them.
  int64_t keep_finished_ms = 0;
  // Where the scheduler reads time; nullptr: the real clock (tests give a ManualClock).
  scheduler::Clock* clock = nullptr;
};

class FarmServer final {
 public:
  // Opens the store, loads the state and starts serving JobService, WorkerService,
  // the standard health service (grpc.health.v1: SERVING while up, NOT_SERVING once
  // shutting down) and server reflection. Metrics go to `registry`; the scrape-time
  // gauges come from metrics_collectable(), which the caller registers with its exposer.
  static absl::StatusOr<std::unique_ptr<FarmServer>> Start(const ServerOptions& options,
                                                           prometheus::Registry& registry);
  ~FarmServer();  // Shutdown() if not done

  int port() const { return port_; }
  const common::Storage& storage() const { return *storage_; }
  std::shared_ptr<prometheus::Collectable> metrics_collectable() const {
    return metrics_->stats_collectable();
  }
  // A channel to this server's own services that bypasses the network: the monitor's
  // way in, through the same handlers, authentication and checks as any gRPC client.
  std::shared_ptr<grpc::Channel> InProcessChannel() const {
    return server_->InProcessChannel(grpc::ChannelArguments());
  }
  Authenticator& authenticator() const { return *auth_; }
  // The base URL of the monitor for webhook bodies' links ("" for none).
  void SetMonitorUrl(std::string url) { notifier_->SetMonitorUrl(std::move(url)); }
  // Stops serving: ends streams, stops the dispatcher, waits for handlers.
  void Shutdown();
  // OK while the store takes commits; else the error that stopped them (the server
  // then answers changes with UNAVAILABLE).
  absl::Status health() { return sched_->health(); }

 private:
  FarmServer() = default;
  void DispatchLoop();
  // Removes the scratch folders (Storage::JobScratchDir) of jobs that succeeded or were
  // cancelled, and of jobs the store does not hold; a failed job's stay, so that
  // `reelctl retry` reuses its finished chunks. Runs at start and every few seconds, so
  // a server killed before it swept sweeps after its restart. With keep_finished_ms,
  // it purges the jobs that ended longer ago first (retention.h).
  void SweepLoop();
  void SweepScratch();

  // Destroyed bottom-up: the gRPC server first, then the scheduler (whose commit thread
  // may still answer workers through workers_), then the services, then the store;
  // metrics and task logs last, since the others report to them until they are gone.
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<Notifier> notifier_;  // the scheduler's events; forwards to metrics_
  std::unique_ptr<TaskLogStore> task_logs_;
  std::unique_ptr<scheduler::JobStore> store_;
  std::unique_ptr<common::Storage> storage_;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<WorkerServiceImpl> workers_;
  std::unique_ptr<JobServiceImpl> jobs_;
  std::unique_ptr<scheduler::Scheduler> sched_;
  // Answers calls to methods this port does not serve (garbage, typos, old clients).
  std::unique_ptr<grpc::CallbackGenericService> unknown_methods_;
  // Holds gRPC's callback threads but one (callback_threads.h); null with PostgreSQL.
  // Released by Shutdown(); destroyed before unknown_methods_, which calls it.
  std::unique_ptr<CallbackThreadHold> hold_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  int64_t keep_finished_ms_ = 0;
  std::atomic<bool> stop_{false};
  absl::Notification stopped_;  // notified with stop_ set
  std::thread dispatcher_;
  std::thread sweeper_;
};

}  // namespace reelfarm::server
