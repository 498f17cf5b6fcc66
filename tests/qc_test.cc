// QC flags (media/qc.h): each fires on a clip made to trigger it and none on a clean one
// (ffmpeg's testsrc2 with grain). Black frames are checked against ffmpeg's own blackdetect.
#include <cmath>
#include <fstream>
#include <limits>
#include <regex>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "media/media.h"
#include "media/picture.h"
#include "media/qc.h"
#include "testing/fixtures.h"

using namespace reelfarm;
using reelfarm::testing::TempDir;

namespace {

// Makes an H.264 clip of 48 frames at 64x48 from a lavfi graph.
std::string MakeClip(const TempDir& dir, const std::string& name, const std::string& graph) {
  const std::string path = (dir.path() / (name + ".mp4")).string();
  REQUIRE(testing::Run("ffmpeg -v error -y -filter_complex \"" + graph +
                       "\" -frames:v 48 -pix_fmt yuv420p -c:v libx264 -crf 10 " + path) == 0);
  return path;
}

std::vector<media::Frame> Decode(const std::string& path) {
  absl::StatusOr<media::VideoInfo> info = media::ProbeVideo(path);
  REQUIRE(info.ok());
  auto source = media::OpenVideoSource(path, 0, info->frame_count);
  REQUIRE(source.ok());
  std::vector<media::Frame> frames;
  media::Frame f;
  while (true) {
    absl::StatusOr<bool> more = (*source)->Next(&f);
    REQUIRE(more.ok());
    if (!*more) break;
    frames.push_back(f);
  }
  return frames;
}

media::QcStats Measure(const std::vector<media::Frame>& frames) {
  media::QcMeter meter;
  for (const media::Frame& f : frames) meter.Add(f);
  return meter.stats();
}

bool HasFlag(const std::vector<std::string>& flags, const std::string& name) {
  for (const std::string& f : flags) {
    if (f.rfind(name + ":", 0) == 0) return true;
  }
  return false;
}

// testsrc2 with temporal grain: on its own, its moving parts are too small for a
// 64x48 frame to differ by the freezedetect threshold (ffmpeg finds it frozen too).
constexpr char kClean[] = "testsrc2=size=64x48:rate=24,noise=alls=10:allf=t+u";

}  // namespace

TEST_CASE("QC raises no flag on a clean clip", "[unit]") {
  TempDir dir;
  const media::QcStats s = Measure(Decode(MakeClip(dir, "clean", kClean)));
  CHECK(s.frames == 48);
  INFO("clipped " << s.clipped_low_fraction << " + " << s.clipped_high_fraction << ", frozen "
                  << s.frozen_frames << ", black " << s.black_frames);
  CHECK(media::QcFlags(s).empty());
}

TEST_CASE("QC flags black frames as ffmpeg's blackdetect finds them", "[unit]") {
  TempDir dir;
  // 12 frames of testsrc2, 24 black ones, then 12 of testsrc2 again.
  const std::string path =
      MakeClip(dir, "black",
               std::string(kClean) + ",split[s1][s2];[s1]trim=end_frame=12[a];" +
                   "color=black:size=64x48:rate=24,trim=end_frame=24[b];" +
                   "[s2]trim=start_frame=36,setpts=PTS-STARTPTS[c];[a][b][c]concat=n=3:v=1:a=0");
  const media::QcStats s = Measure(Decode(path));
  const std::vector<std::string> flags = media::QcFlags(s);
  CHECK(HasFlag(flags, "black"));
  CHECK_FALSE(HasFlag(flags, "nan"));
  // The reference: blackdetect's black duration, in frames at 24 fps.
  const std::string log =
      testing::Capture("ffmpeg -hide_banner -i " + path +
                       " -vf blackdetect=d=0:pix_th=0.10:pic_th=0.98 -an -f null - 2>&1");
  std::smatch m;
  REQUIRE(std::regex_search(log, m, std::regex("black_duration:([0-9.]+)")));
  const double frames = std::stod(m[1].str()) * 24;
  CHECK(s.black_frames == static_cast<int64_t>(std::lround(frames)));
  CHECK(s.black_frames == 24);
}

