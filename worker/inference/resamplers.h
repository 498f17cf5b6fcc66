// Built-in resamplers, as Models: bicubic (the filter of LibTorch's upsample_bicubic2d)
// and lanczos (Lanczos-3; LibTorch has no lanczos mode). Both run as one separable
// filter on the CPU, in strips of output rows (each strip's rows upscaled along the row
// into a small buffer that stays in cache, then the column pass writes the output,
// clamped, in the same pass) on LibTorch's intra-op threads; UpscaleInto writes into
// the caller's frame. The result equals upsample_bicubic2d to 1e-5.
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
// replicated. Not clamped. Computed on the CPU; the result is float on the CPU.
at::Tensor LanczosUpscale(const at::Tensor& x, int scale);

// Bicubic (Keys, a = -0.75) upscale of float [N, C, H, W] by an integer `scale`, as
// at::upsample_bicubic2d(align_corners=false) computes it: 4 taps around each output
// pixel's input coordinate, edges replicated. Not clamped. CPU, float.
at::Tensor BicubicUpscale(const at::Tensor& x, int scale);

}  // namespace reelfarm::inference
