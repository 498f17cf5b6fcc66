// Trains models/shapes_t2v: a text-conditioned video denoiser (flow matching) on clips
// rendered by shapes_data.cc. Deterministic for a given --seed and --threads.
//
//   reelfarm-train-shapes --out models/shapes_t2v --steps 2000 --seed 1234 --threads 1
//
// Writes denoiser.pt, text_encoder.pt, decoder.pt, vocab.txt and model.json into --out
// (every --save-every steps, so an interrupted run leaves a usable package).
#include <ATen/Parallel.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/script.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "training/shapes_data.h"
#include "training/shapes_net.h"

namespace fs = std::filesystem;
using reelfarm::training::ShapesNetConfig;

namespace {

struct Recipe {
  std::string out = "models/shapes_t2v";
  int steps = 2000;
  int batch = 32;
  int size = 32;  // latent side (the shipped model draws at 1/8 of 256x256)
  double lr = 2e-3;
  double ema = 0.995;
  double cond_drop = 0.1;  // prompts dropped for classifier-free guidance
  uint64_t seed = 1234;
  int threads = 1;  // one intra-op thread: OpenMP barriers spin badly on a shared machine
  int save_every = 250;
  int max_tokens = 8;
  std::string resume;    // a package folder to start from (a second stage)
  double t_shift = 0.5;  // times are sigmoid(N(t_shift, 1)): > 0 trains noisier steps more
};

std::vector<int64_t> Tokenize(const std::string& prompt,
                              const std::map<std::string, int64_t>& vocab, int max_tokens) {
  std::vector<int64_t> ids(max_tokens, 0);
  std::istringstream in(prompt);
  std::string word;
  for (int i = 0; i < max_tokens && in >> word; ++i) {
    auto it = vocab.find(word);
    ids[i] = it == vocab.end() ? 1 : it->second;
  }
  return ids;
}

void Save(const Recipe& r, const ShapesNetConfig& cfg, torch::jit::Module& den,
          torch::jit::Module& enc, const std::vector<std::string>& vocab, int step, double seconds,
          double loss) {
  fs::create_directories(r.out);
  den.save((fs::path(r.out) / "denoiser.pt").string());
  enc.save((fs::path(r.out) / "text_encoder.pt").string());
  reelfarm::training::MakeUpsampleDecoder().save((fs::path(r.out) / "decoder.pt").string());
  std::ofstream v(fs::path(r.out) / "vocab.txt");
  for (const auto& w : vocab) v << w << "\n";
  nlohmann::ordered_json j = {{"kind", "denoiser"},
                              {"file", "denoiser.pt"},
                              {"prediction", "velocity"},
                              {"latent_channels", cfg.channels},
                              {"latent_frames", cfg.frames},
                              {"latent_scale", 256 / r.size},
                              {"stride", 4 * (256 / r.size)},
                              {"max_frames", 240},
                              {"decoder", "decoder.pt"},
                              {"conditioning",
                               {{"type", "text"},
                                {"encoder", "text_encoder.pt"},
                                {"tokenizer", "vocab.txt"},
                                {"max_tokens", r.max_tokens}}},
                              {"defaults",
                               {{"steps", 20},
                                {"guidance_scale", 5.0},
                                {"sampler", "euler"},
                                {"width", 256},
                                {"height", 256},
                                {"frames", 16}}},
                              {"training",
                               {{"program", "reelfarm-train-shapes"},
                                {"steps", step},
                                {"batch", r.batch},
                                {"latent_size", r.size},
                                {"lr", r.lr},
                                {"ema", r.ema},
                                {"cond_drop", r.cond_drop},
                                {"seed", r.seed},
                                {"threads", r.threads},
                                {"t_shift", r.t_shift},
                                {"resumed_from", r.resume},
                                {"seconds", std::round(seconds)},
                                {"final_loss", loss}}}};
  std::ofstream(fs::path(r.out) / "model.json") << j.dump(2) << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  Recipe r;
  CLI::App app{"Train the shapes_t2v demo denoiser"};
  app.add_option("--out", r.out, "package folder to write");
  app.add_option("--steps", r.steps);
  app.add_option("--batch", r.batch);
  app.add_option("--size", r.size, "latent side in training");
  app.add_option("--lr", r.lr);
  app.add_option("--seed", r.seed);
  app.add_option("--threads", r.threads);
  app.add_option("--save-every", r.save_every);
  app.add_option("--resume", r.resume, "start from this package's denoiser and text encoder");
  app.add_option("--t-shift", r.t_shift, "mean of the logit-normal time distribution");
  CLI11_PARSE(app, argc, argv);

  at::set_num_threads(r.threads);
  // Plain interpreter + eager autograd: the profiling executor's optimised graphs were
  // far slower to train here and make step times erratic.
  torch::jit::setGraphExecutorOptimize(false);
  at::manual_seed(r.seed);
  std::mt19937_64 rng(r.seed);

  ShapesNetConfig cfg;
  const std::vector<std::string> vocab = reelfarm::training::ShapeVocabulary();
  cfg.vocab = static_cast<int64_t>(vocab.size());
  std::map<std::string, int64_t> vocab_ids;
  for (size_t i = 0; i < vocab.size(); ++i) vocab_ids[vocab[i]] = static_cast<int64_t>(i);

  torch::jit::Module den = reelfarm::training::MakeShapesDenoiser(cfg);
  torch::jit::Module enc = reelfarm::training::MakeTextEncoder(cfg);
  if (!r.resume.empty()) {
    den = torch::jit::load((fs::path(r.resume) / "denoiser.pt").string());
    enc = torch::jit::load((fs::path(r.resume) / "text_encoder.pt").string());
  }
  std::vector<at::Tensor> params = reelfarm::training::TrainableParameters(den);
  for (const auto& p : reelfarm::training::TrainableParameters(enc)) params.push_back(p);
  std::vector<at::Tensor> m1, m2, ema;
  int64_t count = 0;
  for (auto& p : params) {
    p.requires_grad_(true);
    m1.push_back(at::zeros_like(p));
    m2.push_back(at::zeros_like(p));
    ema.push_back(p.detach().clone());
    count += p.numel();
  }
  std::printf("parameters: %lld\n", static_cast<long long>(count));

  const int T = static_cast<int>(cfg.frames), S = r.size, B = r.batch;
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  double avg = 0;
  auto save_ema = [&](int step) {
    at::AutoGradMode no_grad(false);
    std::vector<at::Tensor> live;
    for (size_t i = 0; i < params.size(); ++i) {
      live.push_back(params[i].detach().clone());
      params[i].detach().copy_(ema[i]);
    }
    Save(r, cfg, den, enc, vocab, step, elapsed(), avg);
    for (size_t i = 0; i < params.size(); ++i) params[i].detach().copy_(live[i]);
  };

  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int step = 1; step <= r.steps; ++step) {
    // Batch: clips in [-1, 1] as [B, 3, T, S, S], prompts as token ids.
    at::Tensor x0 = at::empty({B, T, S, S, 3});
    at::Tensor tokens = at::zeros({B, r.max_tokens}, at::kLong);
    for (int b = 0; b < B; ++b) {
      auto clip = reelfarm::training::RenderShapeClip(rng, T, S);
      std::memcpy(x0[b].data_ptr<float>(), clip.rgb.data(), clip.rgb.size() * sizeof(float));
      if (u(rng) >= r.cond_drop) {
        auto ids = Tokenize(clip.prompt, vocab_ids, r.max_tokens);
        std::memcpy(tokens[b].data_ptr<int64_t>(), ids.data(), ids.size() * sizeof(int64_t));
      }
    }
    x0 = x0.permute({0, 4, 1, 2, 3}).contiguous() * 2 - 1;
    at::Tensor t = at::sigmoid(at::randn({B}) + r.t_shift);  // logit-normal times
    at::Tensor noise = at::randn_like(x0);
    at::Tensor tt = t.view({B, 1, 1, 1, 1});
    at::Tensor xt = (1 - tt) * x0 + tt * noise;
    at::Tensor target = noise - x0;

    at::Tensor cond = enc.forward({tokens}).toTensor();
    at::Tensor pred = den.forward({xt, t, cond}).toTensor();
    at::Tensor loss = (pred - target).pow(2).mean();
    for (auto& p : params) p.mutable_grad() = at::Tensor();
    loss.backward();

    {
      at::AutoGradMode no_grad(false);
      // Global gradient-norm clip at 1, then Adam with warm-up and cosine decay.
      double norm2 = 0;
      for (auto& p : params) norm2 += p.grad().pow(2).sum().item<double>();
      const double clip = std::min(1.0, 1.0 / (std::sqrt(norm2) + 1e-6));
      const double warm = std::min(1.0, step / 100.0);
      const double lr = r.lr * warm * (0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * step / r.steps)));
      const double b1 = 0.9, b2 = 0.99;
      const double c1 = 1 - std::pow(b1, step), c2 = 1 - std::pow(b2, step);
      for (size_t i = 0; i < params.size(); ++i) {
        at::Tensor g = params[i].grad() * clip;
        m1[i].mul_(b1).add_(g, 1 - b1);
        m2[i].mul_(b2).addcmul_(g, g, 1 - b2);
        at::Tensor upd = (m1[i] / c1) / ((m2[i] / c2).sqrt() + 1e-8);
        params[i].detach().add_(upd, -lr);
        const double d = std::min(r.ema, (1.0 + step) / (10.0 + step));
        ema[i].mul_(d).add_(params[i].detach(), 1 - d);
      }
    }
    const double l = loss.item<double>();
    avg = step == 1 ? l : 0.98 * avg + 0.02 * l;
    if (step % 25 == 0 || step == 1) {
      std::printf("step %d loss %.4f avg %.4f  %.1fs\n", step, l, avg, elapsed());
      std::fflush(stdout);
    }
    if (step % r.save_every == 0 || step == r.steps) save_ema(step);
  }
  std::printf("done: %d steps in %.1fs\n", r.steps, elapsed());
  return 0;
}
