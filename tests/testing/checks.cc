#include "tests/testing/checks.h"

#include <catch2/catch.hpp>

#include "media/media.h"
#include "tests/testing/fixtures.h"

namespace reelfarm::testing {
namespace fs = std::filesystem;

v1::JobSpec UpscaleSpec(const std::string& input, const std::string& output, int chunk,
                        const std::string& model, int scale) {
  v1::JobSpec spec;
  auto* u = spec.mutable_upscale();
  u->set_input(input);
  u->set_output(output);
  u->set_model(model);
  u->set_scale(scale);
  u->set_chunk_frames(chunk);
  return spec;
}

void CheckUpscaledClip(const fs::path& source, const fs::path& output, int frames,
                       const std::string& reference_filter, double min_psnr) {
  REQUIRE(fs::exists(output));
  auto info = media::ProbeVideo(output.string());
  REQUIRE(info.ok());
  CHECK(info->width == 640);
  CHECK(info->height == 360);
  CHECK(info->frame_count == frames);
  CHECK(info->fps_num == 24);
  CHECK(info->fps_den == 1);

  int status = 0;
  std::string errors =
      Capture("ffmpeg -nostdin -v error -i '" + output.string() + "' -f null - 2>&1", &status);
  CHECK(status == 0);
  CHECK(errors.empty());

  // PSNR over the Y, U and V planes (ffmpeg's psnr convention), the domain both
  // movies are coded in; the reference is ffmpeg's own scaler on the source.
  int w = 0, h = 0;
  auto out = DecodeYuv420(output, "", &w, &h);
  auto ref = DecodeYuv420(source, reference_filter, &w, &h);
  REQUIRE(out.size() == static_cast<size_t>(frames));
  REQUIRE(ref.size() == static_cast<size_t>(frames));
  double worst = 1e9;
  int misplaced = 0;
  for (int i = 0; i < frames; ++i) {
    double own = Psnr(out[i], ref[i]);
    worst = std::min(worst, own);
    if (i > 0 && Psnr(out[i], ref[i - 1]) >= own) ++misplaced;
    if (i + 1 < frames && Psnr(out[i], ref[i + 1]) >= own) ++misplaced;
  }
  INFO("lowest PSNR against the reference: " << worst << " dB");
  CHECK(worst >= min_psnr);
  CHECK(misplaced == 0);
}

}  // namespace reelfarm::testing
