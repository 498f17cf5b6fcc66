// ESRGAN models through a real farm: a PNG sequence job with `--model esrgan-slim`
// gives the package's reference frame, chunked equals unchunked, the scale range is the
// model's, and the sidecar names the npm package the model came from.
#include <catch2/catch.hpp>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/storage.h"
#include "tests/testing/checks.h"
#include "tests/testing/farm.h"
#include "tests/testing/fixtures.h"

namespace fs = std::filesystem;
using namespace reelfarm;
using testing::Farm;

namespace {

const fs::path kModels = fs::path(REELFARM_SOURCE_DIR) / "models";

v1::JobSpec Spec(const std::string& input, const std::string& output, int chunk, int scale) {
  v1::JobSpec spec = testing::UpscaleSpec(input, output, chunk, "esrgan-slim");
  spec.mutable_upscale()->set_scale(scale);
  spec.mutable_upscale()->set_overwrite(true);
  return spec;
}

std::vector<uint8_t> Rgb(const fs::path& png) {
  int w = 0, h = 0;
  auto frames = testing::DecodeRgb(png, "", &w, &h);
  REQUIRE(frames.size() == 1);
  return frames[0];
}

}  // namespace

TEST_CASE("a PNG sequence job with esrgan-slim gives the package's reference frame",
          "[integration][esrgan]") {
  testing::TempDir dir;
  // The package as fetched (scripts/fetch-models.sh), for its fixture and samples.
  const fs::path pkg =
      testing::UnpackFetchedPackage(dir.path() / "pkg", "upscalerjs-esrgan-slim-1.0.0.tgz");
  const fs::path models = testing::ModelFolderWith(dir.path() / "models", "esrgan-slim");

  Farm farm(dir.path() / "farm", {"--model-path", models.string()});
  const fs::path plates = farm.storage() / "plates/fx";
  fs::create_directories(plates);
  // The package's fixture (8-bit RGBA) as frame 1, flipped copies as frames 2 and 3.
  const fs::path fixture = pkg / "assets/fixture.png";
  fs::copy_file(fixture, plates / "fx.0001.png");
  REQUIRE(testing::Run("ffmpeg -nostdin -v error -y -i '" + fixture.string() + "' -vf hflip '" +
                       (plates / "fx.0002.png").string() + "'") == 0);
  REQUIRE(testing::Run("ffmpeg -nostdin -v error -y -i '" + fixture.string() + "' -vf vflip '" +
                       (plates / "fx.0003.png").string() + "'") == 0);
  farm.StartWorker("w1", {"--model-path", models.string()});
  farm.StartWorker("w2", {"--model-path", models.string()});
  farm.WaitForWorkers(2);

  SECTION("one frame, x2 and x4: the package's samples; the sidecar names the package") {
    for (int scale : {2, 4}) {
      const std::string out = "renders/x" + std::to_string(scale) + "/fx.####.png";
      v1::JobSpec spec = Spec("plates/fx/fx.####.png", out, 1, scale);
      spec.mutable_upscale()->set_last_frame(1);
      farm.RunToSuccess(spec);
      const fs::path frame =
          farm.storage() / ("renders/x" + std::to_string(scale) + "/fx.0001.png");
      const auto want = Rgb(pkg / ("assets/samples/" + std::to_string(scale) + "x/result.png"));
      const double psnr = testing::Psnr(Rgb(frame), want);
      INFO("x" << scale << " through the farm against the package's sample: " << psnr << " dB");
      CHECK(psnr >= 45.0);
      std::ifstream in(farm.storage() / (out + ".json"));
      REQUIRE(in);
      nlohmann::json sidecar = nlohmann::json::parse(in);
      const nlohmann::json& src = sidecar["model"]["source"];
      CHECK(src["package"] == "@upscalerjs/esrgan-slim");
      CHECK(src["version"] == "1.0.0");
      CHECK(src["license"] == "MIT");
      auto sha = common::Sha256File(kModels / ".packages/upscalerjs-esrgan-slim-1.0.0.tgz");
      REQUIRE(sha.ok());
      CHECK(src["sha256"] == *sha);
      auto pt_sha = common::Sha256File(kModels / ("esrgan-slim/x" + std::to_string(scale) + ".pt"));
      REQUIRE(pt_sha.ok());
      CHECK(sidecar["model"]["digest"] == "sha256:" + *pt_sha);
    }
  }

  SECTION("chunked equals unchunked") {
    farm.RunToSuccess(Spec("plates/fx/fx.####.png", "renders/c/c.####.png", 1, 2));
    farm.RunToSuccess(Spec("plates/fx/fx.####.png", "renders/w/w.####.png", 3, 2));
    for (int n = 1; n <= 3; ++n) {
      const std::string num = "000" + std::to_string(n);
      INFO("frame " << n);
      CHECK(Rgb(farm.storage() / ("renders/c/c." + num + ".png")) ==
            Rgb(farm.storage() / ("renders/w/w." + num + ".png")));
    }
  }

  SECTION("the scale range is the model's: x8 runs, x5 is refused naming the scales") {
    v1::JobSpec spec = Spec("plates/fx/fx.####.png", "renders/x8/fx.####.png", 1, 8);
    spec.mutable_upscale()->set_last_frame(1);
    farm.RunToSuccess(spec);
    int w = 0, h = 0;
    testing::DecodeRgb(farm.storage() / "renders/x8/fx.0001.png", "", &w, &h);
    CHECK(w == 1024);
    CHECK(h == 1024);
    v1::SubmitJobResponse resp;
    grpc::Status st =
        farm.Submit(Spec("plates/fx/fx.####.png", "renders/x5/fx.####.png", 1, 5), &resp);
    CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK_THAT(st.error_message(), Catch::Contains("upscale.scale is 5") &&
                                       Catch::Contains("esrgan-slim") &&
                                       Catch::Contains("2, 3, 4, 8"));
    v1::JobSpec bicubic = Spec("plates/fx/fx.####.png", "renders/b8/fx.####.png", 1, 8);
    bicubic.mutable_upscale()->set_model("bicubic");
    st = farm.Submit(bicubic, &resp);
    CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK_THAT(st.error_message(), Catch::Contains("2, 3, 4"));
  }
}
