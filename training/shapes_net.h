// The shipped demo model's networks, written as TorchScript (torch::jit::Module::define)
// so that the module the training program optimises is the very module it saves: no
// export step, no Python. Contracts are the generic ones in models/README.md.
#pragma once

#include <torch/script.h>

#include <cstdint>

namespace reelfarm::training {

struct ShapesNetConfig {
  int64_t channels = 3;  // latent channels (RGB in [-1, 1] for this model)
  int64_t frames = 8;    // latent frames; time rides in the channel dimension
  int64_t width1 = 32;   // feature widths at full, 1/2 and 1/4 latent resolution
  int64_t width2 = 64;
  int64_t width3 = 96;
  int64_t cond_dim = 64;  // text embedding size
  int64_t emb_dim = 128;  // time+text embedding inside the denoiser
  int64_t vocab = 16;
};

// forward(x: [B, C, T, h, w], t: [B] in [0, 1], cond: [B, cond_dim]) -> velocity, x's
// shape (flow matching: x_t = (1 - t) x_0 + t noise, v = noise - x_0). h, w multiples of 4.
torch::jit::Module MakeShapesDenoiser(const ShapesNetConfig& cfg);

// forward(tokens: [B, L] int64, 0 = padding) -> [B, cond_dim]; all padding = the
// unconditional embedding used for classifier-free guidance.
torch::jit::Module MakeTextEncoder(const ShapesNetConfig& cfg);

// forward(z: [1, C, T, h, w], frames: int, height: int, width: int) -> [frames, 3,
// height, width] in [0, 1]: trilinear resampling of the latent clip, no parameters.
torch::jit::Module MakeUpsampleDecoder();

// Every trainable tensor of `m` and its submodules.
std::vector<at::Tensor> TrainableParameters(const torch::jit::Module& m);

}  // namespace reelfarm::training
