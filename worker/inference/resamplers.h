// Built-in resamplers, as Models: bicubic (LibTorch's upsample_bicubic2d) and lanczos
// (Lanczos-3, a separable convolution in LibTorch ops; LibTorch has no lanczos mode).
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>

#include "worker/inference/model.h"

namespace reelfarm::inference {

std::unique_ptr<Model> MakeBicubic(int scale);
std::unique_ptr<Model> MakeLanczos(int scale);

// Lanczos-3 upscale of float [N, C, H, W] by an integer `scale`: output pixel centres
// map to input coordinates (j + 0.5) / scale - 0.5 (as align_corners=False), taps at
// the 6 nearest input pixels weighted by sinc(x) sinc(x/3), normalised to sum 1, edges
// replicated. Not clamped.
at::Tensor LanczosUpscale(const at::Tensor& x, int scale);

}  // namespace reelfarm::inference
