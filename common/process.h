// Child processes of a binary or a test: stopping them with a grace period.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <vector>

namespace reelfarm::common {

// Sends SIGCONT (one may be stopped) and SIGTERM to every pid > 0, then reaps them all;
// one still running `grace` after the signals is sent SIGKILL and reaped. Their
// shutdowns overlap instead of adding up. Returns each process's wait status (as
// waitpid gives it; -1 for a pid <= 0 or one that is not a child of this process).
std::vector<int> StopProcesses(const std::vector<pid_t>& pids, std::chrono::milliseconds grace);

}  // namespace reelfarm::common
