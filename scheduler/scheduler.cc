#include "scheduler/scheduler.h"

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/storage.h"

namespace reelfarm::scheduler {

std::string SegmentPath(int64_t job_id, int index) {
  return absl::StrFormat("%s/chunk_%06d.mov", common::Storage::JobPartsDir(job_id), index);
}

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(JobStore* store, Clock* clock,
                                                             SchedulerOptions options,
                                                             SchedulerEvents* events) {
  std::unique_ptr<Scheduler> s(new Scheduler(store, clock, options, events));
  ASSIGN_OR_RETURN(JobStore::Snapshot snap, store->LoadAll());
  absl::MutexLock lock(&s->mu_);
  for (Job& job : snap.jobs) {
    JobEntry& e = s->jobs_[job.id];
    e.job = std::move(job);
  }
  for (Task& task : snap.tasks) {
    auto it = s->jobs_.find(task.job_id);
    if (it == s->jobs_.end()) continue;
    if (task.state == TaskState::kLeased) {
      // Its worker is gone with the old process; queue it again.
      task.state = TaskState::kPending;
      RETURN_IF_ERROR(store->UpdateTask(task));
    }
    it->second.tasks.push_back(std::move(task));
  }
  const int64_t now = clock->NowMs();
  for (auto& [id, e] : s->jobs_) {
    e.progress.assign(e.tasks.size(), 0);
    e.lease_of.assign(e.tasks.size(), 0);
    e.ready_since.assign(e.tasks.size(), now);
  }
  // Lease ids stay above any handed out before a restart.
  s->next_lease_id_ = static_cast<uint64_t>(clock->NowMs()) * 1000;
  return s;
}

void Scheduler::BumpLocked() {
  ++version_;
  changed_.SignalAll();
}

uint64_t Scheduler::version() const {
  absl::MutexLock lock(&mu_);
  return version_;
}

uint64_t Scheduler::WaitForChange(uint64_t seen, int64_t timeout_ms) const {
  absl::MutexLock lock(&mu_);
  absl::Time deadline = absl::Now() + absl::Milliseconds(timeout_ms);
  while (version_ == seen) {
    if (changed_.WaitWithDeadline(&mu_, deadline)) break;
  }
  return version_;
}

absl::StatusOr<JobView> Scheduler::Submit(JobSpec spec, MediaInfo input_info) {
  const UpscaleSpec& up = spec.upscale;
  if (up.chunk_frames < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("upscale.chunk_frames is ", up.chunk_frames, "; give 1 or more"));
  }
  std::vector<FrameRange> ranges = SplitIntoChunks(input_info.frame_count, up.chunk_frames);
  if (ranges.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("upscale.input '", up.input, "' has no frames"));
  }
  if (static_cast<int64_t>(ranges.size()) + 1 > options_.max_tasks_per_job) {
    return absl::InvalidArgumentError(absl::StrCat(
        "upscale.chunk_frames ", up.chunk_frames, " makes ", ranges.size(),
        " tasks, over the limit of ", options_.max_tasks_per_job,
        "; give larger chunks"));
  }
  Job job;
  job.spec = std::move(spec);
  job.input_info = std::move(input_info);
  job.state = JobState::kQueued;
  job.created_unix_ms = clock_->NowMs();
  std::vector<Task> tasks;
  for (size_t i = 0; i < ranges.size(); ++i) {
    Task t;
    t.index = static_cast<int>(i);
    t.kind = TaskKind::kChunk;
    t.frame_begin = ranges[i].begin;
    t.frame_end = ranges[i].end;
    tasks.push_back(t);
  }
  Task assemble;
  assemble.index = static_cast<int>(ranges.size());
  assemble.kind = TaskKind::kAssemble;
  assemble.frame_begin = 0;
  assemble.frame_end = 0;
  tasks.push_back(assemble);

  absl::MutexLock lock(&mu_);
  // Committed before anything can see it.
  ASSIGN_OR_RETURN(int64_t id, store_->CreateJob(job, tasks));
  job.id = id;
  for (Task& t : tasks) t.job_id = id;
  JobEntry& e = jobs_[id];
  e.job = std::move(job);
  e.tasks = std::move(tasks);
  e.progress.assign(e.tasks.size(), 0);
  e.lease_of.assign(e.tasks.size(), 0);
  e.ready_since.assign(e.tasks.size(), e.job.created_unix_ms);
  events_->JobSubmitted(e.job);
  BumpLocked();
  return ViewLocked(e);
}

