#include "worker/worker_main.h"

#include <ATen/Parallel.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "common/job_defaults.h"
#include "common/logging.h"
#include "common/server_list.h"
#include "common/service_main.h"
#include "common/storage.h"
#include "common/thread_name.h"
#include "media/media.h"
#include "worker/agent.h"
#include "worker/device_metrics.h"
#include "worker/pipeline.h"
#include "worker/task_log_sink.h"

namespace reelfarm::worker {

int RunWorkerMain(int argc, char** argv, const WorkerHooks& hooks) {
  worker::RestartWithPassiveOpenMpWaits(argv);
  common::UseReleaseMutexChecks();
  CLI::App app{"reelfarm-worker: runs the farm's tasks"};
  worker::AgentOptions options;
  char host[256] = "worker";
  gethostname(host, sizeof(host) - 1);
  options.name = std::string(host) + ":" + std::to_string(getpid());
  // The cores this process may run on (its affinity mask), not the machine's.
  cpu_set_t cpus;
  options.threads = sched_getaffinity(0, sizeof(cpus), &cpus) == 0
                        ? std::max(1, CPU_COUNT(&cpus))
                        : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::string storage_root;
  std::string metrics_listen;
  std::string metrics_port_file;
  std::string health_listen;
  std::string health_port_file;
  std::string log_level = "info";
  std::string log_format = "text";
  app.add_option("--server", options.server,
                 "reelfarm-server address, or a comma-separated list of servers sharing "
                 "one PostgreSQL database (the worker follows the leader)")
      ->capture_default_str();
  app.add_option("--name", options.name, "unique worker name (default host:pid)");
  app.add_option("--storage-root", storage_root, "the storage root shared with the server")
      ->required();
  app.add_option("--model-path", options.pipeline.model_path,
                 "folders of model packages (repeatable)");
  app.add_option("--threads", options.threads,
                 "LibTorch threads (default: the cores this process may use)")
      ->check(CLI::Range(1, 1024));
  app.add_option("--slots", options.slots, "tasks run at once")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--prefetch", options.prefetch,
                 "assignments held per slot beyond the running one, started as soon as a "
                 "slot frees: the next task is here while a result is reported. A held task "
                 "waits behind the one running, while another worker may be free: keep 0 "
                 "for tasks of seconds (a round trip is under a millisecond); 1 for many "
                 "tasks of milliseconds on few workers")
      ->check(CLI::Range(0, common::kMaxPrefetch))
      ->capture_default_str();
  app.add_option("--device", options.pipeline.device, "cpu or cuda:N")->capture_default_str();
  std::vector<std::string> tags;
  app.add_option("--tag", tags, "a tag jobs can require, KEY=VALUE (repeatable)");
  app.add_option("--memory-bytes", options.memory_bytes,
                 "memory offered to models; tasks whose model needs more go elsewhere");
  app.add_option("--metrics-listen", metrics_listen,
                 "address of /metrics, e.g. 0.0.0.0:9771 (port 0 picks a free one); "
                 "empty disables it");
  app.add_option("--metrics-port-file", metrics_port_file,
                 "write the /metrics port here once listening");
  app.add_option("--health-listen", health_listen,
                 "address of a gRPC health service (grpc.health.v1): NOT_SERVING until "
                 "the models are warm, then SERVING; empty disables it");
  app.add_option("--health-port-file", health_port_file,
                 "write the health port here once listening");
  std::string token_file;
  app.add_option("--tls-ca", options.tls.ca_file,
                 "PEM CAs trusted for the server's certificate (default: the system's)");
  app.add_option("--tls-cert", options.tls.cert_file,
                 "PEM client certificate (mutual TLS), with --tls-key");
  app.add_option("--tls-key", options.tls.key_file, "PEM private key of --tls-cert");
  app.add_option("--tls-server-name", options.tls.server_name,
                 "name to check in the server's certificate (default: the --server host)");
  app.add_flag("--insecure", options.tls.insecure, "plaintext gRPC to the server");
  app.add_option("--token-file", token_file,
                 "file holding the worker token (default: $REELFARM_TOKEN)");
  app.add_option("--log-level", log_level)->capture_default_str();
  app.add_option("--log-format", log_format, "text, or json (one object per line)")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  for (const std::string& t : tags) {
    const auto eq = t.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::fprintf(stderr, "--tag '%s': give KEY=VALUE, e.g. gpu=h100\n", t.c_str());
      return 2;
    }
    options.tags[t.substr(0, eq)] = t.substr(eq + 1);
  }
  common::InitLogging("worker", log_level, log_format);
  if (!token_file.empty()) {
    auto token = common::ReadTokenFile(token_file);
    if (!token.ok()) {
      spdlog::error("{}", std::string(token.status().message()));
      return 2;
    }
    options.token = *token;
  } else if (const char* env = std::getenv("REELFARM_TOKEN")) {
    options.token = env;
  }
  // Reads the TLS files now, so that a wrong path stops the worker with its name.
  if (auto ch = common::MakeChannel(options.server, options.tls, ""); !ch.ok()) {
    spdlog::error("{}", std::string(ch.status().message()));
    return 2;
  }
  if (options.tls.insecure) {
    spdlog::warn("plaintext gRPC to {} (--insecure)", options.server);
  }
  // Added before any thread logs: the logger's sink list is not changed afterwards.
  auto task_log = std::make_shared<worker::TaskLogSink>();
  spdlog::default_logger()->sinks().push_back(task_log);
  options.task_log = task_log.get();
  media::SetLibraryLogging(log_level == "debug" || log_level == "trace");
  options.pipeline.worker_name = options.name;
  options.pipeline.frames = hooks.frames;
  options.after_warm_up = hooks.after_warm_up;
  worker::KeepFrameBuffersInHeap();
  at::set_num_threads(options.threads);

  if (auto servers = common::ServerList::Parse(options.server); !servers.ok()) {
    spdlog::error("--server: {}", std::string(servers.status().message()));
    return 2;
  }
  auto storage = common::Storage::Open(storage_root);
  if (!storage.ok()) {
    spdlog::error("{}", std::string(storage.status().message()));
    return 1;
  }

  const common::StopSignals stop_signals;
  auto registry = std::make_shared<prometheus::Registry>();
  auto device_metrics = std::make_shared<worker::DeviceMetrics>(options.pipeline.device);
  absl::StatusOr<common::MetricsEndpoint> metrics =
      common::MetricsEndpoint::Start(metrics_listen, registry);
  if (!metrics.ok()) {
    spdlog::error("{}", std::string(metrics.status().message()));
    return 1;
  }
  metrics->Add(device_metrics);
  metrics->Announce(metrics_port_file);

  // Readiness for probes: NOT_SERVING until Warm() has loaded the models.
  grpc::CallbackGenericService unimplemented;
  std::unique_ptr<grpc::Server> health;
  if (!health_listen.empty()) {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(health_listen, grpc::InsecureServerCredentials(), &port);
    // gRPC refuses a server with no callback method of its own; this one answers
    // UNIMPLEMENTED to anything but the health service.
    builder.RegisterCallbackGenericService(&unimplemented);
    health = builder.BuildAndStart();
    if (!health || port == 0) {
      spdlog::error("cannot serve health on '{}'; give another --health-listen", health_listen);
      return 1;
    }
    health->GetHealthCheckService()->SetServingStatus(false);
    spdlog::info("health on port {} (grpc.health.v1)", port);
    if (!health_port_file.empty()) common::WritePortFile(health_port_file, port);
  }

  spdlog::info("worker={} server={} storage={} threads={} slots={} prefetch={} device={}",
               options.name, options.server, (*storage)->root().string(), options.threads,
               options.slots, options.prefetch, options.pipeline.device);
  worker::Agent agent(**storage, options, *registry);
  std::thread signals([&] {
    common::NameThread("rf-signals");
    spdlog::info("signal {}: stopping", stop_signals.Wait());
    agent.Stop();
  });
  const int warm = agent.Warm();
  spdlog::info("ready: {} model(s) warm", warm);
  if (health) health->GetHealthCheckService()->SetServingStatus(true);
  agent.Run();
  if (health) health->Shutdown();
  if (signals.joinable()) {
    // Run() may have ended for another reason; wake the signal thread.
    kill(getpid(), SIGTERM);
    signals.join();
  }
  return 0;
}

}  // namespace reelfarm::worker
