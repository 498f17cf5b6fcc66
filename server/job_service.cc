#include "server/job_service.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <optional>

#include <grpc/grpc.h>
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "server/convert.h"
#include "server/retention.h"

namespace reelfarm::server {

namespace {

grpc::ServerUnaryReactor* FinishWith(grpc::CallbackServerContext* ctx, const absl::Status& st) {
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpc(st));
  return reactor;
}

// Answers the call with `expr`'s status and returns, when it is not OK.
#define RETURN_FINISH_IF_ERROR(ctx, expr)         \
  do {                                            \
    ::absl::Status _st = (expr);                  \
    if (!_st.ok()) return FinishWith((ctx), _st); \
  } while (0)

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A write stream refused before it starts (authentication, access): it finishes at
// once with `status`. Deleted by gRPC after OnDone.
template <typename T>
class RefusedWriter final : public grpc::ServerWriteReactor<T> {
 public:
  explicit RefusedWriter(const absl::Status& status) { this->Finish(ToGrpc(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

// One WatchJob stream. PollWatchers() sends it an event when its job changed; after
// the event with a terminal state it finishes. Deleted by gRPC after OnDone.
class JobWatcher final : public grpc::ServerWriteReactor<v1::JobEvent> {
 public:
  JobWatcher(JobServiceImpl* service, int64_t job_id) : service_(service), job_id_(job_id) {}

  // Called under the service's watchers_mu_.
  void Poll(const scheduler::Scheduler& sched) {
    absl::MutexLock lock(&mu_);
    if (writing_ || finished_) return;
    // (After the terminal event, OnWriteDone finished the stream, or cancelled it.)
    if (cancelled_) {
      finished_ = true;
      Finish(grpc::Status::CANCELLED);
      return;
    }
    absl::StatusOr<scheduler::JobView> v = sched.GetJob(job_id_);
    if (!v.ok()) {
      finished_ = true;
      Finish(ToGrpc(v.status()));
      return;
    }
    const bool terminal = scheduler::IsTerminal(v->job.state);
    const auto key = std::make_tuple(v->job.state, v->frames_done, v->tasks_done);
    const int64_t now = NowMs();
    const bool changed = !sent_any_ || key != last_key_;
    // State changes go out at once; frame progress at most 5 times a second, and a
    // keep-alive every 2 s so a client sees fps/ETA move.
    const bool due = !sent_any_ || terminal || std::get<0>(key) != std::get<0>(last_key_) ||
                     (changed && now - last_sent_ms_ >= 200) || now - last_sent_ms_ >= 2000;
    if (!due) return;
    event_.Clear();
    *event_.mutable_job() = ToProto(*v);
    event_.mutable_job()->clear_tasks();
    last_key_ = key;
    last_sent_ms_ = now;
    sent_any_ = true;
    sent_terminal_ = terminal;
    writing_ = true;
    StartWrite(&event_);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) cancelled_ = true;
    // The terminal event is out: the stream ends now, not at the next poll (up to
    // 100 ms later, which `reelctl wait` and `watch` waited for on every job).
    if (ok && sent_terminal_ && !finished_) {
      finished_ = true;
      Finish(grpc::Status::OK);
    }
  }
  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
  }
  void OnDone() override {
    service_->RemoveWatcher(this);
    delete this;
  }
  void Close() {
    absl::MutexLock lock(&mu_);
    if (!writing_ && !finished_) {
      finished_ = true;
      Finish({grpc::StatusCode::UNAVAILABLE, "server shutting down"});
    }
  }

 private:
  JobServiceImpl* const service_;
  const int64_t job_id_;
  absl::Mutex mu_;
  v1::JobEvent event_ ABSL_GUARDED_BY(mu_);  // the write in flight
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool sent_any_ ABSL_GUARDED_BY(mu_) = false;
  bool sent_terminal_ ABSL_GUARDED_BY(mu_) = false;
  std::tuple<scheduler::JobState, int64_t, int> last_key_ ABSL_GUARDED_BY(mu_);
  int64_t last_sent_ms_ ABSL_GUARDED_BY(mu_) = 0;
};

// One GetTaskLogs stream. Each Poll() reads the lines appended since the last one and
// writes them, one TaskLogLines per write; without `follow` (or once the job has ended)
// it finishes after sending what there was. Deleted by gRPC after OnDone.
class TaskLogStreamer final : public grpc::ServerWriteReactor<v1::TaskLogLines> {
 public:
  TaskLogStreamer(JobServiceImpl* service, const v1::GetTaskLogsRequest& req)
      : service_(service),
        job_id_(req.job_id()),
        task_(req.has_task_index() ? std::optional<int>(req.task_index()) : std::nullopt),
        follow_(req.follow()) {}

  // Called under the service's watchers_mu_.
  void Poll(const scheduler::Scheduler& sched, const TaskLogStore& logs) {
    absl::MutexLock lock(&mu_);
    if (writing_ || finished_) return;
    if (cancelled_) {
      FinishLocked(grpc::Status::CANCELLED);
      return;
    }
    absl::StatusOr<scheduler::JobView> v = sched.GetJob(job_id_);
    if (!v.ok()) {
      FinishLocked(ToGrpc(v.status()));
      return;
    }
    if (task_ && (*task_ < 0 || *task_ >= v->tasks_total)) {
      FinishLocked(ToGrpc(absl::InvalidArgumentError(
          absl::StrCat("task_index ", *task_, ": job ", job_id_, " has tasks 0..",
                       v->tasks_total - 1, "; give one of them or leave it out for all"))));
      return;
    }
    // The state is read before the files: workers send a task's lines before its
    // result, so once the job has ended every line is already in the files.
    const bool ended = scheduler::IsTerminal(v->job.state);
    for (auto& chunk : logs.ReadNew(job_id_, task_, &offsets_, 1000)) {
      v1::TaskLogLines m;
      m.set_task_index(chunk.task_index);
      for (auto& line : chunk.lines) m.add_lines(std::move(line));
      pending_.push_back(std::move(m));
    }
    if (!follow_ || ended) last_read_ = true;
    WriteNextLocked();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      cancelled_ = true;
      pending_.clear();
      return;
    }
    WriteNextLocked();
  }
  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
  }
  void OnDone() override {
    service_->RemoveLogStreamer(this);
    delete this;
  }
  void Close() {
    absl::MutexLock lock(&mu_);
    if (!writing_) FinishLocked({grpc::StatusCode::UNAVAILABLE, "server shutting down"});
  }

