#include "worker/inference/model.h"

#include <ATen/ATen.h>
#include <torch/cuda.h>
#include <torch/script.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/model_manifest.h"
#include "common/storage.h"
#include "worker/inference/resamplers.h"
#include "worker/inference/tiling.h"

#ifdef REELFARM_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace reelfarm::inference {
namespace {

std::string ShapeString(const at::Tensor& t) {
  return absl::StrCat("[", absl::StrJoin(t.sizes(), ", "), "]");
}

class TorchScriptModel final : public Model {
 public:
  TorchScriptModel(common::ModelManifest manifest, torch::jit::Module module, std::string digest,
                   c10::Device device)
      : manifest_(std::move(manifest)),
        module_(std::move(module)),
        digest_(std::move(digest)),
        device_(device) {}

  const std::string& name() const override { return manifest_.name; }
  int scale() const override { return manifest_.scale; }
  const std::string& digest() const override { return digest_; }

  int temporal_window() const override { return manifest_.temporal_window; }
  int batch() const override { return manifest_.batch; }
  int tile() const override { return manifest_.tile; }
  int64_t TakeNonFiniteSamples() override { return std::exchange(nonfinite_, 0); }

  absl::StatusOr<at::Tensor> Upscale(const at::Tensor& x) override {
    const int64_t channels = 3 * manifest_.temporal_window;
    if (x.dim() != 4 || x.size(1) != channels) {
      return absl::InvalidArgumentError(absl::StrCat("model '", manifest_.name, "': input shape ",
                                                     ShapeString(x), " is not [N, ", channels,
                                                     ", H, W]"));
    }
    return UpscaleTiled([this](const at::Tensor& t) { return Forward(t); }, x, manifest_.scale,
                        manifest_.tile, manifest_.tile_overlap);
  }

 private:
  // One forward call on the device, with the manifest's value range; the result is
  // checked against the manifest's scale and comes back as float on the CPU.
  absl::StatusOr<at::Tensor> Forward(const at::Tensor& x) {
    at::Tensor y;
    try {
      at::Tensor in = ToDevice(x);
      const double lo = manifest_.input_min, hi = manifest_.input_max;
      if (lo != 0.0 || hi != 1.0) in = in * (hi - lo) + lo;
      y = module_.forward({in}).toTensor();
      if (lo != 0.0 || hi != 1.0) y = (y - lo) / (hi - lo);
    } catch (const c10::Error& e) {
      return absl::InvalidArgumentError(absl::StrCat("model '", manifest_.name, "' rejected input ",
                                                     ShapeString(x), ": ",
                                                     e.what_without_backtrace()));
    } catch (const std::exception& e) {
      // A TorchScript `raise`/`assert` is a torch::jit::JITException, not a c10::Error.
      return absl::InvalidArgumentError(absl::StrCat("model '", manifest_.name, "' rejected input ",
                                                     ShapeString(x), ": ", e.what()));
    }
    const int s = manifest_.scale;
    if (y.dim() != 4 || y.size(0) != x.size(0) || y.size(1) != 3 || y.size(2) != x.size(2) * s ||
        y.size(3) != x.size(3) * s) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model '", manifest_.name, "' returned shape ", ShapeString(y), " for input ",
          ShapeString(x), "; its manifest says scale ", s, ", so expected [", x.size(0), ", 3, ",
          x.size(2) * s, ", ", x.size(3) * s, "]"));
    }
    try {
      // NaN (a broken model) becomes 0, as frames are never NaN (media.h).
      at::Tensor host = ToHost(y);
      nonfinite_ += host.numel() - at::isfinite(host).sum().item<int64_t>();
      return at::nan_to_num_(host, 0.0, 1.0, 0.0).clamp_(0.0, 1.0);
    } catch (const c10::Error& e) {
      return absl::InternalError(
          absl::StrCat("model '", manifest_.name,
                       "': copying the result back failed: ", e.what_without_backtrace()));
    }
  }

#ifdef REELFARM_WITH_CUDA
  // CUDA: pinned host buffer, non-blocking copies on this instance's own stream, and
  // half precision when the manifest allows it.
  at::Tensor ToDevice(const at::Tensor& x) {
    if (!device_.is_cuda()) return x.to(device_);
    if (!stream_) stream_ = c10::cuda::getStreamFromPool(false, device_.index());
    c10::cuda::CUDAStreamGuard guard(*stream_);
    at::Tensor in = x.is_pinned() ? x : x.pin_memory();
    in = in.to(device_, /*non_blocking=*/true);
    return manifest_.fp16 ? in.to(at::kHalf) : in;
  }
  at::Tensor ToHost(const at::Tensor& y) {
    if (!device_.is_cuda()) return y.to(at::kFloat);
    c10::cuda::CUDAStreamGuard guard(*stream_);
    at::Tensor host =
        at::empty(y.sizes(), y.options().device(at::kCPU).dtype(at::kFloat).pinned_memory(true));
    host.copy_(y.to(at::kFloat), /*non_blocking=*/true);
    stream_->synchronize();
    return host;
  }
  std::optional<c10::cuda::CUDAStream> stream_;
