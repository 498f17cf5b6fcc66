// The row form that the SQL stores (SQLite, PostgreSQL) keep: scalar columns plus JSON
// text for the spec, the probed input and the per-task lists, so that adding a field to
// a spec needs no schema step. One conversion for both stores.
#pragma once

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "common/status.h"
#include "scheduler/job.h"

namespace reelfarm::scheduler {

// Columns of `jobs`: id, spec, input_info, state, error, created, started, finished.
struct JobRow {
  int64_t id = 0;
  std::string spec;        // JobSpec as JSON
  std::string input_info;  // MediaInfo as JSON
  int64_t state = 0;
  std::string error;
  int64_t created_unix_ms = 0;
  int64_t started_unix_ms = 0;
  int64_t finished_unix_ms = 0;
};

// Columns of `tasks`: job_id, idx, kind, frame_begin, frame_end, state, attempts,
// workers, error, model_digest, seconds, errors, lease_id, output_digest, qc, pictures.
struct TaskRow {
  int64_t job_id = 0;
  int64_t index = 0;
  int64_t kind = 0;
  int64_t frame_begin = 0;
  int64_t frame_end = 0;
  int64_t state = 0;
  int64_t attempts = 0;
  std::string workers;  // JSON array of names, in lease order
  std::string error;
  std::string model_digest;
  double seconds = 0;
  std::string errors;  // JSON array, one entry per attempt
  int64_t lease_id = 0;
  std::string output_digest;
  std::string qc;        // TaskQc as JSON ("{}" or "": not measured)
  std::string pictures;  // {"thumbnail": ..., "preview": ...} as JSON ("" : none)
};

// INVALID_ARGUMENT when a text is not UTF-8 (refused, not mangled).
absl::StatusOr<JobRow> ToRow(const Job& job);
absl::StatusOr<TaskRow> ToRow(const Task& task);

// INTERNAL naming `store` (the file or database) and the row when a stored value is
// not one this build can read.
absl::StatusOr<Job> FromRow(const JobRow& row, absl::string_view store);
absl::StatusOr<Task> FromRow(const TaskRow& row, absl::string_view store);
// The same, into `task` (every field set), for a load that builds tasks in place.
absl::Status FromRow(const TaskRow& row, absl::string_view store, Task* task);

}  // namespace reelfarm::scheduler
