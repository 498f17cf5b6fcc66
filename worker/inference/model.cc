#include "worker/inference/model.h"

#include <ATen/ATen.h>
#include <torch/cuda.h>
#include <torch/script.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/model_manifest.h"
#include "common/storage.h"

namespace reelfarm::inference {
namespace {

std::string ShapeString(const at::Tensor& t) {
  return absl::StrCat("[", absl::StrJoin(t.sizes(), ", "), "]");
}

absl::Status CheckInput(const at::Tensor& x, const std::string& name) {
  if (x.dim() != 4 || x.size(1) != 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model '", name, "': input shape ", ShapeString(x), " is not [N, 3, H, W]"));
  }
  return absl::OkStatus();
}

class BicubicModel final : public Model {
 public:
  explicit BicubicModel(int scale) : scale_(scale) {}
  const std::string& name() const override { return name_; }
  int scale() const override { return scale_; }
  const std::string& digest() const override { return digest_; }

  absl::StatusOr<at::Tensor> Upscale(const at::Tensor& x) override {
    RETURN_IF_ERROR(CheckInput(x, name_));
    try {
      at::Tensor y = at::upsample_bicubic2d(x, {x.size(2) * scale_, x.size(3) * scale_},
                                            /*align_corners=*/false);
      return y.clamp_(0.0, 1.0);
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat("bicubic: ", e.what_without_backtrace()));
    }
  }

 private:
  const int scale_;
  const std::string name_ = "bicubic";
  const std::string digest_ = "builtin:bicubic";
};

class TorchScriptModel final : public Model {
 public:
  TorchScriptModel(common::ModelManifest manifest, torch::jit::Module module,
                   std::string digest, c10::Device device)
      : manifest_(std::move(manifest)),
        module_(std::move(module)),
        digest_(std::move(digest)),
        device_(device) {}

  const std::string& name() const override { return manifest_.name; }
  int scale() const override { return manifest_.scale; }
  const std::string& digest() const override { return digest_; }

  absl::StatusOr<at::Tensor> Upscale(const at::Tensor& x) override {
    RETURN_IF_ERROR(CheckInput(x, manifest_.name));
    at::Tensor y;
    try {
      at::Tensor in = x.to(device_);
      const double lo = manifest_.input_min, hi = manifest_.input_max;
      if (lo != 0.0 || hi != 1.0) in = in * (hi - lo) + lo;
      y = module_.forward({in}).toTensor();
      if (lo != 0.0 || hi != 1.0) y = (y - lo) / (hi - lo);
    } catch (const c10::Error& e) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model '", manifest_.name, "' rejected input ", ShapeString(x), ": ",
          e.what_without_backtrace()));
    } catch (const std::exception& e) {
      // A TorchScript `raise`/`assert` is a torch::jit::JITException, not a c10::Error.
      return absl::InvalidArgumentError(absl::StrCat(
          "model '", manifest_.name, "' rejected input ", ShapeString(x), ": ", e.what()));
    }
    const int s = manifest_.scale;
    if (y.dim() != 4 || y.size(0) != x.size(0) || y.size(1) != 3 ||
        y.size(2) != x.size(2) * s || y.size(3) != x.size(3) * s) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model '", manifest_.name, "' returned shape ", ShapeString(y), " for input ",
          ShapeString(x), "; its manifest says scale ", s, ", so expected [", x.size(0),
          ", 3, ", x.size(2) * s, ", ", x.size(3) * s, "]"));
    }
    return y.to(at::kFloat).clamp_(0.0, 1.0);
  }

 private:
  const common::ModelManifest manifest_;
  torch::jit::Module module_;
  const std::string digest_;
  const c10::Device device_;
};

}  // namespace

std::vector<std::string> AvailableModels(const std::vector<std::string>& search_path) {
  std::vector<std::string> names = common::BuiltinModels();
  for (const auto& m : common::FindModelPackages(search_path)) names.push_back(m.name);
  return names;
}

absl::StatusOr<std::unique_ptr<Model>> LoadModel(const std::string& name, int scale,
                                                 const std::vector<std::string>& search_path,
                                                 const std::string& device) {
  c10::Device dev(c10::kCPU);
  try {
    dev = c10::Device(device);
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(absl::StrCat("device '", device,
                                                   "' is not valid; use cpu or cuda:N"));
  }
  if (dev.is_cuda() && !torch::cuda::is_available()) {
    return absl::FailedPreconditionError(
        absl::StrCat("device '", device, "': this LibTorch has no CUDA device"));
  }
  if (name == "bicubic") {
    if (scale < 2 || scale > 4) {
      return absl::InvalidArgumentError(
          absl::StrCat("model 'bicubic': scale ", scale, " is not one of 2, 3, 4"));
    }
    return std::make_unique<BicubicModel>(scale);
  }
  for (auto& m : common::FindModelPackages(search_path)) {
    if (m.name != name) continue;
    if (m.scale != scale) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model '", name, "' is made for scale ", m.scale, ", not ", scale));
    }
    const auto file = m.dir / m.file;
    ASSIGN_OR_RETURN(std::string sha, common::Sha256File(file));
    try {
      torch::jit::Module module = torch::jit::load(file.string(), dev);
      module.eval();
      return std::make_unique<TorchScriptModel>(std::move(m), std::move(module),
                                                "sha256:" + sha, dev);
    } catch (const c10::Error& e) {
      return absl::FailedPreconditionError(absl::StrCat(
          "model '", name, "': cannot load '", file.string(), "': ",
          e.what_without_backtrace()));
    }
  }
  return absl::NotFoundError(absl::StrCat("model '", name, "' not found on model path"));
}

}  // namespace reelfarm::inference
