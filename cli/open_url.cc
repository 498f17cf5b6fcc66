#include "cli/open_url.h"

#include "absl/strings/str_cat.h"

namespace reelfarm::cli {

std::string MonitorJobUrl(const std::string& server, bool insecure, const std::string& web,
                          int64_t id) {
  std::string base = web;
  if (base.empty()) {
    std::string host = server;
    if (const auto comma = host.find(','); comma != std::string::npos) host.resize(comma);
    if (!host.empty() && host.front() == '[') {
      host = host.substr(0, host.find(']') + 1);  // [V6]
    } else if (const auto colon = host.rfind(':'); colon != std::string::npos) {
      host.resize(colon);
    }
    if (host.empty()) host = "127.0.0.1";
    base = absl::StrCat(insecure ? "http" : "https", "://", host, ":", kMonitorPort);
  }
  while (!base.empty() && base.back() == '/') base.pop_back();
  return absl::StrCat(base, "/jobs/", id);
}

}  // namespace reelfarm::cli
