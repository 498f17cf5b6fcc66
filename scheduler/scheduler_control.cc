// Scheduler: job control (cancel, pause, resume, priority, retry), dependencies and
// workers. The core (submit, lease, complete) is in scheduler.cc.
#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "scheduler/scheduler.h"

namespace reelfarm::scheduler {

using Write = JobStore::Write;

JobState Scheduler::NaturalStateLocked(const JobEntry& e) const {
  for (int64_t dep : e.job.spec.depends_on) {
    auto it = jobs_.find(dep);
    if (it == jobs_.end() || it->second.job.state != JobState::kSucceeded) {
      return JobState::kWaiting;
    }
  }
  if (e.tasks.empty()) return JobState::kWaiting;  // input not probed yet
  return e.job.started_unix_ms > 0 ? JobState::kRunning : JobState::kQueued;
}

absl::StatusOr<JobView> Scheduler::ChangeJob(
    int64_t job_id, const std::function<absl::Status(JobEntry&, Writes*)>& change) {
  uint64_t seq = 0;
  {
    absl::MutexLock lock(&mu_);
    JobEntry* e = FindLocked(job_id);
    if (!e) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
    Writes w;
    RETURN_IF_ERROR(change(*e, &w));
    seq = CommitLocked(std::move(w));
  }
  return Durable(seq, job_id);
}

absl::StatusOr<JobView> Scheduler::Cancel(int64_t job_id) {
  return ChangeJob(job_id, [&](JobEntry& e, Writes* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (IsTerminal(e.job.state)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "job ", job_id, " has already ", ToString(e.job.state), "; nothing to cancel"));
    }
    FinishJobLocked(e, JobState::kCancelled, "cancelled by request", w);
    return absl::OkStatus();
  });
}

