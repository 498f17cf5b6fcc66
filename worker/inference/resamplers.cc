#include "worker/inference/resamplers.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace reelfarm::inference {
namespace {

constexpr int kLobes = 3;

double Sinc(double x) {
  if (std::abs(x) < 1e-12) return 1.0;
  const double px = M_PI * x;
  return std::sin(px) / px;
}

double Lanczos(double x) { return std::abs(x) < kLobes ? Sinc(x) * Sinc(x / kLobes) : 0.0; }

// Keys' cubic convolution with a = -0.75, as LibTorch's bicubic uses.
double Cubic(double x) {
  constexpr double a = -0.75;
  x = std::abs(x);
  if (x <= 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0;
}

// An integer upscale as a separable filter: output pixel q * scale + p (phase p) of an
// axis is sum_k weight[p][k] * input[clamp(q + base[p] + k)], the same for both axes.
struct PhaseKernel {
  int scale = 1;
  int taps = 0;
  std::vector<int> base;        // [scale]
  std::vector<float> weights;   // [scale * taps]
};

// Output pixel centres at input coordinate (j + 0.5) / scale - 0.5 (align_corners=False).
PhaseKernel BicubicKernel(int scale) {
  PhaseKernel k{scale, 4, std::vector<int>(scale), std::vector<float>(scale * 4)};
  for (int p = 0; p < scale; ++p) {
    const double delta = (p + 0.5) / scale - 0.5;
    const double floor = std::floor(delta), frac = delta - floor;
    k.base[p] = static_cast<int>(floor) - 1;
    for (int t = 0; t < 4; ++t) k.weights[p * 4 + t] = static_cast<float>(Cubic(frac - (t - 1)));
  }
  return k;
}

// Taps at offsets -3..3 around the input pixel the output pixel lies in, normalised.
PhaseKernel LanczosKernel(int scale) {
  constexpr int taps = 2 * kLobes + 1;
  PhaseKernel k{scale, taps, std::vector<int>(scale, -kLobes), std::vector<float>(scale * taps)};
  for (int p = 0; p < scale; ++p) {
    const double delta = (p + 0.5) / scale - 0.5;
    double sum = 0;
    for (int t = -kLobes; t <= kLobes; ++t) sum += Lanczos(delta - t);
    for (int t = -kLobes; t <= kLobes; ++t) {
      k.weights[p * taps + (t + kLobes)] = static_cast<float>(Lanczos(delta - t) / sum);
    }
  }
  return k;
}

// One row of `n` input pixels to n * scale output pixels, with TAPS taps. Interior
// pixels (all taps in range) run with constant weights per phase, which the compiler
// vectorises; the few at the edges clamp their taps (edges replicated).
template <int TAPS>
void UpscaleRow(const float* in, int64_t n, const PhaseKernel& k, float* phase_buf, float* out) {
  const int s = k.scale;
  for (int p = 0; p < s; ++p) {
    float w[TAPS];
    std::copy_n(&k.weights[static_cast<size_t>(p) * TAPS], TAPS, w);
    const int64_t base = k.base[p];
    const int64_t lo = std::clamp<int64_t>(-base, 0, n);
    const int64_t hi = std::clamp<int64_t>(n - TAPS + 1 - base, lo, n);
    for (int64_t q = lo; q < hi; ++q) {
      const float* a = in + q + base;
      float acc = 0;
      for (int t = 0; t < TAPS; ++t) acc += w[t] * a[t];
      phase_buf[q] = acc;
    }
    for (int64_t q = 0; q < n; ++q) {
      if (q >= lo && q < hi) {
        out[q * s + p] = phase_buf[q];
        continue;
      }
      float acc = 0;
      for (int t = 0; t < TAPS; ++t) acc += w[t] * in[std::clamp<int64_t>(q + base + t, 0, n - 1)];
      out[q * s + p] = acc;
    }
  }
}

// [N, C, H, W] float to [N, C, H * scale, W * scale]: rows first (into a buffer of
// [N * C, H, W * scale]), then columns as weighted sums of whole rows. Runs on
// LibTorch's intra-op threads.
at::Tensor SeparableUpscale(const at::Tensor& x, const PhaseKernel& k) {
  const at::Tensor in = x.to(at::kCPU, at::kFloat).contiguous();
  const int64_t n = in.size(0), c = in.size(1), h = in.size(2), w = in.size(3);
  const int s = k.scale, taps = k.taps;
  const int64_t out_w = w * s, out_h = h * s, planes = n * c;
  at::Tensor rows = at::empty({planes, h, out_w}, in.options());
  at::Tensor out = at::empty({n, c, out_h, out_w}, in.options());
  const float* src = in.data_ptr<float>();
  float* mid = rows.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  at::parallel_for(0, planes * h, 16, [&](int64_t begin, int64_t end) {
    std::vector<float> phase_buf(static_cast<size_t>(w));
    for (int64_t r = begin; r < end; ++r) {
      if (taps == 4) {
        UpscaleRow<4>(src + r * w, w, k, phase_buf.data(), mid + r * out_w);
      } else {
        UpscaleRow<2 * kLobes + 1>(src + r * w, w, k, phase_buf.data(), mid + r * out_w);
      }
    }
  });
  at::parallel_for(0, planes * out_h, 16, [&](int64_t begin, int64_t end) {
    std::vector<const float*> row(static_cast<size_t>(taps));
    for (int64_t r = begin; r < end; ++r) {
      const int64_t plane = r / out_h, y = r % out_h, q = y / s, p = y % s;
      const float* wy = &k.weights[static_cast<size_t>(p) * taps];
      for (int t = 0; t < taps; ++t) {
        row[t] = mid + (plane * h + std::clamp<int64_t>(q + k.base[p] + t, 0, h - 1)) * out_w;
      }
      float* o = dst + r * out_w;
      std::fill(o, o + out_w, 0.0f);
      for (int t = 0; t < taps; ++t) {
        const float wt = wy[t];
        if (wt == 0.0f) continue;
        const float* a = row[t];
        for (int64_t j = 0; j < out_w; ++j) o[j] += wt * a[j];
      }
    }
  });
  return out;
}

class ResamplerModel final : public Model {
 public:
  ResamplerModel(std::string name, int scale, bool lanczos)
      : name_(std::move(name)), digest_("builtin:" + name_), scale_(scale), lanczos_(lanczos) {}
  const std::string& name() const override { return name_; }
  int scale() const override { return scale_; }
  const std::string& digest() const override { return digest_; }

  absl::StatusOr<at::Tensor> Upscale(const at::Tensor& x) override {
    if (x.dim() != 4 || x.size(1) != 3) {
      return absl::InvalidArgumentError(absl::StrCat("model '", name_, "': input has ",
                                                     x.dim(), " dimensions, not [N, 3, H, W]"));
    }
    try {
      at::Tensor y = SeparableUpscale(x, lanczos_ ? LanczosKernel(scale_) : BicubicKernel(scale_));
      return y.clamp_(0.0, 1.0);
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat(name_, ": ", e.what_without_backtrace()));
    }
  }

 private:
  const std::string name_;
  const std::string digest_;
  const int scale_;
  const bool lanczos_;
};

}  // namespace

at::Tensor LanczosUpscale(const at::Tensor& x, int scale) {
  return SeparableUpscale(x, LanczosKernel(scale));
}

at::Tensor BicubicUpscale(const at::Tensor& x, int scale) {
  return SeparableUpscale(x, BicubicKernel(scale));
}

std::unique_ptr<Model> MakeBicubic(int scale) {
  return std::make_unique<ResamplerModel>("bicubic", scale, false);
}

std::unique_ptr<Model> MakeLanczos(int scale) {
  return std::make_unique<ResamplerModel>("lanczos", scale, true);
}

}  // namespace reelfarm::inference
