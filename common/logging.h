// One log event per line: "<time> <level> <process> msg key=value ...", or with the
// JSON format one object per line:
//   {"ts":"2026-01-02T03:04:05.678Z","level":"info","process":"worker",
//    "msg":"task done job=3 task=1 ...","job":"3","task":"1",...}
// where every key=value token of the message is also a field (so log shippers can
// filter on job and task ids without parsing).
#pragma once

#include <memory>
#include <string>

#include <spdlog/formatter.h>

namespace reelfarm::common {

// Sets up spdlog's default logger for a process (`name` is "server", "worker", ...).
// `level` is spdlog's name ("info", "debug", ...); `format` is "text" or "json".
void InitLogging(const std::string& name, const std::string& level,
                 const std::string& format = "text");

// The JSON formatter described above, for sinks added after InitLogging.
std::unique_ptr<spdlog::formatter> NewJsonLogFormatter();

}  // namespace reelfarm::common
