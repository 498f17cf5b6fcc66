// Scheduler: retention, the purge of ended jobs (see Scheduler::Purge).
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "scheduler/scheduler.h"

namespace reelfarm::scheduler {

absl::StatusOr<Scheduler::PurgeResult> Scheduler::Purge(const PurgeRequest& request) {
  PurgeResult result;
  uint64_t seq = 0;
  {
    absl::MutexLock lock(&mu_);
    const int64_t now = clock_->NowMs();
    std::vector<int64_t> candidates = request.job_ids;
    if (candidates.empty()) {
      for (const auto& [id, e] : jobs_) {
        if (IsTerminal(e.job.state)) candidates.push_back(id);
      }
    }
    for (int64_t id : candidates) {
      if (!jobs_.count(id)) return absl::NotFoundError(absl::StrCat("job ", id, " not found"));
    }
    const bool named = !request.job_ids.empty();
    for (int64_t id : candidates) {
      const Job& job = jobs_.at(id).job;
      if (!IsTerminal(job.state)) {
        result.kept.emplace_back(
            id, absl::StrCat("it has not ended (", ToString(job.state), "); cancel it first"));
        continue;
      }
      if (now - job.finished_unix_ms < request.older_than_ms) {
        if (named) {
          result.kept.emplace_back(
              id, absl::StrCat("it ended ", (now - job.finished_unix_ms) / 1000,
                               " s ago, less than the ", request.older_than_ms / 1000, " s asked"));
        }
        continue;
      }
      std::string needed_by;
      auto deps = dependents_.find(id);
      if (deps != dependents_.end()) {
        for (int64_t dependent : deps->second) {
          auto d = jobs_.find(dependent);
          if (d != jobs_.end() && !IsTerminal(d->second.job.state)) {
            needed_by = absl::StrCat("job ", dependent, ", which depends on it, has not ended (",
                                     ToString(d->second.job.state), ")");
            break;
          }
        }
      }
      if (!needed_by.empty()) {
        result.kept.emplace_back(id, needed_by);
        continue;
      }
      result.purged.push_back(job);
    }
    std::sort(result.purged.begin(), result.purged.end(), [](const Job& a, const Job& b) {
      return a.finished_unix_ms != b.finished_unix_ms ? a.finished_unix_ms < b.finished_unix_ms
                                                      : a.id < b.id;
    });
    if (request.dry_run || result.purged.empty()) return result;
    Writes w;
    for (const Job& job : result.purged) {
      Job deleted;
      deleted.id = job.id;
      w.push_back({JobStore::Write::Kind::kDeleteJob, std::move(deleted), {}});
      active_.erase(job.id);
      if (auto it = jobs_.find(job.id); it != jobs_.end()) {
        RecountQueuedLocked(it->second);  // no longer counted in the queue
        jobs_.erase(it);
      }
      dependents_.erase(job.id);
      // Its own entries among its dependencies' dependents.
      for (int64_t dep : job.spec.depends_on) {
        auto it = dependents_.find(dep);
        if (it == dependents_.end()) continue;
        auto& v = it->second;
        v.erase(std::remove(v.begin(), v.end(), job.id), v.end());
        if (v.empty()) dependents_.erase(it);
      }
      if (!job.spec.request_id.empty()) {
        auto it = request_ids_.find({job.spec.project, job.spec.request_id});
        if (it != request_ids_.end() && it->second == job.id) request_ids_.erase(it);
      }
    }
    seq = CommitLocked(std::move(w));
  }
  RETURN_IF_ERROR(commits_->WaitFor(seq));
  return result;
}

}  // namespace reelfarm::scheduler
