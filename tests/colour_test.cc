// media/colour.h with the real OpenColorIO library and the shipped config
// (media/ocio/reelfarm.ocio): reference values from the specifications, round trips
// through a model's space (the log shaper for scene-referred input), the errors.
#include "media/colour.h"

#include <stdlib.h>

#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "common/model_manifest.h"
#include "common/storage.h"
#include "tests/testing/fixtures.h"

namespace reelfarm::media {
namespace {

namespace fs = std::filesystem;

std::shared_ptr<const ColourConfig> Shipped() {
  auto c = ColourConfig::Load(ShippedOcioConfigPath());
  INFO(c.status().ToString());
  REQUIRE(c.ok());
  return *c;
}

// One pixel per value triple.
Frame Pixels(const std::vector<std::array<float, 3>>& rgb) {
  Frame f;
  f.width = static_cast<int>(rgb.size());
  f.height = 1;
  f.planes.resize(3 * rgb.size());
  for (size_t i = 0; i < rgb.size(); ++i) {
    for (size_t c = 0; c < 3; ++c) f.planes[c * rgb.size() + i] = rgb[i][c];
  }
  return f;
}

std::array<float, 3> Pixel(const Frame& f, size_t i) {
  const size_t n = static_cast<size_t>(f.width) * f.height;
  return {f.planes[i], f.planes[n + i], f.planes[2 * n + i]};
}

std::array<float, 3> Convert(const ColourConfig& c, const std::string& src, const std::string& dst,
                             std::array<float, 3> v) {
  auto p = c.Processor(src, dst);
  INFO(p.status().ToString());
  REQUIRE(p.ok());
  Frame f = Pixels({v});
  (*p)->Apply(&f);
  return Pixel(f, 0);
}

// A 64x16 plate: greys from `bottom` to `top` (both included) and saturated colours
// between the same levels, as the round trips feed it.
Frame Plate(float bottom, float top) {
  Frame f;
  f.width = 64;
  f.height = 16;
  const size_t n = 64 * 16;
  f.planes.resize(3 * n);
  for (size_t y = 0; y < 16; ++y) {
    for (size_t x = 0; x < 64; ++x) {
      const float level = (top - bottom) * static_cast<float>(x) / 63.0f;
      const float tint[3] = {y % 4 == 1 ? 0.25f : 1.0f, y % 4 == 2 ? 0.25f : 1.0f,
                             y % 4 == 3 ? 0.25f : 1.0f};
      for (size_t c = 0; c < 3; ++c) f.planes[c * n + y * 64 + x] = bottom + level * tint[c];
    }
  }
  return f;
}

// Largest difference, relative to the value where it is above 1.0 (|a - b| / max(1, |b|)).
double MaxError(const Frame& a, const Frame& b) {
  double e = 0;
  for (size_t i = 0; i < a.planes.size(); ++i) {
    const double d = std::fabs(a.planes[i] - b.planes[i]);
    e = std::max(e, d / std::max(1.0, std::fabs(static_cast<double>(b.planes[i]))));
  }
  return e;
}

double MaxAbsError(const Frame& a, const Frame& b) {
  double e = 0;
  for (size_t i = 0; i < a.planes.size(); ++i) {
    e = std::max(e, static_cast<double>(std::fabs(a.planes[i] - b.planes[i])));
  }
  return e;
}

// What a model whose values are bounded does to its input at best: clamp to [0, 1].
void BoundedIdentityModel(Frame* f) {
  for (float& v : f->planes) v = std::clamp(v, 0.0f, 1.0f);
}

TEST_CASE("colour: the shipped config loads with the documented colour spaces", "[unit]") {
  auto c = Shipped();
  const auto names = c->ColourSpaceNames();
  for (const char* want : {"ACES2065-1", "ACEScg", "ACEScct", "Linear Rec.709 (sRGB)",
                           "sRGB - Texture", "Rec.709 video", "BT.2020 video"}) {
    INFO(want);
    CHECK(std::find(names.begin(), names.end(), want) != names.end());
  }
  auto sha = common::Sha256File(c->path());
  REQUIRE(sha.ok());
  CHECK(c->sha256() == *sha);
  CHECK(fs::path(c->path()).is_absolute());
  // Aliases and roles resolve to the names.
  CHECK(*c->CanonicalName("acescg") == "ACEScg");
  CHECK(*c->CanonicalName("scene_linear") == "ACEScg");
  CHECK(*c->CanonicalName("srgb_tx") == "sRGB - Texture");
  CHECK(c->IsSceneReferred("ACEScg"));
  CHECK(c->IsSceneReferred("ACEScct"));
  CHECK(c->IsSceneReferred("Linear Rec.709 (sRGB)"));
  CHECK_FALSE(c->IsSceneReferred("sRGB - Texture"));
  CHECK_FALSE(c->IsSceneReferred("Rec.709 video"));
}

TEST_CASE("colour: conversions match the published reference values", "[unit]") {
  auto c = Shipped();
  // ACEScct (S-2016-001): 18% grey is 0.4135884, 1.0 is 0.5547945, 0 is 0.0729055.
  for (auto [lin, cct] : std::vector<std::pair<float, float>>{
           {0.18f, 0.4135884f}, {1.0f, 0.5547945f}, {0.0f, 0.0729055f}, {16.0f, 0.7831050f}}) {
    auto v = Convert(*c, "ACEScg", "ACEScct", {lin, lin, lin});
    INFO("linear " << lin);
    CHECK(v[0] == Approx(cct).margin(2e-6));
    CHECK(v[2] == Approx(cct).margin(2e-6));
  }
  // sRGB (IEC 61966-2-1): linear 0.18 encodes as 0.4613561, 0.0031308 as 0.04045.
  auto s = Convert(*c, "Linear Rec.709 (sRGB)", "sRGB - Texture", {0.18f, 0.0031308f, 1.0f});
  CHECK(s[0] == Approx(0.4613561).margin(1e-5));
  CHECK(s[1] == Approx(0.04045).margin(1e-5));
  CHECK(s[2] == Approx(1.0).margin(1e-5));
  // Rec.709 primaries to AP1 with Bradford adaptation (the ACES 1.3 OCIO config's
  // matrix): red is (0.6130974, 0.0701937, 0.0206156).
  auto r = Convert(*c, "Linear Rec.709 (sRGB)", "ACEScg", {1.0f, 0.0f, 0.0f});
  CHECK(r[0] == Approx(0.6130974).margin(2e-5));
  CHECK(r[1] == Approx(0.0701937).margin(2e-5));
  CHECK(r[2] == Approx(0.0206156).margin(2e-5));
  // BT.1886 (2.4 gamma) video: 0.5 on the display is 0.5^(1/2.4) in the signal.
  auto v = Convert(*c, "Linear Rec.709 (sRGB)", "Rec.709 video", {0.5f, 0.5f, 0.5f});
  CHECK(v[0] == Approx(std::pow(0.5, 1 / 2.4)).margin(1e-5));
}

TEST_CASE("colour: round trips through the model's space keep the input within 1e-4", "[unit]") {
  auto c = Shipped();
  const std::string model = "sRGB - Texture";  // the ESRGAN family's space
  struct Case {
    std::string space;
    float bottom, top;  // lowest and highest value of the plate
  };
  // Scene-linear plates with highlights to 16.0; ACEScct up to its code for 16.0;
  // display-referred ones in [0, 1].
  // ACEScct from its code for linear 0.
  const std::vector<Case> cases = {{"ACEScg", 0.0f, 16.0f},
                                   {"Linear Rec.709 (sRGB)", 0.0f, 16.0f},
                                   {"ACEScct", 0.0729056f, 0.7831050f},
                                   {"sRGB - Texture", 0.0f, 1.0f},
                                   {"Rec.709 video", 0.0f, 1.0f}};
  for (const Case& in : cases) {
    for (const Case& out : cases) {
      DYNAMIC_SECTION(in.space << " -> " << model << " -> " << out.space) {
        auto p = ColourPipeline::Create(c, in.space, model, out.space);
        INFO(p.status().ToString());
        REQUIRE(p.ok());
        CHECK((*p)->shaper() == c->IsSceneReferred(in.space));
        const Frame plate = Plate(in.bottom, in.top);
        Frame f = plate;
        (*p)->ToModel(&f);
        // The model's input is within its bounded range, so nothing is clipped ...
        const auto [lo, hi] = std::minmax_element(f.planes.begin(), f.planes.end());
        CHECK(*lo >= -1e-6f);
        CHECK(*hi <= 1.0f + 1e-6f);
        BoundedIdentityModel(&f);
        (*p)->FromModel(&f);
        // ... and the plate comes back in the output space as OCIO converts it directly.
        Frame want = plate;
        if (in.space != out.space) (*c->Processor(in.space, out.space))->Apply(&want);
        // Highlights kept: the plate's top value comes back.
        if (in.space == out.space) {
          CHECK(*std::max_element(f.planes.begin(), f.planes.end()) == Approx(in.top).margin(1e-4));
        }
        const double err = MaxError(f, want);
        INFO("max error " << err);
        // 1e-4, relative above 1.0: a scene-linear plate reaches ~3.3 in sRGB (16.0
        // encoded), where float's own steps are 2.4e-7 and the shaper path's 1.2e-4.
        CHECK(err <= 1e-4);
        if (in.space == out.space) CHECK(MaxAbsError(f, want) <= 1e-4);
      }
    }
  }
}

TEST_CASE("colour: straight to a bounded space, highlights would clip", "[unit]") {
  auto c = Shipped();
  // The reason for the shaper: ACEScg 16.0 in sRGB is far above 1.0, which the model clamps.
  auto v = Convert(*c, "ACEScg", "sRGB - Texture", {16.0f, 16.0f, 16.0f});
  CHECK(v[0] > 2.0f);
}

TEST_CASE("colour: processors are cached per pair", "[unit]") {
  auto c = Shipped();
  auto a = c->Processor("ACEScg", "ACEScct");
  auto b = c->Processor("acescg", "ACEScct");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a->get() == b->get());
  CHECK((*a)->description() == "'ACEScg' -> 'ACEScct'");
  auto p = ColourPipeline::Create(c, "ACEScg", "sRGB - Texture", "ACEScg");
  REQUIRE(p.ok());
  const auto steps = (*p)->Steps();
  REQUIRE(steps.size() == 3);
  CHECK(steps[0].find("'ACEScg' -> ACEScct [0.0729055, 0.8972603] -> [0, 1]") == 0);
  CHECK(steps[1] == "model");
}

TEST_CASE("colour: an unknown colour space names the nearest ones", "[unit]") {
  auto c = Shipped();
  auto n = c->CanonicalName("ACEScgg");
  REQUIRE(n.status().code() == absl::StatusCode::kInvalidArgument);
  const std::string msg(n.status().message());
  INFO(msg);
  CHECK(msg.find("colour space 'ACEScgg' is not in OCIO config '" + c->path() + "'") == 0);
  CHECK(msg.find("nearest: 'ACEScg'") != std::string::npos);
  auto p = ColourPipeline::Create(c, "ACEScg", "sRGB-Texture", "ACEScg");
  REQUIRE(p.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(p.status().message()).find("nearest: 'sRGB - Texture'") != std::string::npos);
  CHECK(EditDistance("kitten", "sitting") == 3);
  CHECK(EditDistance("ACEScg", "acescg") == 0);
}

TEST_CASE("colour: a config that does not load names its file and line", "[unit]") {
  testing::TempDir dir;
  const fs::path bad = dir.path() / "bad.ocio";
  {
    std::ifstream in(ShippedOcioConfigPath());
    std::ofstream out(bad);
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
      // Line 30 of the copy: an unbalanced flow sequence, a YAML syntax error.
      if (++n == 30) out << "luma: [0.2126, 0.7152\n";
      out << line << "\n";
    }
  }
  auto c = ColourConfig::Load(bad.string());
  REQUIRE(c.status().code() == absl::StatusCode::kFailedPrecondition);
  const std::string msg(c.status().message());
  INFO(msg);
  CHECK(msg.find(bad.string()) != std::string::npos);
  CHECK(msg.find("line") != std::string::npos);

