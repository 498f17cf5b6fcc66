#include "server/timed_store.h"

#include <chrono>

namespace reelfarm::server {

namespace {

// Times `call` and reports it under `op`; returns what the call returned.
template <typename F>
auto Timed(ServerMetrics* metrics, const char* op, F&& call) {
  const auto t0 = std::chrono::steady_clock::now();
  auto result = call();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  metrics->StoreCall(op, s, result.ok());
  return result;
}

}  // namespace

absl::StatusOr<int64_t> TimedJobStore::CreateJob(const scheduler::Job& job,
                                                 const std::vector<scheduler::Task>& tasks) {
  return Timed(metrics_, "create_job", [&] { return inner_->CreateJob(job, tasks); });
}

absl::Status TimedJobStore::UpdateJob(const scheduler::Job& job) {
  return Timed(metrics_, "update_job", [&] { return inner_->UpdateJob(job); });
}

absl::Status TimedJobStore::UpdateTask(const scheduler::Task& task) {
  return Timed(metrics_, "update_task", [&] { return inner_->UpdateTask(task); });
}

absl::Status TimedJobStore::Commit(const std::vector<Write>& writes) {
  return Timed(metrics_, "commit", [&] { return inner_->Commit(writes); });
}

absl::StatusOr<scheduler::JobStore::Snapshot> TimedJobStore::LoadAll() {
  return Timed(metrics_, "load_all", [&] { return inner_->LoadAll(); });
}

absl::Status TimedJobStore::Load(LoadSink& sink) {
  return Timed(metrics_, "load_all", [&] { return inner_->Load(sink); });
}

}  // namespace reelfarm::server
