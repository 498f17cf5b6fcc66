#include "scheduler/scheduler.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <tuple>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/storage.h"
#include "scheduler/wedge.h"

namespace reelfarm::scheduler {

using Write = JobStore::Write;

// MOV: every movie codec the worker writes (H.264/H.265, ProRes, DNxHR) fits in it.
std::string SegmentPath(int64_t job_id, int index, uint64_t lease_id) {
  return absl::StrFormat("%s/chunk_%06d.lease_%d.mov", common::Storage::JobPartsDir(job_id), index,
                         lease_id);
}

// What a take's sidecar records of the job: the spec, the take's values and which of
// them the wedge varies.
static nlohmann::json TakeProvenance(const Job& job, const Take& take) {
  const GenerateSpec& g = job.spec.generate;
  return {{"job_id", job.id},
          {"name", job.spec.name},
          {"project", job.spec.project},
          {"take",
           {{"index", take.index},
            {"name", take.name},
            {"output", take.output},
            {"seed", take.seed},
            {"prompt", take.prompt},
            {"negative_prompt", g.negative_prompt},
            {"steps", take.steps},
            {"guidance_scale", take.guidance_scale},
            {"sampler", take.sampler},
            {"varying", take.varying}}},
          {"spec",
           {{"kind", "generate"},
            {"model", g.model},
            {"width", g.width},
            {"height", g.height},
            {"frames", g.frames},
            {"fps", g.fps},
            {"init", g.init},
            {"strength", g.strength},
            {"output", g.output},
            {"takes", WedgeSize(g)}}}};
}

// Maps the pages of a new buffer of `bytes` at `data` in one call (a big queue's
// restart would otherwise take a page fault every 4 KiB). Only a hint: on a kernel
// without MADV_POPULATE_WRITE the pages are faulted in as they are first written.
static void Prefault(void* data, size_t bytes) {
#ifdef MADV_POPULATE_WRITE
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + page - 1) & ~(page - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) & ~(page - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_WRITE);
#else
  (void)data;
  (void)bytes;
#endif
}

Scheduler::Scheduler(JobStore* store, Clock* clock, SchedulerOptions options,
                     SchedulerEvents* events)
    : clock_(clock),
      options_(std::move(options)),
      events_(events ? events : &no_events_),
      commits_(std::make_unique<CommitQueue>(store)) {}

Scheduler::~Scheduler() = default;

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(JobStore* store, Clock* clock,
                                                             SchedulerOptions options,
                                                             SchedulerEvents* events) {
  std::unique_ptr<Scheduler> s(new Scheduler(store, clock, std::move(options), events));
  absl::MutexLock lock(&s->mu_);
  const int64_t now = clock->NowMs();
  // The store's rows go straight into the jobs' entries: each task is built once, in
  // its place (a restart with a million queued tasks is bound by this).
  struct Sink final : JobStore::LoadSink {
    explicit Sink(Scheduler* scheduler) : s(scheduler) {}
    void AddJob(Job job, int task_count) override ABSL_NO_THREAD_SAFETY_ANALYSIS {
      s->next_job_id_ = std::max(s->next_job_id_, job.id + 1);
      JobEntry& e = s->jobs_.emplace_hint(s->jobs_.end(), job.id, JobEntry{})->second;
      e.job = std::move(job);
      e.tasks.reserve(task_count);
      Prefault(e.tasks.data(), task_count * sizeof(Task));
      if (!IsTerminal(e.job.state)) s->active_.insert(s->active_.end(), e.job.id);
      if (e.job.state == JobState::kWaiting) s->unprobed_.insert(s->unprobed_.end(), e.job.id);
      for (int64_t dep : e.job.spec.depends_on) s->dependents_[dep].push_back(e.job.id);
      if (!e.job.spec.request_id.empty()) {
        s->request_ids_[{e.job.spec.project, e.job.spec.request_id}] = e.job.id;
      }
    }
    Task* TaskSlot(int64_t job_id, int index) override ABSL_NO_THREAD_SAFETY_ANALYSIS {
      if (last == nullptr || last->job.id != job_id) {
        auto it = s->jobs_.find(job_id);
        if (it == s->jobs_.end()) return nullptr;
        last = &it->second;
      }
      // Rows come in the order they were written, so almost always each job's next
      // index: the task is then built once, where it stays.
      std::vector<Task>& tasks = last->tasks;
      if (index < 0 || static_cast<size_t>(index) >= tasks.capacity()) return nullptr;
      if (static_cast<size_t>(index) >= tasks.size()) tasks.resize(index + 1);
      return &tasks[index];
    }
    void SetNextJobId(int64_t next_job_id) override ABSL_NO_THREAD_SAFETY_ANALYSIS {
      s->next_job_id_ = std::max(s->next_job_id_, next_job_id);
    }
    Scheduler* const s;
    JobEntry* last = nullptr;
  } sink(s.get());
  RETURN_IF_ERROR(store->Load(sink));
  uint64_t max_lease = 0;
  for (auto& [id, e] : s->jobs_) {
    e.progress.assign(e.tasks.size(), 0);
    e.ready_since.assign(e.tasks.size(), now);
    for (size_t i = 0; i < e.tasks.size(); ++i) {
      const Task& t = e.tasks[i];
      if (t.job_id != id || static_cast<size_t>(t.index) != i) {
        return absl::InternalError(absl::StrCat("job store: task ", id, "/", i,
                                                " is missing; the database is damaged or from "
                                                "another program; restore a backup"));
      }
      if (t.is_work()) ++e.chunks_total;
      if (t.kind == TaskKind::kAssemble) e.assemble_index = t.index;
      if (t.is_work() && t.state == TaskState::kSucceeded) ++e.chunks_succeeded;
      if (t.is_work() && t.state == TaskState::kPending) {
        e.ready_chunks.insert(e.ready_chunks.end(), t.index);
      }
      if (t.state == TaskState::kLeased && t.lease_id != 0 && !t.workers.empty()) {
        // Honour the lease for one lease duration: its worker may reconnect and finish.
        Lease lease;
        lease.id = t.lease_id;
        lease.job_id = id;
        lease.task_index = t.index;
        lease.worker = t.workers.back();
        lease.leased_ms = now;
        lease.deadline_ms = now + s->options_.lease_ms;
        lease.attempt = t.attempts;
        s->leases_[lease.id] = lease;
        ++s->projects_[e.job.spec.project].running;
        max_lease = std::max(max_lease, lease.id);
      }
    }
    s->RecountQueuedLocked(e);
  }
  // Lease ids stay above any handed out before (by this server or an earlier leader).
  const uint64_t first = s->options_.lease_epoch > 0
                             ? static_cast<uint64_t>(s->options_.lease_epoch) << kLeaseEpochShift
                             : static_cast<uint64_t>(now) * 1000;
  s->next_lease_id_ = std::max<uint64_t>(first, max_lease + 1);
  return s;
}

