// Tiling: runs an upscaler over overlapping tiles of a frame and blends them, for
// frames bigger than a model (or its device's memory) takes at once.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>

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

}  // namespace reelfarm::inference
