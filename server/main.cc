// reelfarm-server: the gRPC API, the scheduler and its SQLite state, /metrics; with
// --local-workers N, also N workers beside it (the embedded default).
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <thread>

#include <CLI/CLI.hpp>
#include <prometheus/exposer.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>

#include "common/logging.h"
#include "server/local_workers.h"
#include "server/server.h"
#include "worker/media/media.h"

namespace fs = std::filesystem;
using namespace reelfarm;

static fs::path FindWorkerBinary() {
  fs::path self = fs::read_symlink("/proc/self/exe");
  for (fs::path p : {self.parent_path() / "reelfarm-worker",
                     self.parent_path().parent_path() / "worker" / "reelfarm-worker"}) {
    if (fs::exists(p)) return p;
  }
  return "reelfarm-worker";
}

// Written whole under a temporary name and renamed, so a reader never sees half of it.
static void WritePortFile(const std::string& path, int port) {
  std::error_code ec;
  std::ofstream(path + ".tmp") << port << "\n";
  fs::rename(path + ".tmp", path, ec);
  if (ec) spdlog::error("cannot write port file '{}': {}", path, ec.message());
}

int main(int argc, char** argv) {
  CLI::App app{"reelfarm-server: the farm's gRPC API, scheduler and state"};
  std::string listen = "127.0.0.1:7700";
  std::string data_dir = "reelfarm-data";
  std::string storage_root;
  std::string state_db;
  std::vector<std::string> model_path;
  std::string metrics_listen = "127.0.0.1:9770";
  std::string port_file;
  std::string metrics_port_file;
  std::string task_log_dir;
  std::string log_level = "info";
  std::string log_format = "text";
  int local_workers = 0;
  int worker_threads = 0;
  double lease_seconds = 20;
  std::string worker_bin;
  std::vector<std::string> projects;
  int64_t max_queued = 0, max_queued_per_project = 0;
  int64_t max_tasks_per_job = 0;
  int max_generate_steps = 200;
  app.add_option("--listen", listen, "gRPC address; port 0 picks a free one")
      ->capture_default_str();
  app.add_option("--data-dir", data_dir,
                 "folder holding the state (state.db) and, by default, the storage root")
      ->capture_default_str();
  app.add_option("--storage-root", storage_root,
                 "storage root shared with workers (default: DATA_DIR/storage)");
  app.add_option("--state-db", state_db, "SQLite state file (default: DATA_DIR/state.db)");
  app.add_option("--model-path", model_path, "folders of model packages (repeatable)");
  app.add_option("--metrics-listen", metrics_listen,
                 "address of /metrics (port 0 picks a free one); empty disables it")
      ->capture_default_str();
  app.add_option("--port-file", port_file, "write the gRPC port here once listening");
  app.add_option("--metrics-port-file", metrics_port_file,
                 "write the /metrics port here once listening");
  app.add_option("--task-log-dir", task_log_dir,
                 "folder of task logs, DIR/<job>/<task>.log (default: DATA_DIR/logs)");
  app.add_option("--local-workers", local_workers, "start N workers beside the server")
      ->check(CLI::Range(0, 64));
  app.add_option("--worker-threads", worker_threads,
                 "LibTorch threads per local worker (default: cores / N)");
  app.add_option("--worker-binary", worker_bin, "reelfarm-worker to start for local workers");
  app.add_option("--lease-seconds", lease_seconds, "lease duration; renewed by heartbeats")
      ->capture_default_str();
  app.add_option("--project", projects,
                 "fair share: NAME=WEIGHT[:MAX_RUNNING], e.g. sh010=2:40 (repeatable)");
  app.add_option("--max-queued-tasks", max_queued,
                 "refuse submits past this many queued tasks on the farm (0: no limit)");
  app.add_option("--max-queued-tasks-per-project", max_queued_per_project,
                 "refuse submits past this many queued tasks in one project (0: no limit)");
  app.add_option("--max-tasks-per-job", max_tasks_per_job,
                 "refuse jobs (e.g. generate wedges) with more tasks than this (0: default)");
  app.add_option("--max-generate-steps", max_generate_steps,
                 "most sampler steps a generate take may ask for")
      ->capture_default_str();
  app.add_option("--log-level", log_level)->capture_default_str();
  app.add_option("--log-format", log_format, "text, or json (one object per line)")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  // A flag given twice takes its last value (wrappers append overrides).
  for (CLI::Option* opt : app.get_options()) {
    if (opt->get_expected_max() <= 1) opt->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  }
  CLI11_PARSE(app, argc, argv);

  common::InitLogging("server", log_level, log_format);
  media::SetLibraryLogging(log_level == "debug" || log_level == "trace");
  if (storage_root.empty()) storage_root = (fs::path(data_dir) / "storage").string();
  if (state_db.empty()) state_db = (fs::path(data_dir) / "state.db").string();
  if (task_log_dir.empty()) task_log_dir = (fs::path(data_dir) / "logs").string();
  std::error_code ec;
  fs::create_directories(data_dir, ec);
  fs::create_directories(storage_root, ec);

  // Signals are taken by sigwait below, never by a handler on some thread.
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
    } catch (const std::exception& e) {
      spdlog::error("cannot serve metrics on '{}': {}; use --metrics-listen", metrics_listen,
                    e.what());
      return 1;
    }
  }

  server::ServerOptions options;
  options.listen = listen;
  options.state_db = state_db;
  options.storage_root = storage_root;
  options.task_log_dir = task_log_dir;
  options.model_path = model_path;
  options.scheduler.lease_ms = static_cast<int64_t>(lease_seconds * 1000);
  options.scheduler.heartbeat_ms = std::max<int64_t>(200, options.scheduler.lease_ms / 8);
  options.scheduler.max_queued_tasks = max_queued;
  if (max_tasks_per_job > 0) options.scheduler.max_tasks_per_job = max_tasks_per_job;
  options.limits.max_generate_steps = max_generate_steps;
  options.scheduler.max_queued_tasks_per_project = max_queued_per_project;
  for (const std::string& p : projects) {
    // NAME=WEIGHT[:MAX_RUNNING]
    scheduler::ProjectPolicy policy;
    const auto eq = p.find('=');
    char* end = nullptr;
    if (eq == std::string::npos || eq == 0) {
      spdlog::error("--project '{}': give NAME=WEIGHT[:MAX_RUNNING], e.g. sh010=2:40", p);
      return 2;
    }
    policy.weight = std::strtod(p.c_str() + eq + 1, &end);
    if (end && *end == ':') policy.max_running = std::atoi(end + 1);
    if (policy.weight <= 0 || (end && *end != ':' && *end != '\0')) {
      spdlog::error("--project '{}': the weight must be a number > 0", p);
      return 2;
    }
    options.scheduler.projects[p.substr(0, eq)] = policy;
  }
  auto srv = server::FarmServer::Start(options, *registry);
  if (!srv.ok()) {
    spdlog::error("cannot start: {}", std::string(srv.status().message()));
    return 1;
  }
  const int port = (*srv)->port();
  spdlog::info("listening on port {} state={} storage={}", port, state_db,
               (*srv)->storage().root().string());
  if (exposer) {
    // Registered only now: the gauges read the scheduler, which exists from here on.
    exposer->RegisterCollectable((*srv)->metrics_collectable());
    const auto ports = exposer->GetListeningPorts();
    const int metrics_port = ports.empty() ? 0 : ports[0];
    spdlog::info("metrics on port {} (/metrics)", metrics_port);
    if (!metrics_port_file.empty()) WritePortFile(metrics_port_file, metrics_port);
  }
  if (!port_file.empty()) WritePortFile(port_file, port);

  std::unique_ptr<server::LocalWorkers> workers;
  if (local_workers > 0) {
    if (worker_bin.empty()) worker_bin = FindWorkerBinary().string();
    int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    int threads = worker_threads > 0 ? worker_threads : std::max(1, cores / local_workers);
    std::vector<std::vector<std::string>> argvs;
    for (int i = 0; i < local_workers; ++i) {
      std::vector<std::string> a = {worker_bin,
                                    "--server", "127.0.0.1:" + std::to_string(port),
                                    "--name", "local-" + std::to_string(i + 1),
                                    "--storage-root", (*srv)->storage().root().string(),
                                    "--threads", std::to_string(threads),
                                    "--log-level", log_level,
                                    "--log-format", log_format};
      for (const auto& m : model_path) {
        a.push_back("--model-path");
        a.push_back(m);
      }
      argvs.push_back(std::move(a));
    }
    workers = std::make_unique<server::LocalWorkers>(std::move(argvs));
  }

  int sig = 0;
  sigwait(&sigs, &sig);
  spdlog::info("signal {}: shutting down", sig);
  workers.reset();
  (*srv)->Shutdown();
  return 0;
}