  auto missing = ColourConfig::Load((dir.path() / "none.ocio").string());
  CHECK(missing.status().code() == absl::StatusCode::kNotFound);
  CHECK(std::string(missing.status().message()).find("none.ocio") != std::string::npos);
}

TEST_CASE("colour: the config comes from the argument, else $OCIO, else the shipped one",
          "[unit]") {
  testing::TempDir dir;
  const fs::path copy = dir.path() / "studio.ocio";
  fs::copy_file(ShippedOcioConfigPath(), copy);
  ::unsetenv("OCIO");
  CHECK(ResolveOcioConfigPath("") == ShippedOcioConfigPath());
  CHECK(fs::exists(ShippedOcioConfigPath()));
  ::setenv("OCIO", copy.c_str(), 1);
  CHECK(ResolveOcioConfigPath("") == copy.string());
  auto c = ColourConfig::Load();
  REQUIRE(c.ok());
  CHECK((*c)->path() == copy.string());
  CHECK(ResolveOcioConfigPath("/x/y.ocio") == "/x/y.ocio");
  ::unsetenv("OCIO");
  ::setenv("REELFARM_OCIO_SHIPPED", copy.c_str(), 1);
  CHECK(ShippedOcioConfigPath() == copy.string());
  ::unsetenv("REELFARM_OCIO_SHIPPED");
}

