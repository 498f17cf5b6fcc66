#include "worker/inference/generator.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/script.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/storage.h"
#include "worker/inference/model.h"

namespace reelfarm::inference {
namespace {

constexpr double kPi = 3.14159265358979323846;

absl::Status NotFinite(const common::ModelManifest& m, const std::string& where) {
  return absl::FailedPreconditionError(
      absl::StrCat("model '", m.name, "' produced NaN or Inf values ", where,
                   "; the take is not retried: check the model's export and the spec's values"));
}

}  // namespace

std::vector<double> SamplerTimes(const std::string& sampler, int steps, double start) {
  std::vector<double> t(steps + 1);
  for (int i = 0; i <= steps; ++i) {
    const double u = start * (1.0 - static_cast<double>(i) / steps);
    if (sampler == "ddim") {
      // Cosine schedule: alpha_bar(u) = cos^2(pi/2 (u + s) / (1 + s)); the flow time
      // with the same signal-to-noise ratio is sigma / (alpha + sigma).
      const double s = 0.008;
      const double a = std::cos(kPi / 2 * (u + s) / (1 + s));
      const double alpha = std::max(a, 0.0), sigma = std::sqrt(std::max(0.0, 1 - a * a));
      t[i] = u == 0 ? 0.0 : sigma / (alpha + sigma);
    } else {
      t[i] = u;
    }
  }
  return t;
}

struct Generator::Impl {
  common::ModelManifest manifest;
  c10::Device device{c10::kCPU};
  std::string digest;
  torch::jit::Module denoiser;
  std::optional<torch::jit::Module> decoder;
  std::optional<torch::jit::Module> encoder;  // text encoder
  std::map<std::string, int64_t> vocab;

  at::Tensor Condition(const std::string& prompt, bool unconditional) {
    const common::ModelManifest& m = manifest;
    if (m.conditioning == "text") {
      std::vector<int64_t> ids = TokenizeWith(prompt);
      at::Tensor tokens =
          at::from_blob(ids.data(), {1, static_cast<int64_t>(ids.size())}, at::kLong)
              .clone()
              .to(device);
      return encoder->forward({tokens}).toTensor().to(at::kFloat);
    }
    if (m.conditioning == "class") {
      at::Tensor onehot = at::zeros({1, static_cast<int64_t>(m.class_labels.size())});
      if (!unconditional) {
        for (size_t i = 0; i < m.class_labels.size(); ++i) {
          if (m.class_labels[i] == prompt) onehot[0][static_cast<int64_t>(i)] = 1.0;
        }
      }
      return onehot.to(device);
    }
    return at::zeros({1, 0}, at::TensorOptions().device(device));
  }

  std::vector<int64_t> TokenizeWith(const std::string& prompt) const {
    std::vector<int64_t> ids(manifest.max_tokens, 0);
    std::string clean;
    for (char c : prompt) {
      clean += std::isalnum(static_cast<unsigned char>(c))
                   ? static_cast<char>(std::tolower(static_cast<unsigned char>(c)))
                   : ' ';
    }
    std::istringstream in(clean);
    std::string word;
    for (int i = 0; i < manifest.max_tokens && in >> word; ++i) {
      auto it = vocab.find(word);
      ids[i] = it == vocab.end() ? 1 : it->second;
    }
    return ids;
  }
};

Generator::Generator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Generator::~Generator() = default;
const std::string& Generator::digest() const { return impl_->digest; }
const common::ModelManifest& Generator::manifest() const { return impl_->manifest; }

std::vector<int64_t> Generator::Tokenize(const std::string& prompt) const {
  return impl_->TokenizeWith(prompt);
}

absl::StatusOr<std::unique_ptr<Generator>> Generator::Load(const common::ModelManifest& m,
                                                           const std::string& device) {
  if (m.kind != "denoiser") {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", m.name, "' is a ", m.kind, ", not a denoiser"));
  }
  auto impl = std::make_unique<Impl>();
  impl->manifest = m;
  ASSIGN_OR_RETURN(impl->device, ParseDevice(device));
  ASSIGN_OR_RETURN(std::string sha, common::Sha256File(m.dir / m.file));
  impl->digest = "sha256:" + sha;
  std::string file;
  try {
    file = m.file;
    impl->denoiser = torch::jit::load((m.dir / m.file).string(), impl->device);
    impl->denoiser.eval();
    if (!m.decoder.empty()) {
      file = m.decoder;
      impl->decoder = torch::jit::load((m.dir / m.decoder).string(), impl->device);
      impl->decoder->eval();
    }
    if (m.conditioning == "text") {
      file = m.text_encoder;
      impl->encoder = torch::jit::load((m.dir / m.text_encoder).string(), impl->device);
      impl->encoder->eval();
    }
  } catch (const c10::Error& e) {
    return absl::FailedPreconditionError(absl::StrCat("model '", m.name, "': cannot load '", file,
                                                      "': ", e.what_without_backtrace()));
  }
  if (m.conditioning == "text") {
    std::ifstream in(m.dir / m.tokenizer);
    std::string line;
    for (int64_t i = 0; std::getline(in, line); ++i) impl->vocab.emplace(line, i);
    if (impl->vocab.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("model '", m.name, "': tokenizer '", m.tokenizer, "' is empty"));
    }
  }
  return std::unique_ptr<Generator>(new Generator(std::move(impl)));
}

