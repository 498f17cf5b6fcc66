#include "scheduler/store_rows.h"

#include <nlohmann/json.hpp>
#include <vector>

#include "absl/strings/str_cat.h"

namespace reelfarm::scheduler {

// Explicit takes: unset values are absent keys.
void to_json(nlohmann::json& j, const GenerateTake& t) {
  j = nlohmann::json::object();
  if (t.seed) j["seed"] = *t.seed;
  if (t.prompt) j["prompt"] = *t.prompt;
  if (t.steps) j["steps"] = *t.steps;
  if (t.guidance_scale) j["guidance_scale"] = *t.guidance_scale;
  if (t.sampler) j["sampler"] = *t.sampler;
}
void from_json(const nlohmann::json& j, GenerateTake& t) {
  if (j.contains("seed")) t.seed = j["seed"].get<int64_t>();
  if (j.contains("prompt")) t.prompt = j["prompt"].get<std::string>();
  if (j.contains("steps")) t.steps = j["steps"].get<int>();
  if (j.contains("guidance_scale")) t.guidance_scale = j["guidance_scale"].get<double>();
  if (j.contains("sampler")) t.sampler = j["sampler"].get<std::string>();
}

// Missing keys keep the struct's defaults, so rows written before a field
// existed still load.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(UpscaleSpec, input, output, model, scale,
                                                chunk_frames, overwrite, crf, codec, preset,
                                                pix_fmt, first_frame, last_frame, colorspace_in,
                                                colorspace_out, ocio_config, qc)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TaskQc, measured, frames, nan_inf_samples,
                                                black_frames, clipped_low_fraction,
                                                clipped_high_fraction, median_difference,
                                                seam_differences, flags)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(GenerateSpec, model, prompt, negative_prompt, seeds,
                                                steps, guidance_scale, sampler, width, height,
                                                frames, fps, output, prompts, guidance_scales,
                                                step_counts, samplers, takes, init, strength, codec,
                                                preset, pix_fmt, overwrite, crf)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(JobSpec, name, project, priority, max_attempts,
                                                request_id, depends_on, requirements, memory_bytes,
                                                upscale, generate, webhooks, owner)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(MediaInfo, width, height, frame_count, fps_num,
                                                fps_den, codec, pixel_format, colour_primaries,
                                                colour_transfer, colour_matrix, colour_range,
                                                has_audio, first_frame, coded_frames, held_frames,
                                                dropped_frames, tail_cut_frames, rotation)

namespace {

using nlohmann::json;

// nlohmann::json throws on invalid UTF-8; such text is refused, not mangled.
absl::StatusOr<std::string> Dump(const json& j, absl::string_view what) {
  try {
    return j.dump();
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " cannot be stored: ", e.what(), "; give UTF-8 text"));
  }
}

// A stored value that this build cannot read.
absl::Status Damaged(absl::string_view store, absl::string_view row, absl::string_view problem) {
  return absl::InternalError(
      absl::StrCat("job store '", store, "': ", row, ": ", problem,
                   "; the database is damaged or from another program; restore a backup"));
}

template <typename Enum>
bool InRange(int64_t v, Enum first, Enum last) {
  return v >= static_cast<int>(first) && v <= static_cast<int>(last);
}

}  // namespace

absl::StatusOr<JobRow> ToRow(const Job& job) {
  JobRow row;
  row.id = job.id;
  ASSIGN_OR_RETURN(row.spec, Dump(json(job.spec), "job spec"));
  ASSIGN_OR_RETURN(row.input_info, Dump(json(job.input_info), "input info"));
  row.state = static_cast<int>(job.state);
  row.error = job.error;
  row.created_unix_ms = job.created_unix_ms;
  row.started_unix_ms = job.started_unix_ms;
  row.finished_unix_ms = job.finished_unix_ms;
  return row;
}

