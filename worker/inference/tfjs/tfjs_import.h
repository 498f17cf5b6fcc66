// TF.js *layers* models (Keras topology + weight manifest + shards) as TorchScript
// modules, and npm model packages (UpscalerJS's ESRGAN family) as reelfarm model
// packages (models/README.md). The tool `reelfarm-models import-tfjs` is a thin main
// over ImportPackage.
//
// Supported layers: InputLayer (one), Conv2D (stride 1, `same`/`valid`, any kernel
// size and dilation, activation linear/relu/sigmoid/tanh/leaky_relu), Activation,
// Concatenate (channels), Add, UpSampling2D (nearest), and UpscalerJS's custom
// MultiplyBeta (x * 0.2) and PixelShuffle<N>x (TF's depth_to_space, NHWC channel
// order). Anything else, a weight whose shape does not match its layer, a shard
// shorter than the manifest says, a dtype other than float32, a cycle, or more than one
// input or output is refused with INVALID_ARGUMENT naming the layer and its type.
#pragma once

#include <torch/script.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"

namespace reelfarm::tfjs {

// A network built from a TF.js layers model. `module.forward(x)` takes float
// [N, C, H, W] (NCHW; the TF.js model is NHWC) in the package's value range and
// returns [N, 3, H*scale, W*scale].
struct ImportedNetwork {
  torch::jit::Module module{"TfjsLayersModel"};
  int scale = 0;  // from the upsampling layers, checked by a trial run
  int input_channels = 0;
  // Farthest input pixel (in input pixels, rounded up) that reaches an output pixel:
  // tiles must overlap by 4x this (worker/inference/tiling.h).
  int receptive_field = 0;
  // Float32 activations alive at once, in bytes per input pixel (from the graph's
  // liveness, in topological order).
  int64_t activation_bytes_per_pixel = 0;
  int64_t parameter_bytes = 0;
  int layers = 0;
};

// Reads a shard named in the weight manifest (its path relative to model.json's
// folder); NOT_FOUND when it is missing.
using ShardReader = std::function<absl::StatusOr<std::string>(const std::string& path)>;

// Builds the network of `model_json` (the text of a TF.js model.json).
absl::StatusOr<ImportedNetwork> BuildNetwork(const std::string& model_json,
                                             const ShardReader& read_shard);

// TF's depth_to_space in NHWC, applied to an NCHW tensor: output channel c at
// sub-pixel (i, j) comes from input channel (i * block + j) * C_out + c, where
// torch.pixel_shuffle takes c * block^2 + i * block + j. Exposed for tests.
at::Tensor DepthToSpaceNchw(const at::Tensor& x, int64_t block);

struct ImportOptions {
  // Value range of the network's input and output. Unset (min == max): UpscalerJS's
  // convention, which its JavaScript states and model.json does not: [0, 255] for RDN
  // packages, [0, 1] for RRDN ones (those with the custom layers MultiplyBeta or
  // PixelShuffle<N>x).
  double input_min = 0.0, input_max = 0.0;
  bool replace = false;  // replace an existing <out>/<name>
};

struct ImportReport {
  std::filesystem::path dir;  // <out>/<name>
  std::vector<int> scales;
  std::string package, version, license, sha256;
};

// Imports every `models/x<N>/model.json` of the npm package at `source` (its folder, as
// unpacked, or the `.tgz` that `npm pack` makes) into `<out_dir>/<name>/`: one
// TorchScript file per scale and a model.json recording the package's name, version,
// licence and SHA-256 (of the .tgz, or of the files read from a folder). Every scale is
// built and checked before anything is written; the package folder is written beside
// and renamed into place, so a refused or failed import leaves `out_dir` as it was.
// ALREADY_EXISTS when `<out_dir>/<name>` exists and `replace` is false.
absl::StatusOr<ImportReport> ImportPackage(const std::filesystem::path& source,
                                           const std::string& name,
                                           const std::filesystem::path& out_dir,
                                           const ImportOptions& options = {});

}  // namespace reelfarm::tfjs
