#include "scheduler/job_store.h"

#include <algorithm>
#include <utility>

namespace reelfarm::scheduler {

absl::Status JobStore::Load(LoadSink& sink) {
  ASSIGN_OR_RETURN(Snapshot snap, LoadAll());
  // Tasks come ordered by (job_id, index): each job's count is its last task's index + 1.
  size_t t = 0;
  for (Job& job : snap.jobs) {
    while (t < snap.tasks.size() && snap.tasks[t].job_id < job.id) ++t;
    int count = 0;
    for (size_t u = t; u < snap.tasks.size() && snap.tasks[u].job_id == job.id; ++u) {
      count = std::max(count, snap.tasks[u].index + 1);
    }
    sink.AddJob(std::move(job), count);
  }
  for (Task& task : snap.tasks) {
    if (Task* slot = sink.TaskSlot(task.job_id, task.index)) *slot = std::move(task);
  }
  sink.SetNextJobId(snap.next_job_id);
  return absl::OkStatus();
}

}  // namespace reelfarm::scheduler