const ProjectPolicy& Scheduler::PolicyFor(const std::string& project) const {
  auto it = options_.projects.find(project);
  return it == options_.projects.end() ? default_policy_ : it->second;
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

absl::Status Scheduler::health() { return commits_->health(); }

uint64_t Scheduler::CommitLocked(Writes w) {
  BumpLocked();
  return commits_->Append(std::move(w));
}

absl::StatusOr<JobView> Scheduler::Durable(uint64_t seq, int64_t job_id) {
  RETURN_IF_ERROR(commits_->WaitFor(seq));
  return GetJob(job_id);
}

Scheduler::JobEntry* Scheduler::FindLocked(int64_t job_id) {
  auto it = jobs_.find(job_id);
  return it == jobs_.end() ? nullptr : &it->second;
}

std::vector<Task> Scheduler::MakeTasks(const JobSpec& spec, const MediaInfo& info) {
  std::vector<Task> tasks;
  if (spec.is_generate()) {
    // One task per take, each making every frame; no assembly.
    const int64_t takes = WedgeSize(spec.generate);
    for (int64_t i = 0; i < takes; ++i) {
      Task t;
      t.index = static_cast<int>(i);
      t.kind = TaskKind::kTake;
      t.frame_begin = 0;
      t.frame_end = info.frame_count;
      tasks.push_back(t);
    }
    return tasks;
  }
  std::vector<FrameRange> ranges = SplitIntoChunks(info.frame_count, spec.upscale.chunk_frames);
  tasks.reserve(ranges.size() + 1);
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
  tasks.push_back(assemble);
  return tasks;
}

void Scheduler::AddTasksLocked(JobEntry& e, std::vector<Task> tasks, Writes* w) {
  const int64_t now = clock_->NowMs();
  for (Task& t : tasks) {
    t.job_id = e.job.id;
    // Built in place: a task's write carries an empty Job, not worth a temporary.
    Write& write = w->emplace_back();
    write.kind = Write::Kind::kInsertTask;
    write.task = t;
    if (t.is_work()) {
      ++e.chunks_total;
      if (t.state == TaskState::kPending) e.ready_chunks.insert(t.index);
    } else {
      e.assemble_index = t.index;
    }
  }
  e.tasks = std::move(tasks);
  e.progress.assign(e.tasks.size(), 0);
  e.ready_since.assign(e.tasks.size(), now);
  RecountQueuedLocked(e);
}

void Scheduler::RecountQueuedLocked(JobEntry& e) {
  int64_t queued = 0;
  if (active_.count(e.job.id) > 0) {
    queued = static_cast<int64_t>(e.ready_chunks.size()) +
             (e.assemble_index >= 0 && e.tasks[e.assemble_index].state == TaskState::kPending);
  }
  if (queued == e.queued_counted) return;
  queued_tasks_ += queued - e.queued_counted;
  projects_[e.job.spec.project].queued += queued - e.queued_counted;
  e.queued_counted = queued;
}

absl::StatusOr<JobView> Scheduler::Submit(JobSpec spec, std::optional<MediaInfo> input_info) {
  std::pair<int64_t, uint64_t> admitted;
  {
    absl::MutexLock lock(&mu_);
    std::vector<Task> tasks;
    ASSIGN_OR_RETURN(admitted, AdmitLocked(std::move(spec), std::move(input_info), std::move(tasks),
                                           /*dry_run=*/false, nullptr));
  }
  // Nothing is acknowledged before it is committed.
  return Durable(admitted.second, admitted.first);
}

bool Scheduler::KnowsRequest(const std::string& project, const std::string& request_id) const {
  absl::MutexLock lock(&mu_);
  return !request_id.empty() && request_ids_.count({project, request_id}) > 0;
}

absl::StatusOr<JobView> Scheduler::DryRun(JobSpec spec, std::optional<MediaInfo> input_info) {
  absl::MutexLock lock(&mu_);
  JobView view;
  RETURN_IF_ERROR(
      AdmitLocked(std::move(spec), std::move(input_info), {}, /*dry_run=*/true, &view).status());
  return view;
}

absl::StatusOr<std::pair<int64_t, uint64_t>> Scheduler::AdmitLocked(
    JobSpec spec, std::optional<MediaInfo> input_info, std::vector<Task> tasks, bool dry_run,
    JobView* view) {
  if (!spec.is_generate() && spec.upscale.chunk_frames < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("upscale.chunk_frames is ", spec.upscale.chunk_frames, "; give 1 or more"));
  }
  // The spec's values, its input and the tasks it makes were checked by the server
  // (server/admission.h), once for every way a job comes in.
  if (input_info) tasks = MakeTasks(spec, *input_info);
  RETURN_IF_ERROR(commits_->health());
  if (!spec.request_id.empty() && !dry_run) {
    auto it = request_ids_.find({spec.project, spec.request_id});
    // A retried submit: the first one's answer, once it is durable.
    if (it != request_ids_.end()) return std::make_pair(it->second, commits_->Append({}));
  }
  // Admission.
  const int64_t adding = static_cast<int64_t>(tasks.size());
  const int64_t queued_total = queued_tasks_;
  auto project_it = projects_.find(spec.project);
  const int64_t queued_project = project_it == projects_.end() ? 0 : project_it->second.queued;
  const ProjectPolicy& policy = PolicyFor(spec.project);
  const int64_t project_limit =
      policy.max_queued ? policy.max_queued : options_.max_queued_tasks_per_project;
  if (project_limit && queued_project + adding > project_limit) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "project '", spec.project, "' has ", queued_project, " queued tasks and this job adds ",
        adding, ", over the project's queue limit of ", project_limit,
        "; wait for the queue to drain or ask for a larger limit"));
  }
  if (options_.max_queued_tasks && queued_total + adding > options_.max_queued_tasks) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the farm has ", queued_total, " queued tasks and this job adds ", adding,
                     ", over the farm's queue limit of ", options_.max_queued_tasks,
                     "; wait for the queue to drain"));
  }
  // Dependencies.
  bool waiting = false;
  for (int64_t dep : spec.depends_on) {
    JobEntry* d = FindLocked(dep);
    if (!d) return absl::NotFoundError(absl::StrCat("depends_on: job ", dep, " not found"));
    if (d->job.state == JobState::kFailed || d->job.state == JobState::kCancelled) {
      return absl::FailedPreconditionError(absl::StrCat("depends_on: job ", dep, " has ",
                                                        ToString(d->job.state),
                                                        "; retry it first or drop the dependency"));
    }
    if (d->job.state != JobState::kSucceeded) waiting = true;
  }
  Job job;
  job.spec = std::move(spec);
  if (input_info) job.input_info = *input_info;
  job.state = waiting || !input_info ? JobState::kWaiting : JobState::kQueued;
  job.created_unix_ms = clock_->NowMs();
  if (dry_run) {
    JobEntry e;
    e.job = std::move(job);
    Writes ignored;
    AddTasksLocked(e, std::move(tasks), &ignored);
    *view = ViewLocked(e);
    return std::make_pair(int64_t{0}, uint64_t{0});
  }
  const int64_t id = job.id = next_job_id_++;
  JobEntry& e = jobs_[id];
  e.job = std::move(job);
  Writes w;
  // One write per task: reserved, so that a large job's writes are not moved again.
  w.reserve(tasks.size() + 1);
  w.push_back({Write::Kind::kInsertJob, e.job, {}});
  AddTasksLocked(e, std::move(tasks), &w);
  active_.insert(id);
  RecountQueuedLocked(e);
  if (e.job.state == JobState::kWaiting && e.tasks.empty()) unprobed_.insert(id);
  for (int64_t dep : e.job.spec.depends_on) dependents_[dep].push_back(id);
  if (!e.job.spec.request_id.empty()) {
    request_ids_[{e.job.spec.project, e.job.spec.request_id}] = id;
  }
  events_->JobSubmitted(e.job);
  // The dispatcher (WaitForChange) is woken when a pass could do something with the
  // new job: lease it to a worker with room, or activate it once its input or its
  // dependencies allow. With every worker full (or none), a pass would find nothing,
  // and it would take a core from the submits while they wait for their commits; the
  // job is leased as a worker frees a slot (a result, or a heartbeat's pass).
  if (e.job.state == JobState::kWaiting || AnyWorkerHasRoomLocked()) BumpLocked();
  // Submit waits for this seq at once (Durable): its thread commits the batch itself.
  return std::make_pair(id, commits_->Append(std::move(w), CommitQueue::Wake::kCaller));
}

