#include "worker/inference/resamplers.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif
#if defined(__x86_64__) && !defined(__clang__)
// The hot loops are built twice, for AVX2 and for the baseline, and the one the CPU
// can run is chosen when the library loads. (Clang 14 cannot clone function templates:
// built by it, e.g. for scripts/check-thread-safety.sh, they are built once.)
#define REELFARM_CPU_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define REELFARM_CPU_CLONES
#endif

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
  std::vector<int> base;       // [scale]
  std::vector<float> weights;  // [scale * taps]
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

// One row of `n` input pixels to n * scale output pixels, with TAPS taps and SCALE
// phases (0: the scale at run time). Interior pixels (all taps in range) run with
// constant weights, which the compiler vectorises; the few at the edges clamp their
// taps (edges replicated).
template <int TAPS, int SCALE>
REELFARM_CPU_CLONES void UpscaleRow(const float* in, int64_t n, const PhaseKernel& k, float* out) {
  const int s = SCALE > 0 ? SCALE : k.scale;
  int64_t lo = 0, hi = n;  // q in [lo, hi): every phase's taps lie inside the row
  for (int p = 0; p < s; ++p) {
    lo = std::max<int64_t>(lo, -k.base[p]);
    hi = std::min<int64_t>(hi, n - TAPS + 1 - k.base[p]);
  }
  lo = std::min(lo, n);
  hi = std::max(hi, lo);
  auto edge = [&](int64_t q) {
    for (int p = 0; p < s; ++p) {
      const float* w = &k.weights[static_cast<size_t>(p) * TAPS];
      float acc = 0;
      for (int t = 0; t < TAPS; ++t) {
        acc += w[t] * in[std::clamp<int64_t>(q + k.base[p] + t, 0, n - 1)];
      }
      out[q * s + p] = acc;
    }
  };
  for (int64_t q = 0; q < lo; ++q) edge(q);
  if constexpr (SCALE > 0) {
    float w[SCALE][TAPS];
    int64_t base[SCALE];
    for (int p = 0; p < SCALE; ++p) {
      base[p] = k.base[p];
      std::copy_n(&k.weights[static_cast<size_t>(p) * TAPS], TAPS, w[p]);
    }
    for (int64_t q = lo; q < hi; ++q) {
      for (int p = 0; p < SCALE; ++p) {
        const float* a = in + q + base[p];
        float acc = 0;
        for (int t = 0; t < TAPS; ++t) acc += w[p][t] * a[t];
        out[q * SCALE + p] = acc;
      }
    }
  } else {
    for (int p = 0; p < s; ++p) {
      const float* w = &k.weights[static_cast<size_t>(p) * TAPS];
      const int64_t base = k.base[p];
      for (int64_t q = lo; q < hi; ++q) {
        const float* a = in + q + base;
        float acc = 0;
        for (int t = 0; t < TAPS; ++t) acc += w[t] * a[t];
        out[q * s + p] = acc;
      }
    }
  }
  for (int64_t q = hi; q < n; ++q) edge(q);
}

template <int TAPS>
void UpscaleRowAnyScale(const float* in, int64_t n, const PhaseKernel& k, float* out) {
  if (k.scale == 2) {
    UpscaleRow<TAPS, 2>(in, n, k, out);
  } else if (k.scale == 4) {
    UpscaleRow<TAPS, 4>(in, n, k, out);
  } else {
    UpscaleRow<TAPS, 0>(in, n, k, out);
  }
}

