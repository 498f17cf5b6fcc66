#include "worker/inference/resamplers.h"

#include <ATen/ATen.h>

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace reelfarm::inference {
namespace {

constexpr int kLobes = 3;
constexpr int kTaps = 2 * kLobes + 1;  // offsets -3..3; the outermost weigh 0 or little

double Sinc(double x) {
  if (std::abs(x) < 1e-12) return 1.0;
  const double px = M_PI * x;
  return std::sin(px) / px;
}

double Lanczos(double x) { return std::abs(x) < kLobes ? Sinc(x) * Sinc(x / kLobes) : 0.0; }

// [scale, 1, 1, kTaps]: for output phase p, the weights of input offsets -3..3 around
// the input pixel q where output pixel q * scale + p lies.
at::Tensor Kernel(int scale, const at::TensorOptions& opts) {
  std::vector<float> w(static_cast<size_t>(scale) * kTaps);
  for (int p = 0; p < scale; ++p) {
    const double delta = (p + 0.5) / scale - 0.5;  // position relative to pixel q
    double sum = 0;
    for (int t = -kLobes; t <= kLobes; ++t) sum += Lanczos(delta - t);
    for (int t = -kLobes; t <= kLobes; ++t) {
      w[p * kTaps + (t + kLobes)] = static_cast<float>(Lanczos(delta - t) / sum);
    }
  }
  return at::from_blob(w.data(), {scale, 1, 1, kTaps}, at::kFloat).clone().to(opts);
}

// Upscales the last dimension of [B, 1, H, W] by `scale` -> [B, 1, H, W * scale].
at::Tensor UpscaleWidth(const at::Tensor& x, const at::Tensor& kernel, int scale) {
  at::Tensor padded = at::replication_pad2d(x, {kLobes, kLobes, 0, 0});
  at::Tensor phases = at::conv2d(padded, kernel);  // [B, scale, H, W]
  const int64_t b = x.size(0), h = x.size(2), w = x.size(3);
  return phases.permute({0, 2, 3, 1}).reshape({b, 1, h, w * scale});
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
      at::Tensor y = lanczos_ ? LanczosUpscale(x, scale_)
                              : at::upsample_bicubic2d(x, {x.size(2) * scale_, x.size(3) * scale_},
                                                       /*align_corners=*/false);
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
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const at::Tensor kernel = Kernel(scale, x.options().dtype(at::kFloat));
  at::Tensor planes = x.to(at::kFloat).reshape({n * c, 1, h, w});
  at::Tensor wide = UpscaleWidth(planes, kernel, scale);                     // [B,1,H,W*s]
  at::Tensor tall = UpscaleWidth(wide.transpose(2, 3), kernel, scale);     // [B,1,W*s,H*s]
  return tall.transpose(2, 3).reshape({n, c, h * scale, w * scale}).contiguous();
}

std::unique_ptr<Model> MakeBicubic(int scale) {
  return std::make_unique<ResamplerModel>("bicubic", scale, false);
}

std::unique_ptr<Model> MakeLanczos(int scale) {
  return std::make_unique<ResamplerModel>("lanczos", scale, true);
}

}  // namespace reelfarm::inference
