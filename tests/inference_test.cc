// The inference core: built-in bicubic, TorchScript packages, and their errors.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <torch/cuda.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "tests/testing/fixtures.h"
#include "tests/testing/models.h"
#include "worker/inference/model.h"
#include "worker/inference/resamplers.h"
#include "worker/inference/tiling.h"

using namespace reelfarm;

TEST_CASE("bicubic upscales by the scale and matches LibTorch's bicubic", "[unit][inference]") {
  c10::InferenceMode guard;
  for (int scale : {2, 3, 4}) {
    auto m = inference::LoadModel("bicubic", scale, {}, "cpu");
    REQUIRE(m.ok());
    CHECK((*m)->digest() == "builtin:bicubic");
    at::Tensor x = at::rand({1, 3, 18, 32});
    auto y = (*m)->Upscale(x);
    REQUIRE(y.ok());
    CHECK(y->sizes() == at::IntArrayRef({1, 3, 18 * scale, 32 * scale}));
    CHECK(y->min().item<float>() >= 0.0f);
    CHECK(y->max().item<float>() <= 1.0f);
    at::Tensor ref = at::upsample_bicubic2d(x, {18 * scale, 32 * scale}, false).clamp(0, 1);
    CHECK((*y - ref).abs().max().item<float>() < 1e-5f);
    // Frames narrower than the filter, and the function itself (unclamped).
    at::Tensor tiny = at::rand({2, 3, 3, 2});
    at::Tensor tiny_ref = at::upsample_bicubic2d(tiny, {3 * scale, 2 * scale}, false);
    CHECK((inference::BicubicUpscale(tiny, scale) - tiny_ref).abs().max().item<float>() < 1e-5f);
  }
  CHECK(inference::LoadModel("bicubic", 5, {}, "cpu").status().code() ==
        absl::StatusCode::kInvalidArgument);
}

