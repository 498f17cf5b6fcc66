#include "common/logging.h"

#include <chrono>
#include <ctime>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

namespace reelfarm::common {

namespace {

bool IsKeyChar(char c) { return (c >= 'a' && c <= 'z') || c == '_' || (c >= '0' && c <= '9'); }

class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const std::string text(msg.payload.data(), msg.payload.size());
    nlohmann::json j;
    j["ts"] = Timestamp(msg.time);
    const auto level = spdlog::level::to_string_view(msg.level);
    j["level"] = std::string(level.data(), level.size());
    j["process"] = std::string(msg.logger_name.data(), msg.logger_name.size());
    j["msg"] = text;
    // key=value tokens (lower-case keys) become fields; the message stays whole.
    size_t i = 0;
    while (i < text.size()) {
      size_t start = i;
      while (i < text.size() && IsKeyChar(text[i])) ++i;
      if (i > start && i < text.size() && text[i] == '=' &&
          (start == 0 || text[start - 1] == ' ')) {
        const std::string key = text.substr(start, i - start);
        size_t end = text.find(' ', i + 1);
        if (end == std::string::npos) end = text.size();
        std::string value = text.substr(i + 1, end - i - 1);
        if (!value.empty() && value.back() == ':') value.pop_back();
        if (!j.contains(key)) j[key] = value;
        i = end;
      } else {
        ++i;
      }
    }
    // Invalid UTF-8 (e.g. a path) is replaced rather than throwing.
    const std::string line =
        j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    dest.append(line.data(), line.data() + line.size());
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }

 private:
  static std::string Timestamp(spdlog::log_clock::time_point t) {
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
    const std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[96];  // room for any int the format could be given
    std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(ms % 1000));
    return buf;
  }
};

// The text pattern, with newlines inside a message written as "\n" so that every
// event stays on one line (TorchScript errors, for one, span many lines).
class OneLineFormatter final : public spdlog::formatter {
 public:
  OneLineFormatter() : inner_("%Y-%m-%dT%H:%M:%S.%e %l %n %v") {}
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    spdlog::memory_buf_t buf;
    inner_.format(msg, buf);
    size_t end = buf.size();
    while (end > 0 && (buf.data()[end - 1] == '\n' || buf.data()[end - 1] == '\r')) --end;
    for (size_t i = 0; i < end; ++i) {
      const char c = buf.data()[i];
      if (c == '\n') {
        dest.append(std::string_view("\\n"));
      } else if (c != '\r') {
        dest.push_back(c);
      }
    }
    dest.push_back('\n');
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<OneLineFormatter>();
  }

 private:
  spdlog::pattern_formatter inner_;
};

}  // namespace

std::unique_ptr<spdlog::formatter> NewJsonLogFormatter() {
  return std::make_unique<JsonFormatter>();
}

void InitLogging(const std::string& name, const std::string& level, const std::string& format) {
  auto logger = spdlog::stderr_color_mt(name);
  if (format == "json") {
    logger->set_formatter(NewJsonLogFormatter());
  } else {
    logger->set_formatter(std::make_unique<OneLineFormatter>());
  }
  logger->set_level(spdlog::level::from_str(level));
  spdlog::set_default_logger(logger);
}

}  // namespace reelfarm::common
