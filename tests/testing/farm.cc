#include "tests/testing/farm.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>
#include <tuple>

#include <grpcpp/grpcpp.h>

#include "common/process.h"
#include "tests/testing/fixtures.h"

extern char** environ;

namespace reelfarm::testing {
namespace fs = std::filesystem;

Farm::Farm(fs::path dir, std::vector<std::string> server_args)
    : dir_(std::move(dir)), storage_(dir_ / "storage"), server_args_(std::move(server_args)) {
  fs::create_directories(storage_);
  // /metrics only when asked (see farm.h): its HTTP listener takes a second to stop.
  metrics_ = std::find(server_args_.begin(), server_args_.end(), "--metrics") != server_args_.end();
  server_args_.erase(std::remove(server_args_.begin(), server_args_.end(), "--metrics"),
                     server_args_.end());
  const auto has = [&](const char* flag) {
    return std::find(server_args_.begin(), server_args_.end(), flag) != server_args_.end();
  };
  if (!has("--tls-cert")) server_args_.insert(server_args_.begin(), "--insecure");
  if (!has("--tokens-file")) server_args_.insert(server_args_.begin(), "--no-auth");
  // No monitor unless asked: test farms running side by side (ctest -j) would race for
  // the default --web-listen port, or take a developer's own monitor's.
  if (!has("--web-listen")) server_args_.insert(server_args_.begin(), {"--web-listen", ""});
  StartServer();
  common::ClientTlsOptions plaintext;
  plaintext.insecure = true;
  SetClient(plaintext, "");
}

void Farm::SetClient(const common::ClientTlsOptions& tls, const std::string& token) {
  auto channel = common::MakeChannel(address(), tls, token);
  REQUIRE(channel.ok());
  stub_ = v1::JobService::NewStub(*channel);
}

std::string Farm::Reelctl() const {
  return std::string(REELFARM_REELCTL_BIN) + " --server " + address() + " --insecure";
}

std::pair<pid_t, int> Farm::StartServerProcess(int port, const std::string& name) {
  const fs::path port_file = dir_ / (name + ".port");
  fs::remove(port_file);
  // Flags given later win (the server takes the last of a repeated flag). Port 0 on
  // the first start; a restart takes the same port.
  std::vector<std::string> argv = {
      REELFARM_SERVER_BIN, "--listen",         "127.0.0.1:" + std::to_string(port),
      "--port-file",       port_file.string(), "--data-dir",
      dir_.string(),       "--lease-seconds",  "5"};
  if (metrics_) {
    argv.insert(argv.end(), {"--metrics-listen", "127.0.0.1:0", "--metrics-port-file",
                             (dir_ / (name + ".metrics.port")).string()});
  } else {
    argv.insert(argv.end(), {"--metrics-listen", ""});
  }
  argv.insert(argv.end(), server_args_.begin(), server_args_.end());
  const pid_t pid = Spawn(argv, name + ".log");
  for (int i = 0; i < 300 && !fs::exists(port_file); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!fs::exists(port_file)) DumpLogs();
  REQUIRE(fs::exists(port_file));
  std::ifstream(port_file) >> port;
  REQUIRE(port > 0);
  return {pid, port};
}

void Farm::StartServer() {
  std::tie(server_pid_, port_) = StartServerProcess(port_, "server");
  if (metrics_) {
    // Written before the gRPC port file.
    std::ifstream(dir_ / "server.metrics.port") >> metrics_port_;
    REQUIRE(metrics_port_ > 0);
  }
}

void Farm::StartStandby() {
  // The first server leads once it answers a JobService call.
  grpc::Status st;
  for (int i = 0; i < 600; ++i) {
    grpc::ClientContext ctx;
    v1::ListWorkersResponse resp;
    st = stub_->ListWorkers(&ctx, v1::ListWorkersRequest(), &resp);
    if (st.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  INFO("the first server never led: " << st.error_message());
  REQUIRE(st.ok());
  std::tie(standby_pid_, standby_port_) = StartServerProcess(0, "standby");
  other_stub_ = v1::JobService::NewStub(
      grpc::CreateChannel(standby_address(), grpc::InsecureChannelCredentials()));
}

void Farm::SignalLeader(int signal) { kill(server_pid_, signal); }

void Farm::KillLeader() {
  kill(server_pid_, SIGKILL);
  waitpid(server_pid_, nullptr, 0);
  server_pid_ = -1;
}

int Farm::StopServer(std::chrono::seconds timeout) {
  const int status = reelfarm::common::StopProcesses({server_pid_}, timeout)[0];
  server_pid_ = -1;
  return status;
}

void Farm::RestartStandbyAfterKill() {
  kill(standby_pid_, SIGKILL);
  waitpid(standby_pid_, nullptr, 0);
  standby_pid_ = StartServerProcess(standby_port_, "standby").first;
}

void Farm::RestartServerAfterKill() {
  kill(server_pid_, SIGKILL);
  waitpid(server_pid_, nullptr, 0);
  StartServer();
}

namespace {
std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace

std::string Farm::ServerLog() const { return ReadFile(dir_ / "server.log"); }

std::string Farm::StandbyLog() const { return ReadFile(dir_ / "standby.log"); }

std::string Farm::WorkerLog(const std::string& name) const {
  return ReadFile(dir_ / ("worker-" + name + ".log"));
}

Farm::~Farm() {
  // SIGTERM to every process first, then reap them: their shutdowns (each ends its
  // streams and HTTP listener) overlap instead of adding up.
  std::vector<pid_t> pids;
  for (auto& [name, pid] : workers_) pids.push_back(pid);
  pids.push_back(server_pid_);
  pids.push_back(standby_pid_);
  reelfarm::common::StopProcesses(pids, std::chrono::seconds(10));
}

pid_t Farm::Spawn(const std::vector<std::string>& argv, const std::string& log_name) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  const std::string log = (dir_ / log_name).string();
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  REQUIRE(rc == 0);
  return pid;
}

void Farm::StartWorker(const std::string& name, std::vector<std::string> extra_args) {
  // A slow model (a testing aid) is the tests' worker's; every other worker is the
  // product's.
  const bool slow = std::any_of(extra_args.begin(), extra_args.end(), [](const std::string& a) {
    return a.rfind("--frame-delay-ms", 0) == 0;
  });
  std::vector<std::string> argv = {slow ? REELFARM_TEST_WORKER_BIN : REELFARM_WORKER_BIN,
                                   "--server",
                                   standby_port_ ? address() + "," + standby_address() : address(),
                                   "--name",
                                   name,
                                   "--storage-root",
                                   storage_.string(),
                                   "--threads",
                                   "1",
                                   "--metrics-listen",
                                   "127.0.0.1:0",
                                   "--metrics-port-file",
                                   (dir_ / (name + ".metrics.port")).string(),
                                   "--health-listen",
                                   "127.0.0.1:0",
                                   "--health-port-file",
                                   (dir_ / (name + ".health.port")).string()};
  if (std::find(extra_args.begin(), extra_args.end(), "--tls-ca") == extra_args.end() &&
      std::find(extra_args.begin(), extra_args.end(), "--insecure") == extra_args.end()) {
    argv.push_back("--insecure");
  }
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  workers_[name] = Spawn(argv, "worker-" + name + ".log");
}

namespace {

int WaitForPortFile(const fs::path& path) {
  for (int i = 0; i < 600 && !fs::exists(path); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  int port = 0;
  std::ifstream(path) >> port;
  INFO("port file " << path.string());
  REQUIRE(port > 0);
  return port;
}

}  // namespace

int Farm::WorkerMetricsPort(const std::string& name) const {
  return WaitForPortFile(dir_ / (name + ".metrics.port"));
}

int Farm::WorkerHealthPort(const std::string& name) const {
  return WaitForPortFile(dir_ / (name + ".health.port"));
}

std::string Farm::Scrape(int port) {
  int status = 0;
  std::string text =
      Capture("curl -sS --fail --max-time 10 http://127.0.0.1:" + std::to_string(port) + "/metrics",
              &status);
  INFO("scrape of port " << port);
  REQUIRE(status == 0);
  return text;
}

bool Farm::Alive(const std::string& name) {
  pid_t pid = server_pid_;
  if (name != "server") {
    auto it = workers_.find(name);
    if (it == workers_.end()) return false;
    pid = it->second;
  }
  return pid > 0 && waitpid(pid, nullptr, WNOHANG) == 0;
}

void Farm::KillWorker(const std::string& name, int signal) {
  auto it = workers_.find(name);
  REQUIRE(it != workers_.end());
  kill(it->second, signal);
  if (signal == SIGKILL || signal == SIGTERM) {
    waitpid(it->second, nullptr, 0);
    workers_.erase(it);
  }
}

void Farm::WaitForWorkers(int n) {
  int connected = 0;
  for (int i = 0; i < 600; ++i) {
    grpc::ClientContext ctx;
    v1::ListWorkersResponse resp;
    if (stub_->ListWorkers(&ctx, v1::ListWorkersRequest(), &resp).ok()) {
      connected = resp.workers_size();
      if (connected >= n) return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  DumpLogs();
  FAIL("only " << connected << " of " << n << " workers connected");
}

grpc::Status Farm::Submit(const v1::JobSpec& spec, v1::SubmitJobResponse* resp) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::SubmitJobRequest req;
  *req.mutable_spec() = spec;
  return stub_->SubmitJob(&ctx, req, resp);
}

v1::Job Farm::Get(int64_t id) {
  v1::GetJobRequest req;
  req.set_job_id(id);
  v1::Job job;
  grpc::Status st;
  // Rides through a server restart: a call cut by it is tried again.
  for (int attempt = 0; attempt < 100; ++attempt) {
    grpc::ClientContext ctx;
    ctx.set_wait_for_ready(true);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    // With a standby, each attempt goes to the other server until one leads.
    if (other_stub_) ctx.set_wait_for_ready(false);
    st = stub_->GetJob(&ctx, req, &job);
    if (st.error_code() != grpc::StatusCode::UNAVAILABLE) break;
    if (other_stub_) std::swap(stub_, other_stub_);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!st.ok()) DumpLogs();
  INFO("GetJob " << id << ": " << st.error_message());
  REQUIRE(st.ok());
  return job;
}

v1::Job Farm::RunToSuccess(const v1::JobSpec& spec) {
  v1::SubmitJobResponse resp;
  grpc::Status st = Submit(spec, &resp);
  INFO(st.error_message());
  REQUIRE(st.ok());
  v1::Job job = WaitForJob(resp.job_id());
  if (job.state() != v1::JOB_STATE_SUCCEEDED) DumpLogs();
  INFO(job.error());
  REQUIRE(job.state() == v1::JOB_STATE_SUCCEEDED);
  return job;
}

v1::Job Farm::WaitForJob(int64_t id, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  v1::Job job;
  while (std::chrono::steady_clock::now() < deadline) {
    job = Get(id);
    if (job.state() == v1::JOB_STATE_SUCCEEDED || job.state() == v1::JOB_STATE_FAILED ||
        job.state() == v1::JOB_STATE_CANCELLED) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (job.state() != v1::JOB_STATE_SUCCEEDED) DumpLogs();
  return job;
}

void Farm::DumpLogs() const {
  for (const auto& entry : fs::directory_iterator(dir_)) {
    if (entry.path().extension() != ".log") continue;
    std::ifstream in(entry.path());
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    if (text.size() > 6000) text = "..." + text.substr(text.size() - 6000);
    std::cerr << "==== " << entry.path().filename().string() << "\n" << text << "\n";
  }
}

}  // namespace reelfarm::testing