JobView Scheduler::ViewLocked(const JobEntry& e) const {
  JobView v;
  v.job = e.job;
  v.tasks = e.tasks;
  v.task_frames_done = e.progress;
  v.tasks_total = static_cast<int>(e.tasks.size());
  for (size_t i = 0; i < e.tasks.size(); ++i) {
    const Task& t = e.tasks[i];
    if (t.kind == TaskKind::kChunk) {
      v.frames_total += t.frames();
      v.frames_done += t.state == TaskState::kSucceeded ? t.frames() : e.progress[i];
    }
    if (t.state == TaskState::kSucceeded) ++v.tasks_done;
  }
  int64_t end = e.job.finished_unix_ms ? e.job.finished_unix_ms : clock_->NowMs();
  if (e.job.started_unix_ms > 0 && end > e.job.started_unix_ms && v.frames_done > 0) {
    v.fps = v.frames_done * 1000.0 / static_cast<double>(end - e.job.started_unix_ms);
    if (!IsTerminal(e.job.state)) {
      v.eta_seconds = static_cast<double>(v.frames_total - v.frames_done) / v.fps;
    } else {
      v.eta_seconds = 0;
    }
  }
  return v;
}

absl::StatusOr<JobView> Scheduler::GetJob(int64_t job_id) const {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) {
    return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  }
  return ViewLocked(it->second);
}

std::vector<JobView> Scheduler::ListJobs(const std::vector<JobState>& states,
                                         int limit) const {
  absl::MutexLock lock(&mu_);
  std::vector<JobView> out;
  for (auto it = jobs_.rbegin(); it != jobs_.rend(); ++it) {
    if (limit > 0 && static_cast<int>(out.size()) >= limit) break;
    const Job& j = it->second.job;
    if (!states.empty() && std::find(states.begin(), states.end(), j.state) == states.end()) {
      continue;
    }
    JobView v = ViewLocked(it->second);
    v.tasks.clear();
    v.task_frames_done.clear();
    out.push_back(std::move(v));
  }
  return out;
}

absl::Status Scheduler::FinishJobLocked(JobEntry& e, JobState state,
                                        const std::string& error) {
  Job job = e.job;
  job.state = state;
  job.error = error;
  job.finished_unix_ms = clock_->NowMs();
  RETURN_IF_ERROR(store_->UpdateJob(job));
  e.job = std::move(job);
  events_->JobFinished(e.job);
  for (size_t i = 0; i < e.tasks.size(); ++i) {
    Task& t = e.tasks[i];
    if (t.state != TaskState::kPending && t.state != TaskState::kLeased) continue;
    if (e.lease_of[i] != 0) {
      auto it = leases_.find(e.lease_of[i]);
      if (it != leases_.end()) {
        revoked_.push_back(it->second);
        leases_.erase(it);
      }
      e.lease_of[i] = 0;
    }
    Task copy = t;
    copy.state = TaskState::kCancelled;
    RETURN_IF_ERROR(store_->UpdateTask(copy));
    t = std::move(copy);
    e.progress[i] = 0;
  }
  BumpLocked();
  return absl::OkStatus();
}

absl::StatusOr<JobView> Scheduler::Cancel(int64_t job_id) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) {
    return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  }
  JobEntry& e = it->second;
  if (IsTerminal(e.job.state)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", job_id, " has already ", ToString(e.job.state), "; nothing to cancel"));
  }
  RETURN_IF_ERROR(FinishJobLocked(e, JobState::kCancelled, "cancelled by request"));
  return ViewLocked(e);
}

