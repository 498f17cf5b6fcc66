// InMemoryJobStore: the JobStore fake for unit tests. Same contract as the
// SQLite store (ids from 1, never reused; NOT_FOUND for missing rows;
// INVALID_ARGUMENT for a repeated task index), but nothing survives the object.
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "scheduler/job_store.h"

namespace reelfarm::scheduler {
namespace {

absl::Status CheckDistinctIndexes(const Job& job,
                                  const std::vector<Task>& tasks) {
  std::set<int> seen;
  for (const Task& task : tasks) {
    if (!seen.insert(task.index).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "job '", job.spec.name, "': task index ", task.index,
          " appears more than once; give each task a distinct index"));
    }
  }
  return absl::OkStatus();
}

class InMemoryJobStore final : public JobStore {
 public:
  absl::StatusOr<int64_t> CreateJob(const Job& job,
                                    const std::vector<Task>& tasks) override {
    RETURN_IF_ERROR(CheckDistinctIndexes(job, tasks));
    absl::MutexLock lock(&mu_);
    const int64_t id = next_id_++;
    Job& stored = jobs_[id];
    stored = job;
    stored.id = id;
    for (const Task& task : tasks) {
      Task& t = tasks_[{id, task.index}];
      t = task;
      t.job_id = id;
    }
    return id;
  }

  absl::Status UpdateJob(const Job& job) override {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(job.id);
    if (it == jobs_.end()) {
      return absl::NotFoundError(
          absl::StrCat("job ", job.id, " is not in the job store"));
    }
    // Only the mutable state, as the SQLite store does: spec and input are
    // fixed at creation.
    Job& stored = it->second;
    stored.state = job.state;
    stored.error = job.error;
    stored.created_unix_ms = job.created_unix_ms;
    stored.started_unix_ms = job.started_unix_ms;
    stored.finished_unix_ms = job.finished_unix_ms;
    return absl::OkStatus();
  }

  absl::Status UpdateTask(const Task& task) override {
    absl::MutexLock lock(&mu_);
    auto it = tasks_.find({task.job_id, task.index});
    if (it == tasks_.end()) {
      return absl::NotFoundError(absl::StrCat(
          "task ", task.job_id, "/", task.index, " is not in the job store"));
    }
    // Kind and frame range are fixed at creation.
    Task& stored = it->second;
    stored.state = task.state;
    stored.attempts = task.attempts;
    stored.workers = task.workers;
    stored.error = task.error;
    stored.model_digest = task.model_digest;
    stored.seconds = task.seconds;
    return absl::OkStatus();
  }

  absl::StatusOr<Snapshot> LoadAll() override {
    absl::MutexLock lock(&mu_);
    Snapshot snapshot;
    snapshot.jobs.reserve(jobs_.size());
    for (const auto& [id, job] : jobs_) snapshot.jobs.push_back(job);
    snapshot.tasks.reserve(tasks_.size());
    for (const auto& [key, task] : tasks_) snapshot.tasks.push_back(task);
    return snapshot;
  }

 private:
  absl::Mutex mu_;
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<int64_t, Job> jobs_ ABSL_GUARDED_BY(mu_);
  // Keyed by (job_id, index), so iteration is LoadAll's order.
  std::map<std::pair<int64_t, int>, Task> tasks_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<JobStore> NewInMemoryJobStore() {
  return std::make_unique<InMemoryJobStore>();
}

}  // namespace reelfarm::scheduler
