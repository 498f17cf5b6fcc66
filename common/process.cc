#include "common/process.h"

#include <signal.h>
#include <sys/wait.h>

#include <thread>

namespace reelfarm::common {

std::vector<int> StopProcesses(const std::vector<pid_t>& pids, std::chrono::milliseconds grace) {
  for (pid_t pid : pids) {
    if (pid <= 0) continue;
    kill(pid, SIGCONT);
    kill(pid, SIGTERM);
  }
  const auto deadline = std::chrono::steady_clock::now() + grace;
  std::vector<int> statuses(pids.size(), -1);
  for (size_t i = 0; i < pids.size(); ++i) {
    if (pids[i] <= 0) continue;
    int status = 0;
    pid_t got = 0;
    while ((got = waitpid(pids[i], &status, WNOHANG)) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        kill(pids[i], SIGKILL);
        got = waitpid(pids[i], &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (got == pids[i]) statuses[i] = status;
  }
  return statuses;
}

}  // namespace reelfarm::common
