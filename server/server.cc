#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/server_builder.h>
#include <spdlog/spdlog.h>

#include "common/thread_name.h"
#include "scheduler/pg_connection.h"
#include "server/callback_threads.h"
#include "server/retention.h"
#include "server/timed_store.h"

#include <chrono>
#include <filesystem>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace reelfarm::server {

namespace {

// A call to a method this port does not serve: UNIMPLEMENTED (what gRPC clients and
// reflection tools expect for it), with a message that names the method as received
// (bytes that are not printable ASCII escaped) and the services that are served.
class UnknownMethodService final : public grpc::CallbackGenericService {
 public:
  // `hold` (may be null) takes the calls to CallbackThreadHold::kMethod that are its own.
  explicit UnknownMethodService(CallbackThreadHold* hold) : hold_(hold) {}

  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    class Reactor final : public grpc::ServerGenericBidiReactor {
     public:
      explicit Reactor(grpc::Status status) { Finish(status); }
      void OnDone() override { delete this; }
    };
    // A hold's call returns once released, at shutdown.
    if (hold_ != nullptr && hold_->HoldCall(*ctx)) return new Reactor(grpc::Status::OK);
    std::string shown;
    for (unsigned char c : ctx->method().substr(0, 200)) {
      if (c >= 0x20 && c < 0x7f) {
        shown.push_back(static_cast<char>(c));
      } else {
        absl::StrAppend(&shown, "\\x", absl::Hex(c, absl::kZeroPad2));
      }
    }
    return new Reactor(
        grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                     absl::StrCat("method '", shown,
                                  "' is not served here; this port serves reelfarm.v1.JobService, "
                                  "reelfarm.v1.WorkerService, grpc.health.v1.Health and server "
                                  "reflection (use reelctl or the Python SDK)")));
  }

 private:
  CallbackThreadHold* const hold_;
};

