#include "tests/testing/models.h"

#include <torch/script.h>

#include <fstream>

namespace reelfarm::testing {
namespace fs = std::filesystem;

namespace {
void WriteManifest(const fs::path& dir, int scale, const std::string& extra = "") {
  std::ofstream(dir / "model.json") << "{\"kind\": \"upscaler\", \"scale\": " << scale
                                    << ", \"file\": \"model.pt\", \"channels\": 3"
                                    << (extra.empty() ? "" : ", ") << extra << "}\n";
}
}  // namespace

void WriteNearestX2Model(const fs::path& dir, const std::string& name) {
  fs::create_directories(dir / name);
  // Output channel c*4 + k copies input channel c; pixel_shuffle spreads the four
  // copies over a 2×2 block.
  at::Tensor w = at::zeros({12, 3, 1, 1});
  for (int c = 0; c < 3; ++c) {
    for (int k = 0; k < 4; ++k) w[c * 4 + k][c][0][0] = 1.0;
  }
  torch::jit::Module m("NearestX2");
  m.register_parameter("w", w, /*is_buffer=*/false);
  m.define(R"(
def forward(self, x):
    return torch.pixel_shuffle(torch.conv2d(x, self.w), 2)
)");
  m.save((dir / name / "model.pt").string());
  WriteManifest(dir / name, 2);
}

void WriteConvX2Model(const fs::path& dir, const std::string& name,
                      const std::string& manifest_extra) {
  fs::create_directories(dir / name);
  at::manual_seed(7);
  torch::jit::Module m("ConvX2");
  m.register_parameter("w1", at::randn({8, 3, 3, 3}) * 0.3, false);
  m.register_parameter("w2", at::randn({12, 8, 3, 3}) * 0.3, false);
  m.define(R"(
def forward(self, x):
    h = torch.relu(torch.conv2d(x, self.w1, None, 1, 1))
    return torch.pixel_shuffle(torch.conv2d(h, self.w2, None, 1, 1), 2) + 0.5
)");
  m.save((dir / name / "model.pt").string());
  WriteManifest(dir / name, 2, manifest_extra);
}

void WriteTemporalX2Model(const fs::path& dir, const std::string& name) {
  fs::create_directories(dir / name);
  const float weight[3] = {0.25f, 0.5f, 0.25f};
  at::Tensor w = at::zeros({12, 9, 1, 1});
  for (int f = 0; f < 3; ++f) {
    for (int c = 0; c < 3; ++c) {
      for (int k = 0; k < 4; ++k) w[c * 4 + k][f * 3 + c][0][0] = weight[f];
    }
  }
  torch::jit::Module m("TemporalX2");
  m.register_parameter("w", w, false);
  m.define(R"(
def forward(self, x):
    return torch.pixel_shuffle(torch.conv2d(x, self.w), 2)
)");
  m.save((dir / name / "model.pt").string());
  WriteManifest(dir / name, 2, "\"temporal_window\": 3, \"batch\": 2");
}

void WriteIdentityModel(const fs::path& dir, const std::string& name) {
  fs::create_directories(dir / name);
  torch::jit::Module m("Identity");
  m.define(R"(
def forward(self, x):
    return x
)");
  m.save((dir / name / "model.pt").string());
  WriteManifest(dir / name, 2);
}

void WriteFailsOnWideFramesModel(const fs::path& dir, const std::string& name,
                                 const std::string& manifest_extra) {
  fs::create_directories(dir / name);
  torch::jit::Module m("FailsOnWideFrames");
  m.define(R"(
def forward(self, x):
    assert x.size(3) <= 32, "frame too wide for this test model"
    return torch.repeat_interleave(torch.repeat_interleave(x, 2, 2), 2, 3)
)");
  m.save((dir / name / "model.pt").string());
  WriteManifest(dir / name, 2, manifest_extra);
}

void WriteUnboundedModel(const fs::path& dir, const std::string& name) {
  fs::create_directories(dir / name);
  torch::jit::Module m("Unbounded");
  m.define(R"(
def forward(self, x):
    y = torch.repeat_interleave(torch.repeat_interleave(x, 2, 2), 2, 3) * 4.0 - 2.0
    y[:, 0, 0, 0] = float("nan")
    y[:, 0, 0, 1] = float("inf")
    y[:, 0, 0, 2] = -float("inf")
    return y
)");
  m.save((dir / name / "model.pt").string());
  WriteManifest(dir / name, 2);
}

}  // namespace reelfarm::testing

namespace reelfarm::testing {

void WriteFixtureDenoiser(const fs::path& dir, const std::string& name,
                          const std::string& conditioning, int stride, int max_frames, bool nan) {
  const fs::path pkg = dir / name;
  fs::create_directories(pkg);
  at::manual_seed(11);
  const int64_t cond_dim = conditioning == "text" ? 8 : conditioning == "class" ? 2 : 0;
  // A convolution over each frame's channels, plus a per-channel push from the
  // conditioning: different prompts give different frames.
  torch::jit::Module den("FixtureDenoiser");
  den.register_parameter("w", at::randn({3, 3, 3, 3}) * 0.2, false);
  den.register_parameter("p", at::randn({std::max<int64_t>(cond_dim, 1), 3}) * 0.5, false);
  den.register_attribute("nan", c10::BoolType::get(), nan);
  den.register_attribute("cond_dim", c10::IntType::get(), cond_dim);
  den.define(R"(
def forward(self, x, t, cond):
    b, c, f, h, w = x.shape
    y = x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
    y = torch.tanh(torch.conv2d(y, self.w, None, 1, 1)).reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)
    v = x - 0.5 * y
    if self.cond_dim > 0:
        v = v - torch.matmul(cond, self.p)[:, :, None, None, None]
    if self.nan:
        v = v * float('nan')
    return v
)");
  den.save((pkg / "denoiser.pt").string());
  std::string cond_json = R"({"type": "none"})";
  if (conditioning == "text") {
    torch::jit::Module enc("FixtureTextEncoder");
    enc.register_parameter("emb", at::randn({8, cond_dim}), false);
    enc.define(R"(
def forward(self, tokens):
    return torch.embedding(self.emb, tokens).mean(1)
)");
    enc.save((pkg / "text_encoder.pt").string());
    std::ofstream(pkg / "vocab.txt") << "<pad>\n<unk>\nred\nblue\ncircle\nsquare\nmoving\nright\n";
    cond_json =
        R"({"type": "text", "encoder": "text_encoder.pt", "tokenizer": "vocab.txt", "max_tokens": 6})";
  } else if (conditioning == "class") {
    cond_json = R"({"type": "class", "labels": ["cat", "dog"]})";
  }
  std::ofstream(pkg / "model.json")
      << "{\"kind\": \"denoiser\", \"file\": \"denoiser.pt\", \"latent_channels\": 3, "
      << "\"latent_frames\": 0, \"latent_scale\": 1, \"stride\": " << stride
      << ", \"max_frames\": " << max_frames << ", \"conditioning\": " << cond_json
      << ", \"defaults\": {\"steps\": 4, \"guidance_scale\": 2.0, \"sampler\": \"euler\"}}\n";
}

}  // namespace reelfarm::testing
