// Tiling: runs an upscaler over overlapping tiles of a frame and blends them, for
// frames bigger than a model (or its device's memory) takes at once.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>

#include "common/status.h"

namespace reelfarm::inference {

// `run` maps [N, C, h, w] to [N, 3, h*scale, w*scale]. UpscaleTiled cuts `x` into tiles
// of at most `tile`x`tile` input pixels that overlap their neighbours by `overlap`
// pixels, runs each, and blends them with weights that form a partition of unity: in
// each overlap they ramp from 0 to 1 between overlap/4 and 3*overlap/4 from the tile's
// edge, so no pixel within overlap/4 of a cut edge contributes. A model whose
// receptive field reaches at most overlap/4 input pixels therefore gives the untiled
// result (to float rounding). Frames no bigger than `tile` run whole. Requires
// tile > 2 * overlap; errors of `run` are returned as they are.
absl::StatusOr<at::Tensor> UpscaleTiled(
    const std::function<absl::StatusOr<at::Tensor>(const at::Tensor&)>& run, const at::Tensor& x,
    int scale, int tile, int overlap);

// The tile side (input pixels) for a model that needs `bytes_per_pixel` of device
// memory per input pixel, running `batch` tiles per call, when `free_bytes` are free:
// the largest multiple of 16 whose batch uses at most half of the free memory (the
// rest is left for the decoder, encoder and allocator slack), at least
// 2 * overlap + 16 (a smaller tile would be all overlap), and 0 (whole frames) when
// frames of the largest size decoded fit.
int TileForMemory(int64_t free_bytes, int64_t bytes_per_pixel, int batch, int overlap);

// Free memory on `device` ("cpu", "cuda:N") in bytes: for the CPU, the kernel's
// MemAvailable, capped by this cgroup's memory limit; for CUDA, what the driver
// reports free (blocks LibTorch's caching allocator keeps are not counted).
absl::StatusOr<int64_t> FreeDeviceMemory(const std::string& device);

}  // namespace reelfarm::inference
