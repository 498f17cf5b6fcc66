// The defaults and ranges of a job spec, in one place: the server fills and checks them
// (server/admission.cc), the scheduler's domain types start from them, reelctl shows
// them in its help, the worker falls back on them. proto/reelfarm/v1/jobs.proto and the
// Python SDK's docstrings state the same numbers (tests/job_defaults_test.cc compares).
// Strings are const char*, not std::string_view: Debian's Abseil has a string_view of
// its own, and StrCat and StrJoin take only that one.
#pragma once

#include <array>

namespace reelfarm::common {

// Every job.
inline constexpr const char* kDefaultProject = "default";
inline constexpr int kDefaultPriority = 50;  // higher runs first
inline constexpr int kMinPriority = 0;
inline constexpr int kMaxPriority = 100;
inline constexpr int kDefaultMaxAttempts = 3;  // per task
inline constexpr int kMinMaxAttempts = 1;
inline constexpr int kMaxMaxAttempts = 10;

// H.264/H.265 constant rate factor of movie outputs (upscale and generate).
inline constexpr int kDefaultCrf = 18;  // visually lossless
inline constexpr int kMinCrf = 0;
inline constexpr int kMaxCrf = 51;

// Upscale jobs.
inline constexpr int kDefaultScale = 2;
// The scales a model manifest may declare; a model only workers have is taken at any.
inline constexpr int kMinScale = 1;
inline constexpr int kMaxScale = 8;
inline constexpr int kDefaultChunkFrames = 48;  // frames per chunk task; at least 1

// Generate jobs. Steps, guidance scale and sampler default to the model's (its
// manifest's "defaults", else these).
inline constexpr int kDefaultGenerateSize = 256;   // width and height, rounded to the stride
inline constexpr int kDefaultGenerateFrames = 16;  // or the model's max_frames when fewer
inline constexpr int kDefaultFps = 24;
inline constexpr int kMaxFps = 240;
inline constexpr float kDefaultStrength = 0.6f;  // with an init image
inline constexpr double kMaxGuidanceScale = 30;
inline constexpr int kDefaultModelSteps = 20;
inline constexpr double kDefaultModelGuidance = 3.0;
// The samplers workers run: flow-matching Euler and DDIM (eta 0).
inline constexpr std::array<const char*, 2> kSamplers = {"euler", "ddim"};
inline constexpr const char* kDefaultSampler = kSamplers[0];

// Workers: assignments held per slot beyond the running one (reelfarm-worker
// --prefetch). 0 by default: a farm's tasks take seconds, against a round trip of a
// fraction of a millisecond, and a held task waits behind a long one while another
// worker may be free. Many tasks of milliseconds on one worker want 1 (or more).
inline constexpr int kDefaultPrefetch = 0;
inline constexpr int kMaxPrefetch = 16;  // the server takes no more than this

}  // namespace reelfarm::common
