// QC flags (media/qc.h): each fires on a clip made to trigger it and none on a clean one
// (ffmpeg's testsrc2 with grain). Black frames are checked against ffmpeg's own blackdetect.
#include <cmath>
#include <limits>
#include <regex>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "media/media.h"
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
