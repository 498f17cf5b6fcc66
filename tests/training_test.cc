// The demo model's training program: the procedural clips show the motion their prompt
// names, and a short run of the trainer lowers the loss and writes a package that
// reads as a denoiser.
#include <catch2/catch.hpp>

#include <fstream>
#include <regex>

#include "common/model_manifest.h"
#include "tests/testing/fixtures.h"
#include "training/shapes_data.h"

using namespace reelfarm;

namespace {

// Centre of the pixels closer to the shape's colour than to grey.
std::pair<double, double> ShapeCentre(const training::ShapeClip& c, int frame) {
  double sx = 0, sy = 0, n = 0;
  for (int y = 0; y < c.height; ++y) {
    for (int x = 0; x < c.width; ++x) {
      const float* p = &c.rgb[((static_cast<size_t>(frame) * c.height + y) * c.width + x) * 3];
      const float sat = std::max({p[0], p[1], p[2]}) - std::min({p[0], p[1], p[2]});
      if (sat < 0.4f) continue;
      sx += x;
      sy += y;
      n += 1;
    }
  }
  REQUIRE(n > 0);
  return {sx / n, sy / n};
}

}  // namespace

TEST_CASE("procedural clips move their shape the way the prompt says", "[unit][training]") {
  std::mt19937_64 rng(3);
  const auto vocab = training::ShapeVocabulary();
  for (int i = 0; i < 40; ++i) {
    training::ShapeClip c = training::RenderShapeClip(rng, 8, 32);
    INFO(c.prompt);
    for (const auto& word : {c.colour, c.shape, c.direction}) {
      CHECK(std::find(vocab.begin(), vocab.end(), word) != vocab.end());
    }
    auto [x0, y0] = ShapeCentre(c, 0);
    auto [x1, y1] = ShapeCentre(c, 7);
    const double move = 0.4 * 32;  // it travels 45-60% of the frame
    if (c.direction == "right") CHECK(x1 - x0 > move);
    if (c.direction == "left") CHECK(x0 - x1 > move);
    if (c.direction == "down") CHECK(y1 - y0 > move);
    if (c.direction == "up") CHECK(y0 - y1 > move);
  }
}

TEST_CASE("a short training run lowers the loss and writes a denoiser package",
          "[slow][training]") {
  testing::TempDir dir;
  const auto out = dir.path() / "shapes_t2v";
  int status = 0;
  const std::string log =
      testing::Capture(std::string(REELFARM_TRAIN_BIN) + " --out " + out.string() +
                           " --steps 100 --batch 8 --save-every 100 2>&1",
                       &status);
  INFO(log);
  REQUIRE(status == 0);
  std::smatch first, last;
  REQUIRE(std::regex_search(log, first, std::regex(R"(step 1 loss ([0-9.]+))")));
  REQUIRE(std::regex_search(log, last, std::regex(R"(step 100 loss [0-9.]+ avg ([0-9.]+))")));
  CHECK(std::stod(last[1]) < 0.9 * std::stod(first[1]));
  auto manifest = common::ReadModelManifest(out);
  INFO(manifest.status().ToString());
  REQUIRE(manifest.ok());
  CHECK(manifest->kind == "denoiser");
  CHECK(manifest->conditioning == "text");
}
