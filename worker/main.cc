// reelfarm-worker: leases tasks from a reelfarm-server, runs the media + model
// pipeline, publishes results to the shared storage root.
#include <ATen/Parallel.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <thread>

#include <CLI/CLI.hpp>
#include <prometheus/exposer.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>

#include "common/logging.h"
#include "common/storage.h"
#include "worker/agent.h"
#include "worker/media/media.h"

using namespace reelfarm;

int main(int argc, char** argv) {
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
  std::string log_level = "info";
  app.add_option("--server", options.server, "reelfarm-server address")
      ->capture_default_str();
  app.add_option("--name", options.name, "unique worker name (default host:pid)");
  app.add_option("--storage-root", storage_root, "the storage root shared with the server")
      ->required();
  app.add_option("--model-path", options.pipeline.model_path,
                 "folders of model packages (repeatable)");
  app.add_option("--threads", options.threads,
                 "LibTorch threads (default: the cores this process may use)")
      ->check(CLI::Range(1, 1024));
  app.add_option("--slots", options.slots, "tasks run at once")->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--device", options.pipeline.device, "cpu or cuda:N")->capture_default_str();
  std::vector<std::string> tags;
  app.add_option("--tag", tags, "a tag jobs can require, KEY=VALUE (repeatable)");
  app.add_option("--memory-bytes", options.memory_bytes,
                 "memory offered to models; tasks whose model needs more go elsewhere");
  app.add_option("--metrics-listen", metrics_listen, "address of /metrics; empty disables it");
  app.add_option("--frame-delay-ms", options.pipeline.frame_delay_ms,
                 "testing: sleep per frame to simulate a slow model");
  app.add_option("--log-level", log_level)->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  for (const std::string& t : tags) {
    const auto eq = t.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::fprintf(stderr, "--tag '%s': give KEY=VALUE, e.g. gpu=h100\n", t.c_str());
      return 2;
    }
    options.tags[t.substr(0, eq)] = t.substr(eq + 1);
  }
  common::InitLogging("worker", log_level);
  media::SetLibraryLogging(log_level == "debug" || log_level == "trace");
  options.pipeline.worker_name = options.name;
  at::set_num_threads(options.threads);

  auto storage = common::Storage::Open(storage_root);
  if (!storage.ok()) {
    spdlog::error("{}", std::string(storage.status().message()));
    return 1;
  }

  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  auto registry = std::make_shared<prometheus::Registry>();
  std::unique_ptr<prometheus::Exposer> exposer;
  if (!metrics_listen.empty()) {
    try {
      exposer = std::make_unique<prometheus::Exposer>(metrics_listen);
      exposer->RegisterCollectable(registry);
      auto ports = exposer->GetListeningPorts();
      spdlog::info("metrics on port {}", ports.empty() ? 0 : ports[0]);
    } catch (const std::exception& e) {
      spdlog::error("cannot serve metrics on '{}': {}", metrics_listen, e.what());
      return 1;
    }
  }

  spdlog::info("worker={} server={} storage={} threads={} slots={} device={}", options.name,
               options.server, storage->root().string(), options.threads, options.slots,
               options.pipeline.device);
  worker::Agent agent(*storage, options, *registry);
  std::thread signals([&] {
    int sig = 0;
    sigwait(&sigs, &sig);
    spdlog::info("signal {}: stopping", sig);
    agent.Stop();
  });
  agent.Run();
  if (signals.joinable()) {
    // Run() may have ended for another reason; wake the signal thread.
    kill(getpid(), SIGTERM);
    signals.join();
  }
  return 0;
}
