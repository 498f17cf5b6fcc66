// JobService: the client API over the scheduler. Handlers validate, call the
// scheduler and finish; WatchJob streams are fed by the server's dispatcher loop.
#pragma once

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/storage.h"
#include "reelfarm/v1/jobs.grpc.pb.h"
#include "scheduler/scheduler.h"
#include "server/auth.h"
#include "server/metrics.h"
#include "server/task_logs.h"

namespace reelfarm::media {
struct OutputFormat;
}

namespace reelfarm::server {

struct Limits {
  int max_width = 8192;
  int max_height = 8192;
  int64_t max_frames = 1'000'000;
  int64_t max_spec_bytes = 64 * 1024;  // serialized JobSpec
  size_t max_string_length = 1024;     // name, project, paths, model, tags, request id
  int max_requirements = 64;           // worker tags a job may require
  int max_depends_on = 1000;
  int64_t max_tasks_per_job = 100'000;
  int max_generate_steps = 200;  // sampler steps a generate take may ask for
};

class JobWatcher;
class TaskLogStreamer;

class JobServiceImpl final : public v1::JobService::CallbackService {
 public:
  // `auth` decides who may call what (borrowed; must outlive the service).
  JobServiceImpl(scheduler::Scheduler* sched, const common::Storage* storage,
                 std::vector<std::string> model_path, Limits limits, ServerMetrics* metrics,
                 const TaskLogStore* task_logs, Authenticator* auth);
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

  // Probes the inputs of jobs whose dependencies made them (called by the dispatcher
  // loop, never on a gRPC thread).
  void ActivateWaitingJobs();

  grpc::ServerWriteReactor<v1::TaskLogLines>* GetTaskLogs(
      grpc::CallbackServerContext* ctx, const v1::GetTaskLogsRequest* req) override;

  // Sends due events to every open WatchJob stream and new lines to every GetTaskLogs
  // stream. Called by the dispatcher loop.
  void PollWatchers();
  // Ends every open WatchJob and GetTaskLogs stream (server shutdown).
  void CloseWatchers();

  // Validates a spec; the message of an error names the field and the value. Returns
  // the probed input, or nullopt when the input is the output of a job the spec
  // depends on (probed when that job succeeds). `memory_bytes` gets the model's
  // estimate when its manifest gives one.
  absl::StatusOr<std::optional<scheduler::MediaInfo>> Validate(v1::JobSpec& spec,
                                                               int64_t* memory_bytes) const;
  // Probes the input (a movie or an image sequence, with its frame range) and checks
  // the limits.
  absl::StatusOr<scheduler::MediaInfo> ProbeInput(const v1::UpscaleSpec& u) const;

 private:
  friend class JobWatcher;
  friend class TaskLogStreamer;
  absl::StatusOr<v1::SubmitJobResponse> DoSubmit(const v1::SubmitJobRequest& req,
                                                 const Principal& caller);
  // The caller of `ctx` if it has one of `roles`; else UNAUTHENTICATED or
  // PERMISSION_DENIED naming `what`.
  absl::StatusOr<Principal> Caller(grpc::CallbackServerContext* ctx,
                                   std::initializer_list<Role> roles,
                                   const std::string& what) const;
  // OK when `caller` may see (or, with `control`, control) job `id`: NOT_FOUND for
  // an unknown job, PERMISSION_DENIED for another project's.
  absl::Status CheckJobAccess(grpc::CallbackServerContext* ctx, int64_t id, bool control,
                              const std::string& what) const;
  // Sizes and lengths of a spec against the limits (INVALID_ARGUMENT naming the field).
  absl::Status CheckSpecLimits(const v1::JobSpec& spec) const;
  static absl::Status CheckUpscaleOutputs(const v1::UpscaleSpec& u,
                                          const std::filesystem::path& output,
                                          const media::OutputFormat& format,
                                          const std::optional<scheduler::MediaInfo>& mi);
  void RemoveWatcher(JobWatcher* w);
  void RemoveLogStreamer(TaskLogStreamer* s);

  scheduler::Scheduler* const sched_;
  const common::Storage* const storage_;
  const std::vector<std::string> model_path_;
  const Limits limits_;
  ServerMetrics* const metrics_;
  const TaskLogStore* const task_logs_;
  Authenticator* const auth_;

  absl::Mutex watchers_mu_;  // before a watcher's or streamer's own mutex
  std::set<JobWatcher*> watchers_ ABSL_GUARDED_BY(watchers_mu_);
  std::set<TaskLogStreamer*> log_streams_ ABSL_GUARDED_BY(watchers_mu_);
};

}  // namespace reelfarm::server
