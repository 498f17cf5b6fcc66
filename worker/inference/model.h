// Model: what turns a batch of frames into upscaled frames. Implementations: the
// built-in resamplers bicubic and lanczos (resamplers.h) and TorchScript upscalers
// loaded from model packages (common/model_manifest.h).
//
// Contract: Upscale takes float [N, 3*k, H, W] in [0, 1] on the CPU, where k is
// temporal_window(): k frames concatenated along channels, oldest first, the frame to
// upscale in the middle (k = 1: plain [N, 3, H, W]). It returns float
// [N, 3, H*scale, W*scale] clamped to [0, 1] on the CPU. Frames bigger than the
// manifest's `tile` run as blended tiles (tiling.h). c10::Error never
// leaves this library: failures come back as statuses (INVALID_ARGUMENT when the model
// rejects the input or returns the wrong shape: not retryable). One thread uses a
// Model at a time; the caller holds c10::InferenceMode in that thread.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace reelfarm::inference {

class Model {
 public:
  Model() = default;
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;
  virtual ~Model() = default;

  virtual const std::string& name() const = 0;
  virtual int scale() const = 0;
  // "builtin:bicubic" or "sha256:<hex of the TorchScript file>", for provenance.
  virtual const std::string& digest() const = 0;
  // Frames in per frame out (odd); the caller supplies temporal_window() / 2 frames of
  // context on each side, repeating the first/last frame of the input at its ends.
  virtual int temporal_window() const { return 1; }
  // Frames the caller should give per Upscale call.
  virtual int batch() const { return 1; }
  // Tile side in input pixels that frames are cut into (0: whole frames): the
  // manifest's `tile`, or the one chosen from free device memory at load
  // (`tile_memory_per_pixel`, TileForMemory in tiling.h).
  virtual int tile() const { return 0; }
  virtual absl::StatusOr<at::Tensor> Upscale(const at::Tensor& frames) = 0;
  // Upscale into `out`, a float [N, 3, H*scale, W*scale] CPU tensor the caller
  // allocated (contiguous, e.g. over a frame's planes). The default runs Upscale and
  // copies; the built-in resamplers write their result there directly, which saves a
  // pass over the output (44 MB a frame at 2560x1440).
  virtual absl::Status UpscaleInto(const at::Tensor& frames, at::Tensor& out);
  // NaN or Inf samples the model produced since the last call (its results have them
  // replaced, as frames are never NaN), for QC; the built-ins produce none.
  virtual int64_t TakeNonFiniteSamples() { return 0; }
};

// Model names a worker can load: the built-ins and every package on `search_path`.
std::vector<std::string> AvailableModels(const std::vector<std::string>& search_path);

// "cpu" or "cuda:N"; INVALID_ARGUMENT when malformed, FAILED_PRECONDITION for CUDA
// without a CUDA LibTorch.
absl::StatusOr<c10::Device> ParseDevice(const std::string& device);

// Loads `name` for `scale` on `device` ("cpu", "cuda:0"). NOT_FOUND for an unknown
// model, INVALID_ARGUMENT for a scale the model was not made for.
absl::StatusOr<std::unique_ptr<Model>> LoadModel(const std::string& name, int scale,
                                                 const std::vector<std::string>& search_path,
                                                 const std::string& device);

}  // namespace reelfarm::inference