// One output row as the weighted sum of 4 rows (bicubic), clamped to [0, 1] if asked.
// Built for AVX2 too, chosen at load time where the CPU has it. The row is stored with
// streaming stores: the frame goes to another thread through memory anyway, and they
// spare reading each destination line before it is overwritten.
REELFARM_CPU_CLONES
void ColumnSum4(const float* const* rows, const float* wy, int64_t n, bool clamp,
                float* __restrict o) {
  const float w0 = wy[0], w1 = wy[1], w2 = wy[2], w3 = wy[3];
  const float* __restrict a0 = rows[0];
  const float* __restrict a1 = rows[1];
  const float* __restrict a2 = rows[2];
  const float* __restrict a3 = rows[3];
  const float lo = clamp ? 0.0f : -std::numeric_limits<float>::infinity();
  const float hi = clamp ? 1.0f : std::numeric_limits<float>::infinity();
  auto one = [&](int64_t j) {
    const float v = (w0 * a0[j] + w1 * a1[j]) + (w2 * a2[j] + w3 * a3[j]);  // as below
    return std::min(std::max(v, lo), hi);
  };
  int64_t j = 0;
#if defined(__x86_64__)
  for (; j < n && (reinterpret_cast<uintptr_t>(o + j) & 15) != 0; ++j) o[j] = one(j);
  const __m128 vw0 = _mm_set1_ps(w0), vw1 = _mm_set1_ps(w1), vw2 = _mm_set1_ps(w2),
               vw3 = _mm_set1_ps(w3), vlo = _mm_set1_ps(lo), vhi = _mm_set1_ps(hi);
  for (; j + 4 <= n; j += 4) {
    __m128 v = _mm_add_ps(
        _mm_add_ps(_mm_mul_ps(vw0, _mm_loadu_ps(a0 + j)), _mm_mul_ps(vw1, _mm_loadu_ps(a1 + j))),
        _mm_add_ps(_mm_mul_ps(vw2, _mm_loadu_ps(a2 + j)), _mm_mul_ps(vw3, _mm_loadu_ps(a3 + j))));
    _mm_stream_ps(o + j, _mm_min_ps(_mm_max_ps(v, vlo), vhi));
  }
#endif
  for (; j < n; ++j) o[j] = one(j);
}

// The same with any number of taps (lanczos: 7).
REELFARM_CPU_CLONES
void ColumnSum(const float* const* rows, const float* wy, int taps, int64_t n, bool clamp,
               float* __restrict o) {
  std::fill(o, o + n, 0.0f);
  for (int t = 0; t < taps; ++t) {
    const float wt = wy[t];
    if (wt == 0.0f) continue;
    const float* __restrict a = rows[t];
    for (int64_t j = 0; j < n; ++j) o[j] += wt * a[j];
  }
  if (clamp) {
    for (int64_t j = 0; j < n; ++j) o[j] = std::min(std::max(o[j], 0.0f), 1.0f);
  }
}

// Output rows per work item: the input rows they need, upscaled along the row, stay
// in a buffer of a few hundred KB (in cache) while the column pass reads them.
constexpr int64_t kStripRows = 32;