void Scheduler::RegisterWorker(const WorkerInfo& info) {
  absl::MutexLock lock(&mu_);
  WorkerEntry& w = workers_[info.name];
  w.info = info;
  w.connected = true;
  BumpLocked();
}

void Scheduler::UnregisterWorker(const std::string& name) {
  absl::MutexLock lock(&mu_);
  std::vector<uint64_t> held;
  for (const auto& [id, lease] : leases_) {
    if (lease.worker == name) held.push_back(id);
  }
  for (uint64_t id : held) {
    // A store failure here leaves the lease to expire later; nothing else to do.
    (void)FailAttemptLocked(id, absl::StrCat("worker '", name, "' disconnected"),
                            /*retryable=*/true);
  }
  workers_.erase(name);
  BumpLocked();
}

std::vector<WorkerView> Scheduler::ListWorkers() const {
  absl::MutexLock lock(&mu_);
  std::vector<WorkerView> out;
  for (const auto& [name, w] : workers_) {
    WorkerView v;
    v.info = w.info;
    v.tasks_done = w.tasks_done;
    for (const auto& [id, lease] : leases_) {
      if (lease.worker == name) v.leases.push_back(lease);
    }
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

int Scheduler::ActiveLeasesLocked(const std::string& worker) const {
  int n = 0;
  for (const auto& [id, lease] : leases_) n += lease.worker == worker;
  return n;
}

int Scheduler::NextTaskLocked(const JobEntry& e) const {
  bool chunks_done = true;
  for (size_t i = 0; i < e.tasks.size(); ++i) {
    const Task& t = e.tasks[i];
    if (t.kind == TaskKind::kChunk) {
      if (t.state == TaskState::kPending) return static_cast<int>(i);
      if (t.state != TaskState::kSucceeded) chunks_done = false;
    } else if (t.kind == TaskKind::kAssemble && t.state == TaskState::kPending &&
               chunks_done) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

std::optional<Assignment> Scheduler::LeaseNext(const std::string& worker) {
  absl::MutexLock lock(&mu_);
  auto wit = workers_.find(worker);
  if (wit == workers_.end() || !wit->second.connected) return std::nullopt;
  const WorkerInfo& info = wit->second.info;
  if (ActiveLeasesLocked(worker) >= info.slots) return std::nullopt;
  // Highest priority first, then oldest.
  JobEntry* best = nullptr;
  int best_index = -1;
  for (auto& [id, e] : jobs_) {
    if (IsTerminal(e.job.state)) continue;
    if (best && e.job.spec.priority <= best->job.spec.priority) continue;
    const std::string& model = e.job.spec.upscale.model;
    if (std::find(info.models.begin(), info.models.end(), model) == info.models.end()) {
      continue;
    }
    int index = NextTaskLocked(e);
    if (index < 0) continue;
    best = &e;
    best_index = index;
  }
  if (!best) return std::nullopt;
  JobEntry& e = *best;
  Task task = e.tasks[best_index];
  task.state = TaskState::kLeased;
  task.attempts += 1;
  task.workers.push_back(worker);
  if (!store_->UpdateTask(task).ok()) return std::nullopt;
  if (e.job.state == JobState::kQueued) {
    Job job = e.job;
    job.state = JobState::kRunning;
    job.started_unix_ms = clock_->NowMs();
    if (!store_->UpdateJob(job).ok()) return std::nullopt;
    e.job = std::move(job);
  }
  e.tasks[best_index] = task;
  Lease lease;
  lease.id = next_lease_id_++;
  lease.job_id = e.job.id;
  lease.task_index = best_index;
  lease.worker = worker;
  lease.leased_ms = clock_->NowMs();
  lease.deadline_ms = lease.leased_ms + options_.lease_ms;
  lease.attempt = task.attempts;
  leases_[lease.id] = lease;
  e.lease_of[best_index] = lease.id;
  e.progress[best_index] = 0;
  events_->TaskLeased(e.job, task, clock_->NowMs() - e.ready_since[best_index]);
  BumpLocked();
  return MakeAssignmentLocked(e, best_index, lease);
}

Assignment Scheduler::MakeAssignmentLocked(const JobEntry& e, int index,
                                           const Lease& lease) const {
  Assignment a;
  a.lease = lease;
  a.task = e.tasks[index];
  a.spec = e.job.spec;
  a.input_info = e.job.input_info;
  if (a.task.kind == TaskKind::kChunk) {
    a.segment = SegmentPath(e.job.id, index);
    return a;
  }
  nlohmann::json chunks = nlohmann::json::array();
  for (const Task& t : e.tasks) {
    if (t.kind != TaskKind::kChunk) continue;
    a.segments.push_back(SegmentPath(e.job.id, t.index));
    chunks.push_back({{"index", t.index},
                      {"frames", {t.frame_begin, t.frame_end}},
                      {"worker", t.workers.empty() ? "" : t.workers.back()},
                      {"attempts", t.attempts},
                      {"seconds", t.seconds},
                      {"model_digest", t.model_digest}});
  }
  const UpscaleSpec& up = e.job.spec.upscale;
  nlohmann::json prov = {
      {"job_id", e.job.id},
      {"name", e.job.spec.name},
      {"project", e.job.spec.project},
      {"spec",
       {{"kind", "upscale"},
        {"input", up.input},
        {"output", up.output},
        {"model", up.model},
        {"scale", up.scale},
        {"chunk_frames", up.chunk_frames},
        {"crf", up.crf}}},
      {"input_info",
       {{"width", e.job.input_info.width},
        {"height", e.job.input_info.height},
        {"frame_count", e.job.input_info.frame_count},
        {"fps", {e.job.input_info.fps_num, e.job.input_info.fps_den}},
        {"codec", e.job.input_info.codec},
        {"pixel_format", e.job.input_info.pixel_format}}},
      {"created_unix_ms", e.job.created_unix_ms},
      {"started_unix_ms", e.job.started_unix_ms},
      {"chunks", chunks}};
  a.provenance_json = prov.dump();
  return a;
}

std::vector<uint64_t> Scheduler::Heartbeat(const std::string& worker,
                                           const std::vector<uint64_t>& lease_ids) {
  absl::MutexLock lock(&mu_);
  std::vector<uint64_t> stale;
  const int64_t deadline = clock_->NowMs() + options_.lease_ms;
  for (uint64_t id : lease_ids) {
    auto it = leases_.find(id);
    if (it == leases_.end() || it->second.worker != worker) {
      stale.push_back(id);
      continue;
    }
    it->second.deadline_ms = deadline;
  }
  return stale;
}

absl::Status Scheduler::ReportProgress(const std::string& worker, uint64_t lease_id,
                                       int64_t frames_done) {
  absl::MutexLock lock(&mu_);
  auto it = leases_.find(lease_id);
  if (it == leases_.end() || it->second.worker != worker) {
    return absl::FailedPreconditionError(
        absl::StrCat("lease ", lease_id, " is not current"));
  }
  JobEntry& e = jobs_.at(it->second.job_id);
  e.progress[it->second.task_index] = frames_done;
  it->second.deadline_ms = clock_->NowMs() + options_.lease_ms;
  BumpLocked();
  return absl::OkStatus();
}

absl::Status Scheduler::Complete(const std::string& worker, uint64_t lease_id,
                                 const TaskOutcome& outcome) {
  absl::MutexLock lock(&mu_);
  auto it = leases_.find(lease_id);
  if (it == leases_.end() || it->second.worker != worker) {
    return absl::FailedPreconditionError(absl::StrCat(
        "lease ", lease_id, " is not current (it expired, or the task was given to "
        "another worker or cancelled); result dropped"));
  }
  if (!outcome.ok) {
    return FailAttemptLocked(lease_id, outcome.error, outcome.retryable);
  }
  const Lease lease = it->second;
  JobEntry& e = jobs_.at(lease.job_id);
  Task task = e.tasks[lease.task_index];
  task.state = TaskState::kSucceeded;
  task.error.clear();
  task.seconds = outcome.seconds;
  task.model_digest = outcome.model_digest;
  RETURN_IF_ERROR(store_->UpdateTask(task));
  e.tasks[lease.task_index] = task;
  e.lease_of[lease.task_index] = 0;
  e.progress[lease.task_index] = 0;
  leases_.erase(lease.id);
  events_->TaskFinished(e.job, task, /*ok=*/true, /*will_retry=*/false,
                        clock_->NowMs() - lease.leased_ms);
  auto wit = workers_.find(worker);
  if (wit != workers_.end()) ++wit->second.tasks_done;
  bool all_done = std::all_of(e.tasks.begin(), e.tasks.end(), [](const Task& t) {
    return t.state == TaskState::kSucceeded;
  });
  if (all_done) RETURN_IF_ERROR(FinishJobLocked(e, JobState::kSucceeded, ""));
  BumpLocked();
  return absl::OkStatus();
}

absl::Status Scheduler::FailAttemptLocked(uint64_t lease_id, const std::string& error,
                                          bool retryable) {
  auto it = leases_.find(lease_id);
  if (it == leases_.end()) return absl::OkStatus();
  const Lease lease = it->second;
  leases_.erase(it);
  JobEntry& e = jobs_.at(lease.job_id);
  e.lease_of[lease.task_index] = 0;
  e.progress[lease.task_index] = 0;
  Task task = e.tasks[lease.task_index];
  task.error = error;
  const bool give_up = !retryable || task.attempts >= e.job.spec.max_attempts;
  task.state = give_up ? TaskState::kFailed : TaskState::kPending;
  RETURN_IF_ERROR(store_->UpdateTask(task));
  e.tasks[lease.task_index] = task;
  e.ready_since[lease.task_index] = clock_->NowMs();
  events_->TaskFinished(e.job, task, /*ok=*/false, /*will_retry=*/!give_up,
                        clock_->NowMs() - lease.leased_ms);
  BumpLocked();
  if (!give_up) return absl::OkStatus();
  std::string why = absl::StrCat(
      "task ", task.index,
      task.kind == TaskKind::kChunk
          ? absl::StrCat(" (frames ", task.frame_begin, "-", task.frame_end - 1, ")")
          : std::string(" (assemble)"),
      " failed on worker '", lease.worker, "' after ", task.attempts,
      task.attempts == 1 ? " attempt" : " attempts",
      retryable ? "" : " (not retryable)", ": ", error);
  return FinishJobLocked(e, JobState::kFailed, why);
}

std::vector<Lease> Scheduler::ExpireLeases() {
  absl::MutexLock lock(&mu_);
  const int64_t now = clock_->NowMs();
  std::vector<Lease> expired;
  for (const auto& [id, lease] : leases_) {
    if (lease.deadline_ms <= now) expired.push_back(lease);
  }
  for (const Lease& lease : expired) {
    events_->LeaseExpired(lease);
    (void)FailAttemptLocked(
        lease.id,
        absl::StrCat("lease expired: worker '", lease.worker, "' sent no heartbeat for ",
                     options_.lease_ms / 1000.0, " s"),
        /*retryable=*/true);
    revoked_.push_back(lease);
  }
  return expired;
}

Scheduler::Stats Scheduler::GetStats() const {
  absl::MutexLock lock(&mu_);
  Stats st;
  for (const auto& [id, e] : jobs_) {
    if (IsTerminal(e.job.state)) continue;
    Stats::ProjectCounts& p = st.projects[e.job.spec.project];
    ++p.jobs_active;
    for (const Task& t : e.tasks) {
      if (t.state == TaskState::kPending) ++p.tasks_queued;
      if (t.state == TaskState::kLeased) ++p.tasks_running;
    }
  }
  std::map<std::string, int> held;
  for (const auto& [id, lease] : leases_) ++held[lease.worker];
  for (const auto& [name, w] : workers_) {
    if (held.count(name)) {
      ++st.workers_busy;
    } else {
      ++st.workers_idle;
    }
  }
  return st;
}

std::vector<Lease> Scheduler::TakeRevoked() {
  absl::MutexLock lock(&mu_);
  std::vector<Lease> out;
  out.swap(revoked_);
  return out;
}

}  // namespace reelfarm::scheduler
