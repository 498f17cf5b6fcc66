// JobService: the client API over the scheduler. Handlers validate, call the
// scheduler and finish; WatchJob streams are fed by the server's dispatcher loop.
#pragma once

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <grpc/event_engine/event_engine.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/storage.h"
#include "reelfarm/v1/jobs.grpc.pb.h"
#include "scheduler/scheduler.h"
#include "server/admission.h"
#include "server/auth.h"
#include "server/metrics.h"
#include "server/task_logs.h"

namespace reelfarm::server {

class JobWatcher;
class TaskLogStreamer;

class JobServiceImpl final : public v1::JobService::CallbackService {
 public:
  // `auth` decides who may call what (borrowed; must outlive the service).
  // `local_store`: the scheduler commits to a local file (SQLite), whose commit is an
  // fsync; a submit that needs no media I/O then commits on gRPC's callback thread. With
  // a networked store (PostgreSQL), whose commit may wait out an outage, every submit
  // waits on the executor.
  JobServiceImpl(scheduler::Scheduler* sched, const common::Storage* storage,
                 std::vector<std::string> model_path, Limits limits, ServerMetrics* metrics,
                 const TaskLogStore* task_logs, Authenticator* auth, bool local_store);
  ~JobServiceImpl() override;

  grpc::ServerUnaryReactor* SubmitJob(grpc::CallbackServerContext* ctx,
                                      const v1::SubmitJobRequest* req,
                                      v1::SubmitJobResponse* resp) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* ctx, const v1::GetJobRequest* req,
                                   v1::Job* resp) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* ctx,
                                     const v1::ListJobsRequest* req,
                                     v1::ListJobsResponse* resp) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* ctx,
                                      const v1::CancelJobRequest* req, v1::Job* resp) override;
  grpc::ServerWriteReactor<v1::JobEvent>* WatchJob(grpc::CallbackServerContext* ctx,
                                                   const v1::WatchJobRequest* req) override;
  grpc::ServerUnaryReactor* ListWorkers(grpc::CallbackServerContext* ctx,
                                        const v1::ListWorkersRequest* req,
                                        v1::ListWorkersResponse* resp) override;
  grpc::ServerUnaryReactor* PauseJob(grpc::CallbackServerContext* ctx,
                                     const v1::PauseJobRequest* req, v1::Job* resp) override;
  grpc::ServerUnaryReactor* ResumeJob(grpc::CallbackServerContext* ctx,
                                      const v1::ResumeJobRequest* req, v1::Job* resp) override;
  grpc::ServerUnaryReactor* RetryJob(grpc::CallbackServerContext* ctx,
                                     const v1::RetryJobRequest* req, v1::Job* resp) override;
  grpc::ServerUnaryReactor* SetPriority(grpc::CallbackServerContext* ctx,
                                        const v1::SetPriorityRequest* req, v1::Job* resp) override;
  grpc::ServerUnaryReactor* DrainWorker(grpc::CallbackServerContext* ctx,
                                        const v1::DrainWorkerRequest* req,
                                        v1::Worker* resp) override;

  // Admins only: Scheduler::Purge, then the purged jobs' task logs and scratch.
  grpc::ServerUnaryReactor* PurgeJobs(grpc::CallbackServerContext* ctx,
                                      const v1::PurgeJobsRequest* req,
                                      v1::PurgeJobsResponse* resp) override;

  // Admits again the jobs whose dependencies made their input, probing it (called by
  // the dispatcher loop, never on a gRPC thread); a job refused fails with the message
  // SubmitJob would have given.
  void ActivateWaitingJobs();

  grpc::ServerWriteReactor<v1::TaskLogLines>* GetTaskLogs(
      grpc::CallbackServerContext* ctx, const v1::GetTaskLogsRequest* req) override;

  // Sends due events to every open WatchJob stream and new lines to every GetTaskLogs
  // stream. Called by the dispatcher loop.
  void PollWatchers();
  // Ends every open WatchJob and GetTaskLogs stream (server shutdown).
  void CloseWatchers();

  const Admission& admission() const { return admission_; }

 private:
  friend class JobWatcher;
  friend class TaskLogStreamer;
  // Admits and submits (or dry-runs) the request's job. With `needs_media_io`, on the
  // callback thread: does no media I/O, and sets *needs_media_io (its answer then
  // unused) where it would; else on executor_.
  absl::StatusOr<v1::SubmitJobResponse> DoSubmit(const v1::SubmitJobRequest& req,
                                                 const Principal& caller,
                                                 bool* needs_media_io = nullptr);
  // The caller of `ctx` if it has one of `roles`; else UNAUTHENTICATED or
  // PERMISSION_DENIED naming `what`.
  absl::StatusOr<Principal> Caller(grpc::CallbackServerContext* ctx,
                                   std::initializer_list<Role> roles,
                                   const std::string& what) const;
  // OK when `caller` may see (or, with `control`, control) job `id`: NOT_FOUND for
  // an unknown job, PERMISSION_DENIED for another project's.
  absl::Status CheckJobAccess(grpc::CallbackServerContext* ctx, int64_t id, bool control,
                              const std::string& what) const;
  void RemoveWatcher(JobWatcher* w);
  void RemoveLogStreamer(TaskLogStreamer* s);

  scheduler::Scheduler* const sched_;
  const common::Storage* const storage_;
  const Admission admission_;
  ServerMetrics* const metrics_;
  const TaskLogStore* const task_logs_;
  Authenticator* const auth_;
  const bool local_store_;

  absl::Mutex watchers_mu_;  // before a watcher's or streamer's own mutex
  std::set<JobWatcher*> watchers_ ABSL_GUARDED_BY(watchers_mu_);
  std::set<TaskLogStreamer*> log_streams_ ABSL_GUARDED_BY(watchers_mu_);

  // Runs SubmitJob's admission (file probes) and its wait for the durable commit, so
  // that no gRPC callback thread blocks on them; gRPC's own executor, a few threads.
  // Last: destroyed first, after the closures queued on it have run.
  std::unique_ptr<grpc_event_engine::experimental::EventEngine> executor_;
};

}  // namespace reelfarm::server