 private:
  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || finished_) return;
    if (!pending_.empty()) {
      current_ = std::move(pending_.front());
      pending_.pop_front();
      writing_ = true;
      StartWrite(&current_);
    } else if (last_read_) {
      FinishLocked(grpc::Status::OK);
    }
  }
  void FinishLocked(const grpc::Status& st) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    Finish(st);
  }

  JobServiceImpl* const service_;
  const int64_t job_id_;
  const std::optional<int> task_;
  const bool follow_;
  absl::Mutex mu_;
  std::map<int, uint64_t> offsets_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::TaskLogLines> pending_ ABSL_GUARDED_BY(mu_);
  v1::TaskLogLines current_ ABSL_GUARDED_BY(mu_);  // the write in flight
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool last_read_ ABSL_GUARDED_BY(mu_) = false;
};

JobServiceImpl::JobServiceImpl(scheduler::Scheduler* sched, const common::Storage* storage,
                               std::vector<std::string> model_path, Limits limits,
                               ServerMetrics* metrics, const TaskLogStore* task_logs,
                               Authenticator* auth, bool local_store)
    : sched_(sched),
      storage_(storage),
      admission_(sched, storage, std::move(model_path), limits,
                 [metrics](bool hit) {
                   if (metrics != nullptr) metrics->ProbeCacheLookup(hit);
                 }),
      metrics_(metrics),
      task_logs_(task_logs),
      auth_(auth),
      local_store_(local_store) {
  // The executor is gRPC's EventEngine, which needs the library initialised.
  grpc_init();
  executor_ = grpc_event_engine::experimental::CreateEventEngine();
}

absl::StatusOr<Principal> JobServiceImpl::Caller(grpc::CallbackServerContext* ctx,
                                                 std::initializer_list<Role> roles,
                                                 const std::string& what) const {
  ASSIGN_OR_RETURN(Principal p, auth_->Authenticate(*ctx));
  RETURN_IF_ERROR(RequireRole(p, roles, what));
  return p;
}

