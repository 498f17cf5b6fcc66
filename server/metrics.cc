#include "server/metrics.h"

#include <chrono>

#include <google/protobuf/descriptor.h>
#include <prometheus/metric_family.h>

#include "absl/synchronization/mutex.h"
#include "grpc/health/v1/health.pb.h"
#include "reelfarm/v1/jobs.pb.h"
#include "reelfarm/v1/workers.pb.h"

namespace reelfarm::server {

namespace {

const char* TaskKindName(scheduler::TaskKind k) {
  switch (k) {
    case scheduler::TaskKind::kAssemble:
      return "assemble";
    case scheduler::TaskKind::kTake:
      return "take";
    default:
      return "chunk";
  }
}

const char* JobKindName(const scheduler::Job& job) {
  return job.spec.is_generate() ? "generate" : "upscale";
}

const char* JobStateName(scheduler::JobState s) {
  switch (s) {
    case scheduler::JobState::kSucceeded:
      return "succeeded";
    case scheduler::JobState::kFailed:
      return "failed";
    case scheduler::JobState::kCancelled:
      return "cancelled";
    case scheduler::JobState::kRunning:
      return "running";
    default:
      return "queued";
  }
}

const prometheus::Histogram::BucketBoundaries kWaitBuckets = {0.01, 0.05, 0.1, 0.5, 1,    5,    10,
                                                              30,   60,   300, 900, 3600, 14400};
const prometheus::Histogram::BucketBoundaries kRunBuckets = {0.1, 0.5, 1,   2,   5,    10,  30,
                                                             60,  120, 300, 600, 1800, 3600};
const prometheus::Histogram::BucketBoundaries kRpcBuckets = {
    0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
const prometheus::Histogram::BucketBoundaries kStoreBuckets = {
    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1};
// A background pass copies ~10 MB of WAL into the database file and syncs both.
const prometheus::Histogram::BucketBoundaries kCheckpointBuckets = {
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

// "service/method" pairs that may appear as labels: reelfarm's own, health, reflection.
const std::set<std::string>& KnownMethods() {
  static const std::set<std::string>* known = [] {
    auto* s = new std::set<std::string>;
    // Through the generated messages, so the files are linked in and registered.
    for (const google::protobuf::FileDescriptor* file :
         {v1::SubmitJobRequest::descriptor()->file(), v1::WorkerMessage::descriptor()->file(),
          grpc::health::v1::HealthCheckRequest::descriptor()->file()}) {
      for (int i = 0; i < file->service_count(); ++i) {
        const auto* svc = file->service(i);
        for (int j = 0; j < svc->method_count(); ++j) {
          s->insert("/" + svc->full_name() + "/" + svc->method(j)->name());
        }
      }
    }
    s->insert("/grpc.health.v1.Health/Check");
    s->insert("/grpc.health.v1.Health/Watch");
    s->insert("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo");
    return s;
  }();
  return *known;
}

}  // namespace

// Reads the scheduler's counts when Prometheus scrapes. Attach/detach and Collect are
// serialised by mu_, so a scrape never sees a scheduler being destroyed.
class SchedulerStatsCollector final : public prometheus::Collectable {
 public:
  void Attach(const scheduler::Scheduler* sched) {
    absl::MutexLock lock(&mu_);
    sched_ = sched;
  }

  std::vector<prometheus::MetricFamily> Collect() const override {
    absl::MutexLock lock(&mu_);
    if (!sched_) return {};
    const scheduler::Scheduler::Stats st = sched_->GetStats();
    auto gauge = [](const char* name, const char* help) {
      prometheus::MetricFamily f;
      f.name = name;
      f.help = help;
      f.type = prometheus::MetricType::Gauge;
      return f;
    };
    auto add = [](prometheus::MetricFamily& f, std::vector<prometheus::ClientMetric::Label> l,
                  double v) {
      prometheus::ClientMetric m;
      m.label = std::move(l);
      m.gauge.value = v;
      f.metric.push_back(std::move(m));
    };
    auto queued = gauge("reelfarm_tasks_queued", "Tasks waiting for a worker, by pool and project");
    auto running = gauge("reelfarm_tasks_running",
                         "Tasks leased to a worker and running, by pool and project");
    auto held = gauge("reelfarm_tasks_held",
                      "Tasks leased to a worker that holds them until a slot frees (its "
                      "prefetch), not started yet, by pool and project");
    auto active = gauge("reelfarm_jobs_active", "Jobs not yet ended, by project");
    // One pool for now; the label is there so dashboards survive pools arriving.
    for (const auto& [project, c] : st.projects) {
      add(queued, {{"pool", "default"}, {"project", project}}, static_cast<double>(c.tasks_queued));
      add(running, {{"pool", "default"}, {"project", project}},
          static_cast<double>(c.tasks_running));
      add(held, {{"pool", "default"}, {"project", project}}, static_cast<double>(c.tasks_held));
      add(active, {{"project", project}}, static_cast<double>(c.jobs_active));
    }
    auto workers =
        gauge("reelfarm_workers", "Connected workers by state (idle, busy, draining, unhealthy)");
    add(workers, {{"state", "idle"}}, static_cast<double>(st.workers_idle));
    add(workers, {{"state", "busy"}}, static_cast<double>(st.workers_busy));
    add(workers, {{"state", "draining"}}, static_cast<double>(st.workers_draining));
    add(workers, {{"state", "unhealthy"}}, static_cast<double>(st.workers_unhealthy));
    // One series per connected worker: 1 while a lease of it expired and it has sent no
    // heartbeat since (it gets no work), else 0.
    auto unhealthy = gauge("reelfarm_worker_unhealthy",
                           "1 while the worker is unhealthy: a lease of it expired and it "
                           "has not sent a heartbeat since; it gets no new work");
    for (const auto& [name, bad] : st.worker_unhealthy) {
      add(unhealthy, {{"worker", name}}, bad ? 1.0 : 0.0);
    }
    std::vector<prometheus::MetricFamily> out;
    // Families without samples are left out (promtool reads an empty family as a
    // problem only in some versions; an absent family is unambiguous).
    for (auto* f : {&queued, &running, &held, &active, &workers, &unhealthy}) {
      if (!f->metric.empty()) out.push_back(std::move(*f));
    }
    return out;
  }

 private:
  mutable absl::Mutex mu_;
  const scheduler::Scheduler* sched_ ABSL_GUARDED_BY(mu_) = nullptr;
};

ServerMetrics::ServerMetrics(prometheus::Registry& registry)
    : jobs_submitted_(prometheus::BuildCounter()
                          .Name("reelfarm_jobs_submitted_total")
                          .Help("Jobs accepted and committed, by kind and project")
                          .Register(registry)),
      jobs_refused_(prometheus::BuildCounter()
                        .Name("reelfarm_job_submissions_refused_total")
                        .Help("SubmitJob calls refused at admission, by gRPC code")
                        .Register(registry)),
      probe_cache_lookups_(prometheus::BuildCounter()
                               .Name("reelfarm_input_probe_cache_lookups_total")
                               .Help("Inputs looked up in the probe cache by file identity, "
                                     "by result (hit: no media read)")
                               .Register(registry)),
      jobs_finished_(prometheus::BuildCounter()
                         .Name("reelfarm_jobs_finished_total")
                         .Help("Jobs that reached a final state, by kind, project and state")
                         .Register(registry)),
      queue_wait_(prometheus::BuildHistogram()
                      .Name("reelfarm_task_queue_wait_seconds")
                      .Help("Time a task waited in the queue before a lease, by task kind")
                      .Register(registry)),
      run_duration_(prometheus::BuildHistogram()
                        .Name("reelfarm_task_run_duration_seconds")
                        .Help("Lease to outcome of each task attempt, by task kind")
                        .Register(registry)),
      task_attempts_(prometheus::BuildCounter()
                         .Name("reelfarm_task_attempts_total")
                         .Help("Task attempts ended, by task kind and result "
                               "(succeeded, failed)")
                         .Register(registry)),
      task_retries_(prometheus::BuildCounter()
                        .Name("reelfarm_task_retries_total")
                        .Help("Failed task attempts queued again for another try")
                        .Register(registry)),
      qc_flags_(prometheus::BuildCounter()
                    .Name("reelfarm_qc_flags_total")
                    .Help("QC flags raised by task results the server accepted, by flag (nan, "
                          "black, clipped, frozen, seam)")
                    .Register(registry)),
      lease_expirations_(prometheus::BuildCounter()
                             .Name("reelfarm_lease_expirations_total")
                             .Help("Leases that expired without a heartbeat")
                             .Register(registry)
                             .Add({})),
      worker_connects_(prometheus::BuildCounter()
                           .Name("reelfarm_worker_connections_total")
                           .Help("Worker streams registered")
                           .Register(registry)
                           .Add({})),
      worker_disconnects_(prometheus::BuildCounter()
                              .Name("reelfarm_worker_disconnections_total")
                              .Help("Worker streams that ended (worker stopped or lost)")
                              .Register(registry)
                              .Add({})),
      store_seconds_(prometheus::BuildHistogram()
                         .Name("reelfarm_store_commit_duration_seconds")
                         .Help("Latency of state store commits, by operation")
                         .Register(registry)),
      store_errors_(prometheus::BuildCounter()
                        .Name("reelfarm_store_errors_total")
                        .Help("State store calls that failed, by operation")
                        .Register(registry)),
      checkpoint_seconds_(
          prometheus::BuildHistogram()
              .Name("reelfarm_store_checkpoint_duration_seconds")
              .Help("SQLite WAL checkpoints, by pass (pause, background, rest, limit)")
              .Register(registry)),
      grpc_requests_(prometheus::BuildCounter()
                         .Name("reelfarm_grpc_requests_total")
                         .Help("gRPC calls finished, by service, method and status code")
                         .Register(registry)),
      grpc_seconds_(prometheus::BuildHistogram()
                        .Name("reelfarm_grpc_request_duration_seconds")
                        .Help("gRPC call latency (stream lifetime for streams), by "
                              "service, method and status code")
                        .Register(registry)),
      callback_threads_(prometheus::BuildGauge()
                            .Name("reelfarm_grpc_callback_threads")
                            .Help("gRPC's callback threads by state: serving calls, or held "
                                  "so that one thread serves without hand-offs")
                            .Register(registry)),
      stats_(std::make_shared<SchedulerStatsCollector>()) {}

ServerMetrics::~ServerMetrics() { stats_->Attach(nullptr); }

void ServerMetrics::JobSubmitted(const scheduler::Job& job) {
  jobs_submitted_.Add({{"kind", JobKindName(job)}, {"project", job.spec.project}}).Increment();
}

void ServerMetrics::JobFinished(const scheduler::Job& job) {
  jobs_finished_
      .Add({{"kind", JobKindName(job)},
            {"project", job.spec.project},
            {"state", JobStateName(job.state)}})
      .Increment();
}

void ServerMetrics::TaskLeased(const scheduler::Job& job, const scheduler::Task& task,
                               int64_t queued_ms) {
  (void)job;
  queue_wait_.Add({{"kind", TaskKindName(task.kind)}}, kWaitBuckets)
      .Observe(static_cast<double>(std::max<int64_t>(0, queued_ms)) / 1000.0);
}

void ServerMetrics::TaskFinished(const scheduler::Job& job, const scheduler::Task& task, bool ok,
                                 bool will_retry, int64_t run_ms) {
  (void)job;
  const char* kind = TaskKindName(task.kind);
  run_duration_.Add({{"kind", kind}}, kRunBuckets)
      .Observe(static_cast<double>(std::max<int64_t>(0, run_ms)) / 1000.0);
  task_attempts_.Add({{"kind", kind}, {"result", ok ? "succeeded" : "failed"}}).Increment();
  if (!ok && will_retry) task_retries_.Add({{"kind", kind}}).Increment();
  // Each flag reads "<name>: what was measured" (media/qc.h).
  for (const std::string& flag : task.qc.flags) {
    qc_flags_.Add({{"flag", flag.substr(0, flag.find(':'))}}).Increment();
  }
}

void ServerMetrics::LeaseExpired(const scheduler::Lease& lease) {
  (void)lease;
  lease_expirations_.Increment();
}

void ServerMetrics::ProbeCacheLookup(bool hit) {
  probe_cache_lookups_.Add({{"result", hit ? "hit" : "miss"}}).Increment();
}

void ServerMetrics::SubmitRefused(absl::StatusCode code) {
  jobs_refused_.Add({{"code", absl::StatusCodeToString(code)}}).Increment();
}

void ServerMetrics::CallbackThreads(int serving, int held) {
  callback_threads_.Add({{"state", "serving"}}).Set(serving);
  callback_threads_.Add({{"state", "held"}}).Set(held);
}

void ServerMetrics::WorkerConnected() { worker_connects_.Increment(); }
void ServerMetrics::WorkerDisconnected() { worker_disconnects_.Increment(); }

void ServerMetrics::StoreCall(const std::string& op, double seconds, bool ok) {
  store_seconds_.Add({{"op", op}}, kStoreBuckets).Observe(seconds);
  if (!ok) store_errors_.Add({{"op", op}}).Increment();
}

void ServerMetrics::StoreCheckpoint(const std::string& pass, double seconds, bool ok) {
  checkpoint_seconds_.Add({{"pass", pass}}, kCheckpointBuckets).Observe(seconds);
  if (!ok) store_errors_.Add({{"op", "checkpoint"}}).Increment();
}

void ServerMetrics::GrpcCall(const std::string& full_method, int code, double seconds) {
  std::string service = "unknown", method = "unknown";
  if (KnownMethods().count(full_method)) {
    const size_t slash = full_method.rfind('/');
    service = full_method.substr(1, slash - 1);
    method = full_method.substr(slash + 1);
  }
  const std::string code_name = absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
  prometheus::Labels labels = {{"service", service}, {"method", method}, {"code", code_name}};
  grpc_requests_.Add(labels).Increment();
  grpc_seconds_.Add(labels, kRpcBuckets).Observe(seconds);
}

void ServerMetrics::AttachScheduler(const scheduler::Scheduler* sched) { stats_->Attach(sched); }

std::shared_ptr<prometheus::Collectable> ServerMetrics::stats_collectable() const { return stats_; }

namespace {

// One per call: the clock starts when gRPC creates it (the call arrived) and stops
// when the status goes out.
class GrpcMetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  GrpcMetricsInterceptor(ServerMetrics* metrics, const char* method)
      : metrics_(metrics),
        method_(method ? method : ""),
        start_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status st = methods->GetSendStatus();
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      metrics_->GrpcCall(method_, st.error_code(), seconds);
    }
    methods->Proceed();
  }

 private:
  ServerMetrics* const metrics_;
  const std::string method_;
  const std::chrono::steady_clock::time_point start_;
};

class GrpcMetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit GrpcMetricsInterceptorFactory(ServerMetrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new GrpcMetricsInterceptor(metrics_, info->method());
  }

 private:
  ServerMetrics* const metrics_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
NewGrpcMetricsInterceptorFactory(ServerMetrics* metrics) {
  return std::make_unique<GrpcMetricsInterceptorFactory>(metrics);
}

}  // namespace reelfarm::server
