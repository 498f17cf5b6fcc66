// Set-up shared by the long-running binaries (reelfarm-server, reelfarm-worker): the
// stop signals, the /metrics endpoint and the port files that tests and wrappers read.
#pragma once

#include <signal.h>

#include <memory>
#include <string>

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>

#include "common/status.h"

namespace reelfarm::common {

// absl::Mutex's deadlock detection set as absl's own release builds have it. Debian builds
// absl without NDEBUG, which leaves its debug-only detection on: every acquisition of every
// absl::Mutex (ours and gRPC's, which uses absl's) updates a process-wide lock graph under
// a global lock, and a lock-order cycle that may never deadlock aborts the process. A
// release build of reelfarm (NDEBUG) turns it off; a debug build keeps it, and so do the
// test binaries (scripts/check-thread-safety.sh, run by scripts/test.sh, checks our lock
// use with clang's -Wthread-safety). Call it first in main, before any thread starts.
void UseReleaseMutexChecks();

// SIGINT and SIGTERM, taken by Wait() (sigwait), never by a handler on some thread.
// Construct it in main before any thread starts: threads inherit the blocked mask.
class StopSignals final {
 public:
  StopSignals();
  // Blocks until SIGINT or SIGTERM arrives; returns its number.
  int Wait() const;

 private:
  sigset_t set_;
};

// Writes `port` to `path` whole under a temporary name and renames it, so that a
// reader never sees half of it. Logs a failure.
void WritePortFile(const std::string& path, int port);

// The /metrics endpoint of a binary: a prometheus-cpp exposer and what it serves.
class MetricsEndpoint final {
 public:
  // Serves `collectable` (the binary's registry) on `listen`; no endpoint when `listen`
  // is empty. UNAVAILABLE naming --metrics-listen when it cannot listen there.
  static absl::StatusOr<MetricsEndpoint> Start(
      const std::string& listen, const std::shared_ptr<prometheus::Collectable>& collectable);

  // Serves `collectable` too (held weakly: the caller keeps it alive).
  void Add(const std::shared_ptr<prometheus::Collectable>& collectable);
  // Logs the port it listens on and writes it to `port_file` unless that is empty;
  // nothing without an endpoint.
  void Announce(const std::string& port_file) const;

 private:
  explicit MetricsEndpoint(std::unique_ptr<prometheus::Exposer> exposer)
      : exposer_(std::move(exposer)) {}
  std::unique_ptr<prometheus::Exposer> exposer_;  // null: no endpoint
};

}  // namespace reelfarm::common