absl::Status JobServiceImpl::CheckJobAccess(grpc::CallbackServerContext* ctx, int64_t id,
                                            bool control, const std::string& what) const {
  ASSIGN_OR_RETURN(Principal p,
                   control ? Caller(ctx, {Role::kAdmin, Role::kSubmitter}, what)
                           : Caller(ctx, {Role::kAdmin, Role::kSubmitter, Role::kViewer}, what));
  ASSIGN_OR_RETURN(scheduler::JobView v, sched_->GetJob(id));
  const std::string& project = v.job.spec.project;
  if (control ? !p.CanControl(project) : !p.CanSee(project)) {
    return absl::PermissionDeniedError(absl::StrCat("'", p.name, "' may not ", what, " job ", id,
                                                    ": it belongs to project '", project,
                                                    "', which is not one of its projects"));
  }
  return absl::OkStatus();
}

JobServiceImpl::~JobServiceImpl() {
  executor_.reset();  // runs what is queued
  grpc_shutdown();
}

absl::StatusOr<v1::SubmitJobResponse> JobServiceImpl::DoSubmit(const v1::SubmitJobRequest& req,
                                                               const Principal& caller,
                                                               bool* needs_media_io) {
  ASSIGN_OR_RETURN(scheduler::JobSpec spec, admission_.FromRequest(req.spec()));
  spec.owner = caller.name;
  if (!caller.CanControl(spec.project)) {
    return absl::PermissionDeniedError(absl::StrCat("'", caller.name,
                                                    "' may not submit to project '", spec.project,
                                                    "'; set project to one of its projects"));
  }
  for (int64_t dep : spec.depends_on) {
    auto d = sched_->GetJob(dep);
    if (d.ok() && !caller.CanSee(d->job.spec.project)) {
      return absl::PermissionDeniedError(absl::StrCat("depends_on: job ", dep,
                                                      " belongs to project '", d->job.spec.project,
                                                      "', which '", caller.name, "' may not see"));
    }
  }
  v1::SubmitJobResponse resp;
  if (!req.validate_only() && sched_->KnowsRequest(spec.project, spec.request_id)) {
    // A retried submit: the first job, once durable, not admitted again (it may have
    // written its outputs since).
    ASSIGN_OR_RETURN(scheduler::JobView v, sched_->Submit(std::move(spec), std::nullopt));
    resp.set_job_id(v.job.id);
    *resp.mutable_job() = ToProto(v);
    return resp;
  }
  ASSIGN_OR_RETURN(AdmittedJob job,
                   admission_.Admit(std::move(spec), Admission::Stage::kSubmit, needs_media_io));
  if (req.validate_only()) {
    ASSIGN_OR_RETURN(scheduler::JobView v,
                     sched_->DryRun(std::move(job.spec), std::move(job.input)));
    *resp.mutable_job() = ToProto(v);
    return resp;
  }
  ASSIGN_OR_RETURN(scheduler::JobView v, sched_->Submit(std::move(job.spec), std::move(job.input)));
  resp.set_job_id(v.job.id);
  *resp.mutable_job() = ToProto(v);
  if (v.job.spec.is_generate()) {
    spdlog::info("job submitted job={} kind=generate output={} model={} takes={} frames={}",
                 v.job.id, v.job.spec.generate.output, v.job.spec.generate.model, v.tasks_total,
                 v.frames_total);
  } else {
    spdlog::info("job submitted job={} input={} output={} model={} scale={} frames={} tasks={}",
                 v.job.id, v.job.spec.upscale.input, v.job.spec.upscale.output,
                 v.job.spec.upscale.model, v.job.spec.upscale.scale, v.frames_total, v.tasks_total);
  }
  return resp;
}