TEST_CASE("a TorchScript package loads and runs", "[unit][inference]") {
  c10::InferenceMode guard;
  testing::TempDir dir;
  testing::WriteNearestX2Model(dir.path(), "nearest2x");
  auto names = inference::AvailableModels({dir.path().string()});
  CHECK(std::find(names.begin(), names.end(), "nearest2x") != names.end());
  CHECK(std::find(names.begin(), names.end(), "bicubic") != names.end());

  auto m = inference::LoadModel("nearest2x", 2, {dir.path().string()}, "cpu");
  REQUIRE(m.ok());
  CHECK((*m)->digest().rfind("sha256:", 0) == 0);
  CHECK((*m)->digest().size() == 7 + 64);
  at::Tensor x = at::rand({2, 3, 9, 16});
  auto y = (*m)->Upscale(x);
  REQUIRE(y.ok());
  at::Tensor ref = at::upsample_nearest2d(x, {18, 32});
  CHECK(at::allclose(*y, ref, 1e-6, 1e-6));

  auto wrong_scale = inference::LoadModel("nearest2x", 4, {dir.path().string()}, "cpu");
  CHECK(wrong_scale.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(wrong_scale.status().message().find("scale 2") != absl::string_view::npos);
  CHECK(inference::LoadModel("missing", 2, {dir.path().string()}, "cpu").status().code() ==
        absl::StatusCode::kNotFound);
}

TEST_CASE("a model whose output shape is wrong fails with a clear error", "[unit][inference]") {
  c10::InferenceMode guard;
  testing::TempDir dir;
  testing::WriteIdentityModel(dir.path(), "broken");
  auto m = inference::LoadModel("broken", 2, {dir.path().string()}, "cpu");
  REQUIRE(m.ok());
  auto y = (*m)->Upscale(at::rand({1, 3, 8, 8}));
  REQUIRE_FALSE(y.ok());
  CHECK(y.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(y.status().message().find("returned shape [1, 3, 8, 8]") != absl::string_view::npos);
  CHECK(y.status().message().find("expected [1, 3, 16, 16]") != absl::string_view::npos);
}

TEST_CASE("a model's output is clamped to [0, 1] and NaN becomes 0", "[unit][inference]") {
  c10::InferenceMode guard;
  testing::TempDir dir;
  testing::WriteUnboundedModel(dir.path(), "unbounded");
  auto m = inference::LoadModel("unbounded", 2, {dir.path().string()}, "cpu");
  REQUIRE(m.ok());
  const at::Tensor x = at::rand({1, 3, 6, 8});
  auto y = (*m)->Upscale(x);
  REQUIRE(y.ok());
  CHECK((*y)[0][0][0][0].item<float>() == 0.0f);  // NaN
  CHECK((*y)[0][0][0][1].item<float>() == 1.0f);  // +inf
  CHECK((*y)[0][0][0][2].item<float>() == 0.0f);  // -inf
  const at::Tensor ref = (at::upsample_nearest2d(x, {12, 16}) * 4.0 - 2.0).clamp(0, 1);
  CHECK((*y)[0][1].equal(ref[0][1]));
  CHECK(at::isfinite(*y).all().item<bool>());
  CHECK(y->min().item<float>() >= 0.0f);
  CHECK(y->max().item<float>() <= 1.0f);
}

TEST_CASE("UpscaleInto writes the model's result into the caller's buffer", "[unit][inference]") {
  c10::InferenceMode guard;
  testing::TempDir dir;
  testing::WriteNearestX2Model(dir.path(), "nearest2x");
  for (const char* name : {"bicubic", "lanczos", "nearest2x"}) {
    INFO(name);
    auto m = inference::LoadModel(name, 2, {dir.path().string()}, "cpu");
    REQUIRE(m.ok());
    // 70 output rows: more than one strip of the resamplers; width 2 * 37 = 74 is not a
    // multiple of 4 floats, and the buffer starts one float past an aligned address.
    const at::Tensor x = at::rand({1, 3, 35, 37}) * 1.4 - 0.2;
    std::vector<float> buffer(1 + 3 * 70 * 74, -7.0f);
    at::Tensor out = at::from_blob(buffer.data() + 1, {1, 3, 70, 74}, at::kFloat);
    REQUIRE((*m)->UpscaleInto(x, out).ok());
    auto y = (*m)->Upscale(x);
    REQUIRE(y.ok());
    CHECK(out.equal(*y));
    CHECK(buffer[0] == -7.0f);  // nothing written before the buffer
    CHECK(out.min().item<float>() >= 0.0f);
    CHECK(out.max().item<float>() <= 1.0f);

    at::Tensor wrong = at::empty({1, 3, 70, 72});
    const absl::Status st = (*m)->UpscaleInto(x, wrong);
    CHECK(st.code() == absl::StatusCode::kInvalidArgument);
    CHECK(st.message().find("[1, 3, 70, 74]") != absl::string_view::npos);
  }
}

namespace {

// Lanczos-3 written out plainly in double precision: the reference for LanczosUpscale.
double L3(double x) {
  if (std::abs(x) < 1e-12) return 1.0;
  if (std::abs(x) >= 3) return 0.0;
  const double p = M_PI * x;
  return 3 * std::sin(p) * std::sin(p / 3) / (p * p);
}

std::vector<double> NaiveLanczos(const at::Tensor& img, int s) {  // img [H, W]
  const int h = static_cast<int>(img.size(0)), w = static_cast<int>(img.size(1));
  auto a = img.accessor<float, 2>();
  std::vector<double> tmp(static_cast<size_t>(h) * w * s), out(static_cast<size_t>(h) * s * w * s);
  auto weights = [&](int j, int size, std::vector<std::pair<int, double>>* taps) {
    const double x = (j + 0.5) / s - 0.5;
    const int q = static_cast<int>(std::floor(x + 0.5));  // nearest input pixel
    double sum = 0;
    taps->clear();
    for (int i = q - 3; i <= q + 3; ++i) {
      const double wt = L3(x - i);
      taps->push_back({std::clamp(i, 0, size - 1), wt});
      sum += wt;
    }
    for (auto& t : *taps) t.second /= sum;
  };
  std::vector<std::pair<int, double>> taps;
  for (int y = 0; y < h; ++y) {
    for (int j = 0; j < w * s; ++j) {
      weights(j, w, &taps);
      double v = 0;
      for (auto& [i, wt] : taps) v += wt * a[y][i];
      tmp[static_cast<size_t>(y) * w * s + j] = v;
    }
  }
  for (int j = 0; j < h * s; ++j) {
    weights(j, h, &taps);
    for (int x = 0; x < w * s; ++x) {
      double v = 0;
      for (auto& [i, wt] : taps) v += wt * tmp[static_cast<size_t>(i) * w * s + x];
      out[static_cast<size_t>(j) * w * s + x] = v;
    }
  }
  return out;
}

}  // namespace

TEST_CASE("lanczos is a Lanczos-3 resampler", "[unit][inference]") {
  c10::InferenceMode guard;
  for (int scale : {2, 3, 4}) {
    auto m = inference::LoadModel("lanczos", scale, {}, "cpu");
    REQUIRE(m.ok());
    CHECK((*m)->digest() == "builtin:lanczos");
    at::manual_seed(3);
    at::Tensor x = at::rand({1, 3, 11, 17}) * 0.6 + 0.2;  // stays inside [0, 1] after ringing
    auto y = (*m)->Upscale(x);
    REQUIRE(y.ok());
    REQUIRE(y->sizes() == at::IntArrayRef({1, 3, 11 * scale, 17 * scale}));
    const std::vector<double> ref = NaiveLanczos(x[0][1].contiguous(), scale);
    at::Tensor got = (*y)[0][1].contiguous();
    double worst = 0;
    for (int64_t i = 0; i < got.numel(); ++i) {
      worst = std::max(worst, std::abs(got.data_ptr<float>()[i] - ref[static_cast<size_t>(i)]));
    }
    INFO("scale " << scale);
    CHECK(worst < 1e-5);
    // A flat picture stays flat; a smooth one stays near bicubic.
    auto flat = (*m)->Upscale(at::full({1, 3, 8, 8}, 0.3));
    CHECK(at::allclose(*flat, at::full({1, 3, 8 * scale, 8 * scale}, 0.3), 1e-5, 1e-5));
  }
}

TEST_CASE("tiled output equals untiled output", "[unit][inference]") {
  c10::InferenceMode guard;
  testing::TempDir dir;
  testing::WriteConvX2Model(dir.path(), "whole");
  // overlap 8: blending keeps 2 pixels from every cut, the model's receptive radius.
  testing::WriteConvX2Model(dir.path(), "tiled", "\"tile\": 24, \"tile_overlap\": 8");
  testing::WriteConvX2Model(dir.path(), "tooshort", "\"tile\": 24, \"tile_overlap\": 2");
  auto whole = inference::LoadModel("whole", 2, {dir.path().string()}, "cpu");
  auto tiled = inference::LoadModel("tiled", 2, {dir.path().string()}, "cpu");
  auto bad = inference::LoadModel("tooshort", 2, {dir.path().string()}, "cpu");
  REQUIRE(whole.ok());
  REQUIRE(tiled.ok());
  REQUIRE(bad.ok());
  at::manual_seed(5);
  at::Tensor x = at::rand({2, 3, 53, 70});  // 4x5 tiles, uneven last ones
  auto a = (*whole)->Upscale(x);
  auto b = (*tiled)->Upscale(x);
  auto c = (*bad)->Upscale(x);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(c.ok());
  CHECK(b->sizes() == a->sizes());
  const float diff = (*a - *b).abs().max().item<float>();
  CHECK(diff < 1e-3f);
  // The test can fail: with too little overlap the seams show.
  CHECK((*a - *c).abs().max().item<float>() > 1e-2f);
}

TEST_CASE("TileForMemory takes the largest tile whose batch fits half the free memory",
          "[unit][inference]") {
  const int64_t gib = int64_t{1} << 30;
  for (int batch : {1, 4}) {
    for (int64_t per_pixel : {int64_t{512}, int64_t{4096}, int64_t{65536}}) {
      INFO("batch " << batch << ", " << per_pixel << " bytes per pixel");
      const int t = inference::TileForMemory(gib, per_pixel, batch, 8);
      REQUIRE(t > 0);
      CHECK(t % 16 == 0);
      const auto used = [&](int64_t side) { return side * side * per_pixel * batch; };
      CHECK(used(t) <= gib / 2);
      CHECK(used(t + 16) > gib / 2);
    }
  }
  // Too little memory: never below a tile that is more than its overlap.
  CHECK(inference::TileForMemory(1 << 20, 1 << 20, 1, 8) == 2 * 8 + 16);
  // Plenty: whole frames, even the largest.
  CHECK(inference::TileForMemory(64 * gib, 16, 1, 8) == 0);
  CHECK(inference::TileForMemory(gib, 0, 1, 8) == 0);
  auto free = inference::FreeDeviceMemory("cpu");
  REQUIRE(free.ok());
  CHECK(*free > 0);
  CHECK(inference::FreeDeviceMemory("tpu:3").status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("a manifest without a tile gets one from free memory, and it is used",
          "[unit][inference]") {
  c10::InferenceMode guard;
  testing::TempDir dir;
  auto free = inference::FreeDeviceMemory("cpu");
  REQUIRE(free.ok());
  // About 40x40 input pixels' worth of half the free memory per pixel: a 32-pixel tile,
  // unless free memory moves by a third before the model loads.
  const int64_t per_pixel = *free / 2 / (40 * 40);
  testing::WriteFailsOnWideFramesModel(dir.path(), "narrow",
                                       "\"tile_memory_per_pixel\": " + std::to_string(per_pixel));
  testing::WriteFailsOnWideFramesModel(dir.path(), "whole");
  testing::WriteFailsOnWideFramesModel(dir.path(), "roomy", "\"tile_memory_per_pixel\": 4");
  auto narrow = inference::LoadModel("narrow", 2, {dir.path().string()}, "cpu");
  auto whole = inference::LoadModel("whole", 2, {dir.path().string()}, "cpu");
  auto roomy = inference::LoadModel("roomy", 2, {dir.path().string()}, "cpu");
  REQUIRE(narrow.ok());
  REQUIRE(whole.ok());
  REQUIRE(roomy.ok());
  CHECK((*narrow)->tile() == 32);
  CHECK((*whole)->tile() == 0);
  CHECK((*roomy)->tile() == 0);
  // The model refuses frames wider than 32 pixels: only the tiled one gets through a
  // 100-pixel-wide frame, and it gives the nearest x2 of the whole frame.
  at::manual_seed(3);
  at::Tensor x = at::rand({1, 3, 30, 100});
  auto y = (*narrow)->Upscale(x);
  INFO(y.status().ToString());
  REQUIRE(y.ok());
  CHECK(at::equal(*y, x.repeat_interleave(2, 2).repeat_interleave(2, 3)));
  CHECK(!(*whole)->Upscale(x).ok());
  CHECK(!(*roomy)->Upscale(x).ok());
}

TEST_CASE("manifests give batch and temporal window, and temporal models take k frames",
          "[unit][inference]") {
  c10::InferenceMode guard;
  testing::TempDir dir;
  testing::WriteTemporalX2Model(dir.path(), "temporal");
  auto m = inference::LoadModel("temporal", 2, {dir.path().string()}, "cpu");
  REQUIRE(m.ok());
  CHECK((*m)->temporal_window() == 3);
  CHECK((*m)->batch() == 2);
  at::Tensor prev = at::full({1, 3, 4, 4}, 0.2), cur = at::full({1, 3, 4, 4}, 0.4),
             next = at::full({1, 3, 4, 4}, 0.8);
  auto y = (*m)->Upscale(at::cat({prev, cur, next}, 1));
  REQUIRE(y.ok());
  CHECK(at::allclose(*y, at::full({1, 3, 8, 8}, 0.45), 1e-5, 1e-5));
  auto wrong = (*m)->Upscale(cur);
  CHECK(wrong.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(wrong.status().message().find("[N, 9, H, W]") != absl::string_view::npos);
}

TEST_CASE("CUDA: a model runs on cuda:0 like on the CPU", "[gpu][inference]") {
  if (!torch::cuda::is_available()) {
    WARN("no CUDA device: skipped");
    return;
  }
  c10::InferenceMode guard;
  testing::TempDir dir;
  testing::WriteConvX2Model(dir.path(), "conv", "\"fp16\": true");
  auto cpu = inference::LoadModel("conv", 2, {dir.path().string()}, "cpu");
  auto gpu = inference::LoadModel("conv", 2, {dir.path().string()}, "cuda:0");
  REQUIRE(cpu.ok());
  REQUIRE(gpu.ok());
  at::Tensor x = at::rand({2, 3, 64, 64});
  auto a = (*cpu)->Upscale(x);
  auto b = (*gpu)->Upscale(x);
  REQUIRE(b.ok());
  CHECK(b->device().is_cpu());
  CHECK((*a - *b).abs().max().item<float>() < 2e-2f);  // fp16
}