TEST_CASE("QC flags frozen frames", "[unit]") {
  TempDir dir;
  // Two moving frames, then the second one held for the rest.
  const media::QcStats s = Measure(Decode(MakeClip(
      dir, "frozen", std::string(kClean) + ",trim=end_frame=2,tpad=stop_mode=clone:stop=46")));
  const std::vector<std::string> flags = media::QcFlags(s);
  CHECK(HasFlag(flags, "frozen"));
  CHECK(s.frozen_frames >= 45);
  CHECK_FALSE(HasFlag(flags, "black"));
}

TEST_CASE("QC flags pixels clipped at 0 and 1", "[unit]") {
  TempDir dir;
  // testsrc2 under a white box over the upper 30 of its 48 rows (62.5% of the pixels).
  const media::QcStats s = Measure(Decode(MakeClip(
      dir, "clipped", std::string(kClean) + ",drawbox=x=0:y=0:w=64:h=30:color=white:t=fill")));
  const std::vector<std::string> flags = media::QcFlags(s);
  CHECK(HasFlag(flags, "clipped"));
  CHECK(s.clipped_high_fraction > 0.45);  // 62.5% drawn; the coded edges blur
  CHECK_FALSE(HasFlag(flags, "black"));
}

TEST_CASE("QC flags NaN and Inf samples in frames", "[unit]") {
  TempDir dir;
  std::vector<media::Frame> frames = Decode(MakeClip(dir, "nan", kClean));
  CHECK_FALSE(HasFlag(media::QcFlags(Measure(frames)), "nan"));
  // What a model that overflows gives: NaN and Inf in some samples of one frame.
  frames[10].planes[5] = std::numeric_limits<float>::quiet_NaN();
  frames[10].planes[6] = std::numeric_limits<float>::infinity();
  const media::QcStats s = Measure(frames);
  CHECK(s.nan_inf_samples == 2);
  const std::vector<std::string> flags = media::QcFlags(s);
  CHECK(HasFlag(flags, "nan"));
  CHECK(flags.size() == 1);
}

namespace {

media::Frame Flat(int w, int h, float v) {
  media::Frame f;
  f.width = w;
  f.height = h;
  f.planes.assign(static_cast<size_t>(3) * w * h, v);
  return f;
}

}  // namespace

TEST_CASE("QC's median difference is the median of the frame-to-frame differences", "[unit]") {
  // Flat frames at 0, 0.1, 0.1, 0.4, 0.45: steps 0.1, 0, 0.3, 0.05 -> median 0.075.
  media::QcMeter meter;
  for (float v : {0.0f, 0.1f, 0.1f, 0.4f, 0.45f}) meter.Add(Flat(8, 4, v));
  CHECK(meter.stats().median_difference == Approx(0.075).epsilon(1e-5));
  media::QcMeter odd;
  for (float v : {0.0f, 0.1f, 0.1f, 0.4f}) odd.Add(Flat(8, 4, v));  // steps 0.1, 0, 0.3
  CHECK(odd.stats().median_difference == Approx(0.1).epsilon(1e-5));
  CHECK(media::MeanAbsoluteDifference(Flat(8, 4, 0.25f), Flat(8, 4, 0.75f)) == Approx(0.5));
  CHECK(media::MeanAbsoluteDifference(Flat(8, 4, 0.25f), Flat(4, 8, 0.75f)) == -1);
}

TEST_CASE("seam flicker needs a step well above both chunks' medians and above noise", "[unit]") {
  // testsrc2 (numpy on ffmpeg's decode): steps and seams about 0.02; a brightness jump of
  // 0.4 at the seam: 0.24.
  CHECK(media::IsSeamFlicker(0.24, 0.020, 0.014));
  CHECK_FALSE(media::IsSeamFlicker(0.021, 0.020, 0.021));
  CHECK_FALSE(media::IsSeamFlicker(0.05, 0.020, 0.02));  // 2.5x: within the chunks' motion
  CHECK_FALSE(media::IsSeamFlicker(0.24, 0.01, 0.1));    // the next chunk moves that much
  // A still clip: medians near 0, a compression step at the seam is not flicker.
  CHECK_FALSE(media::IsSeamFlicker(0.015, 0.0005, 0.0004));
  CHECK(media::IsSeamFlicker(0.1, 0.0005, 0.0004));
}

