#include "server/local_workers.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include <spdlog/spdlog.h>

#include "common/process.h"
#include "common/thread_name.h"

namespace reelfarm::server {

extern "C" char** environ;

LocalWorkers::LocalWorkers(std::vector<std::vector<std::string>> argvs,
                           std::vector<std::string> env)
    : argvs_(std::move(argvs)) {
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string var(*e);
    const bool replaced = std::any_of(env.begin(), env.end(), [&](const std::string& x) {
      return x.substr(0, x.find('=') + 1) == var.substr(0, var.find('=') + 1);
    });
    if (!replaced) env_.push_back(var);
  }
  env_.insert(env_.end(), env.begin(), env.end());
  pids_.assign(argvs_.size(), -1);
  for (size_t i = 0; i < argvs_.size(); ++i) pids_[i] = Spawn(static_cast<int>(i));
  supervisor_ = std::thread([this] {
    common::NameThread("rf-supervise");
    Supervise();
  });
}

pid_t LocalWorkers::Spawn(int i) {
  std::vector<char*> argv;
  for (const auto& a : argvs_[i]) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : env_) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    // A local worker dies with its server, even one killed with SIGKILL: a restarted
    // server starts its own, under the same names.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  if (pid < 0) {
    spdlog::error("cannot start local worker '{}': {}", argvs_[i][0], strerror(errno));
    return -1;
  }
  spdlog::info("local worker started pid={} binary={}", pid, argvs_[i][0]);
  return pid;
}

void LocalWorkers::Supervise() {
  while (!stop_.load()) {
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < pids_.size(); ++i) {
      if (pids_[i] != pid) continue;
      if (stop_.load()) break;
      spdlog::warn("local worker pid={} exited (status {}); restarting it", pid, status);
      std::this_thread::sleep_for(std::chrono::seconds(1));
      pids_[i] = Spawn(static_cast<int>(i));
    }
  }
}

LocalWorkers::~LocalWorkers() {
  stop_.store(true);
  if (supervisor_.joinable()) supervisor_.join();
  absl::MutexLock lock(&mu_);
  common::StopProcesses(pids_, std::chrono::seconds(10));
  pids_.assign(pids_.size(), -1);
}

}  // namespace reelfarm::server