absl::StatusOr<JobView> Scheduler::Pause(int64_t job_id) {
  return ChangeJob(job_id, [&](JobEntry& e, Writes* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (IsTerminal(e.job.state)) {
      return absl::FailedPreconditionError(
          absl::StrCat("job ", job_id, " has ", ToString(e.job.state),
                       "; only a job that has not ended can be paused"));
    }
    if (e.job.state != JobState::kPaused) {
      Job job = e.job;
      job.state = JobState::kPaused;
      SetJobLocked(e, std::move(job), w);
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<JobView> Scheduler::Resume(int64_t job_id) {
  return ChangeJob(job_id, [&](JobEntry& e, Writes* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (e.job.state != JobState::kPaused) {
      return absl::FailedPreconditionError(
          absl::StrCat("job ", job_id, " is ", ToString(e.job.state), ", not paused"));
    }
    Job job = e.job;
    job.state = NaturalStateLocked(e);
    SetJobLocked(e, std::move(job), w);
    return absl::OkStatus();
  });
}

absl::StatusOr<JobView> Scheduler::SetPriority(int64_t job_id, int priority) {
  if (priority < 0 || priority > 100) {
    return absl::InvalidArgumentError(absl::StrCat("priority is ", priority, "; give 0..100"));
  }
  return ChangeJob(job_id, [&](JobEntry& e, Writes* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (IsTerminal(e.job.state)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "job ", job_id, " has ", ToString(e.job.state), "; its priority no longer matters"));
    }
    Job job = e.job;
    job.spec.priority = priority;
    SetJobLocked(e, std::move(job), w);
    return absl::OkStatus();
  });
}

absl::StatusOr<JobView> Scheduler::Retry(int64_t job_id) {
  uint64_t seq = 0;
  {
    absl::MutexLock lock(&mu_);
    JobEntry* e = FindLocked(job_id);
    if (!e) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
    if (e->job.state != JobState::kFailed && e->job.state != JobState::kCancelled) {
      return absl::FailedPreconditionError(
          absl::StrCat("job ", job_id, " is ", ToString(e->job.state),
                       "; only a failed or cancelled job can be retried"));
    }
    for (int64_t dep : e->job.spec.depends_on) {
      JobEntry* d = FindLocked(dep);
      if (!d) {
        return absl::FailedPreconditionError(
            absl::StrCat("job ", job_id, " depends on job ", dep,
                         ", which was purged (retention); submit the job again without it"));
      }
      if ((d->job.state == JobState::kFailed || d->job.state == JobState::kCancelled)) {
        return absl::FailedPreconditionError(absl::StrCat("job ", job_id, " depends on job ", dep,
                                                          ", which has ", ToString(d->job.state),
                                                          "; retry job ", dep, " first"));
      }
    }
    Writes w;
    for (const Task& task : std::vector<Task>(e->tasks)) {
      if (task.state != TaskState::kFailed && task.state != TaskState::kCancelled) continue;
      Task t = task;
      t.state = TaskState::kPending;
      t.attempts = 0;  // a fresh budget; the history of attempts stays
      SetTaskLocked(*e, t, &w);
    }
    Job job = e->job;
    job.error.clear();
    job.finished_unix_ms = 0;
    job.state = NaturalStateLocked(*e);
    SetJobLocked(*e, std::move(job), &w);
    seq = CommitLocked(std::move(w));
  }
  return Durable(seq, job_id);
}

void Scheduler::WakeDependentsLocked(int64_t job_id, Writes* w) {
  auto it = dependents_.find(job_id);
  if (it == dependents_.end()) return;
  for (int64_t id : it->second) {
    JobEntry* e = FindLocked(id);
    if (!e || e->job.state != JobState::kWaiting) continue;
    JobState next = NaturalStateLocked(*e);
    if (next == JobState::kWaiting) continue;  // other dependencies, or not probed yet
    Job job = e->job;
    job.state = next;
    SetJobLocked(*e, std::move(job), w);
  }
}

std::vector<std::pair<int64_t, JobSpec>> Scheduler::JobsToActivate() {
  absl::MutexLock lock(&mu_);
  std::vector<std::pair<int64_t, JobSpec>> out;
  for (auto id_it = unprobed_.begin(); id_it != unprobed_.end();) {
    const int64_t id = *id_it;
    auto job_it = jobs_.find(id);
    // Gone, probed or ended since: a job comes back here only by going waiting again.
    if (job_it == jobs_.end() || job_it->second.job.state != JobState::kWaiting ||
        !job_it->second.tasks.empty()) {
      id_it = unprobed_.erase(id_it);
      continue;
    }
    ++id_it;
    const JobEntry& e = job_it->second;
    bool ready = true;
    for (int64_t dep : e.job.spec.depends_on) {
      auto it = jobs_.find(dep);
      ready &= it != jobs_.end() && it->second.job.state == JobState::kSucceeded;
    }
    if (ready) out.emplace_back(id, e.job.spec);
  }
  return out;
}

absl::Status Scheduler::Activate(int64_t job_id, const MediaInfo& input_info) {
  uint64_t seq = 0;
  {
    absl::MutexLock lock(&mu_);
    JobEntry* e = FindLocked(job_id);
    if (!e) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
    if (e->job.state != JobState::kWaiting || !e->tasks.empty()) return absl::OkStatus();
    Writes w;
    Job job = e->job;
    job.input_info = input_info;
    e->job.input_info = input_info;
    AddTasksLocked(*e, MakeTasks(e->job.spec, input_info), &w);
    job.state = NaturalStateLocked(*e);
    SetJobLocked(*e, std::move(job), &w);
    seq = CommitLocked(std::move(w));
  }
  return commits_->WaitFor(seq);
}

absl::Status Scheduler::FailJob(int64_t job_id, const std::string& error) {
  uint64_t seq = 0;
  {
    absl::MutexLock lock(&mu_);
    JobEntry* e = FindLocked(job_id);
    if (!e) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
    if (IsTerminal(e->job.state)) return absl::OkStatus();
    Writes w;
    FinishJobLocked(*e, JobState::kFailed, error, &w);
    seq = CommitLocked(std::move(w));
  }
  return commits_->WaitFor(seq);
}

std::vector<uint64_t> Scheduler::RegisterWorker(const WorkerInfo& info,
                                                const std::vector<uint64_t>& held) {
  absl::MutexLock lock(&mu_);
  WorkerEntry& w = workers_[info.name];
  w.info = info;
  w.draining = draining_.count(info.name) > 0;
  w.running = 0;
  w.held.clear();
  w.memory_in_use = 0;
  w.leases_expired = 0;  // it says hello: alive
  w.unhealthy_since_ms = 0;
  w.unhealthy_reason.clear();
  const std::set<uint64_t> reported(held.begin(), held.end());
  std::vector<uint64_t> stale;
  for (uint64_t id : held) {
    auto it = leases_.find(id);
    if (it == leases_.end() || it->second.worker != info.name) stale.push_back(id);
  }
  // Leases this worker should hold: kept if it still runs (or holds) them, else failed.
  std::set<uint64_t> kept;  // by id: the oldest run, the rest are held
  std::vector<uint64_t> lost;
  for (auto& [id, lease] : leases_) {
    if (lease.worker != info.name) continue;
    if (reported.count(id)) {
      lease.deadline_ms = clock_->NowMs() + options_.lease_ms;
      kept.insert(id);
    } else {
      lost.push_back(id);
    }
  }
  Writes writes;
  for (uint64_t id : lost) {
    // ReleaseLeaseLocked takes it off the worker's counts, which do not count it yet.
    Lease& lease = leases_.at(id);
    lease.held = false;
    ++w.running;
    w.memory_in_use += jobs_.at(lease.job_id).job.spec.memory_bytes;
    FailAttemptLocked(id, absl::StrCat("worker '", info.name, "' restarted"), true, &writes);
  }
  for (uint64_t id : kept) TakeRoomLocked(w, leases_.at(id));
  CommitLocked(std::move(writes));
  return stale;
}

void Scheduler::UnregisterWorker(const std::string& name) {
  absl::MutexLock lock(&mu_);
  std::vector<uint64_t> held;
  for (const auto& [id, lease] : leases_) {
    if (lease.worker == name) held.push_back(id);
  }
  Writes writes;
  for (uint64_t id : held) {
    FailAttemptLocked(id, absl::StrCat("worker '", name, "' disconnected"),
                      /*retryable=*/true, &writes);
  }
  workers_.erase(name);
  CommitLocked(std::move(writes));
}

absl::Status Scheduler::Drain(const std::string& name, bool drain) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(name);
  if (it == workers_.end() && !draining_.count(name)) {
    return absl::NotFoundError(absl::StrCat("worker '", name, "' is not connected"));
  }
  if (drain) {
    draining_.insert(name);
  } else {
    draining_.erase(name);
  }
  if (it != workers_.end()) it->second.draining = drain;
  BumpLocked();
  return absl::OkStatus();
}

std::vector<WorkerView> Scheduler::ListWorkers() const {
  absl::MutexLock lock(&mu_);
  std::vector<WorkerView> out;
  for (const auto& [name, w] : workers_) {
    WorkerView v;
    v.info = w.info;
    v.tasks_done = w.tasks_done;
    v.draining = w.draining;
    v.unhealthy = w.leases_expired > 0;
    v.unhealthy_since_ms = w.unhealthy_since_ms;
    v.leases_expired = w.leases_expired;
    v.unhealthy_reason = w.unhealthy_reason;
    for (const auto& [id, lease] : leases_) {
      if (lease.worker == name) v.leases.push_back(lease);
    }
    std::sort(v.leases.begin(), v.leases.end(),
              [](const Lease& a, const Lease& b) { return a.id < b.id; });
    out.push_back(std::move(v));
  }
  return out;
}

std::vector<std::string> Scheduler::KnownModels() const {
  absl::MutexLock lock(&mu_);
  std::set<std::string> models;
  for (const auto& [name, w] : workers_) models.insert(w.info.models.begin(), w.info.models.end());
  return {models.begin(), models.end()};
}

Scheduler::Stats Scheduler::GetStats() const {
  absl::MutexLock lock(&mu_);
  Stats st;
  for (int64_t id : active_) {
    const JobEntry& e = jobs_.at(id);
    Stats::ProjectCounts& p = st.projects[e.job.spec.project];
    ++p.jobs_active;
    // From the indexes, not by visiting every task: scrapes stay cheap with a long queue.
    p.tasks_queued += static_cast<int64_t>(e.ready_chunks.size());
    if (e.assemble_index >= 0 && e.tasks[e.assemble_index].state == TaskState::kPending) {
      ++p.tasks_queued;
    }
  }
  for (const auto& [id, lease] : leases_) {
    Stats::ProjectCounts& p = st.projects[jobs_.at(lease.job_id).job.spec.project];
    ++(lease.held ? p.tasks_held : p.tasks_running);
  }
  for (const auto& [name, w] : workers_) {
    st.worker_unhealthy[name] = w.leases_expired > 0;
    if (w.leases_expired > 0) {
      ++st.workers_unhealthy;
    } else if (w.draining) {
      ++st.workers_draining;
    } else if (w.running > 0) {
      ++st.workers_busy;
    } else {
      ++st.workers_idle;
    }
  }
  st.commit_batches = commits_->batches();
  st.commit_writes = commits_->writes();
  return st;
}

}  // namespace reelfarm::scheduler
