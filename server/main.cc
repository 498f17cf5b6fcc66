// reelfarm-server: the gRPC API, the scheduler and its state (SQLite, or PostgreSQL
// with active/standby servers), /metrics; with --local-workers N, also N workers beside
// it (the embedded default).
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include <filesystem>
#include <memory>
#include <optional>
#include <thread>

#include <openssl/rand.h>

#include <prometheus/registry.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "absl/strings/str_cat.h"

#include "common/duration.h"
#include "common/logging.h"
#include "common/service_main.h"
#include "media/media.h"
#include "scheduler/pg_connection.h"
#include "server/ha_server.h"
#include "server/local_workers.h"
#include "server/notifier.h"
#include "server/retention.h"
#include "server/server.h"
#include "server/web/monitor.h"

namespace fs = std::filesystem;
using namespace reelfarm;

// A fresh random token (hex of 32 bytes) for the local workers; never written anywhere.
static std::string RandomToken() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) return "";
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

static fs::path FindWorkerBinary() {
  fs::path self = fs::read_symlink("/proc/self/exe");
  for (fs::path p : {self.parent_path() / "reelfarm-worker",
                     self.parent_path().parent_path() / "worker" / "reelfarm-worker"}) {
    if (fs::exists(p)) return p;
  }
  return "reelfarm-worker";
}

// Whether `listen` (HOST:PORT, or [V6]:PORT) names a TCP port that something else holds:
// checked before start-up so that the operator gets one line about --listen rather than
// gRPC core's log. Other forms (unix:, port 0) are left to gRPC.
static bool PortTaken(const std::string& listen) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos || listen.rfind("unix:", 0) == 0) return false;
  std::string host = listen.substr(0, colon);
  const std::string port = listen.substr(colon + 1);
  if (port.empty() || port == "0") return false;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found) != 0) {
    return false;
  }
  bool taken = false;
  for (addrinfo* a = found; a != nullptr && !taken; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    taken = bind(fd, a->ai_addr, a->ai_addrlen) != 0 && errno == EADDRINUSE;
    close(fd);
  }
  freeaddrinfo(found);
  return taken;
}

