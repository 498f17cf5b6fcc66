// TaskLogSink: an spdlog sink that keeps what a slot thread logs while it runs a task,
// keyed by the task's lease, so the agent can send it to the server (TaskLog) where
// `reelctl logs` reads it. Lines logged by other threads, or by a slot thread between
// tasks, are not kept (they still go to the process log).
//
// Thread-safety: all methods may be called from any thread. Capture is per thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <spdlog/sinks/base_sink.h>
// The compiled spdlog library instantiates base_sink for its own mutexes only.
#include <spdlog/sinks/base_sink-inl.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace reelfarm::worker {

// An absl::Mutex under the lower-case names through which spdlog's base_sink locks
// (Debian's Abseil predates them), so that the analysis knows what it guards.
class ABSL_LOCKABLE SinkMutex final {
 public:
  void lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.Lock(); }
  void unlock() ABSL_UNLOCK_FUNCTION() { mu_.Unlock(); }

 private:
  absl::Mutex mu_;
};

// Holds a SinkMutex for its scope (std::lock_guard carries no annotations).
class ABSL_SCOPED_LOCKABLE SinkLock final {
 public:
  explicit SinkLock(SinkMutex& mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_.lock(); }
  ~SinkLock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  SinkLock(const SinkLock&) = delete;
  SinkLock& operator=(const SinkLock&) = delete;

 private:
  SinkMutex& mu_;
};

class TaskLogSink final : public spdlog::sinks::base_sink<SinkMutex> {
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
    SinkLock lock(mutex_);
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
      SinkLock lock(mutex_);
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
  // base_sink calls these holding mutex_.
  void sink_it_(const spdlog::details::log_msg& msg) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
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
  std::map<uint64_t, Pending> pending_ ABSL_GUARDED_BY(mutex_);  // base_sink's mutex
};

}  // namespace reelfarm::worker
