// TaskLogSink: an spdlog sink that keeps what a slot thread logs while it runs a task,
// keyed by the task's lease, so the agent can send it to the server (TaskLog) where
// `reelctl logs` reads it. Lines logged by other threads, or by a slot thread between
// tasks, are not kept (they still go to the process log).
//
// Thread-safety: all methods may be called from any thread. Capture is per thread.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <spdlog/sinks/base_sink.h>

namespace reelfarm::worker {

class TaskLogSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  // Lines kept per lease between two Take() calls; older ones are dropped (and one
  // line says how many), so a chatty task cannot exhaust memory.
  static constexpr size_t kMaxPending = 5000;

  TaskLogSink() { set_pattern_("%Y-%m-%dT%H:%M:%S.%e %l %v"); }

  // While alive, what this thread logs is kept for `lease_id`.
  class Capture {
   public:
    explicit Capture(uint64_t lease_id) : previous_(current_) { current_ = lease_id; }
    ~Capture() { current_ = previous_; }
    Capture(const Capture&) = delete;
    Capture& operator=(const Capture&) = delete;

   private:
    const uint64_t previous_;
  };

  // The lines kept for `lease_id`, oldest first; forgets them.
  std::vector<std::string> Take(uint64_t lease_id) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = pending_.find(lease_id);
    if (it == pending_.end()) return {};
    std::vector<std::string> out = std::move(it->second.lines);
    if (it->second.dropped > 0) {
      out.insert(out.begin(), "(" + std::to_string(it->second.dropped) +
                                  " earlier lines dropped: over the task log buffer)");
    }
    pending_.erase(it);
    return out;
  }

  // Every lease's kept lines; forgets them.
  std::map<uint64_t, std::vector<std::string>> TakeAll() {
    std::vector<uint64_t> ids;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (const auto& [id, p] : pending_) ids.push_back(id);
    }
    std::map<uint64_t, std::vector<std::string>> out;
    for (uint64_t id : ids) {
      auto lines = Take(id);
      if (!lines.empty()) out[id] = std::move(lines);
    }
    return out;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    if (current_ == 0) return;
    spdlog::memory_buf_t buf;
    formatter_->format(msg, buf);
    std::string line(buf.data(), buf.size());
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    Pending& p = pending_[current_];
    if (p.lines.size() >= kMaxPending) {
      p.lines.erase(p.lines.begin());
      ++p.dropped;
    }
    p.lines.push_back(std::move(line));
  }
  void flush_() override {}

 private:
  struct Pending {
    std::vector<std::string> lines;
    int64_t dropped = 0;
  };
  static inline thread_local uint64_t current_ = 0;
  std::map<uint64_t, Pending> pending_;  // guarded by base_sink's mutex_
};

}  // namespace reelfarm::worker