JobView Scheduler::ViewLocked(const JobEntry& e) const {
  JobView v;
  v.job = e.job;
  v.tasks = e.tasks;
  v.task_frames_done = e.progress;
  v.task_held.assign(e.tasks.size(), false);
  v.tasks_total = static_cast<int>(e.tasks.size());
  for (size_t i = 0; i < e.tasks.size(); ++i) {
    const Task& t = e.tasks[i];
    if (t.state == TaskState::kLeased) {
      auto it = leases_.find(t.lease_id);
      v.task_held[i] = it != leases_.end() && it->second.held;
    }
    if (t.is_work()) {
      v.frames_total += t.frames();
      v.frames_done += t.state == TaskState::kSucceeded ? t.frames() : e.progress[i];
    }
    if (t.state == TaskState::kSucceeded) ++v.tasks_done;
  }
  int64_t end = e.job.finished_unix_ms ? e.job.finished_unix_ms : clock_->NowMs();
  if (e.job.started_unix_ms > 0 && end > e.job.started_unix_ms && v.frames_done > 0) {
    v.fps = v.frames_done * 1000.0 / static_cast<double>(end - e.job.started_unix_ms);
    v.eta_seconds =
        IsTerminal(e.job.state) ? 0 : static_cast<double>(v.frames_total - v.frames_done) / v.fps;
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

std::vector<JobView> Scheduler::ListJobs(const ListFilter& f) const {
  absl::MutexLock lock(&mu_);
  std::vector<JobView> out;
  for (auto it = jobs_.rbegin(); it != jobs_.rend(); ++it) {
    if (f.limit > 0 && static_cast<int>(out.size()) >= f.limit) break;
    const Job& j = it->second.job;
    if (!f.states.empty() &&
        std::find(f.states.begin(), f.states.end(), j.state) == f.states.end()) {
      continue;
    }
    if (!f.project.empty() && j.spec.project != f.project) continue;
    if (j.created_unix_ms < f.since_unix_ms) continue;
    JobView v = ViewLocked(it->second);
    v.tasks.clear();
    v.task_frames_done.clear();
    v.task_held.clear();
    out.push_back(std::move(v));
  }
  return out;
}

void Scheduler::SetTaskLocked(JobEntry& e, const Task& t, Writes* w) {
  Task& old = e.tasks[t.index];
  if (t.is_work()) {
    if (old.state == TaskState::kPending) e.ready_chunks.erase(t.index);
    if (t.state == TaskState::kPending) e.ready_chunks.insert(t.index);
    if (old.state == TaskState::kSucceeded) --e.chunks_succeeded;
    if (t.state == TaskState::kSucceeded) ++e.chunks_succeeded;
  }
  if (t.state == TaskState::kPending && old.state != TaskState::kPending) {
    e.ready_since[t.index] = clock_->NowMs();
  }
  old = t;
  RecountQueuedLocked(e);
  Write& write = w->emplace_back();  // built in place, as in AddTasksLocked
  write.kind = Write::Kind::kUpdateTask;
  write.task = t;
}

void Scheduler::SetJobLocked(JobEntry& e, Job job, Writes* w) {
  e.job = std::move(job);
  if (IsTerminal(e.job.state)) {
    active_.erase(e.job.id);
  } else {
    active_.insert(e.job.id);
  }
  RecountQueuedLocked(e);
  if (e.job.state == JobState::kWaiting && e.tasks.empty()) unprobed_.insert(e.job.id);
  w->push_back({Write::Kind::kUpdateJob, e.job, {}});
}

void Scheduler::ReleaseLeaseLocked(uint64_t lease_id) {
  auto it = leases_.find(lease_id);
  if (it == leases_.end()) return;
  const Lease lease = it->second;
  leases_.erase(it);
  JobEntry& e = jobs_.at(lease.job_id);
  --projects_[e.job.spec.project].running;
  auto wit = workers_.find(lease.worker);
  if (wit != workers_.end()) {
    WorkerEntry& w = wit->second;
    w.memory_in_use -= e.job.spec.memory_bytes;
    if (lease.held) {
      w.held.erase(lease.id);
    } else {
      --w.running;
    }
    // A slot freed: the worker starts the held assignment it got first.
    while (w.running < w.info.slots && !w.held.empty()) {
      auto next = leases_.find(*w.held.begin());
      w.held.erase(w.held.begin());
      if (next == leases_.end()) continue;
      next->second.held = false;
      ++w.running;
    }
  }
  e.progress[lease.task_index] = 0;
}

void Scheduler::TakeRoomLocked(WorkerEntry& w, Lease& lease) {
  lease.held = w.running >= w.info.slots;
  if (lease.held) {
    w.held.insert(lease.id);
  } else {
    ++w.running;
  }
  w.memory_in_use += jobs_.at(lease.job_id).job.spec.memory_bytes;
}

void Scheduler::FinishJobLocked(JobEntry& e, JobState state, const std::string& error, Writes* w) {
  Job job = e.job;
  job.state = state;
  job.error = error;
  job.finished_unix_ms = clock_->NowMs();
  SetJobLocked(e, std::move(job), w);
  events_->JobFinished(e.job);
  for (const Task& task : std::vector<Task>(e.tasks)) {
    if (task.state != TaskState::kPending && task.state != TaskState::kLeased) continue;
    if (task.lease_id != 0) {
      auto it = leases_.find(task.lease_id);
      if (it != leases_.end()) revoked_.push_back(it->second);
      ReleaseLeaseLocked(task.lease_id);
    }
    Task t = task;
    t.state = TaskState::kCancelled;
    t.lease_id = 0;
    SetTaskLocked(e, t, w);
  }
  if (state == JobState::kSucceeded) {
    WakeDependentsLocked(e.job.id, w);
    return;
  }
  // Jobs that depend on this one cannot run now.
  auto dit = dependents_.find(e.job.id);
  if (dit == dependents_.end()) return;
  for (int64_t dep_id : std::vector<int64_t>(dit->second)) {
    JobEntry* d = FindLocked(dep_id);
    if (!d || IsTerminal(d->job.state)) continue;
    FinishJobLocked(*d, JobState::kFailed,
                    absl::StrCat("depends_on: job ", e.job.id, " ", ToString(state),
                                 error.empty() ? "" : ": ", error),
                    w);
  }
}

bool Scheduler::FitsLocked(const WorkerEntry& w, const JobEntry& e) const {
  const JobSpec& spec = e.job.spec;
  if (std::find(w.info.models.begin(), w.info.models.end(), spec.model()) == w.info.models.end()) {
    return false;
  }
  for (const auto& [key, value] : spec.requirements) {
    auto it = w.info.tags.find(key);
    if (it == w.info.tags.end() || it->second != value) return false;
  }
  if (w.info.memory_bytes > 0 && spec.memory_bytes > 0 &&
      w.memory_in_use + spec.memory_bytes > w.info.memory_bytes) {
    return false;
  }
  return true;
}

bool Scheduler::LeaveToOtherLocked(const JobEntry& e, const Task& t,
                                   const std::string& worker) const {
  auto failed_on = [&t](const std::string& name) {
    for (size_t i = 0; i < t.workers.size() && i < t.errors.size(); ++i) {
      if (t.workers[i] == name && !t.errors[i].empty()) return true;
    }
    return false;
  };
  if (!failed_on(worker)) return false;
  for (const auto& [name, w] : workers_) {
    if (name != worker && !w.draining && w.leases_expired == 0 && FitsLocked(w, e) &&
        !failed_on(name)) {
      return true;
    }
  }
  return false;
}

int Scheduler::NextTaskLocked(const JobEntry& e, const std::string& worker) const {
  for (int index : e.ready_chunks) {
    if (!LeaveToOtherLocked(e, e.tasks[index], worker)) return index;
  }
  if (e.ready_chunks.empty() && e.chunks_succeeded == e.chunks_total && e.assemble_index >= 0 &&
      e.tasks[e.assemble_index].state == TaskState::kPending &&
      !LeaveToOtherLocked(e, e.tasks[e.assemble_index], worker)) {
    return e.assemble_index;
  }
  return -1;
}

std::optional<Assignment> Scheduler::LeaseNext(const std::string& worker) {
  absl::MutexLock lock(&mu_);
  Writes writes;
  std::optional<Assignment> a = LeaseNextLocked(worker, &writes);
  // The assignment may go out before the lease is durable: after a crash the task is
  // pending again and the worker's lease is refused on reconnect.
  if (a) CommitLocked(std::move(writes));
  return a;
}

bool Scheduler::HasRoom(const WorkerEntry& w) {
  if (w.draining || w.leases_expired > 0) return false;
  const int room = w.info.slots * (1 + std::max(0, w.info.prefetch));
  return w.running + static_cast<int>(w.held.size()) < room;
}

bool Scheduler::AnyWorkerHasRoomLocked() const {
  return std::any_of(workers_.begin(), workers_.end(),
                     [](const auto& entry) { return HasRoom(entry.second); });
}

std::optional<Assignment> Scheduler::LeaseNextLocked(const std::string& worker, Writes* writes) {
  auto wit = workers_.find(worker);
  if (wit == workers_.end() || !HasRoom(wit->second) || !commits_->health().ok()) {
    return std::nullopt;
  }
  WorkerEntry& w = wit->second;
  // Highest priority; then the project furthest below its weighted share; then oldest.
  using Key = std::tuple<int, double, double, int64_t>;
  std::optional<Key> best_key;
  JobEntry* best = nullptr;
  int best_index = -1;
  for (int64_t id : active_) {
    JobEntry& e = jobs_.at(id);
    if (e.job.state != JobState::kQueued && e.job.state != JobState::kRunning) continue;
    if (!FitsLocked(w, e)) continue;
    const std::string& project = e.job.spec.project;
    const ProjectPolicy& policy = PolicyFor(project);
    const ProjectEntry& p = projects_[project];
    if (policy.max_running > 0 && p.running >= policy.max_running) continue;
    const double weight = policy.weight > 0 ? policy.weight : 1.0;
    Key key{-e.job.spec.priority, p.running / weight, p.leased_total / weight, id};
    if (best_key && !(key < *best_key)) continue;
    int index = NextTaskLocked(e, worker);
    if (index < 0) continue;
    best_key = key;
    best = &e;
    best_index = index;
  }
  if (!best) return std::nullopt;
  JobEntry& e = *best;
  const int64_t now = clock_->NowMs();
  Lease lease;
  lease.id = next_lease_id_++;
  lease.job_id = e.job.id;
  lease.task_index = best_index;
  lease.worker = worker;
  lease.leased_ms = now;
  lease.deadline_ms = now + options_.lease_ms;
  Task task = e.tasks[best_index];
  task.state = TaskState::kLeased;
  task.attempts += 1;
  task.workers.push_back(worker);
  task.errors.resize(task.workers.size() - 1);
  task.errors.push_back("");
  task.lease_id = lease.id;
  lease.attempt = task.attempts;
  events_->TaskLeased(e.job, task, now - e.ready_since[best_index]);
  SetTaskLocked(e, task, writes);
  if (e.job.state == JobState::kQueued) {
    Job job = e.job;
    job.state = JobState::kRunning;
    job.started_unix_ms = now;
    SetJobLocked(e, std::move(job), writes);
  }
  TakeRoomLocked(w, lease);
  leases_[lease.id] = lease;
  // Held leases count here too: a project's share and cap are of the tasks its workers
  // hold, so a prefetch does not let a project past its cap.
  ProjectEntry& p = projects_[e.job.spec.project];
  ++p.running;
  ++p.leased_total;
  e.progress[best_index] = 0;
  return MakeAssignmentLocked(e, best_index, lease);
}

Assignment Scheduler::MakeAssignmentLocked(const JobEntry& e, int index, const Lease& lease) const {
  Assignment a;
  a.lease = lease;
  a.task = e.tasks[index];
  a.spec = e.job.spec;
  a.input_info = e.job.input_info;
  if (a.task.kind == TaskKind::kChunk) {
    a.segment = SegmentPath(e.job.id, index, lease.id);
    return a;
  }
  if (a.task.kind == TaskKind::kTake) {
    a.take = ExpandWedge(e.job.spec.name, e.job.spec.generate).at(index);
    a.provenance_json = TakeProvenance(e.job, a.take).dump();
    return a;
  }
  nlohmann::json chunks = nlohmann::json::array();
  for (const Task& t : e.tasks) {
    if (t.kind != TaskKind::kChunk) continue;
    a.segments.push_back(SegmentPath(e.job.id, t.index, t.lease_id));
    a.segment_digests.push_back(t.output_digest);
    a.segment_frames.push_back(t.frames());
    a.segment_median_differences.push_back(t.qc.measured ? t.qc.median_difference : 0);
    chunks.push_back({{"index", t.index},
                      {"frames", {t.frame_begin, t.frame_end}},
                      {"worker", t.workers.empty() ? "" : t.workers.back()},
                      {"attempts", t.attempts},
                      {"seconds", t.seconds},
                      {"model_digest", t.model_digest}});
  }
  const UpscaleSpec& up = e.job.spec.upscale;
  nlohmann::json prov = {{"job_id", e.job.id},
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
                           {"pixel_format", e.job.input_info.pixel_format},
                           {"coded_frames", e.job.input_info.coded_frames},
                           {"held_frames", e.job.input_info.held_frames},
                           {"dropped_frames", e.job.input_info.dropped_frames},
                           {"tail_cut_frames", e.job.input_info.tail_cut_frames},
                           {"rotation", e.job.input_info.rotation}}},
                         {"depends_on", e.job.spec.depends_on},
                         {"created_unix_ms", e.job.created_unix_ms},
                         {"started_unix_ms", e.job.started_unix_ms},
                         {"chunks", chunks}};
  a.provenance_json = prov.dump();
  return a;
}

