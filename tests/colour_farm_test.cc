// Colour-managed inference through a real farm (README "Colour management"): a linear
// ACEScg EXR plate with highlights above 1.0 upscaled with esrgan-slim keeps them, and
// matches, in the model's (shaped) space, the same model run on the plate converted by
// hand with the OpenColorIO API; the sidecar, the EXR chromaticities and the movie
// colour tags say what was applied; bad names are refused at submit.
// ImfHeader.h first: it declares Imf::Chromaticities with its export attribute.
#include <ImfHeader.h>

#include <ImfChannelList.h>
#include <ImfChromaticities.h>
#include <ImfFrameBuffer.h>
#include <ImfInputFile.h>
#include <ImfOutputFile.h>
#include <ImfStandardAttributes.h>
#include <OpenColorIO/OpenColorIO.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/storage.h"
#include "media/colour.h"
#include "tests/testing/checks.h"
#include "tests/testing/farm.h"
#include "tests/testing/fixtures.h"

namespace fs = std::filesystem;
namespace OCIO = OCIO_NAMESPACE;
using namespace reelfarm;
using testing::Farm;

namespace {

// The shaper as the README documents it: ACEScct codes [0.0729055341958355,
// 15.72 / 17.52] (linear 0 and 64.0) onto [0, 1]. Written here from the README, not
// taken from media/colour.h.
constexpr double kLow = 0.0729055341958355;
constexpr double kHigh = 15.72 / 17.52;

struct Image {
  int width = 0, height = 0;
  std::vector<float> planes;  // R, then G, then B
  std::optional<Imf::Chromaticities> chromaticities;
  float* plane(int c) { return planes.data() + static_cast<size_t>(c) * width * height; }
};

void WriteExr(const fs::path& path, Image& img, bool ap1) {
  Imf::Header header(img.width, img.height);
  for (const char* c : {"R", "G", "B"}) header.channels().insert(c, Imf::Channel(Imf::FLOAT));
  if (ap1) {
    Imf::addChromaticities(header, Imf::Chromaticities({0.713f, 0.293f}, {0.165f, 0.830f},
                                                       {0.128f, 0.044f}, {0.32168f, 0.33767f}));
  }
  Imf::FrameBuffer fb;
  const char* names[3] = {"R", "G", "B"};
  for (int c = 0; c < 3; ++c) {
    fb.insert(names[c], Imf::Slice(Imf::FLOAT, reinterpret_cast<char*>(img.plane(c)), sizeof(float),
                                   sizeof(float) * img.width));
  }
  Imf::OutputFile out(path.c_str(), header);
  out.setFrameBuffer(fb);
  out.writePixels(img.height);
}

Image ReadExr(const fs::path& path) {
  Imf::InputFile in(path.c_str());
  const Imath::Box2i dw = in.header().dataWindow();
  Image img;
  img.width = dw.max.x - dw.min.x + 1;
  img.height = dw.max.y - dw.min.y + 1;
  img.planes.resize(3 * static_cast<size_t>(img.width) * img.height);
  Imf::FrameBuffer fb;
  const char* names[3] = {"R", "G", "B"};
  for (int c = 0; c < 3; ++c) {
    fb.insert(names[c], Imf::Slice(Imf::FLOAT, reinterpret_cast<char*>(img.plane(c)), sizeof(float),
                                   sizeof(float) * img.width));
  }
  in.setFrameBuffer(fb);
  in.readPixels(dw.min.y, dw.max.y);
  if (Imf::hasChromaticities(in.header())) img.chromaticities = Imf::chromaticities(in.header());
  return img;
}

OCIO::ConstConfigRcPtr Config() {
  return OCIO::Config::CreateFromFile(media::ShippedOcioConfigPath().c_str());
}

// `img` from `src` to `dst` with the OCIO API (optimised losslessly).
void Convert(Image& img, const std::string& src, const std::string& dst) {
  OCIO::ConstCPUProcessorRcPtr cpu =
      Config()
          ->getProcessor(src.c_str(), dst.c_str())
          ->getOptimizedCPUProcessor(OCIO::BIT_DEPTH_F32, OCIO::BIT_DEPTH_F32,
                                     OCIO::OPTIMIZATION_LOSSLESS);
  OCIO::PlanarImageDesc desc(img.plane(0), img.plane(1), img.plane(2), nullptr, img.width,
                             img.height);
  cpu->apply(desc);
}

// ACEScg -> the model's shaped space, by hand.
Image Shaped(Image img) {
  Convert(img, "ACEScg", "ACEScct");
  for (float& v : img.planes) v = static_cast<float>((v - kLow) / (kHigh - kLow));
  return img;
}

double PsnrUnit(const Image& a, const Image& b) {
  REQUIRE(a.planes.size() == b.planes.size());
  double se = 0;
  for (size_t i = 0; i < a.planes.size(); ++i) {
    const double d = std::clamp(a.planes[i], 0.0f, 1.0f) - std::clamp(b.planes[i], 0.0f, 1.0f);
    se += d * d;
  }
  const double mse = se / static_cast<double>(a.planes.size());
  return mse == 0 ? 99.0 : 10.0 * std::log10(1.0 / mse);
}

nlohmann::json Sidecar(const fs::path& p) {
  std::ifstream in(p);
  REQUIRE(in);
  return nlohmann::json::parse(in);
}

v1::JobSpec Spec(const std::string& input, const std::string& output, const std::string& model) {
  v1::JobSpec spec = testing::UpscaleSpec(input, output, 1, model);
  spec.mutable_upscale()->set_scale(2);
  spec.mutable_upscale()->set_overwrite(true);
  return spec;
}

}  // namespace