grpc::ServerUnaryReactor* JobServiceImpl::SubmitJob(grpc::CallbackServerContext* ctx,
                                                    const v1::SubmitJobRequest* req,
                                                    v1::SubmitJobResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  const auto finish = [this, reactor, resp](absl::StatusOr<v1::SubmitJobResponse> r) {
    if (!r.ok()) {
      // Accepted jobs are counted by the scheduler's JobSubmitted event.
      metrics_->SubmitRefused(r.status().code());
      spdlog::info("job refused code={}: {}", absl::StatusCodeToString(r.status().code()),
                   std::string(r.status().message()));
      reactor->Finish(ToGrpc(r.status()));
      return;
    }
    *resp = std::move(*r);
    reactor->Finish(grpc::Status::OK);
  };
  absl::StatusOr<Principal> caller = Caller(ctx, {Role::kAdmin, Role::kSubmitter}, "submit jobs");
  if (!caller.ok()) {
    finish(caller.status());
    return reactor;
  }
  // A job whose input was probed before (ProbeCache) needs no media I/O: it is admitted
  // and committed here, on this callback thread, and answered from it; a hand-off to
  // another thread and back costs more than the commit's wait (benchmarks/: submit).
  // One that would probe (or read models, or an OCIO config) is admitted again on the
  // executor, so that no probe runs on gRPC's thread. The reactor is then finished
  // from the executor's; the call and `req`/`resp` live until then.
  // Only with a local store (see the constructor).
  if (local_store_) {
    bool needs_media_io = false;
    absl::StatusOr<v1::SubmitJobResponse> now = DoSubmit(*req, *caller, &needs_media_io);
    if (!needs_media_io) {
      finish(std::move(now));
      return reactor;
    }
  }
  executor_->Run(
      [this, req, finish, caller = *std::move(caller)] { finish(DoSubmit(*req, caller)); });
  return reactor;
}

grpc::ServerUnaryReactor* JobServiceImpl::GetJob(grpc::CallbackServerContext* ctx,
                                                 const v1::GetJobRequest* req, v1::Job* resp) {
  RETURN_FINISH_IF_ERROR(ctx, CheckJobAccess(ctx, req->job_id(), false, "see"));
  absl::StatusOr<scheduler::JobView> v = sched_->GetJob(req->job_id());
  if (v.ok()) *resp = ToProto(*v);
  return FinishWith(ctx, v.status());
}