void Scheduler::MarkAliveLocked(const std::string& worker) {
  auto it = workers_.find(worker);
  if (it == workers_.end() || it->second.leases_expired == 0) return;
  it->second.leases_expired = 0;
  it->second.unhealthy_since_ms = 0;
  it->second.unhealthy_reason.clear();
  BumpLocked();  // it may take work again
}

std::vector<uint64_t> Scheduler::Heartbeat(const std::string& worker,
                                           const std::vector<uint64_t>& lease_ids) {
  absl::MutexLock lock(&mu_);
  MarkAliveLocked(worker);
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
  MarkAliveLocked(worker);
  auto it = leases_.find(lease_id);
  if (it == leases_.end() || it->second.worker != worker) {
    return absl::FailedPreconditionError(absl::StrCat("lease ", lease_id, " is not current"));
  }
  JobEntry& e = jobs_.at(it->second.job_id);
  e.progress[it->second.task_index] = frames_done;
  it->second.deadline_ms = clock_->NowMs() + options_.lease_ms;
  BumpLocked();
  return absl::OkStatus();
}

absl::Status Scheduler::Complete(const std::string& worker, uint64_t lease_id,
                                 const TaskOutcome& outcome) {
  absl::Mutex done_mu;
  bool done = false;
  absl::Status result;
  CompleteAsync(worker, lease_id, outcome, [&](const absl::Status& st) {
    absl::MutexLock lock(&done_mu);
    result = st;
    done = true;
  });
  absl::MutexLock lock(&done_mu);
  done_mu.Await(absl::Condition(&done));
  return result;
}

