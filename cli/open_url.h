// `reelctl open JOB`: the job's page in the farm monitor (the server's --web-listen).
#pragma once

#include <cstdint>
#include <string>

namespace reelfarm::cli {

// The monitor's default port (reelfarm-server --web-listen 127.0.0.1:7780).
inline constexpr int kMonitorPort = 7780;

// The URL of job `id` in the monitor: under `web` (a base URL such as
// "https://farm:7780", from --web or REELFARM_WEB) when it is not empty; else on the
// host of `server` (HOST:PORT, [V6]:PORT, or a name) at kMonitorPort, with https unless
// `insecure` (the monitor serves TLS when the gRPC port does).
std::string MonitorJobUrl(const std::string& server, bool insecure, const std::string& web,
                          int64_t id);

}  // namespace reelfarm::cli
