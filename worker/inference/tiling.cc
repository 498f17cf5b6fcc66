#include "worker/inference/tiling.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace reelfarm::inference {
namespace {

// Tile starts along one axis of `size` pixels: steps of tile - overlap, the last tile
// aligned to the end.
std::vector<int64_t> Starts(int64_t size, int64_t tile, int64_t overlap) {
  std::vector<int64_t> starts;
  if (size <= tile) return {0};
  for (int64_t s = 0;; s += tile - overlap) {
    if (s + tile >= size) {
      starts.push_back(size - tile);
      break;
    }
    starts.push_back(s);
  }
  return starts;
}

// Blend weights along one axis for a tile [start, start + len) (output pixels) of an
// axis of `size` output pixels: 1 inside, ramps at edges that are cuts (not the
// frame's border) over the overlap `ov` (output pixels).
at::Tensor AxisWeights(int64_t start, int64_t len, int64_t size, int64_t ov,
                       const at::TensorOptions& opts) {
  at::Tensor w = at::ones({len}, opts);
  if (ov <= 0) return w;
  const double margin = ov / 4.0, span = ov - 2.0 * margin;
  at::Tensor d = at::arange(len, opts).add_(0.5);  // distance of pixel centres from the edge
  auto ramp = [&](const at::Tensor& dist) {
    return ((dist - margin) / span).clamp_(0.0, 1.0);
  };
  if (start > 0) w = w * ramp(d);
  if (start + len < size) w = w * ramp(d.flip(0));
  return w;
}

}  // namespace

absl::StatusOr<at::Tensor> UpscaleTiled(
    const std::function<absl::StatusOr<at::Tensor>(const at::Tensor&)>& run, const at::Tensor& x,
    int scale, int tile, int overlap) {
  const int64_t h = x.size(2), w = x.size(3);
  if (tile <= 0 || (h <= tile && w <= tile)) return run(x);
  if (2 * overlap >= tile) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tile ", tile, " with overlap ", overlap, " is invalid; give tile > 2 * overlap"));
  }
  const int64_t s = scale;
  at::Tensor out = at::zeros({x.size(0), 3, h * s, w * s}, x.options().dtype(at::kFloat));
  at::Tensor weight = at::zeros({1, 1, h * s, w * s}, out.options());
  const auto opts = out.options();
  for (int64_t y0 : Starts(h, tile, overlap)) {
    for (int64_t x0 : Starts(w, tile, overlap)) {
      const int64_t th = std::min<int64_t>(tile, h), tw = std::min<int64_t>(tile, w);
      at::Tensor piece = x.narrow(2, y0, th).narrow(3, x0, tw).contiguous();
      absl::StatusOr<at::Tensor> y = run(piece);
      if (!y.ok()) return y.status();
      if (y->dim() != 4 || y->size(2) != th * s || y->size(3) != tw * s) {
        return absl::InvalidArgumentError(absl::StrCat(
            "tile [", y0, ", ", x0, "] of ", th, "x", tw, " came back ", y->size(2), "x",
            y->size(3), "; expected ", th * s, "x", tw * s));
      }
      at::Tensor wy = AxisWeights(y0 * s, th * s, h * s, overlap * s, opts);
      at::Tensor wx = AxisWeights(x0 * s, tw * s, w * s, overlap * s, opts);
      at::Tensor wt = wy.view({1, 1, th * s, 1}) * wx.view({1, 1, 1, tw * s});
      out.narrow(2, y0 * s, th * s).narrow(3, x0 * s, tw * s).add_(y->to(at::kFloat) * wt);
      weight.narrow(2, y0 * s, th * s).narrow(3, x0 * s, tw * s).add_(wt);
    }
  }
  return out.div_(weight.clamp_min_(1e-12));
}

}  // namespace reelfarm::inference