// [N, C, H, W] float to [N, C, H * scale, W * scale], in strips of output rows: each
// strip upscales the input rows it needs along the row into a small buffer, then
// writes its output rows as weighted sums of those (clamped to [0, 1] when `clamp`).
// One pass over the output, no full-size intermediate; strips run on LibTorch's
// intra-op threads.
// Writes into `*into` when given (float, CPU, contiguous, of the output's shape).
at::Tensor SeparableUpscale(const at::Tensor& x, const PhaseKernel& k, bool clamp,
                            const at::Tensor* into = nullptr) {
  const at::Tensor in = x.to(at::kCPU, at::kFloat).contiguous();
  const int64_t n = in.size(0), c = in.size(1), h = in.size(2), w = in.size(3);
  const int s = k.scale, taps = k.taps;
  const int64_t out_w = w * s, out_h = h * s, planes = n * c;
  at::Tensor out = into ? *into : at::empty({n, c, out_h, out_w}, in.options());
  if (out.numel() == 0) return out;
  const float* src = in.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  const int min_base = *std::min_element(k.base.begin(), k.base.end());
  const int max_base = *std::max_element(k.base.begin(), k.base.end());
  const int64_t strips = (out_h + kStripRows - 1) / kStripRows;
  at::parallel_for(0, planes * strips, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> buf;
    std::vector<const float*> row(static_cast<size_t>(taps));
    for (int64_t item = begin; item < end; ++item) {
      const int64_t plane = item / strips;
      const int64_t y0 = (item % strips) * kStripRows;
      const int64_t y1 = std::min(out_h, y0 + kStripRows);
      const int64_t r0 = std::clamp<int64_t>(y0 / s + min_base, 0, h - 1);
      const int64_t r1 = std::clamp<int64_t>((y1 - 1) / s + max_base + taps - 1, 0, h - 1);
      buf.resize(static_cast<size_t>((r1 - r0 + 1) * out_w));
      for (int64_t r = r0; r <= r1; ++r) {
        const float* line = src + (plane * h + r) * w;
        float* o = buf.data() + (r - r0) * out_w;
        if (taps == 4) {
          UpscaleRowAnyScale<4>(line, w, k, o);
        } else {
          UpscaleRowAnyScale<2 * kLobes + 1>(line, w, k, o);
        }
      }
      for (int64_t y = y0; y < y1; ++y) {
        const int64_t q = y / s, p = y % s;
        const float* wy = &k.weights[static_cast<size_t>(p) * taps];
        for (int t = 0; t < taps; ++t) {
          row[t] = buf.data() + (std::clamp<int64_t>(q + k.base[p] + t, 0, h - 1) - r0) * out_w;
        }
        float* o = dst + (plane * out_h + y) * out_w;
        if (taps == 4) {
          ColumnSum4(row.data(), wy, out_w, clamp, o);
        } else {
          ColumnSum(row.data(), wy, taps, out_w, clamp, o);
        }
      }
#if defined(__x86_64__)
      _mm_sfence();  // the streaming stores are visible before the strip is done
#endif
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
    RETURN_IF_ERROR(CheckInput(x));
    try {
      return SeparableUpscale(x, Kernel(), /*clamp=*/true);
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat(name_, ": ", e.what_without_backtrace()));
    }
  }

  absl::Status UpscaleInto(const at::Tensor& x, at::Tensor& out) override {
    RETURN_IF_ERROR(CheckInput(x));
    if (!out.sizes().equals({x.size(0), 3, x.size(2) * scale_, x.size(3) * scale_}) ||
        out.scalar_type() != at::kFloat || !out.device().is_cpu() || !out.is_contiguous()) {
      return absl::InvalidArgumentError(
          absl::StrCat("model '", name_, "': the output tensor is not float [", x.size(0), ", 3, ",
                       x.size(2) * scale_, ", ", x.size(3) * scale_, "] on the CPU, contiguous"));
    }
    try {
      SeparableUpscale(x, Kernel(), /*clamp=*/true, &out);
      return absl::OkStatus();
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat(name_, ": ", e.what_without_backtrace()));
    }
  }

 private:
  absl::Status CheckInput(const at::Tensor& x) const {
    if (x.dim() != 4 || x.size(1) != 3) {
      return absl::InvalidArgumentError(absl::StrCat("model '", name_, "': input has ", x.dim(),
                                                     " dimensions, not [N, 3, H, W]"));
    }
    return absl::OkStatus();
  }
  PhaseKernel Kernel() const { return lanczos_ ? LanczosKernel(scale_) : BicubicKernel(scale_); }

  const std::string name_;
  const std::string digest_;
  const int scale_;
  const bool lanczos_;
};

}  // namespace

at::Tensor LanczosUpscale(const at::Tensor& x, int scale) {
  return SeparableUpscale(x, LanczosKernel(scale), /*clamp=*/false);
}

at::Tensor BicubicUpscale(const at::Tensor& x, int scale) {
  return SeparableUpscale(x, BicubicKernel(scale), /*clamp=*/false);
}

std::unique_ptr<Model> MakeBicubic(int scale) {
  return std::make_unique<ResamplerModel>("bicubic", scale, false);
}

std::unique_ptr<Model> MakeLanczos(int scale) {
  return std::make_unique<ResamplerModel>("lanczos", scale, true);
}

}  // namespace reelfarm::inference
