#include "training/shapes_net.h"

#include <cmath>
#include <string>

namespace reelfarm::training {
namespace {

// PyTorch's default init: uniform in +-1/sqrt(fan_in).
at::Tensor Init(std::vector<int64_t> shape, int64_t fan_in, double gain = 1.0) {
  const double bound = gain / std::sqrt(static_cast<double>(fan_in));
  return (at::rand(shape) * 2 - 1) * bound;
}

void AddConv(torch::jit::Module& m, const std::string& name, int64_t in, int64_t out,
             double gain = 1.0) {
  m.register_parameter(name + "_w", Init({out, in, 3, 3}, in * 9, gain), false);
  m.register_parameter(name + "_b", at::zeros({out}), false);
}

void AddLinear(torch::jit::Module& m, const std::string& name, int64_t in, int64_t out) {
  m.register_parameter(name + "_w", Init({out, in}, in), false);
  m.register_parameter(name + "_b", at::zeros({out}), false);
}

void AddNorm(torch::jit::Module& m, const std::string& name, int64_t ch) {
  m.register_parameter(name + "_w", at::ones({ch}), false);
  m.register_parameter(name + "_b", at::zeros({ch}), false);
}

// Residual block with FiLM from the embedding. Class names are unique per block so
// that one saved file holds distinct types.
torch::jit::Module ResBlock(const std::string& name, int64_t ch, int64_t emb) {
  torch::jit::Module m("ResBlock_" + name);
  AddNorm(m, "n1", ch);
  AddConv(m, "c1", ch, ch);
  AddLinear(m, "film", emb, 2 * ch);
  AddNorm(m, "n2", ch);
  AddConv(m, "c2", ch, ch, /*gain=*/0.1);
  m.define(R"(
def forward(self, x, e):
    h = torch.group_norm(x, 8, self.n1_w, self.n1_b, 1e-5, False)
    h = torch.conv2d(h * torch.sigmoid(h), self.c1_w, self.c1_b, [1, 1], [1, 1])
    ss = torch.linear(e, self.film_w, self.film_b)
    scale, shift = ss.chunk(2, 1)
    h = torch.group_norm(h, 8, self.n2_w, self.n2_b, 1e-5, False)
    h = h * (1.0 + scale[:, :, None, None]) + shift[:, :, None, None]
    h = torch.conv2d(h * torch.sigmoid(h), self.c2_w, self.c2_b, [1, 1], [1, 1])
    return x + h
)");
  return m;
}

}  // namespace

torch::jit::Module MakeShapesDenoiser(const ShapesNetConfig& cfg) {
  const int64_t io = cfg.channels * cfg.frames;
  torch::jit::Module m("ShapesDenoiser");
  m.register_attribute("frames", c10::IntType::get(), cfg.frames);
  m.register_attribute("emb_half", c10::IntType::get(), cfg.emb_dim / 2);
  AddLinear(m, "e1", cfg.emb_dim + cfg.cond_dim, cfg.emb_dim);
  AddLinear(m, "e2", cfg.emb_dim, cfg.emb_dim);
  // A low-resolution clip predicted from the text alone, fed in beside the latents: a
  // direct, position-aware path from the prompt to where the shape is in each frame.
  // Without it the network learnt colour but ignored the direction words.
  m.register_attribute("io", c10::IntType::get(), io);
  AddLinear(m, "prior", cfg.cond_dim, io * 8 * 8);
  AddConv(m, "inp", 2 * io + 2, cfg.width1);  // latents, prior, x and y coordinates
  m.register_module("d1", ResBlock("d1", cfg.width1, cfg.emb_dim));
  AddConv(m, "down1", cfg.width1, cfg.width2);
  m.register_module("d2", ResBlock("d2", cfg.width2, cfg.emb_dim));
  AddConv(m, "down2", cfg.width2, cfg.width3);
  m.register_module("m1", ResBlock("m1", cfg.width3, cfg.emb_dim));
  m.register_module("m2", ResBlock("m2", cfg.width3, cfg.emb_dim));
  AddConv(m, "up2", cfg.width3, cfg.width2);
  m.register_module("u2", ResBlock("u2", cfg.width2, cfg.emb_dim));
  AddConv(m, "up1", cfg.width2, cfg.width1);
  m.register_module("u1", ResBlock("u1", cfg.width1, cfg.emb_dim));
  AddNorm(m, "nout", cfg.width1);
  AddConv(m, "out", cfg.width1, io, /*gain=*/0.1);
  m.define(R"(
def embed(self, t, cond):
    freqs = torch.exp(torch.arange(self.emb_half).float() * (-9.21 / self.emb_half))
    a = t[:, None] * 1000.0 * freqs[None, :]
    e = torch.cat([torch.sin(a), torch.cos(a), cond], 1)
    e = torch.linear(e, self.e1_w, self.e1_b)
    e = torch.linear(e * torch.sigmoid(e), self.e2_w, self.e2_b)
    return e * torch.sigmoid(e)

def up(self, x):
    return x.repeat_interleave(2, 2).repeat_interleave(2, 3)

def forward(self, x, t, cond):
    b, c, f, hh, ww = x.shape
    e = self.embed(t, cond)
    # Coordinate channels: where to draw depends on the prompt's direction, which a
    # translation-equivariant stack of convolutions cannot place on its own.
    ys = torch.linspace(-1.0, 1.0, hh).view(1, 1, hh, 1).expand(b, 1, hh, ww)
    xs = torch.linspace(-1.0, 1.0, ww).view(1, 1, 1, ww).expand(b, 1, hh, ww)
    prior = torch.linear(cond, self.prior_w, self.prior_b).reshape(b, self.io, 8, 8)
    prior = torch.upsample_bilinear2d(prior, [hh, ww], False, None, None)
    h = torch.cat([x.reshape(b, c * f, hh, ww), prior, xs.to(x.dtype), ys.to(x.dtype)], 1)
    h = torch.conv2d(h, self.inp_w, self.inp_b, [1, 1], [1, 1])
    s1 = self.d1.forward(h, e)
    h = torch.conv2d(s1, self.down1_w, self.down1_b, [2, 2], [1, 1])
    s2 = self.d2.forward(h, e)
    h = torch.conv2d(s2, self.down2_w, self.down2_b, [2, 2], [1, 1])
    h = self.m2.forward(self.m1.forward(h, e), e)
    h = self.up(torch.conv2d(h, self.up2_w, self.up2_b, [1, 1], [1, 1])) + s2
    h = self.u2.forward(h, e)
    h = self.up(torch.conv2d(h, self.up1_w, self.up1_b, [1, 1], [1, 1])) + s1
    h = self.u1.forward(h, e)
    h = torch.group_norm(h, 8, self.nout_w, self.nout_b, 1e-5, False)
    h = torch.conv2d(h * torch.sigmoid(h), self.out_w, self.out_b, [1, 1], [1, 1])
    # The prior also goes straight to the output, weighted by t: near pure noise the
    # velocity is noise - E[x_0 | prompt], which it can then carry alone.
    h = h - t[:, None, None, None] * prior
    return h.reshape(b, c, f, hh, ww)
)");
  return m;
}

torch::jit::Module MakeTextEncoder(const ShapesNetConfig& cfg) {
  torch::jit::Module m("ShapesTextEncoder");
  m.register_parameter("emb", at::randn({cfg.vocab, cfg.cond_dim}) * 0.5, false);
  AddLinear(m, "l1", cfg.cond_dim, cfg.cond_dim);
  AddLinear(m, "l2", cfg.cond_dim, cfg.cond_dim);
  m.define(R"(
def forward(self, tokens):
    h = torch.embedding(self.emb, tokens).mean(1)
    h = torch.linear(h, self.l1_w, self.l1_b)
    return torch.linear(h * torch.sigmoid(h), self.l2_w, self.l2_b)
)");
  return m;
}

torch::jit::Module MakeUpsampleDecoder() {
  torch::jit::Module m("UpsampleDecoder");
  m.define(R"(
def forward(self, z, frames: int, height: int, width: int):
    x = torch.upsample_trilinear3d(z, [frames, height, width], True, None, None, None)
    x = torch.clamp((x + 1.0) * 0.5, 0.0, 1.0)
    return x[0].permute(1, 0, 2, 3).contiguous()
)");
  return m;
}

std::vector<at::Tensor> TrainableParameters(const torch::jit::Module& m) {
  std::vector<at::Tensor> out;
  for (const auto& p : m.parameters(/*recurse=*/true)) out.push_back(p);
  return out;
}

}  // namespace reelfarm::training