#else
  at::Tensor ToDevice(const at::Tensor& x) { return x.to(device_); }
  at::Tensor ToHost(const at::Tensor& y) { return y.to(at::kCPU).to(at::kFloat); }
#endif

  const common::ModelManifest manifest_;
  torch::jit::Module module_;
  const std::string digest_;
  const c10::Device device_;
  int64_t nonfinite_ = 0;  // since TakeNonFiniteSamples (one thread uses a model)
};

}  // namespace

absl::Status Model::UpscaleInto(const at::Tensor& frames, at::Tensor& out) {
  absl::StatusOr<at::Tensor> y = Upscale(frames);
  if (!y.ok()) return y.status();
  if (!y->sizes().equals(out.sizes())) {
    return absl::InvalidArgumentError(absl::StrCat("model '", name(), "' returned shape ",
                                                   ShapeString(*y), " where ", ShapeString(out),
                                                   " was expected"));
  }
  out.copy_(*y);
  return absl::OkStatus();
}

std::vector<std::string> AvailableModels(const std::vector<std::string>& search_path) {
  std::vector<std::string> names = common::BuiltinModels();
  for (const auto& m : common::FindModelPackages(search_path)) names.push_back(m.name);
  return names;
}

absl::StatusOr<c10::Device> ParseDevice(const std::string& device) {
  c10::Device dev(c10::kCPU);
  try {
    dev = c10::Device(device);
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("device '", device, "' is not valid; use cpu or cuda:N"));
  }
  if (dev.is_cuda() && !torch::cuda::is_available()) {
    return absl::FailedPreconditionError(
        absl::StrCat("device '", device, "': this LibTorch has no CUDA device"));
  }
  return dev;
}

absl::StatusOr<std::unique_ptr<Model>> LoadModel(const std::string& name, int scale,
                                                 const std::vector<std::string>& search_path,
                                                 const std::string& device) {
  ASSIGN_OR_RETURN(const c10::Device dev, ParseDevice(device));
  if (name == "bicubic" || name == "lanczos") {
    const std::vector<int>& scales = common::BuiltinScales();
    if (std::find(scales.begin(), scales.end(), scale) == scales.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model '", name, "': scale ", scale, " is not one of ", absl::StrJoin(scales, ", ")));
    }
    return name == "bicubic" ? MakeBicubic(scale) : MakeLanczos(scale);
  }
  for (const auto& package : common::FindModelPackages(search_path)) {
    if (package.name != name) continue;
    if (package.kind != "upscaler") {
      return absl::InvalidArgumentError(absl::StrCat(
          "model '", name, "' is a ", package.kind, ", not an upscaler; use it in a generate job"));
    }
    ASSIGN_OR_RETURN(common::ModelManifest m, common::ForScale(package, scale));
    if (m.tile == 0 && m.tile_memory_per_pixel > 0) {
      absl::StatusOr<int64_t> free = FreeDeviceMemory(device);
      if (!free.ok()) {
        return absl::FailedPreconditionError(
            absl::StrCat("model '", name, "': its tile is chosen from free device memory, but ",
                         free.status().message()));
      }
      m.tile = TileForMemory(*free, m.tile_memory_per_pixel, m.batch, m.tile_overlap);
    }
    const auto file = m.dir / m.file;
    ASSIGN_OR_RETURN(std::string sha, common::Sha256File(file));
    try {
      torch::jit::Module module = torch::jit::load(file.string(), dev);
      module.eval();
      if (dev.is_cuda() && m.fp16) module.to(at::kHalf);
      if (!dev.is_cuda()) {
        // Frozen and optimised for inference on the CPU (constants folded, convolutions
        // with prepacked oneDNN weights): ~1.5-2x faster convolutions than the module
        // as saved. A module the passes do not take runs as it was.
        try {
          module = torch::jit::optimize_for_inference(module);
        } catch (const c10::Error&) {
          // Runs unoptimised; the result is the same.
        }
      }
      return std::make_unique<TorchScriptModel>(std::move(m), std::move(module), "sha256:" + sha,
                                                dev);
    } catch (const c10::Error& e) {
      return absl::FailedPreconditionError(absl::StrCat(
          "model '", name, "': cannot load '", file.string(), "': ", e.what_without_backtrace()));
    }
  }
  return absl::NotFoundError(absl::StrCat("model '", name, "' not found on model path"));
}

}  // namespace reelfarm::inference