absl::StatusOr<TaskRow> ToRow(const Task& t) {
  TaskRow row;
  row.job_id = t.job_id;
  row.index = t.index;
  row.kind = static_cast<int>(t.kind);
  row.frame_begin = t.frame_begin;
  row.frame_end = t.frame_end;
  row.state = static_cast<int>(t.state);
  row.attempts = t.attempts;
  ASSIGN_OR_RETURN(row.workers, Dump(json(t.workers), "task workers"));
  row.error = t.error;
  row.model_digest = t.model_digest;
  row.output_digest = t.output_digest;
  row.seconds = t.seconds;
  ASSIGN_OR_RETURN(row.errors, Dump(json(t.errors), "task errors"));
  row.lease_id = static_cast<int64_t>(t.lease_id);
  if (t.qc.measured) {
    ASSIGN_OR_RETURN(row.qc, Dump(json(t.qc), "task qc"));
  }
  if (!t.thumbnail.empty() || !t.preview.empty()) {
    ASSIGN_OR_RETURN(row.pictures, Dump(json{{"thumbnail", t.thumbnail}, {"preview", t.preview}},
                                        "task pictures"));
  }
  return row;
}

absl::StatusOr<Job> FromRow(const JobRow& row, absl::string_view store) {
  Job job;
  job.id = row.id;
  const std::string where = absl::StrCat("job ", job.id);
  try {
    job.spec = json::parse(row.spec).get<JobSpec>();
    job.input_info = json::parse(row.input_info).get<MediaInfo>();
  } catch (const json::exception& e) {
    return Damaged(store, where, e.what());
  }
  if (!InRange(row.state, JobState::kQueued, JobState::kWaiting)) {
    return Damaged(store, where, absl::StrCat("unknown state ", row.state));
  }
  job.state = static_cast<JobState>(row.state);
  job.error = row.error;
  job.created_unix_ms = row.created_unix_ms;
  job.started_unix_ms = row.started_unix_ms;
  job.finished_unix_ms = row.finished_unix_ms;
  return job;
}

absl::StatusOr<Task> FromRow(const TaskRow& row, absl::string_view store) {
  Task task;
  RETURN_IF_ERROR(FromRow(row, store, &task));
  return task;
}

absl::Status FromRow(const TaskRow& row, absl::string_view store, Task* out) {
  Task& task = *out;
  task.job_id = row.job_id;
  task.index = static_cast<int>(row.index);
  if (!InRange(row.kind, TaskKind::kChunk, TaskKind::kTake) ||
      !InRange(row.state, TaskState::kPending, TaskState::kCancelled)) {
    return Damaged(store, absl::StrCat("task ", task.job_id, "/", task.index),
                   absl::StrCat("unknown kind ", row.kind, " or state ", row.state));
  }
  task.kind = static_cast<TaskKind>(row.kind);
  task.frame_begin = row.frame_begin;
  task.frame_end = row.frame_end;
  task.state = static_cast<TaskState>(row.state);
  task.attempts = static_cast<int>(row.attempts);
  // A task never leased has empty lists: no parse for those (most of a queue).
  try {
    task.workers = row.workers == "[]" ? std::vector<std::string>()
                                       : json::parse(row.workers).get<std::vector<std::string>>();
    task.errors = row.errors == "[]" ? std::vector<std::string>()
                                     : json::parse(row.errors).get<std::vector<std::string>>();
    if (!row.qc.empty()) task.qc = json::parse(row.qc).get<TaskQc>();
    if (!row.pictures.empty()) {
      const json pictures = json::parse(row.pictures);
      task.thumbnail = pictures.value("thumbnail", "");
      task.preview = pictures.value("preview", "");
    }
  } catch (const json::exception& e) {
    return Damaged(store, absl::StrCat("task ", task.job_id, "/", task.index), e.what());
  }
  task.error = row.error;
  task.model_digest = row.model_digest;
  task.output_digest = row.output_digest;
  task.seconds = row.seconds;
  task.lease_id = static_cast<uint64_t>(row.lease_id);
  return absl::OkStatus();
}

}  // namespace reelfarm::scheduler
