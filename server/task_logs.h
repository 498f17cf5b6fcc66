// TaskLogStore: what workers logged while running tasks, kept as one text file per task
// under the server's data folder: DIR/<job id>/<task index>.log, one line per event,
// every attempt appended in arrival order. Files, not JobStore tables: logs are
// append-only, can be large, and are read back whole or followed.
//
// Thread-safety: every method may be called from any thread; appends to one file are
// serialised so lines never interleave.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/status.h"

namespace reelfarm::server {

class TaskLogStore final {
 public:
  explicit TaskLogStore(std::filesystem::path dir) : dir_(std::move(dir)) {}
  TaskLogStore(const TaskLogStore&) = delete;
  TaskLogStore& operator=(const TaskLogStore&) = delete;

  // Appends `lines`, each prefixed with `prefix`; a line holding newlines becomes
  // several lines. UNAVAILABLE if the file cannot be written (the message names it).
  absl::Status Append(int64_t job_id, int task_index, const std::string& prefix,
                      const std::vector<std::string>& lines);

  // Deletes the job's logs (DIR/<job id>/), for retention. OK when there are none;
  // UNAVAILABLE naming the folder when it cannot be removed.
  absl::Status RemoveJob(int64_t job_id) const;

  struct Lines {
    int task_index = 0;
    std::vector<std::string> lines;
  };
  // The complete lines written since `offsets` (byte offset per task, advanced past
  // what is returned) of `job_id`'s task logs, or only `task`'s; tasks in index order,
  // at most `max_lines` lines per entry (a task with more comes back in several).
  std::vector<Lines> ReadNew(int64_t job_id, std::optional<int> task,
                             std::map<int, uint64_t>* offsets, size_t max_lines) const;

 private:
  std::filesystem::path PathFor(int64_t job_id, int task_index) const;

  const std::filesystem::path dir_;
  absl::Mutex mu_;  // serialises appends to the files (no member of its own to guard)
};

}  // namespace reelfarm::server
