// One log event per line: "<time> <level> <process> msg key=value ...".
#pragma once

#include <string>

namespace reelfarm::common {

// Sets up spdlog's default logger for a process (`name` is "server", "worker", ...).
// `level` is spdlog's name ("info", "debug", ...).
void InitLogging(const std::string& name, const std::string& level);

}  // namespace reelfarm::common
