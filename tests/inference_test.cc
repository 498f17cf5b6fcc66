// The inference core: built-in bicubic, TorchScript packages, and their errors.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <catch2/catch.hpp>

#include "tests/testing/fixtures.h"
#include "tests/testing/models.h"
#include "worker/inference/model.h"

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
    CHECK(at::allclose(*y, ref));
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