TEST_CASE("a thumbnail is the frame scaled down by area and coded as a JPEG ffmpeg reads back",
          "[unit]") {
  TempDir dir;
  const std::string clip = (dir.path() / "big.mp4").string();
  REQUIRE(testing::Run("ffmpeg -v error -y -f lavfi -i testsrc2=size=640x360:rate=24 -frames:v 1 "
                       "-pix_fmt yuv444p -c:v libx264 -qp 0 " +
                       clip) == 0);
  const std::vector<media::Frame> frames = Decode(clip);
  REQUIRE(frames.size() == 1);
  const media::Frame small = media::ShrinkFrame(frames[0], 320);
  CHECK(small.width == 320);
  CHECK(small.height == 180);
  CHECK(media::ShrinkFrame(frames[0], 1000).width == 640);  // never enlarged
  absl::StatusOr<std::string> jpeg = media::EncodeJpeg(small);
  REQUIRE(jpeg.ok());
  const auto jpeg_path = dir.path() / "thumb.jpg";
  std::ofstream(jpeg_path, std::ios::binary) << *jpeg;
  CHECK(testing::Capture("ffprobe -v error -show_entries stream=codec_name,width,height -of "
                         "csv=p=0 " +
                         jpeg_path.string()) == "mjpeg,320,180\n");
  // Against ffmpeg's own area scale of the same frame (the reference): the shrink is
  // the same filter, the JPEG close to it.
  int w = 0, h = 0;
  const auto reference = testing::DecodeRgb(clip, "scale=320:180:flags=area", &w, &h);
  REQUIRE(reference.size() == 1);
  std::vector<uint8_t> shrunk(static_cast<size_t>(3) * w * h);
  const size_t n = static_cast<size_t>(w) * h;
  for (size_t i = 0; i < n; ++i) {
    for (size_t c = 0; c < 3; ++c) {
      shrunk[3 * i + c] = static_cast<uint8_t>(std::lround(small.planes[c * n + i] * 255));
    }
  }
  CHECK(testing::Psnr(shrunk, reference[0]) > 40);
  const auto decoded = testing::DecodeRgb(jpeg_path, "", &w, &h);
  REQUIRE(decoded.size() == 1);
  CHECK(testing::Psnr(decoded[0], reference[0]) > 28);
}

TEST_CASE("a take preview is an animated WebP that loops, one frame per frame", "[unit]") {
  std::vector<media::Frame> frames;
  for (int i = 0; i < 6; ++i) frames.push_back(Flat(64, 48, static_cast<float>(i) / 6));
  absl::StatusOr<std::string> webp = media::EncodeAnimatedWebp(frames, 12);
  REQUIRE(webp.ok());
  const std::string& b = *webp;
  REQUIRE(b.size() > 40);
  CHECK(b.compare(0, 4, "RIFF") == 0);
  CHECK(b.compare(8, 4, "WEBP") == 0);
  // RIFF chunks: VP8X, then ANIM (background colour, loop count: 0 = forever), then
  // one ANMF per frame.
  const size_t anim = b.find("ANIM");
  REQUIRE(anim != std::string::npos);
  CHECK(static_cast<uint8_t>(b[anim + 12]) == 0);
  CHECK(static_cast<uint8_t>(b[anim + 13]) == 0);
  int anmf = 0;
  for (size_t at = b.find("ANMF"); at != std::string::npos; at = b.find("ANMF", at + 4)) ++anmf;
  CHECK(anmf == 6);
  CHECK(media::EncodeAnimatedWebp({}, 12).status().code() == absl::StatusCode::kInvalidArgument);
}
