// The scheduler's domain types: plain values, free of gRPC and protobuf. server/
// converts between these and the API messages in one place (server/convert.cc).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/job_defaults.h"

namespace reelfarm::scheduler {

// kPaused: no new tasks are leased (running ones finish). kWaiting: waits for the jobs
// in depends_on to succeed. The numbers are stored: append, never renumber.
enum class JobState { kQueued = 1, kRunning, kSucceeded, kFailed, kCancelled, kPaused, kWaiting };
enum class TaskState { kPending = 1, kLeased, kSucceeded, kFailed, kCancelled };
// kTake: one take of a generation wedge. Chunks and takes are "work" tasks: they run
// in any order; an assemble task waits for every chunk.
enum class TaskKind { kChunk = 1, kAssemble, kTake };

bool IsTerminal(JobState s);
const char* ToString(JobState s);
const char* ToString(TaskState s);

// What the server learnt about the input when it probed it.
struct MediaInfo {
  int width = 0;
  int height = 0;
  int64_t frame_count = 0;
  int fps_num = 0;
  int fps_den = 1;
  std::string codec;
  std::string pixel_format;
  // Colour tags (AVCOL_* values; 2 unspecified) and audio, carried to the output.
  int colour_primaries = 2;
  int colour_transfer = 2;
  int colour_matrix = 2;
  int colour_range = 0;
  bool has_audio = false;
  int64_t first_frame = 0;  // number of frame 0 of the job's ranges
  // A movie on its constant-rate grid: coded frames, grid frames that repeat the one
  // before, coded frames with no grid frame (0 for image sequences).
  int64_t coded_frames = 0;
  int64_t held_frames = 0;
  int64_t dropped_frames = 0;
  int64_t tail_cut_frames = 0;  // grid frames cut from a truncated file's end
  int rotation = 0;             // clockwise degrees applied to make a rotated (phone) clip upright
};

struct UpscaleSpec {
  std::string input;
  std::string output;
  std::string model;
  int scale = common::kDefaultScale;
  int chunk_frames = common::kDefaultChunkFrames;
  bool overwrite = false;
  int crf = common::kDefaultCrf;
  // Output codec and options (media/output_format.h); empty: the defaults of
  // the output's extension.
  std::string codec;
  std::string preset;
  std::string pix_fmt;
  // Inclusive frame range of the input (-1: from the start / to the end).
  int64_t first_frame = -1;
  int64_t last_frame = -1;
  // OCIO colour spaces and config (README "Colour management"); empty: not given.
  std::string colorspace_in;
  std::string colorspace_out;
  std::string ocio_config;
  // What a QC flag does (jobs.proto UpscaleSpec.qc): "warn" (or "") keeps it on the
  // task; "fail" fails the flagged task, not retryably.
  std::string qc;
};

// One take of a generation wedge, as the spec gives it (unset: the spec's value).
struct GenerateTake {
  std::optional<int64_t> seed;
  std::optional<std::string> prompt;
  std::optional<int> steps;
  std::optional<double> guidance_scale;
  std::optional<std::string> sampler;
};

// A generation job (jobs.proto GenerateSpec documents each field). 0 / "" fields take
// the model's defaults, filled in by the server at submit.
struct GenerateSpec {
  std::string model;
  std::string prompt;
  std::string negative_prompt;
  std::vector<int64_t> seeds;
  int steps = 0;
  double guidance_scale = 0;
  std::string sampler;
  int width = common::kDefaultGenerateSize;
  int height = common::kDefaultGenerateSize;
  int frames = common::kDefaultGenerateFrames;
  int fps = common::kDefaultFps;
  std::string output;
  std::vector<std::string> prompts;
  std::vector<double> guidance_scales;
  std::vector<int> step_counts;
  std::vector<std::string> samplers;
  std::vector<GenerateTake> takes;
  std::string init;
  double strength = 0;
  std::string codec;
  std::string preset;
  std::string pix_fmt;
  bool overwrite = false;
  int crf = common::kDefaultCrf;
};

// A take with every value resolved (wedge.h).
struct Take {
  int index = 0;       // 0-based, = its task's index
  std::string name;    // "{job name}_take{NNN}", NNN = index + 1
  std::string output;  // the take's output path
  int64_t seed = 0;
  std::string prompt;
  int steps = 0;
  double guidance_scale = 0;
  std::string sampler;
  // Names of the wedge axes with more than one value (what differs between takes).
  std::vector<std::string> varying;
};

struct JobSpec {
  std::string name;
  std::string project{common::kDefaultProject};
  std::string owner;  // who submitted it: the caller's name, set by the server at submit
  int priority = common::kDefaultPriority;  // higher first; may change while the job waits or runs
  int max_attempts = common::kDefaultMaxAttempts;
  std::string request_id;           // client's id: a retried submit returns the first job
  std::vector<int64_t> depends_on;  // jobs that must succeed first
  std::map<std::string, std::string> requirements;  // worker tags, e.g. gpu=h100
  int64_t memory_bytes = 0;  // the model's estimate, for placement (0: unknown)
  // http(s) URLs called with a JSON body when the job ends (server/notifier.h).
  std::vector<std::string> webhooks;
  UpscaleSpec upscale;
  GenerateSpec generate;  // used when `generate.model` is set
  bool is_generate() const { return !generate.model.empty(); }
  const std::string& model() const { return is_generate() ? generate.model : upscale.model; }
};

struct Job {
  int64_t id = 0;
  JobSpec spec;
  MediaInfo input_info;
  JobState state = JobState::kQueued;
  std::string error;
  int64_t created_unix_ms = 0;
  int64_t started_unix_ms = 0;
  int64_t finished_unix_ms = 0;
};

// What a worker measured of a task's output (jobs.proto TaskQc documents each field).
struct TaskQc {
  bool measured = false;
  int64_t frames = 0;
  int64_t nan_inf_samples = 0;
  int64_t black_frames = 0;
  double clipped_low_fraction = 0;
  double clipped_high_fraction = 0;
  double median_difference = 0;
  std::vector<double> seam_differences;  // ASSEMBLE
  std::vector<std::string> flags;        // "<name>: what was measured"
};

struct Task {
  int64_t job_id = 0;
  int index = 0;
  TaskKind kind = TaskKind::kChunk;
  int64_t frame_begin = 0;  // inclusive
  int64_t frame_end = 0;    // exclusive
  TaskState state = TaskState::kPending;
  int attempts = 0;
  std::vector<std::string> workers;  // every worker that held a lease on it, in order
  std::vector<std::string> errors;   // the error of each attempt ("" if none), same order
  uint64_t lease_id = 0;             // kLeased: the current lease (fencing token); kSucceeded: the
                                     // lease whose result was accepted (its output counts)
  std::string error;
  std::string model_digest;   // reported by the worker that finished it
  std::string output_digest;  // CHUNK: digest of its published output, checked at assembly
  double seconds = 0;         // run time of the successful attempt
  TaskQc qc;                  // of the last attempt that reported
  // Pictures the worker made (storage-relative, under the job's scratch): a chunk's
  // middle-frame JPEG, a take's looping preview.
  std::string thumbnail;
  std::string preview;

  int64_t frames() const { return frame_end - frame_begin; }
  bool is_work() const { return kind != TaskKind::kAssemble; }  // a chunk or a take
};

// A half-open frame range [begin, end).
struct FrameRange {
  int64_t begin = 0;
  int64_t end = 0;
};

// Splits [0, frame_count) into consecutive ranges of `chunk` frames (the last may be
// shorter). Every frame is in exactly one range. `chunk` must be >= 1.
std::vector<FrameRange> SplitIntoChunks(int64_t frame_count, int64_t chunk);

}  // namespace reelfarm::scheduler
