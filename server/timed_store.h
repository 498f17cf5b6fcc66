// TimedJobStore: a JobStore decorator that reports each call's latency and failures to
// ServerMetrics (reelfarm_store_commit_duration_seconds{op}), so ops see a slow disk
// before it stalls the scheduler. Behaviour is the wrapped store's, unchanged.
#pragma once

#include <memory>

#include "scheduler/job_store.h"
#include "server/metrics.h"

namespace reelfarm::server {

class TimedJobStore final : public scheduler::JobStore {
 public:
  // `metrics` is borrowed and must outlive the store.
  TimedJobStore(std::unique_ptr<scheduler::JobStore> inner, ServerMetrics* metrics)
      : inner_(std::move(inner)), metrics_(metrics) {}

  absl::StatusOr<int64_t> CreateJob(const scheduler::Job& job,
                                    const std::vector<scheduler::Task>& tasks) override;
  absl::Status UpdateJob(const scheduler::Job& job) override;
  absl::Status UpdateTask(const scheduler::Task& task) override;
  // The scheduler's group commits: one call per batch.
  absl::Status Commit(const std::vector<Write>& writes) override;
  absl::StatusOr<Snapshot> LoadAll() override;
  absl::Status Load(LoadSink& sink) override;

 private:
  const std::unique_ptr<scheduler::JobStore> inner_;
  ServerMetrics* const metrics_;
};

}  // namespace reelfarm::server
