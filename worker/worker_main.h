// The worker process: flags, logging, metrics, health, and the Agent until a signal.
// reelfarm-worker's main calls it; a test's worker binary calls it with hooks of its own.
#pragma once

#include <functional>
#include <string>

#include "worker/pipeline.h"

namespace reelfarm::worker {

// What a worker binary may change of the worker; the defaults are the product's.
struct WorkerHooks {
  FrameIo frames;  // where chunks read and write frames
  // Called after each model's warm-up run (AgentOptions::after_warm_up).
  std::function<void(const std::string& model)> after_warm_up;
};

// Parses the worker's flags from `argv` and runs it until SIGINT or SIGTERM; returns
// the process's exit status.
int RunWorkerMain(int argc, char** argv, const WorkerHooks& hooks = {});

}  // namespace reelfarm::worker
