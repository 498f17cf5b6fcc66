#include "tests/testing/models.h"

#include <torch/script.h>

#include <fstream>

namespace reelfarm::testing {
namespace fs = std::filesystem;

namespace {
void WriteManifest(const fs::path& dir, int scale) {
  std::ofstream(dir / "model.json") << "{\"kind\": \"upscaler\", \"scale\": " << scale
                                    << ", \"file\": \"model.pt\", \"channels\": 3}\n";
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

void WriteFailsOnWideFramesModel(const fs::path& dir, const std::string& name) {
  fs::create_directories(dir / name);
  torch::jit::Module m("FailsOnWideFrames");
  m.define(R"(
def forward(self, x):
    assert x.size(3) <= 32, "frame too wide for this test model"
    return torch.repeat_interleave(torch.repeat_interleave(x, 2, 2), 2, 3)
)");
  m.save((dir / name / "model.pt").string());
  WriteManifest(dir / name, 2);
}

}  // namespace reelfarm::testing
