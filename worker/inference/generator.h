// Generator: the sampler loop around a denoiser model package (kind "denoiser"; the
// contract of its modules is in models/README.md). Flow-matching Euler and DDIM,
// classifier-free guidance, a seeded noise generator per take, an optional decoder.
//
// Reproducibility: the noise comes from a CPU generator seeded with the take's seed
// and is drawn in one fixed order, so the same request gives bit-identical frames on
// the same device and LibTorch thread count. c10::Error never leaves this library. One
// thread uses a Generator at a time and holds c10::InferenceMode while it does.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/job_defaults.h"
#include "common/model_manifest.h"
#include "common/status.h"

namespace reelfarm::inference {

struct GenerateRequest {
  std::string prompt;
  std::string negative_prompt;  // the unconditional branch of guidance ("" : empty prompt)
  std::string sampler{common::kDefaultSampler};  // one of common::kSamplers
  int64_t seed = 0;
  int steps = common::kDefaultModelSteps;
  double guidance_scale = 1.0;  // 1: no guidance
  int width = 0;
  int height = 0;
  int frames = 0;
  // Image-to-video: planar RGB in [0, 1] (3 * init_width * init_height floats), noised
  // to `strength` (0 < strength <= 1) and denoised from there.
  std::vector<float> init_rgb;
  int init_width = 0;
  int init_height = 0;
  double strength = 1.0;
};

struct GeneratedClip {
  int width = 0;
  int height = 0;
  std::vector<std::vector<float>> frames;  // each planar RGB in [0, 1], 3 * width * height
};

class Generator {
 public:
  // Loads the package's modules on `device`. FAILED_PRECONDITION when a file does not
  // load, INVALID_ARGUMENT when the package is not a denoiser.
  static absl::StatusOr<std::unique_ptr<Generator>> Load(const common::ModelManifest& manifest,
                                                         const std::string& device);
  ~Generator();
  Generator(const Generator&) = delete;
  Generator& operator=(const Generator&) = delete;

  // "sha256:<hex of the denoiser file>".
  const std::string& digest() const;
  const common::ModelManifest& manifest() const;

  // Runs the sampler. `step_done(i)` is called after step i (1-based); `cancelled` is
  // polled between steps (CANCELLED). A model output with NaN or Inf fails with
  // FAILED_PRECONDITION saying so (not retryable); a wrong shape with INVALID_ARGUMENT.
  absl::StatusOr<GeneratedClip> Generate(const GenerateRequest& request,
                                         const std::function<bool()>& cancelled,
                                         const std::function<void(int)>& step_done);

  // Token ids of `prompt` as the text encoder gets them: lower-cased words split on
  // anything that is not a letter or digit, unknown words as 1, padded with 0.
  std::vector<int64_t> Tokenize(const std::string& prompt) const;

 private:
  struct Impl;
  explicit Generator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The flow-matching times t (1 = noise, 0 = data) a sampler visits, from `start` down to
// 0 in `steps` steps: uniform for "euler"; for "ddim", the timesteps of a cosine
// variance-preserving schedule, uniform in its discrete time, mapped to flow time.
std::vector<double> SamplerTimes(const std::string& sampler, int steps, double start = 1.0);

}  // namespace reelfarm::inference