TEST_CASE("colour: model.json declares colorspace and range", "[unit]") {
  testing::TempDir dir;
  const auto write = [&](const std::string& name, const std::string& json) {
    fs::create_directories(dir.path() / name);
    std::ofstream(dir.path() / name / "model.json") << json;
    std::ofstream(dir.path() / name / "model.pt") << "not read";
    return common::ReadModelManifest(dir.path() / name);
  };
  auto m = write("a", R"({"scale": 2, "colorspace": "sRGB - Texture", "range": "[0, 255]"})");
  INFO(m.status().ToString());
  REQUIRE(m.ok());
  CHECK(m->colorspace == "sRGB - Texture");
  CHECK(m->input_min == 0.0);
  CHECK(m->input_max == 255.0);
  auto plain = write("b", R"({"scale": 2})");
  REQUIRE(plain.ok());
  CHECK(plain->colorspace.empty());  // not colour-managed
  CHECK(plain->input_max == 1.0);
  auto bad = write("c", R"({"scale": 2, "range": "[0,65535]"})");
  CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(bad.status().message()), Catch::Contains("range '[0,65535]'"));
  auto clash = write("d", R"({"scale": 2, "range": "[0,1]", "input_range": [0, 255]})");
  CHECK(clash.status().code() == absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace reelfarm::media