void Scheduler::CompleteAsync(const std::string& worker, uint64_t lease_id,
                              const TaskOutcome& outcome,
                              std::function<void(const absl::Status&)> done,
                              std::vector<Assignment>* next) {
  CompleteAllAsync(
      worker, {Report{lease_id, outcome}},
      [done = std::move(done)](const std::vector<absl::Status>& st) { done(st.front()); }, next);
}

void Scheduler::CompleteAllAsync(const std::string& worker, const std::vector<Report>& reports,
                                 std::function<void(const std::vector<absl::Status>&)> done,
                                 std::vector<Assignment>* next) {
  std::vector<absl::Status> statuses;
  statuses.reserve(reports.size());
  bool any_accepted = false;
  uint64_t seq = 0;
  {
    absl::MutexLock lock(&mu_);
    Writes writes;
    writes.reserve(3 * reports.size() + 2);
    for (const Report& r : reports) {
      statuses.push_back(CompleteLocked(worker, r.lease_id, r.outcome, &writes));
      any_accepted = any_accepted || statuses.back().ok();
    }
    if (any_accepted) {
      // The worker's next work joins this commit: one batch, one durable write.
      while (next) {
        std::optional<Assignment> a = LeaseNextLocked(worker, &writes);
        if (!a) break;
        next->push_back(std::move(*a));
      }
      seq = CommitLocked(std::move(writes));
    }
  }
  if (!any_accepted) {
    done(statuses);
    return;
  }
  // Accepted ones are answered with the commit's outcome; refused ones stay refused.
  commits_->AfterCommit(seq, [statuses = std::move(statuses),
                              done = std::move(done)](const absl::Status& st) mutable {
    for (absl::Status& s : statuses) {
      if (s.ok()) s = st;
    }
    done(statuses);
  });
}