TEST_CASE(
    "a linear EXR plate through esrgan-slim keeps its highlights and matches the model "
    "on the plate converted by hand",
    "[integration][esrgan][colour]") {
  testing::TempDir dir;
  const fs::path pkg =
      testing::UnpackFetchedPackage(dir.path() / "pkg", "upscalerjs-esrgan-slim-1.0.0.tgz");
  const fs::path models = testing::ModelFolderWith(dir.path() / "models", "esrgan-slim");

  // The plate: the package's fixture (sRGB) in ACEScg, two stops brighter, with a
  // specular patch at 12.0: values from 0 to 12, most of the picture above 1.0 in places.
  int w = 0, h = 0;
  auto rgb = testing::DecodeRgb(pkg / "assets/fixture.png", "", &w, &h);
  REQUIRE(rgb.size() == 1);
  Image plate;
  plate.width = w;
  plate.height = h;
  plate.planes.resize(3 * static_cast<size_t>(w) * h);
  for (size_t i = 0; i < static_cast<size_t>(w) * h; ++i) {
    for (int c = 0; c < 3; ++c) plate.plane(c)[i] = rgb[0][3 * i + c] / 255.0f;
  }
  Convert(plate, "sRGB - Texture", "ACEScg");
  for (float& v : plate.planes) v *= 4.0f;
  for (int y = 48; y < 80; ++y) {
    for (int x = 48; x < 80; ++x) {
      for (int c = 0; c < 3; ++c) plate.plane(c)[y * w + x] = 12.0f;
    }
  }
  const float plate_max = *std::max_element(plate.planes.begin(), plate.planes.end());
  REQUIRE(plate_max == 12.0f);

  Farm farm(dir.path() / "farm", {"--model-path", models.string()});
  fs::create_directories(farm.storage() / "plates/hdr");
  fs::create_directories(farm.storage() / "plates/ref");
  WriteExr(farm.storage() / "plates/hdr/hdr.0001.exr", plate, true);
  // The reference input: the plate converted by hand to the model's space.
  Image by_hand = Shaped(plate);
  WriteExr(farm.storage() / "plates/ref/ref.0001.exr", by_hand, false);
  farm.StartWorker("w1", {"--model-path", models.string()});
  farm.WaitForWorkers(1);

  // Colour-managed: ACEScg in and out.
  v1::JobSpec cm = Spec("plates/hdr/hdr.####.exr", "renders/cm/cm.####.exr", "esrgan-slim");
  cm.mutable_upscale()->set_colorspace_in("ACEScg");
  cm.mutable_upscale()->set_colorspace_out("ACEScg");
  farm.RunToSuccess(cm);
  // The model on the hand-converted plate, not colour-managed (values already in [0, 1]).
  farm.RunToSuccess(Spec("plates/ref/ref.####.exr", "renders/ref/ref.####.exr", "esrgan-slim"));

  Image out = ReadExr(farm.storage() / "renders/cm/cm.0001.exr");
  REQUIRE(out.width == 2 * w);
  REQUIRE(out.height == 2 * h);
  // Highlights survive: the patch's middle is near 12.0, far above 1.0.
  const float out_max = *std::max_element(out.planes.begin(), out.planes.end());
  INFO("plate max " << plate_max << ", output max " << out_max);
  CHECK(out_max > 1.0f);
  const float patch = out.plane(1)[128 * out.width + 128];
  INFO("patch middle (12.0 in the plate): " << patch);
  CHECK(patch > 9.0f);
  CHECK(patch < 15.0f);
  int above_one = 0;
  for (float v : out.planes) above_one += v > 1.0f;
  CHECK(above_one > 1000);

  // In the model's space: the farm's output converted by hand against the model's
  // output on the hand-converted plate.
  const Image ref = ReadExr(farm.storage() / "renders/ref/ref.0001.exr");
  const double psnr = PsnrUnit(Shaped(out), ref);
  std::printf(
      "colour-managed esrgan-slim x2 vs the model on the plate converted by hand: %.2f dB "
      "(output max %.3f, patch %.3f)\n",
      psnr, out_max, patch);
  INFO("PSNR in the model's space: " << psnr << " dB");
  CHECK(psnr >= 40.0);

  // The sidecar and the file say what was applied.
  const nlohmann::json sc = Sidecar(farm.storage() / "renders/cm/cm.####.exr.json");
  INFO(sc.dump(2));
  const nlohmann::json& col = sc["colour"];
  CHECK(col["managed"] == true);
  CHECK(col["config"] == fs::absolute(media::ShippedOcioConfigPath()).lexically_normal().string());
  auto sha = common::Sha256File(media::ShippedOcioConfigPath());
  REQUIRE(sha.ok());
  CHECK(col["config_sha256"] == *sha);
  CHECK(col["input"]["space"] == "ACEScg");
  CHECK(col["input"]["from"] == "job");
  CHECK(col["model"]["space"] == "sRGB - Texture");
  CHECK(col["model"]["range"] == "[0,255]");
  CHECK(col["output"]["space"] == "ACEScg");
  CHECK(col["shaper"]["space"] == "ACEScct");
  CHECK(col["shaper"]["low"].get<double>() == Approx(kLow));
  CHECK(col["shaper"]["high"].get<double>() == Approx(kHigh));
  REQUIRE(col["transforms"].size() == 3);
  CHECK(col["transforms"][0].get<std::string>().find("'ACEScg' -> ACEScct") == 0);
  CHECK(col["transforms"][1] == "model");
  CHECK(col["transforms"][2].get<std::string>().find("inverted -> 'ACEScg'") != std::string::npos);
  REQUIRE(out.chromaticities);
  CHECK(out.chromaticities->red.x == Approx(0.713f));
  CHECK(out.chromaticities->green.y == Approx(0.830f));
  CHECK(out.chromaticities->white.x == Approx(0.32168f));
  // The reference job was not colour-managed, and says so.
  const nlohmann::json rc = Sidecar(farm.storage() / "renders/ref/ref.####.exr.json");
  CHECK(rc["colour"]["managed"] == false);
  CHECK(rc["colour"]["note"] == "not colour-managed");
  CHECK_FALSE(ReadExr(farm.storage() / "renders/ref/ref.0001.exr").chromaticities);

  {  // no input space named: the EXR's chromaticities say ACEScg
    v1::JobSpec d = Spec("plates/hdr/hdr.####.exr", "renders/d/d.####.exr", "esrgan-slim");
    d.mutable_upscale()->set_colorspace_out("ACEScg");
    farm.RunToSuccess(d);
    const nlohmann::json s = Sidecar(farm.storage() / "renders/d/d.####.exr.json");
    CHECK(s["colour"]["input"]["space"] == "ACEScg");
    CHECK(s["colour"]["input"]["from"] == "EXR chromaticities: ACES AP1");
    const Image o = ReadExr(farm.storage() / "renders/d/d.0001.exr");
    CHECK(PsnrUnit(Shaped(o), ref) >= 40.0);
  }

  {  // a model without a declared space runs as before and the sidecar says so
    v1::JobSpec b = Spec("plates/hdr/hdr.####.exr", "renders/b/b.####.exr", "bicubic");
    b.mutable_upscale()->set_colorspace_in("ACEScg");
    farm.RunToSuccess(b);
    const nlohmann::json s = Sidecar(farm.storage() / "renders/b/b.####.exr.json");
    CHECK(s["colour"]["managed"] == false);
    CHECK(s["colour"]["note"] == "not colour-managed");
    CHECK_THAT(s["colour"]["reason"].get<std::string>(),
               Catch::Contains("'bicubic' declares no colour space"));
    // As before: the float source clamps to [0, 1].
    const Image o = ReadExr(farm.storage() / "renders/b/b.0001.exr");
    CHECK(*std::max_element(o.planes.begin(), o.planes.end()) <= 1.0f);
  }

  {  // a movie output carries the output space's colour tags
    fs::create_directories(farm.storage() / "plates/png");
    fs::copy_file(pkg / "assets/fixture.png", farm.storage() / "plates/png/fx.0001.png");
    v1::JobSpec m = Spec("plates/png/fx.####.png", "renders/m.mp4", "esrgan-slim");
    m.mutable_upscale()->set_colorspace_in("sRGB - Texture");
    m.mutable_upscale()->set_colorspace_out("Rec.709 video");
    farm.RunToSuccess(m);
    const std::string probe = testing::Capture(
        "ffprobe -v error -select_streams v:0 -show_entries "
        "stream=color_primaries,color_transfer,color_space -of csv=p=0 '" +
        (farm.storage() / "renders/m.mp4").string() + "'");
    INFO(probe);
    CHECK(probe.find("bt709,bt709,bt709") != std::string::npos);
    const nlohmann::json s = Sidecar(farm.storage() / "renders/m.mp4.json");
    CHECK(s["colour"]["managed"] == true);
    CHECK(s["colour"]["shaper"].is_null());
    CHECK(s["colour"]["output"]["space"] == "Rec.709 video");
  }

  {  // unknown colour space names are refused at submit with the nearest names
    v1::JobSpec bad = Spec("plates/hdr/hdr.####.exr", "renders/x/x.####.exr", "esrgan-slim");
    bad.mutable_upscale()->set_colorspace_in("ACEScgg");
    v1::SubmitJobResponse resp;
    grpc::Status st = farm.Submit(bad, &resp);
    CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK_THAT(st.error_message(), Catch::StartsWith("upscale.colorspace_in: colour space "
                                                     "'ACEScgg' is not in OCIO config") &&
                                       Catch::Contains("nearest: 'ACEScg'"));
    bad.mutable_upscale()->set_colorspace_in("ACEScg");
    bad.mutable_upscale()->set_ocio_config("plates/none.ocio");
    st = farm.Submit(bad, &resp);
    CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK_THAT(st.error_message(), Catch::Contains("none.ocio"));
    // The same through reelctl's flags; then a good pair is taken.
    int status = 0;
    const std::string base = farm.Reelctl() +
                             " submit upscale --input plates/hdr/hdr.####.exr --output "
                             "renders/r/r.####.exr --model esrgan-slim --scale 2 --overwrite";
    std::string said = testing::Capture(
        base + " --colorspace-in ACEScg --colorspace-out 'Rec709 video' 2>&1", &status);
    INFO(said);
    CHECK(status != 0);
    CHECK_THAT(said, Catch::Contains("upscale.colorspace_out") &&
                         Catch::Contains("nearest: 'Rec.709 video'"));
    said = testing::Capture(base + " --colorspace-in acescg --colorspace-out ACEScct --watch 2>&1",
                            &status);
    CHECK(status == 0);
    const nlohmann::json s = Sidecar(farm.storage() / "renders/r/r.####.exr.json");
    CHECK(s["colour"]["input"]["space"] == "ACEScg");
    CHECK(s["colour"]["output"]["space"] == "ACEScct");
  }
}