absl::StatusOr<GeneratedClip> Generator::Generate(const GenerateRequest& req,
                                                  const std::function<bool()>& cancelled,
                                                  const std::function<void(int)>& step_done) {
  const common::ModelManifest& m = impl_->manifest;
  const c10::Device dev = impl_->device;
  if (req.steps < 1 || req.width % m.stride != 0 || req.height % m.stride != 0 || req.frames < 1 ||
      req.frames > m.max_frames) {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", m.name, "': ", req.width, "x", req.height, ", ", req.frames,
                     " frames, ", req.steps, " steps is outside what it makes (stride ", m.stride,
                     ", max_frames ", m.max_frames, ")"));
  }
  if (std::find(common::kSamplers.begin(), common::kSamplers.end(), req.sampler) ==
      common::kSamplers.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sampler '", req.sampler, "' is not one of: ", absl::StrJoin(common::kSamplers, ", ")));
  }
  const int64_t T = m.latent_frames > 0 ? m.latent_frames : req.frames;
  const int64_t h = req.height / m.latent_scale, w = req.width / m.latent_scale;
  try {
    // All the noise of a take comes from this generator, in a fixed order.
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(req.seed));
    at::Tensor noise = at::randn({1, m.latent_channels, T, h, w}, gen).to(dev);
    const double start = req.init_rgb.empty() ? 1.0 : req.strength;
    at::Tensor x = noise;
    if (!req.init_rgb.empty()) {
      if (m.latent_channels != 3) {  // refused at submit; a worker does not trust that
        return absl::InvalidArgumentError(
            absl::StrCat("model '", m.name, "' has ", m.latent_channels,
                         "-channel latents and cannot start from an init image"));
      }
      // The init image in latent space: resized to the latent size, repeated over time,
      // in [-1, 1]. Only for models whose latents are RGB (checked at submit).
      at::Tensor img = at::from_blob(const_cast<float*>(req.init_rgb.data()),
                                     {1, 3, req.init_height, req.init_width}, at::kFloat);
      img = at::upsample_bilinear2d(img, {h, w}, false) * 2 - 1;
      at::Tensor x0 = img.unsqueeze(2).expand({1, 3, T, h, w}).to(dev);
      x = (1 - start) * x0 + start * noise;
    }
    const at::Tensor cond = impl_->Condition(req.prompt, false);
    const bool guided = m.conditioning != "none" && req.guidance_scale != 1.0;
    at::Tensor both_cond;
    if (guided) both_cond = at::cat({cond, impl_->Condition(req.negative_prompt, true)}, 0);
    const std::vector<double> times = SamplerTimes(req.sampler, req.steps, start);
    for (int i = 0; i < req.steps; ++i) {
      if (cancelled && cancelled()) return absl::CancelledError("take cancelled");
      const double t = times[i], t_next = times[i + 1];
      at::Tensor v;
      if (guided) {
        at::Tensor out =
            impl_->denoiser.forward({at::cat({x, x}, 0), at::full({2}, t).to(dev), both_cond})
                .toTensor();
        at::Tensor vc = out[0].unsqueeze(0), vu = out[1].unsqueeze(0);
        v = vu + req.guidance_scale * (vc - vu);
      } else {
        v = impl_->denoiser.forward({x, at::full({1}, t).to(dev), cond}).toTensor();
      }
      if (!v.sizes().equals(x.sizes())) {
        return absl::InvalidArgumentError(absl::StrCat(
            "model '", m.name, "': the denoiser returned ", c10::str(v.sizes()), " for latents of ",
            c10::str(x.sizes()), "; it must return the same shape"));
      }
      if (!at::isfinite(v).all().item<bool>()) {
        return NotFinite(m, absl::StrCat("at step ", i + 1, " of ", req.steps));
      }
      if (req.sampler == "euler") {
        x = x + (t_next - t) * v;  // dx/dt = v
      } else {
        // DDIM (eta 0): predict x0 and the noise, re-noise to the next time.
        at::Tensor x0 = x - t * v;
        at::Tensor eps = x + (1 - t) * v;
        x = (1 - t_next) * x0 + t_next * eps;
      }
      if (step_done) step_done(i + 1);
    }
    at::Tensor frames;  // [F, 3, H, W] in [0, 1]
    if (impl_->decoder) {
      frames = impl_->decoder
                   ->forward({x, static_cast<int64_t>(req.frames), static_cast<int64_t>(req.height),
                              static_cast<int64_t>(req.width)})
                   .toTensor();
    } else {
      frames = ((x[0].permute({1, 0, 2, 3}) + 1) * 0.5);
    }
    frames = frames.to(at::kCPU, at::kFloat).contiguous();
    if (!frames.sizes().equals({req.frames, 3, req.height, req.width})) {
      return absl::InvalidArgumentError(
          absl::StrCat("model '", m.name, "': the decoder returned ", c10::str(frames.sizes()),
                       "; expected [", req.frames, ", 3, ", req.height, ", ", req.width, "]"));
    }
    if (!at::isfinite(frames).all().item<bool>()) return NotFinite(m, "in the decoded frames");
    frames = frames.clamp(0, 1);
    GeneratedClip clip;
    clip.width = req.width;
    clip.height = req.height;
    const int64_t n = 3 * static_cast<int64_t>(req.width) * req.height;
    for (int f = 0; f < req.frames; ++f) {
      const float* p = frames[f].data_ptr<float>();
      clip.frames.emplace_back(p, p + n);
    }
    return clip;
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", m.name, "': ", e.what_without_backtrace()));
  }
}

}  // namespace reelfarm::inference