absl::Status Scheduler::CompleteLocked(const std::string& worker, uint64_t lease_id,
                                       const TaskOutcome& outcome, Writes* writes) {
  auto it = leases_.find(lease_id);
  if (it == leases_.end() || it->second.worker != worker) {
    return absl::FailedPreconditionError(
        absl::StrCat("lease ", lease_id,
                     " is not current (it expired, or the task was given to "
                     "another worker or cancelled); result dropped"));
  }
  {
    // What the attempt measured and made is kept whatever its outcome: a task that
    // failed its QC shows why.
    Task& reported = jobs_.at(it->second.job_id).tasks[it->second.task_index];
    reported.qc = outcome.qc;
    reported.thumbnail = outcome.thumbnail;
    reported.preview = outcome.preview;
  }
  if (!outcome.ok) {
    FailAttemptLocked(lease_id, outcome.error, outcome.retryable, writes);
    return absl::OkStatus();
  }
  const Lease lease = it->second;
  JobEntry& e = jobs_.at(lease.job_id);
  Task task = e.tasks[lease.task_index];
  task.state = TaskState::kSucceeded;
  task.error.clear();
  task.seconds = outcome.seconds;  // lease_id stays: the lease whose output counts
  task.model_digest = outcome.model_digest;
  task.output_digest = outcome.output_digest;
  ReleaseLeaseLocked(lease.id);
  SetTaskLocked(e, task, writes);
  auto wit = workers_.find(worker);
  if (wit != workers_.end()) ++wit->second.tasks_done;
  events_->TaskFinished(e.job, task, /*ok=*/true, /*will_retry=*/false,
                        clock_->NowMs() - lease.leased_ms);
  // Every task succeeded: its counts say so without a pass over the job's tasks (a job
  // has its work tasks and at most one assembly).
  const bool all_done =
      e.chunks_succeeded == e.chunks_total &&
      (e.assemble_index < 0 || e.tasks[e.assemble_index].state == TaskState::kSucceeded);
  if (all_done) FinishJobLocked(e, JobState::kSucceeded, "", writes);
  return absl::OkStatus();
}