int main(int argc, char** argv) {
  common::UseReleaseMutexChecks();
  CLI::App app{"reelfarm-server: the farm's gRPC API, scheduler and state"};
  std::string listen = "127.0.0.1:7700";
  std::string data_dir = "reelfarm-data";
  std::string storage_root;
  std::string store;
  std::string advertise;
  std::vector<std::string> model_path;
  std::string metrics_listen = "127.0.0.1:9770";
  server::web::WebOptions web;
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
  server::ServerOptions options;
  bool no_auth = false;
  std::string local_worker_ca, local_worker_tls_name = "localhost";
  app.add_option("--listen", listen, "gRPC address; port 0 picks a free one")
      ->capture_default_str();
  app.add_option("--data-dir", data_dir,
                 "folder holding the state (state.db) and, by default, the storage root")
      ->capture_default_str();
  app.add_option("--storage-root", storage_root,
                 "storage root shared with workers (default: DATA_DIR/storage)");
  app.add_option("--store,--state-db", store,
                 "state: a SQLite file (default: DATA_DIR/state.db), or "
                 "postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE for servers sharing "
                 "one database, one leading and the others standing by");
  app.add_option("--advertise", advertise,
                 "with PostgreSQL: the address standbys tell clients to use while this "
                 "server leads (default: the --listen host and port)");
  app.add_option("--model-path", model_path, "folders of model packages (repeatable)");
  // Colour management (README "Colour management"): kept as $OCIO, which admission
  // writes into the specs of jobs that name no config and --local-workers inherit.
  app.add_option_function<std::string>(
      "--ocio-config", [](const std::string& path) { setenv("OCIO", path.c_str(), 1); },
      "OpenColorIO config for jobs that name none (default: $OCIO, else the shipped one)");
  app.add_option("--metrics-listen", metrics_listen,
                 "address of /metrics (port 0 picks a free one); empty disables it")
      ->capture_default_str();
  CLI::Option* web_listen_opt =
      app.add_option("--web-listen", web.listen,
                     "address of the web monitor, HOST:PORT (port 0 picks a free one); empty "
                     "disables it. HTTPS with --tls-cert, plaintext with --insecure")
          ->capture_default_str();
  app.add_option("--web-threads", web.threads,
                 "HTTP threads of the monitor; each open page's event stream holds one")
      ->check(CLI::Range(16, 4096))
      ->capture_default_str();
  std::string web_port_file;
  app.add_option("--web-port-file", web_port_file, "write the monitor's port here once listening");
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
  app.add_option("--tls-cert", options.tls.cert_file, "PEM certificate (chain) of the gRPC port");
  app.add_option("--tls-key", options.tls.key_file, "PEM private key of --tls-cert");
  app.add_option("--tls-client-ca", options.tls.client_ca_file,
                 "PEM CAs of client certificates (mutual TLS); a certificate presented "
                 "must be signed by one of them");
  app.add_flag("--require-client-cert", options.tls.require_client_cert,
               "refuse the TLS handshake of any client without a certificate");
  app.add_flag("--require-worker-cert", options.require_worker_cert,
               "refuse workers without a verified client certificate (clients may still "
               "connect without one)");
  app.add_flag("--insecure", options.tls.insecure,
               "plaintext gRPC instead of TLS (loopback or trusted networks only)");
  app.add_option("--tokens-file", options.tokens_file,
                 "YAML tokens and roles (admin, submitter, viewer, worker); read again "
                 "when it changes");
  app.add_flag("--no-auth", no_auth, "no tokens: every caller is an admin");
  app.add_option("--local-worker-tls-ca", local_worker_ca,
                 "CA the local workers trust for this server (default: --tls-cert, "
                 "which then must be self-signed)");
  app.add_option("--local-worker-tls-name", local_worker_tls_name,
                 "name the local workers check in the server's certificate")
      ->capture_default_str();
  app.add_option("--max-message-bytes", options.max_message_bytes, "largest gRPC request taken")
      ->capture_default_str();
  app.add_option("--max-spec-bytes", options.limits.max_spec_bytes, "largest job spec taken")
      ->capture_default_str();
  app.add_option("--max-frames", options.limits.max_frames, "most frames in one job")
      ->capture_default_str();
  app.add_option("--max-tasks-per-job", options.limits.max_tasks_per_job,
                 "most tasks in one job (chunks, or the takes of a generate wedge)")
      ->capture_default_str();
  app.add_option("--max-generate-steps", options.limits.max_generate_steps,
                 "most sampler steps a generate take may ask for")
      ->capture_default_str();
  // Notifications and retention (README "Notifications", "Retention").
  std::string keep_finished = "0";
  app.add_option("--webhook", options.notify.webhooks,
                 "http(s) URL POSTed a JSON body when any job ends (repeatable)");
  app.add_option("--monitor-url", options.notify.monitor_url,
                 "base URL of the monitor, for the webhook body's link (URL/jobs/ID); "
                 "default: the monitor's own address once it listens (none without a monitor)");
  app.add_option("--webhook-attempts", options.notify.max_attempts,
                 "tries per webhook delivery, the first included")
      ->check(CLI::Range(1, 20))
      ->capture_default_str();
  app.add_option("--webhook-backoff-ms", options.notify.first_backoff_ms,
                 "wait before the second try; doubles before each next one")
      ->check(CLI::Range(int64_t{1}, int64_t{3'600'000}))
      ->capture_default_str();
  app.add_option("--keep-finished", keep_finished,
                 "purge ended jobs, their task logs and scratch this long after they end "
                 "(30d, 12h, 90m); 0 keeps them forever")
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
  // Start-up errors: one line naming the flag to change, exit 2 (a usage error).
  const auto usage_error = [](const std::string& line) {
    spdlog::error("{}", line);
    return 2;
  };
  {
    absl::StatusOr<int64_t> keep = common::ParseAge(keep_finished, "--keep-finished");
    if (!keep.ok()) return usage_error(std::string(keep.status().message()));
    options.keep_finished_ms = *keep;
  }
  for (const std::string& url : options.notify.webhooks) {
    const absl::Status st = server::CheckWebhookUrl(url, "--webhook");
    if (!st.ok()) return usage_error(std::string(st.message()));
  }
  if (options.tls.cert_file.empty() && !options.tls.insecure) {
    return usage_error(
        "give --tls-cert and --tls-key (TLS), or --insecure for plaintext "
        "gRPC on loopback or a trusted network");
  }
  if (!options.tokens_file.empty() && !fs::is_regular_file(options.tokens_file)) {
    return usage_error("--tokens-file '" + options.tokens_file +
                       "' does not exist or is not a file; give the YAML file of tokens and "
                       "roles, or --no-auth");
  }
  if (PortTaken(listen)) {
    return usage_error("--listen '" + listen +
                       "': the port is in use; is another server running there? Give "
                       "another --listen (port 0 picks a free one)");
  }
  if (!storage_root.empty() && !fs::is_directory(storage_root)) {
    return usage_error("--storage-root '" + storage_root +
                       "' does not exist or is not a folder; create it (the folder the "
                       "server and its workers share), or leave the flag out to use "
                       "DATA_DIR/storage");
  }
  if (storage_root.empty()) storage_root = (fs::path(data_dir) / "storage").string();
  if (store.empty()) store = (fs::path(data_dir) / "state.db").string();
  if (task_log_dir.empty()) task_log_dir = (fs::path(data_dir) / "logs").string();
  std::error_code ec;
  fs::create_directories(data_dir, ec);
  fs::create_directories(storage_root, ec);

  const common::StopSignals signals;
  auto registry = std::make_shared<prometheus::Registry>();
  absl::StatusOr<common::MetricsEndpoint> metrics =
      common::MetricsEndpoint::Start(metrics_listen, registry);
  if (!metrics.ok()) return usage_error(std::string(metrics.status().message()));

  if (options.tokens_file.empty() && !no_auth) {
    return usage_error(
        "give --tokens-file (tokens and roles), or --no-auth to let every "
        "caller do everything");
  }
  if (!options.tokens_file.empty() && no_auth) {
    return usage_error("--tokens-file and --no-auth both given; give one of them");
  }
  if (local_workers > 0 && options.tokens_file.size() > 0) {
    options.local_worker_token = RandomToken();
  }
  options.listen = listen;
  options.store = store;
  options.storage_root = storage_root;
  options.task_log_dir = task_log_dir;
  options.model_path = model_path;
  options.scheduler.lease_ms = static_cast<int64_t>(lease_seconds * 1000);
  options.scheduler.heartbeat_ms = std::max<int64_t>(200, options.scheduler.lease_ms / 8);
  options.scheduler.max_queued_tasks = max_queued;
  // The scheduler checks a wedge's takes against the same limit as the submit path.
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
  // One server on SQLite, or one of several on PostgreSQL (leader or standby).
  std::unique_ptr<server::FarmServer> farm;
  std::unique_ptr<server::HaServer> ha;
  int port = 0;
  std::string root;
  std::shared_ptr<prometheus::Collectable> gauges;
  if (scheduler::IsPostgresUrl(store)) {
    auto storage = common::Storage::Open(storage_root);
    auto srv = storage.ok() ? server::HaServer::Start(options, advertise, *registry)
                            : absl::StatusOr<std::unique_ptr<server::HaServer>>(storage.status());
    if (!srv.ok()) return usage_error("cannot start: " + std::string(srv.status().message()));
    ha = std::move(*srv);
    port = ha->port();
    root = (*storage)->root().string();
    gauges = ha->metrics_collectable();
    spdlog::info(
        "standing by on port {} (advertised as {}) until this server leads; "
        "state={} storage={}",
        port, ha->advertise(), scheduler::RedactDatabaseUrl(store), root);
  } else {
    auto srv = server::FarmServer::Start(options, *registry);
    if (!srv.ok()) return usage_error("cannot start: " + std::string(srv.status().message()));
    farm = std::move(*srv);
    port = farm->port();
    root = farm->storage().root().string();
    gauges = farm->metrics_collectable();
    spdlog::info("listening on port {} state={} storage={}", port, store, root);
  }
  // Registered only now: the gauges read the scheduler, which exists from here on.
  metrics->Add(gauges);
  metrics->Announce(metrics_port_file);
  if (!port_file.empty()) common::WritePortFile(port_file, port);

  // The monitor: over the same JobService as gRPC (an in-process channel).
  std::unique_ptr<server::web::WebMonitor> monitor;
  if (!web.listen.empty() && farm == nullptr) {
    spdlog::warn("--web-listen: the monitor is not served by servers sharing PostgreSQL yet");
  } else if (!web.listen.empty()) {
    if (!options.tls.insecure) {
      web.cert_file = options.tls.cert_file;
      web.key_file = options.tls.key_file;
    }
    web.cache_dir = (fs::path(data_dir) / "web-cache").string();
    auto started = server::web::WebMonitor::Start(web, farm->InProcessChannel(),
                                                  &farm->authenticator(), &farm->storage());
    if (started.ok()) {
      monitor = std::move(*started);
      if (!web_port_file.empty()) common::WritePortFile(web_port_file, monitor->port());
      // The webhook body's monitor link: the monitor this server serves (its bound port,
      // also when --web-listen asked for port 0), unless --monitor-url says otherwise.
      if (options.notify.monitor_url.empty()) {
        char name[256] = {};
        const std::string host = web.listen.substr(0, web.listen.rfind(':'));
        farm->SetMonitorUrl(server::DefaultMonitorUrl(
            absl::StrCat(host, ":", monitor->port()), options.tls.insecure,
            gethostname(name, sizeof(name) - 1) == 0 ? name : "localhost"));
      }
    } else if (web_listen_opt->count() > 0) {
      farm->Shutdown();
      return usage_error(std::string(started.status().message()));
    } else {
      spdlog::warn("no monitor: {}", std::string(started.status().message()));
    }
  }

  std::unique_ptr<server::LocalWorkers> workers;
  if (local_workers > 0) {
    if (worker_bin.empty()) worker_bin = FindWorkerBinary().string();
    int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    int threads = worker_threads > 0 ? worker_threads : std::max(1, cores / local_workers);
    std::vector<std::vector<std::string>> argvs;
    for (int i = 0; i < local_workers; ++i) {
      std::vector<std::string> a = {worker_bin,
                                    "--server",
                                    "127.0.0.1:" + std::to_string(port),
                                    "--name",
                                    "local-" + std::to_string(i + 1),
                                    "--storage-root",
                                    root,
                                    "--threads",
                                    std::to_string(threads),
                                    "--log-level",
                                    log_level,
                                    "--log-format",
                                    log_format};
      if (options.tls.insecure) {
        a.push_back("--insecure");
      } else {
        a.insert(a.end(),
                 {"--tls-ca", local_worker_ca.empty() ? options.tls.cert_file : local_worker_ca,
                  "--tls-server-name", local_worker_tls_name});
        if (!options.tls.client_ca_file.empty()) {
          // Mutual TLS: the local workers present the server's own certificate.
          a.insert(a.end(),
                   {"--tls-cert", options.tls.cert_file, "--tls-key", options.tls.key_file});
        }
      }
      for (const auto& m : model_path) {
        a.push_back("--model-path");
        a.push_back(m);
      }
      argvs.push_back(std::move(a));
    }
    // The token goes by environment, not argv (which every local user can read).
    std::vector<std::string> env;
    if (!options.local_worker_token.empty()) {
      env.push_back("REELFARM_TOKEN=" + options.local_worker_token);
    }
    workers = std::make_unique<server::LocalWorkers>(std::move(argvs), std::move(env));
  }

  spdlog::info("signal {}: shutting down", signals.Wait());
  workers.reset();
  if (monitor) monitor->Stop();
  if (farm) farm->Shutdown();
  if (ha) ha->Shutdown();
  return 0;
}
