#include "tests/testing/memory_store.h"

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace reelfarm::testing {
namespace {

using scheduler::Job;
using scheduler::JobStore;
using scheduler::Task;

absl::Status CheckDistinctIndexes(const Job& job, const std::vector<Task>& tasks) {
  std::set<int> seen;
  for (const Task& task : tasks) {
    if (!seen.insert(task.index).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("job '", job.spec.name, "': task index ", task.index,
                       " appears more than once; give each task a distinct index"));
    }
  }
  return absl::OkStatus();
}

class InMemoryJobStore final : public JobStore {
 public:
  absl::StatusOr<int64_t> CreateJob(const Job& job, const std::vector<Task>& tasks) override {
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

  absl::Status Commit(const std::vector<Write>& writes) override {
    absl::MutexLock lock(&mu_);
    // All or nothing: check every write against the state it will meet first.
    std::set<int64_t> jobs;
    std::set<std::pair<int64_t, int>> tasks;
    for (const auto& [id, job] : jobs_) jobs.insert(id);
    for (const auto& [key, task] : tasks_) tasks.insert(key);
    for (const Write& w : writes) {
      const std::pair<int64_t, int> key{w.task.job_id, w.task.index};
      switch (w.kind) {
        case Write::Kind::kInsertJob:
          if (!jobs.insert(w.job.id).second || w.job.id < 1) {
            return absl::InvalidArgumentError(
                absl::StrCat("job ", w.job.id, " exists already or is not > 0"));
          }
          break;
        case Write::Kind::kUpdateJob:
          if (!jobs.count(w.job.id)) {
            return absl::NotFoundError(absl::StrCat("job ", w.job.id, " is not in the job store"));
          }
          break;
        case Write::Kind::kInsertTask:
          if (!jobs.count(w.task.job_id) || !tasks.insert(key).second) {
            return absl::InvalidArgumentError(
                absl::StrCat("task ", w.task.job_id, "/", w.task.index, " exists or has no job"));
          }
          break;
        case Write::Kind::kUpdateTask:
          if (!tasks.count(key)) {
            return absl::NotFoundError(absl::StrCat("task ", w.task.job_id, "/", w.task.index,
                                                    " is not in the job store"));
          }
          break;
        case Write::Kind::kDeleteJob:
          if (!jobs.erase(w.job.id)) {
            return absl::NotFoundError(absl::StrCat("job ", w.job.id, " is not in the job store"));
          }
          for (auto it = tasks.begin(); it != tasks.end();) {
            it = it->first == w.job.id ? tasks.erase(it) : std::next(it);
          }
          break;
      }
    }
    for (const Write& w : writes) {
      switch (w.kind) {
        case Write::Kind::kInsertJob:
          jobs_[w.job.id] = w.job;
          next_id_ = std::max(next_id_, w.job.id + 1);
          break;
        case Write::Kind::kUpdateJob: {
          // Everything but the id and creation time, as the SQLite store does.
          Job& stored = jobs_[w.job.id];
          const int64_t created = stored.created_unix_ms;
          stored = w.job;
          stored.created_unix_ms = w.job.created_unix_ms ? w.job.created_unix_ms : created;
          break;
        }
        case Write::Kind::kInsertTask:
          tasks_[{w.task.job_id, w.task.index}] = w.task;
          break;
        case Write::Kind::kUpdateTask: {
          // Kind and frame range are fixed at creation.
          Task& stored = tasks_[{w.task.job_id, w.task.index}];
          stored.state = w.task.state;
          stored.attempts = w.task.attempts;
          stored.workers = w.task.workers;
          stored.errors = w.task.errors;
          stored.lease_id = w.task.lease_id;
          stored.error = w.task.error;
          stored.model_digest = w.task.model_digest;
          stored.output_digest = w.task.output_digest;
          stored.qc = w.task.qc;
          stored.thumbnail = w.task.thumbnail;
          stored.preview = w.task.preview;
          stored.seconds = w.task.seconds;
          break;
        }
        case Write::Kind::kDeleteJob:
          jobs_.erase(w.job.id);
          for (auto it = tasks_.begin(); it != tasks_.end();) {
            it = it->first.first == w.job.id ? tasks_.erase(it) : std::next(it);
          }
          break;
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<Snapshot> LoadAll() override {
    absl::MutexLock lock(&mu_);
    Snapshot snapshot;
    snapshot.jobs.reserve(jobs_.size());
    for (const auto& [id, job] : jobs_) snapshot.jobs.push_back(job);
    snapshot.tasks.reserve(tasks_.size());
    for (const auto& [key, task] : tasks_) snapshot.tasks.push_back(task);
    snapshot.next_job_id = next_id_;
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

std::unique_ptr<JobStore> NewInMemoryJobStore() { return std::make_unique<InMemoryJobStore>(); }

}  // namespace reelfarm::testing
