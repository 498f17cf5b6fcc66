// LocalWorkers: the embedded default. Starts N reelfarm-worker processes beside the
// server (separate processes, so a crash in media or model code cannot take the
// server down), restarts one that dies, and stops them all on destruction.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace reelfarm::server {

class LocalWorkers final {
 public:
  // `argvs[i]` is the command line of worker i (argv[0] is the binary); `env`
  // ("NAME=VALUE") is added to the environment each worker inherits.
  LocalWorkers(std::vector<std::vector<std::string>> argvs, std::vector<std::string> env = {});
  ~LocalWorkers();
  LocalWorkers(const LocalWorkers&) = delete;
  LocalWorkers& operator=(const LocalWorkers&) = delete;

 private:
  pid_t Spawn(int i);
  void Supervise();

  const std::vector<std::vector<std::string>> argvs_;
  std::vector<std::string> env_;  // the whole environment of a worker
  absl::Mutex mu_;
  std::vector<pid_t> pids_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> stop_{false};
  std::thread supervisor_;
};

}  // namespace reelfarm::server
