#include "common/service_main.h"

#include <filesystem>
#include <fstream>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace reelfarm::common {

void UseReleaseMutexChecks() {
#ifdef NDEBUG
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
}

StopSignals::StopSignals() {
  sigemptyset(&set_);
  sigaddset(&set_, SIGINT);
  sigaddset(&set_, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set_, nullptr);
}

int StopSignals::Wait() const {
  int sig = 0;
  sigwait(&set_, &sig);
  return sig;
}

void WritePortFile(const std::string& path, int port) {
  std::error_code ec;
  std::ofstream(path + ".tmp") << port << "\n";
  std::filesystem::rename(path + ".tmp", path, ec);
  if (ec) spdlog::error("cannot write port file '{}': {}", path, ec.message());
}

absl::StatusOr<MetricsEndpoint> MetricsEndpoint::Start(
    const std::string& listen, const std::shared_ptr<prometheus::Collectable>& collectable) {
  if (listen.empty()) return MetricsEndpoint(nullptr);
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(listen);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("--metrics-listen '", listen, "': cannot serve metrics there (", e.what(),
                     "); give another address, port 0 for a free one, or '' to disable"));
  }
  exposer->RegisterCollectable(collectable);
  return MetricsEndpoint(std::move(exposer));
}

void MetricsEndpoint::Add(const std::shared_ptr<prometheus::Collectable>& collectable) {
  if (exposer_) exposer_->RegisterCollectable(collectable);
}

void MetricsEndpoint::Announce(const std::string& port_file) const {
  if (!exposer_) return;
  const auto ports = exposer_->GetListeningPorts();
  const int port = ports.empty() ? 0 : ports[0];
  spdlog::info("metrics on port {} (/metrics)", port);
  if (!port_file.empty()) WritePortFile(port_file, port);
}

}  // namespace reelfarm::common