grpc::ServerUnaryReactor* JobServiceImpl::ListJobs(grpc::CallbackServerContext* ctx,
                                                   const v1::ListJobsRequest* req,
                                                   v1::ListJobsResponse* resp) {
  absl::StatusOr<Principal> caller =
      Caller(ctx, {Role::kAdmin, Role::kSubmitter, Role::kViewer}, "list jobs");
  if (!caller.ok()) return FinishWith(ctx, caller.status());
  if (!req->project().empty() && !caller->CanSee(req->project())) {
    return FinishWith(ctx, absl::PermissionDeniedError(absl::StrCat(
                               "'", caller->name, "' may not list project '", req->project(),
                               "', which is not one of its projects")));
  }
  scheduler::Scheduler::ListFilter filter;
  for (int s : req->states()) filter.states.push_back(FromProto(static_cast<v1::JobState>(s)));
  filter.project = req->project();
  filter.since_unix_ms = req->since_unix_ms();
  filter.limit = req->limit() > 0 ? req->limit() : 100;
  std::vector<scheduler::JobView> jobs;
  if (caller->role == Role::kSubmitter && filter.project.empty()) {
    // A submitter sees its own projects' jobs only: each project's newest, merged.
    for (const std::string& p : caller->projects) {
      filter.project = p;
      for (auto& v : sched_->ListJobs(filter)) jobs.push_back(std::move(v));
    }
    std::sort(jobs.begin(), jobs.end(), [](const auto& a, const auto& b) {
      return a.job.created_unix_ms != b.job.created_unix_ms
                 ? a.job.created_unix_ms > b.job.created_unix_ms
                 : a.job.id > b.job.id;
    });
    if (filter.limit > 0 && jobs.size() > static_cast<size_t>(filter.limit)) {
      jobs.resize(filter.limit);
    }
  } else {
    jobs = sched_->ListJobs(filter);
  }
  for (const auto& v : jobs) *resp->add_jobs() = ToProto(v);
  return FinishWith(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* JobServiceImpl::CancelJob(grpc::CallbackServerContext* ctx,
                                                    const v1::CancelJobRequest* req,
                                                    v1::Job* resp) {
  RETURN_FINISH_IF_ERROR(ctx, CheckJobAccess(ctx, req->job_id(), true, "cancel"));
  absl::StatusOr<scheduler::JobView> v = sched_->Cancel(req->job_id());
  if (v.ok()) {
    *resp = ToProto(*v);
    spdlog::info("job cancelled job={}", req->job_id());
  }
  return FinishWith(ctx, v.status());
}

grpc::ServerWriteReactor<v1::JobEvent>* JobServiceImpl::WatchJob(grpc::CallbackServerContext* ctx,
                                                                 const v1::WatchJobRequest* req) {
  absl::Status access = CheckJobAccess(ctx, req->job_id(), false, "watch");
  if (!access.ok()) return new RefusedWriter<v1::JobEvent>(access);
  auto* w = new JobWatcher(this, req->job_id());
  absl::MutexLock lock(&watchers_mu_);
  watchers_.insert(w);
  w->Poll(*sched_);
  return w;
}

grpc::ServerUnaryReactor* JobServiceImpl::ListWorkers(grpc::CallbackServerContext* ctx,
                                                      const v1::ListWorkersRequest* req,
                                                      v1::ListWorkersResponse* resp) {
  (void)req;
  RETURN_FINISH_IF_ERROR(
      ctx, Caller(ctx, {Role::kAdmin, Role::kSubmitter, Role::kViewer}, "list workers").status());
  for (const auto& w : sched_->ListWorkers()) *resp->add_workers() = ToProto(w);
  return FinishWith(ctx, absl::OkStatus());
}

namespace {
grpc::ServerUnaryReactor* FinishJob(grpc::CallbackServerContext* ctx,
                                    const absl::StatusOr<scheduler::JobView>& v, v1::Job* resp,
                                    const char* what) {
  if (v.ok()) {
    *resp = ToProto(*v);
    spdlog::info("job {} job={} state={}", what, v->job.id, scheduler::ToString(v->job.state));
  }
  return FinishWith(ctx, v.status());
}
}  // namespace

grpc::ServerUnaryReactor* JobServiceImpl::PauseJob(grpc::CallbackServerContext* ctx,
                                                   const v1::PauseJobRequest* req, v1::Job* resp) {
  RETURN_FINISH_IF_ERROR(ctx, CheckJobAccess(ctx, req->job_id(), true, "pause"));
  return FinishJob(ctx, sched_->Pause(req->job_id()), resp, "paused");
}

grpc::ServerUnaryReactor* JobServiceImpl::ResumeJob(grpc::CallbackServerContext* ctx,
                                                    const v1::ResumeJobRequest* req,
                                                    v1::Job* resp) {
  RETURN_FINISH_IF_ERROR(ctx, CheckJobAccess(ctx, req->job_id(), true, "resume"));
  return FinishJob(ctx, sched_->Resume(req->job_id()), resp, "resumed");
}

grpc::ServerUnaryReactor* JobServiceImpl::RetryJob(grpc::CallbackServerContext* ctx,
                                                   const v1::RetryJobRequest* req, v1::Job* resp) {
  RETURN_FINISH_IF_ERROR(ctx, CheckJobAccess(ctx, req->job_id(), true, "retry"));
  return FinishJob(ctx, sched_->Retry(req->job_id()), resp, "retried");
}

grpc::ServerUnaryReactor* JobServiceImpl::SetPriority(grpc::CallbackServerContext* ctx,
                                                      const v1::SetPriorityRequest* req,
                                                      v1::Job* resp) {
  RETURN_FINISH_IF_ERROR(ctx, CheckJobAccess(ctx, req->job_id(), true, "reprioritise"));
  return FinishJob(ctx, sched_->SetPriority(req->job_id(), req->priority()), resp, "reprioritised");
}

grpc::ServerUnaryReactor* JobServiceImpl::DrainWorker(grpc::CallbackServerContext* ctx,
                                                      const v1::DrainWorkerRequest* req,
                                                      v1::Worker* resp) {
  RETURN_FINISH_IF_ERROR(ctx, Caller(ctx, {Role::kAdmin}, "drain workers").status());
  absl::Status st = sched_->Drain(req->name(), req->drain());
  if (st.ok()) {
    for (const auto& w : sched_->ListWorkers()) {
      if (w.info.name == req->name()) *resp = ToProto(w);
    }
    resp->set_name(req->name());
    spdlog::info("worker {} worker={}", req->drain() ? "draining" : "undrained", req->name());
  }
  return FinishWith(ctx, st);
}

grpc::ServerUnaryReactor* JobServiceImpl::PurgeJobs(grpc::CallbackServerContext* ctx,
                                                    const v1::PurgeJobsRequest* req,
                                                    v1::PurgeJobsResponse* resp) {
  absl::StatusOr<Principal> caller = Caller(ctx, {Role::kAdmin}, "purge jobs");
  if (!caller.ok()) return FinishWith(ctx, caller.status());
  if (req->older_than_seconds() < 0) {
    return FinishWith(ctx, absl::InvalidArgumentError(
                               absl::StrCat("older_than_seconds is ", req->older_than_seconds(),
                                            "; give 0 (any ended job) or more")));
  }
  scheduler::Scheduler::PurgeRequest request;
  request.older_than_ms = req->older_than_seconds() * 1000;
  request.job_ids.assign(req->job_ids().begin(), req->job_ids().end());
  request.dry_run = req->dry_run();
  absl::StatusOr<scheduler::Scheduler::PurgeResult> result =
      server::PurgeJobs(*sched_, *storage_, *task_logs_, request,
                        absl::StrCat(request.dry_run ? "dry run by " : "purge by ", caller->name));
  if (!result.ok()) return FinishWith(ctx, result.status());
  for (const scheduler::Job& job : result->purged) {
    v1::PurgedJob* p = resp->add_purged();
    p->set_id(job.id);
    p->set_name(job.spec.name);
    p->set_state(ToProto(job.state));
    p->set_finished_unix_ms(job.finished_unix_ms);
  }
  for (const auto& [id, reason] : result->kept) {
    v1::KeptJob* k = resp->add_kept();
    k->set_id(id);
    k->set_reason(reason);
  }
  resp->set_dry_run(request.dry_run);
  return FinishWith(ctx, absl::OkStatus());
}

void JobServiceImpl::ActivateWaitingJobs() {
  for (auto& [id, spec] : sched_->JobsToActivate()) {
    // The same admission as SubmitJob's: now that its dependencies have succeeded, the
    // input is there to probe.
    absl::StatusOr<AdmittedJob> job =
        admission_.Admit(std::move(spec), Admission::Stage::kActivation);
    if (!job.ok()) {
      spdlog::warn("job failed job={} code={}: {}", id,
                   absl::StatusCodeToString(job.status().code()),
                   std::string(job.status().message()));
      (void)sched_->FailJob(id, std::string(job.status().message()));
    } else if (job->input) {
      spdlog::info("job activated job={} input={} frames={}", id, job->spec.upscale.input,
                   job->input->frame_count);
      (void)sched_->Activate(id, *job->input);
    }
  }
}

grpc::ServerWriteReactor<v1::TaskLogLines>* JobServiceImpl::GetTaskLogs(
    grpc::CallbackServerContext* ctx, const v1::GetTaskLogsRequest* req) {
  absl::Status access = CheckJobAccess(ctx, req->job_id(), false, "read the logs of");
  if (!access.ok()) return new RefusedWriter<v1::TaskLogLines>(access);
  auto* s = new TaskLogStreamer(this, *req);
  absl::MutexLock lock(&watchers_mu_);
  log_streams_.insert(s);
  s->Poll(*sched_, *task_logs_);
  return s;
}

void JobServiceImpl::PollWatchers() {
  absl::MutexLock lock(&watchers_mu_);
  for (JobWatcher* w : watchers_) w->Poll(*sched_);
  for (TaskLogStreamer* s : log_streams_) s->Poll(*sched_, *task_logs_);
}

void JobServiceImpl::CloseWatchers() {
  absl::MutexLock lock(&watchers_mu_);
  for (JobWatcher* w : watchers_) w->Close();
  for (TaskLogStreamer* s : log_streams_) s->Close();
}

void JobServiceImpl::RemoveLogStreamer(TaskLogStreamer* s) {
  absl::MutexLock lock(&watchers_mu_);
  log_streams_.erase(s);
}

void JobServiceImpl::RemoveWatcher(JobWatcher* w) {
  absl::MutexLock lock(&watchers_mu_);
  watchers_.erase(w);
}

}  // namespace reelfarm::server
