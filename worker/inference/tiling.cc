#include "worker/inference/tiling.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

#ifdef REELFARM_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>
#endif

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
  auto ramp = [&](const at::Tensor& dist) { return ((dist - margin) / span).clamp_(0.0, 1.0); };
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
    return absl::InvalidArgumentError(absl::StrCat("tile ", tile, " with overlap ", overlap,
                                                   " is invalid; give tile > 2 * overlap"));
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
        return absl::InvalidArgumentError(absl::StrCat("tile [", y0, ", ", x0, "] of ", th, "x", tw,
                                                       " came back ", y->size(2), "x", y->size(3),
                                                       "; expected ", th * s, "x", tw * s));
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

namespace {

// The largest frame side decoded (media::kMaxFrameSide; not included to keep this
// library free of the media code).
constexpr int64_t kLargestFrameSide = 8192;

// A number from a line "Key: 123 kB" of /proc/meminfo, in bytes; -1 when absent.
int64_t MeminfoBytes(const std::string& key) {
  std::ifstream in("/proc/meminfo");
  std::string name, unit;
  int64_t value = 0;
  while (in >> name >> value) {
    std::getline(in, unit);
    if (name == key + ":") return value * 1024;
  }
  return -1;
}

// memory.max - memory.current of this process's cgroup (v2); -1 when unlimited or
// unknown.
int64_t CgroupHeadroom() {
  std::ifstream max_in("/sys/fs/cgroup/memory.max"), cur_in("/sys/fs/cgroup/memory.current");
  std::string max_text;
  int64_t current = 0;
  if (!(max_in >> max_text) || max_text == "max" || !(cur_in >> current)) return -1;
  try {
    return std::max<int64_t>(0, std::stoll(max_text) - current);
  } catch (const std::exception&) {
    return -1;
  }
}

}  // namespace

int TileForMemory(int64_t free_bytes, int64_t bytes_per_pixel, int batch, int overlap) {
  const int64_t floor_tile = 2 * int64_t{overlap} + 16;
  if (bytes_per_pixel <= 0) return 0;
  const double pixels = static_cast<double>(std::max<int64_t>(free_bytes, 0)) / 2.0 /
                        (static_cast<double>(bytes_per_pixel) * std::max(batch, 1));
  if (pixels >= static_cast<double>(kLargestFrameSide * kLargestFrameSide)) return 0;
  const int64_t side = static_cast<int64_t>(std::floor(std::sqrt(pixels))) / 16 * 16;
  return static_cast<int>(std::max(side, floor_tile));
}

absl::StatusOr<int64_t> FreeDeviceMemory(const std::string& device) {
  if (device == "cpu") {
    int64_t available = MeminfoBytes("MemAvailable");
    if (available < 0) {
      return absl::UnavailableError("cannot read MemAvailable from /proc/meminfo");
    }
    const int64_t headroom = CgroupHeadroom();
    if (headroom >= 0) available = std::min(available, headroom);
    return available;
  }
#ifdef REELFARM_WITH_CUDA
  try {
    const c10::Device dev(device);
    if (dev.is_cuda()) {
      c10::cuda::CUDAGuard guard(dev.index() < 0 ? 0 : dev.index());
      size_t free = 0, total = 0;
      if (cudaMemGetInfo(&free, &total) != cudaSuccess) {
        return absl::UnavailableError(absl::StrCat("device '", device, "': cudaMemGetInfo failed"));
      }
      return static_cast<int64_t>(free);
    }
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("device '", device, "': ", e.what_without_backtrace()));
  }
#endif
  return absl::InvalidArgumentError(
      absl::StrCat("device '", device, "' has no free-memory query in this build"));
}

}  // namespace reelfarm::inference