void Scheduler::FailAttemptLocked(uint64_t lease_id, const std::string& error, bool retryable,
                                  Writes* w) {
  auto it = leases_.find(lease_id);
  if (it == leases_.end()) return;
  const Lease lease = it->second;
  ReleaseLeaseLocked(lease_id);
  JobEntry& e = jobs_.at(lease.job_id);
  Task task = e.tasks[lease.task_index];
  task.error = error;
  task.lease_id = 0;
  if (!task.errors.empty()) task.errors.back() = error;
  const bool give_up = !retryable || task.attempts >= e.job.spec.max_attempts;
  task.state = give_up ? TaskState::kFailed : TaskState::kPending;
  SetTaskLocked(e, task, w);
  events_->TaskFinished(e.job, task, /*ok=*/false, /*will_retry=*/!give_up,
                        clock_->NowMs() - lease.leased_ms);
  if (!give_up) return;
  std::string why =
      absl::StrCat("task ", task.index,
                   task.kind == TaskKind::kChunk
                       ? absl::StrCat(" (frames ", task.frame_begin, "-", task.frame_end - 1, ")")
                   : task.kind == TaskKind::kTake
                       ? absl::StrCat(" (take ", TakeName(e.job.spec.name, task.index), ")")
                       : std::string(" (assemble)"),
                   " failed on worker '", lease.worker, "' after ", task.attempts,
                   task.attempts == 1 ? " attempt" : " attempts",
                   retryable ? "" : " (not retryable)", ": ", error);
  FinishJobLocked(e, JobState::kFailed, why, w);
}

