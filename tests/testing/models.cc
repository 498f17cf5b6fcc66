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

}  // namespace reelfarm::testing
