// ServerMetrics: the server's Prometheus metrics, registered once in the registry that
// main owns (no global registry). Names follow reelfarm_<noun>_<unit>; labels carry
// kinds, projects, states and codes, never job ids or paths.
//
// Counters and histograms are fed by the scheduler (SchedulerEvents), the services and
// the store decorator; gauges (queue depth, running tasks, workers) are read from
// Scheduler::GetStats() when Prometheus scrapes, through the Collectable returned by
// stats_collectable(), which main registers with the exposer next to the registry.
//
// Thread-safety: every method may be called from any thread. The SchedulerEvents
// methods only touch counters (quick, never call back into the scheduler).
#pragma once

#include <memory>
#include <set>
#include <string>

#include <grpcpp/support/server_interceptor.h>
#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "absl/status/status.h"
#include "scheduler/events.h"
#include "scheduler/scheduler.h"

namespace reelfarm::server {

class SchedulerStatsCollector;

class ServerMetrics final : public scheduler::SchedulerEvents {
 public:
  explicit ServerMetrics(prometheus::Registry& registry);
  ~ServerMetrics() override;

  // SchedulerEvents.
  void JobSubmitted(const scheduler::Job& job) override;
  void JobFinished(const scheduler::Job& job) override;
  void TaskLeased(const scheduler::Job& job, const scheduler::Task& task,
                  int64_t queued_ms) override;
  void TaskFinished(const scheduler::Job& job, const scheduler::Task& task, bool ok,
                    bool will_retry, int64_t run_ms) override;
  void LeaseExpired(const scheduler::Lease& lease) override;

  // A SubmitJob refused before anything was committed (validation, limits).
  void SubmitRefused(absl::StatusCode code);
  // An input looked up in admission's probe cache (server/probe_cache.h).
  void ProbeCacheLookup(bool hit);
  void WorkerConnected();
  void WorkerDisconnected();
  // One JobStore call (`op`: create_job, update_job, update_task, load_all).
  void StoreCall(const std::string& op, double seconds, bool ok);
  // One WAL checkpoint of the SQLite store (`pass`: background, rest, limit; see
  // scheduler::CheckpointObserver); a failed one counts as a store error (op checkpoint).
  void StoreCheckpoint(const std::string& pass, double seconds, bool ok);
  // gRPC's callback threads: those that serve calls and those held (callback_threads.h).
  void CallbackThreads(int serving, int held);
  // One finished gRPC call; `full_method` is gRPC's "/package.Service/Method".
  void GrpcCall(const std::string& full_method, int code, double seconds);

  // Gauges read from `sched` at scrape time; nullptr detaches (before the scheduler is
  // destroyed). The scheduler must stay alive while attached.
  void AttachScheduler(const scheduler::Scheduler* sched);
  std::shared_ptr<prometheus::Collectable> stats_collectable() const;

 private:
  prometheus::Family<prometheus::Counter>& jobs_submitted_;
  prometheus::Family<prometheus::Counter>& jobs_refused_;
  prometheus::Family<prometheus::Counter>& probe_cache_lookups_;
  prometheus::Family<prometheus::Counter>& jobs_finished_;
  prometheus::Family<prometheus::Histogram>& queue_wait_;
  prometheus::Family<prometheus::Histogram>& run_duration_;
  prometheus::Family<prometheus::Counter>& task_attempts_;
  prometheus::Family<prometheus::Counter>& task_retries_;
  prometheus::Family<prometheus::Counter>& qc_flags_;
  prometheus::Counter& lease_expirations_;
  prometheus::Counter& worker_connects_;
  prometheus::Counter& worker_disconnects_;
  prometheus::Family<prometheus::Histogram>& store_seconds_;
  prometheus::Family<prometheus::Counter>& store_errors_;
  prometheus::Family<prometheus::Histogram>& checkpoint_seconds_;
  prometheus::Family<prometheus::Counter>& grpc_requests_;
  prometheus::Family<prometheus::Histogram>& grpc_seconds_;
  prometheus::Family<prometheus::Gauge>& callback_threads_;
  std::shared_ptr<SchedulerStatsCollector> stats_;
};

// A server interceptor factory that reports every call's method, status code and
// latency to `metrics` (which must outlive the server). Methods outside reelfarm's,
// health's and reflection's services are reported as method "unknown" so that a
// client cannot grow the label set.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
NewGrpcMetricsInterceptorFactory(ServerMetrics* metrics);

}  // namespace reelfarm::server