std::vector<Lease> Scheduler::ExpireLeases() {
  absl::MutexLock lock(&mu_);
  const int64_t now = clock_->NowMs();
  std::vector<Lease> expired;
  for (const auto& [id, lease] : leases_) {
    if (lease.deadline_ms <= now) expired.push_back(lease);
  }
  if (expired.empty()) return expired;
  Writes writes;
  for (const Lease& lease : expired) {
    events_->LeaseExpired(lease);
    const std::string error =
        absl::StrCat("lease expired: worker '", lease.worker, "' sent no heartbeat for ",
                     options_.lease_ms / 1000.0, " s");
    auto wit = workers_.find(lease.worker);
    if (wit != workers_.end()) {
      WorkerEntry& w = wit->second;
      if (w.leases_expired++ == 0) w.unhealthy_since_ms = now;
      w.unhealthy_reason = absl::StrCat("lease ", lease.id, " (job ", lease.job_id, " task ",
                                        lease.task_index, ") ", error);
    }
    FailAttemptLocked(lease.id, error, /*retryable=*/true, &writes);
    revoked_.push_back(lease);
  }
  CommitLocked(std::move(writes));
  return expired;
}

std::vector<Lease> Scheduler::TakeRevoked() {
  absl::MutexLock lock(&mu_);
  std::vector<Lease> out;
  out.swap(revoked_);
  return out;
}

}  // namespace reelfarm::scheduler