// A start-up error names the flag that set what failed, so the operator knows what to
// change.
absl::Status ForFlag(const absl::Status& st, absl::string_view flag) {
  if (st.ok() || absl::StrContains(st.message(), flag)) return st;
  return absl::Status(st.code(), absl::StrCat(flag, ": ", st.message()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<FarmServer>> FarmServer::Start(const ServerOptions& options,
                                                              prometheus::Registry& registry) {
  std::unique_ptr<FarmServer> s(new FarmServer);
  s->metrics_ = std::make_unique<ServerMetrics>(registry);
  s->notifier_ = std::make_unique<Notifier>(options.notify, registry, s->metrics_.get());
  s->keep_finished_ms_ = options.keep_finished_ms;
  s->task_logs_ = std::make_unique<TaskLogStore>(options.task_log_dir);
  absl::StatusOr<std::unique_ptr<scheduler::JobStore>> opened =
      scheduler::IsPostgresUrl(options.store)
          ? scheduler::OpenPostgresJobStore(options.store, options.epoch)
          : scheduler::OpenSqliteJobStore(
                options.store,
                [metrics = s->metrics_.get()](const char* pass, double seconds, bool ok) {
                  metrics->StoreCheckpoint(pass, seconds, ok);
                });
  if (!opened.ok()) return ForFlag(opened.status(), "--store");
  std::unique_ptr<scheduler::JobStore> store = std::move(*opened);
  s->store_ = std::make_unique<TimedJobStore>(std::move(store), s->metrics_.get());
  absl::StatusOr<std::unique_ptr<common::Storage>> storage =
      common::Storage::Open(options.storage_root);
  if (!storage.ok()) return ForFlag(storage.status(), "--storage-root");
  s->storage_ = std::move(*storage);
  // The farm's own folder exists from the start, so that a link to it (or into it) is
  // seen for what it is when a job names it.
  std::error_code ec;
  std::filesystem::create_directories(s->storage_->root() / common::Storage::kFarmDir / "jobs", ec);
  scheduler::SchedulerOptions sched_options = options.scheduler;
  sched_options.lease_epoch = options.epoch;
  scheduler::Clock* clock = options.clock ? options.clock : &scheduler::RealClock();
  ASSIGN_OR_RETURN(s->sched_, scheduler::Scheduler::Create(s->store_.get(), clock, sched_options,
                                                           s->notifier_.get()));
  s->metrics_->AttachScheduler(s->sched_.get());
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds =
      common::MakeServerCredentials(options.tls);
  if (!creds.ok()) return ForFlag(creds.status(), "--tls-cert");
  if (options.tls.insecure) {
    spdlog::warn(
        "plaintext gRPC on '{}' (--insecure): tokens and job data cross the "
        "network unencrypted; use it on loopback or a trusted network only",
        options.listen);
  }
  absl::StatusOr<std::unique_ptr<Authenticator>> auth = Authenticator::Create(options.tokens_file);
  if (!auth.ok()) return ForFlag(auth.status(), "--tokens-file");
  s->auth_ = std::move(*auth);
  if (!s->auth_->enabled()) {
    spdlog::warn(
        "no tokens file (--no-auth): every caller may submit, cancel and drain; "
        "give --tokens-file on a shared network");
  }
  if (!options.local_worker_token.empty()) {
    s->auth_->AddToken("local-workers", Role::kWorker, options.local_worker_token);
  }
  // workers_ is declared before sched_ (destruction order) but built after it.
  s->workers_ =
      std::make_unique<WorkerServiceImpl>(s->sched_.get(), s->metrics_.get(), s->task_logs_.get(),
                                          s->auth_.get(), options.require_worker_cert);
  s->jobs_ = std::make_unique<JobServiceImpl>(
      s->sched_.get(), s->storage_.get(), options.model_path, options.limits, s->metrics_.get(),
      s->task_logs_.get(), s->auth_.get(), !scheduler::IsPostgresUrl(options.store));
  // Both are process-wide switches that apply to builders made after them.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(NewGrpcMetricsInterceptorFactory(s->metrics_.get()));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  builder.AddListeningPort(options.listen, *creds, &s->port_);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.RegisterService(s->jobs_.get());
  builder.RegisterService(s->workers_.get());
  const bool local_store = !scheduler::IsPostgresUrl(options.store);
  if (local_store) s->hold_ = std::make_unique<CallbackThreadHold>();
  s->unknown_methods_ = std::make_unique<UnknownMethodService>(s->hold_.get());
  builder.RegisterCallbackGenericService(s->unknown_methods_.get());
  s->server_ = builder.BuildAndStart();
  if (!s->server_ || s->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("--listen '", options.listen,
                     "': cannot listen there; is another server using that port? Give another "
                     "--listen (port 0 picks a free one)"));
  }
  // The overall status ("") and each service's read SERVING until Shutdown().
  if (auto* health = s->server_->GetHealthCheckService()) {
    health->SetServingStatus(true);
    health->SetServingStatus(v1::JobService::service_full_name(), true);
    health->SetServingStatus(v1::WorkerService::service_full_name(), true);
  }
  // One callback thread serves every call (callback_threads.h); with PostgreSQL, gRPC's.
  if (s->hold_) {
    const int held = s->hold_->Start(s->server_.get(), absl::Seconds(5));
    const int threads = s->hold_->callback_threads();
    s->metrics_->CallbackThreads(threads - held, held);
    spdlog::info(
        "gRPC: {} of {} callback threads serve ({} held, so that no call waits for "
        "a hand-off between them)",
        threads - held, threads, held);
  }
  s->dispatcher_ = std::thread([srv = s.get()] {
    common::NameThread("rf-dispatch");
    srv->DispatchLoop();
  });
  s->sweeper_ = std::thread([srv = s.get()] {
    common::NameThread("rf-sweep");
    srv->SweepLoop();
  });
  return s;
}

void FarmServer::SweepLoop() {
  while (!stop_.load()) {
    if (keep_finished_ms_ > 0) {
      scheduler::Scheduler::PurgeRequest request;
      request.older_than_ms = keep_finished_ms_;
      const auto purged = PurgeJobs(*sched_, *storage_, *task_logs_, request, "retention");
      if (!purged.ok()) spdlog::warn("retention: {}", std::string(purged.status().message()));
    }
    SweepScratch();
    // Every 2 s; at once out of the wait when the server stops.
    if (stopped_.WaitForNotificationWithTimeout(absl::Seconds(2))) return;
  }
}

void FarmServer::SweepScratch() {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path jobs = storage_->root() / common::Storage::kFarmDir / "jobs";
  for (fs::directory_iterator it(jobs, ec), end; !ec && it != end; it.increment(ec)) {
    int64_t id = 0;
    if (!absl::SimpleAtoi(it->path().filename().string(), &id)) continue;
    const absl::StatusOr<scheduler::JobView> job = sched_->GetJob(id);
    const bool done = job.ok() ? job->job.state == scheduler::JobState::kSucceeded ||
                                     job->job.state == scheduler::JobState::kCancelled
                               : job.status().code() == absl::StatusCode::kNotFound;
    if (!done) continue;
    std::error_code rm;
    fs::remove_all(it->path(), rm);
    if (rm) {
      spdlog::warn("job={} cannot remove its scratch '{}': {}", id, it->path().string(),
                   rm.message());
    } else {
      spdlog::debug("job={} scratch removed", id);
    }
  }
}

void FarmServer::DispatchLoop() {
  uint64_t seen = 0;
  while (!stop_.load()) {
    seen = sched_->WaitForChange(seen, 100);
    for (const auto& lease : sched_->ExpireLeases()) {
      spdlog::warn(
          "lease expired job={} task={} worker={} lease={}; the worker is "
          "unhealthy (no new work) until it heartbeats again",
          lease.job_id, lease.task_index, lease.worker, lease.id);
    }
    jobs_->ActivateWaitingJobs();
    workers_->Dispatch();
    jobs_->PollWatchers();
    // A result leases its worker's next task itself (WorkerService), so a pass here is
    // for new jobs, workers that freed without a result, expiries and watchers: under a
    // stream of results, one pass per millisecond at most, so that passes do not take
    // the scheduler's lock (and the CPU) from the results, one per change.
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void FarmServer::Shutdown() {
  if (stop_.exchange(true)) return;
  stopped_.Notify();
  // Before anything that waits on handlers or streams: they may need those threads.
  if (hold_) hold_->Release();
  if (server_) {
    if (auto* health = server_->GetHealthCheckService()) health->Shutdown();
  }
  if (dispatcher_.joinable()) dispatcher_.join();
  if (sweeper_.joinable()) sweeper_.join();
  if (!server_) return;  // Start() failed before serving
  jobs_->CloseWatchers();
  workers_->CloseAll();
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server_->Wait();
  metrics_->AttachScheduler(nullptr);  // a scrape from now on sees no gauges
}

FarmServer::~FarmServer() { Shutdown(); }

}  // namespace reelfarm::server
