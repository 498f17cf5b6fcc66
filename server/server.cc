#include "server/server.h"

#include <grpcpp/server_builder.h>
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"

namespace reelfarm::server {

absl::StatusOr<std::unique_ptr<FarmServer>> FarmServer::Start(const ServerOptions& options,
                                                             prometheus::Registry& registry) {
  std::unique_ptr<FarmServer> s(new FarmServer);
  ASSIGN_OR_RETURN(s->store_, scheduler::OpenSqliteJobStore(options.state_db));
  ASSIGN_OR_RETURN(common::Storage storage, common::Storage::Open(options.storage_root));
  s->storage_ = std::make_unique<common::Storage>(std::move(storage));
  ASSIGN_OR_RETURN(s->sched_, scheduler::Scheduler::Create(
                                  s->store_.get(), &scheduler::RealClock(), options.scheduler));
  // workers_ is declared before sched_ (destruction order) but built after it.
  s->workers_ = std::make_unique<WorkerServiceImpl>(s->sched_.get());
  s->jobs_ = std::make_unique<JobServiceImpl>(s->sched_.get(), s->storage_.get(),
                                              options.model_path, options.limits, registry);
  grpc::ServerBuilder builder;
  // Plaintext on the address given (loopback by default); TLS comes with the security
  // issue.
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(), &s->port_);
  builder.RegisterService(s->jobs_.get());
  builder.RegisterService(s->workers_.get());
  s->server_ = builder.BuildAndStart();
  if (!s->server_ || s->port_ == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on '", options.listen, "'; is another server using that port?"));
  }
  s->dispatcher_ = std::thread([srv = s.get()] { srv->DispatchLoop(); });
  return s;
}

void FarmServer::DispatchLoop() {
  uint64_t seen = 0;
  while (!stop_.load()) {
    seen = sched_->WaitForChange(seen, 100);
    for (const auto& lease : sched_->ExpireLeases()) {
      spdlog::warn("lease expired job={} task={} worker={} lease={}", lease.job_id,
                   lease.task_index, lease.worker, lease.id);
    }
    jobs_->ActivateWaitingJobs();
    workers_->Dispatch();
    jobs_->PollWatchers();
  }
}

void FarmServer::Shutdown() {
  if (stop_.exchange(true)) return;
  if (dispatcher_.joinable()) dispatcher_.join();
  jobs_->CloseWatchers();
  workers_->CloseAll();
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server_->Wait();
}

FarmServer::~FarmServer() { Shutdown(); }

}  // namespace reelfarm::server
