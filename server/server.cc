#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/server_builder.h>
#include <spdlog/spdlog.h>

#include "scheduler/pg_connection.h"
#include "server/timed_store.h"

#include "absl/strings/str_cat.h"

namespace reelfarm::server {

absl::StatusOr<std::unique_ptr<FarmServer>> FarmServer::Start(const ServerOptions& options,
                                                             prometheus::Registry& registry) {
  std::unique_ptr<FarmServer> s(new FarmServer);
  s->metrics_ = std::make_unique<ServerMetrics>(registry);
  s->task_logs_ = std::make_unique<TaskLogStore>(options.task_log_dir);
  ASSIGN_OR_RETURN(std::unique_ptr<scheduler::JobStore> store,
                   scheduler::IsPostgresUrl(options.store)
                       ? scheduler::OpenPostgresJobStore(options.store, options.epoch)
                       : scheduler::OpenSqliteJobStore(options.store));
  s->store_ = std::make_unique<TimedJobStore>(std::move(store), s->metrics_.get());
  ASSIGN_OR_RETURN(common::Storage storage, common::Storage::Open(options.storage_root));
  s->storage_ = std::make_unique<common::Storage>(std::move(storage));
  scheduler::SchedulerOptions sched_options = options.scheduler;
  sched_options.lease_epoch = options.epoch;
  ASSIGN_OR_RETURN(s->sched_,
                   scheduler::Scheduler::Create(s->store_.get(), &scheduler::RealClock(),
                                                sched_options, s->metrics_.get()));
  s->metrics_->AttachScheduler(s->sched_.get());
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> creds,
                   common::MakeServerCredentials(options.tls));
  if (options.tls.insecure) {
    spdlog::warn("plaintext gRPC on '{}' (--insecure): tokens and job data cross the "
                 "network unencrypted; use it on loopback or a trusted network only",
                 options.listen);
  }
  ASSIGN_OR_RETURN(s->auth_, Authenticator::Create(options.tokens_file));
  if (!s->auth_->enabled()) {
    spdlog::warn("no tokens file (--no-auth): every caller may submit, cancel and drain; "
                 "give --tokens-file on a shared network");
  }
  if (!options.local_worker_token.empty()) {
    s->auth_->AddToken("local-workers", Role::kWorker, options.local_worker_token);
  }
  // workers_ is declared before sched_ (destruction order) but built after it.
  s->workers_ = std::make_unique<WorkerServiceImpl>(s->sched_.get(), s->metrics_.get(),
                                                    s->task_logs_.get(), s->auth_.get(),
                                                    options.require_worker_cert);
  s->jobs_ = std::make_unique<JobServiceImpl>(s->sched_.get(), s->storage_.get(),
                                              options.model_path, options.limits,
                                              s->metrics_.get(), s->task_logs_.get(),
                                              s->auth_.get());
  // Both are process-wide switches that apply to builders made after them.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(NewGrpcMetricsInterceptorFactory(s->metrics_.get()));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  builder.AddListeningPort(options.listen, creds, &s->port_);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.RegisterService(s->jobs_.get());
  builder.RegisterService(s->workers_.get());
  s->server_ = builder.BuildAndStart();
  if (!s->server_ || s->port_ == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on '", options.listen, "'; is another server using that port?"));
  }
  // The overall status ("") and each service's read SERVING until Shutdown().
  if (auto* health = s->server_->GetHealthCheckService()) {
    health->SetServingStatus(true);
    health->SetServingStatus(v1::JobService::service_full_name(), true);
    health->SetServingStatus(v1::WorkerService::service_full_name(), true);
  }
  s->dispatcher_ = std::thread([srv = s.get()] { srv->DispatchLoop(); });
  return s;
}

void FarmServer::DispatchLoop() {
  uint64_t seen = 0;
  while (!stop_.load()) {
    seen = sched_->WaitForChange(seen, 100);
    for (const auto& lease : sched_->ExpireLeases()) {
      spdlog::warn("lease expired job={} task={} worker={} lease={}; the worker is "
                   "unhealthy (no new work) until it heartbeats again",
                   lease.job_id, lease.task_index, lease.worker, lease.id);
    }
    jobs_->ActivateWaitingJobs();
    workers_->Dispatch();
    jobs_->PollWatchers();
  }
}

void FarmServer::Shutdown() {
  if (stop_.exchange(true)) return;
  if (auto* health = server_->GetHealthCheckService()) health->Shutdown();
  if (dispatcher_.joinable()) dispatcher_.join();
  jobs_->CloseWatchers();
  workers_->CloseAll();
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server_->Wait();
  metrics_->AttachScheduler(nullptr);  // a scrape from now on sees no gauges
}

FarmServer::~FarmServer() { Shutdown(); }

}  // namespace reelfarm::server
