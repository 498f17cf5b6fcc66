// Tests for image-sequence inputs (media/image_source.cc): frame ranges, gaps
// named at probe time, exact conversion of 16-bit, 10-bit and float images; and the
// decoder's frame-size limit.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "media/media.h"
#include "media/output_format.h"
#include "tests/testing/fixtures.h"

namespace reelfarm::media {
namespace {

namespace fs = std::filesystem;
using testing::Capture;
using testing::Run;
using testing::TempDir;

// Frames 1001..1000+count of a testsrc2 sequence in `pix_fmt` written by the ffmpeg tool.
void MakeSequence(const fs::path& pattern_printf, int count, const std::string& codec_args) {
  fs::create_directories(pattern_printf.parent_path());
  REQUIRE(Run("ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=s=64x36:r=24 -frames:v " +
              std::to_string(count) + " " + codec_args + " -start_number 1001 '" +
              pattern_printf.string() + "'") == 0);
}

std::vector<Frame> ReadSequence(const std::string& pattern, int64_t begin, int64_t end) {
  auto source = OpenImageSequenceSource(pattern, begin, end);
  INFO(source.status().ToString());
  REQUIRE(source.ok());
  std::vector<Frame> frames;
  while (true) {
    Frame f;
    auto more = (*source)->Next(&f);
    INFO(more.status().ToString());
    REQUIRE(more.ok());
    if (!*more) break;
    frames.push_back(std::move(f));
  }
  return frames;
}

// The file decoded by the ffmpeg tool as planar float R, G, B.
std::vector<float> ReferenceFloat(const fs::path& file) {
  const std::string raw = Capture("ffmpeg -nostdin -v error -i '" + file.string() +
                                  "' -f rawvideo -pix_fmt gbrpf32le -");
  std::vector<float> gbr(raw.size() / 4);
  std::memcpy(gbr.data(), raw.data(), gbr.size() * 4);
  const size_t n = gbr.size() / 3;
  std::vector<float> rgb(gbr.size());
  std::memcpy(rgb.data(), gbr.data() + 2 * n, n * 4);
  std::memcpy(rgb.data() + n, gbr.data(), n * 4);
  std::memcpy(rgb.data() + 2 * n, gbr.data() + n, n * 4);
  return rgb;
}

std::vector<uint16_t> ReferenceRgb48(const fs::path& file) {
  const std::string raw =
      Capture("ffmpeg -nostdin -v error -i '" + file.string() + "' -f rawvideo -pix_fmt rgb48le -");
  std::vector<uint16_t> v(raw.size() / 2);
  std::memcpy(v.data(), raw.data(), v.size() * 2);
  return v;
}

TEST_CASE("ProbeImageSequence finds the range and names the missing frames",
          "[unit][media][sequence]") {
  TempDir dir;
  MakeSequence(dir.path() / "plates/sh010.%04d.png", 10, "-pix_fmt rgb48be");
  const std::string pattern = (dir.path() / "plates/sh010.####.png").string();

  auto info = ProbeImageSequence(pattern);
  INFO(info.status().ToString());
  REQUIRE(info.ok());
  CHECK(info->first_frame == 1001);
  CHECK(info->frame_count == 10);
  CHECK(info->width == 64);
  CHECK(info->height == 36);
  CHECK(info->pixel_format == "rgb48be");
  CHECK(info->codec == "png");

  info = ProbeImageSequence((dir.path() / "plates/sh010.%04d.png").string(), 1003, 1005);
  REQUIRE(info.ok());
  CHECK(info->first_frame == 1003);
  CHECK(info->frame_count == 3);

  fs::remove(dir.path() / "plates/sh010.1004.png");
  fs::remove(dir.path() / "plates/sh010.1006.png");
  fs::remove(dir.path() / "plates/sh010.1007.png");
  info = ProbeImageSequence(pattern);
  CHECK(info.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(info.status().message()),
             Catch::Contains(pattern) && Catch::Contains("3 of frames 1001-1010 missing") &&
                 Catch::Contains("1004, 1006-1007"));
  CHECK(ProbeImageSequence(pattern, 1001, 1003).ok());
  // Asking past the end names the frames that are not there.
  info = ProbeImageSequence(pattern, 1008, 1012);
  CHECK_THAT(std::string(info.status().message()), Catch::Contains("1011-1012"));

  info = ProbeImageSequence((dir.path() / "plates/nothing.####.exr").string());
  CHECK(info.status().code() == absl::StatusCode::kNotFound);

  // A missing frame met while reading fails naming the file and the frame.
  auto source = OpenImageSequenceSource(pattern, 1003, 1005);
  REQUIRE(source.ok());
  Frame f;
  CHECK(*(*source)->Next(&f));
  CHECK(f.index == 1003);
  auto more = (*source)->Next(&f);
  CHECK(more.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(more.status().message()),
             Catch::Contains("sh010.1004.png") && Catch::Contains("frame 1004"));
}

TEST_CASE("a frame that is a link leading out of its sequence's folder is refused",
          "[unit][media][sequence]") {
  TempDir dir;
  MakeSequence(dir.path() / "plates/sh010.%04d.png", 3, "-pix_fmt rgb24");
  MakeSequence(dir.path() / "elsewhere/x.%04d.png", 1, "-pix_fmt rgb24");
  // A held frame (a link to the frame before it) is fine; a link out is not.
  fs::remove(dir.path() / "plates/sh010.1002.png");
  fs::create_symlink("sh010.1001.png", dir.path() / "plates/sh010.1002.png");
  fs::remove(dir.path() / "plates/sh010.1003.png");
  fs::create_symlink(dir.path() / "elsewhere/x.1001.png", dir.path() / "plates/sh010.1003.png");
  const std::string pattern = (dir.path() / "plates/sh010.####.png").string();
  auto source = OpenImageSequenceSource(pattern, 1001, 1004);
  REQUIRE(source.ok());
  Frame f;
  CHECK(*(*source)->Next(&f));
  CHECK(*(*source)->Next(&f));
  CHECK(f.index == 1002);
  auto out = (*source)->Next(&f);
  CHECK(out.status().code() == absl::StatusCode::kPermissionDenied);
  CHECK_THAT(std::string(out.status().message()),
             Catch::Contains("sh010.1003.png") && Catch::Contains("outside its folder"));
}

TEST_CASE("16-bit, 10-bit and float sequences convert to float frames exactly",
          "[unit][media][sequence]") {
  struct Case {
    const char* pattern;
    const char* args;
    double max_error;  // against the ffmpeg tool's decode, in [0, 1] units
  };
  const Case cases[] = {
      {"png16/p.%04d.png", "-pix_fmt rgb48be", 0.5 / 65535},
      {"tiff16/p.%04d.tif", "-pix_fmt rgb48le", 0.5 / 65535},
      {"dpx10/p.%04d.dpx", "-pix_fmt gbrp10le", 1e-6},  // against the 10-bit codes
      {"exr/p.%04d.exr", "-c:v exr -pix_fmt gbrpf32le", 1e-7},
  };
  TempDir dir;
  for (const Case& c : cases) {
    DYNAMIC_SECTION(c.pattern) {
      MakeSequence(dir.path() / c.pattern, 3, c.args);
      const auto frames = ReadSequence((dir.path() / c.pattern).string(), 1001, 1004);
      REQUIRE(frames.size() == 3);
      for (int i = 0; i < 3; ++i) {
        CHECK(frames[i].index == 1001 + i);
        CHECK(frames[i].width == 64);
        const fs::path file = dir.path() / FramePath(c.pattern, 1001 + i);
        double worst = 0;
        if (std::string(c.pattern).rfind("dpx", 0) == 0) {
          // The file's own 10-bit codes (planes G, B, R), each code / 1023.
          const std::string raw = Capture("ffmpeg -nostdin -v error -i '" + file.string() +
                                          "' -f rawvideo -pix_fmt gbrp10le -");
          const size_t n = 64 * 36;
          REQUIRE(raw.size() == 3 * n * 2);
          std::vector<uint16_t> codes(3 * n);
          std::memcpy(codes.data(), raw.data(), raw.size());
          const size_t plane_of[3] = {2, 0, 1};  // R, G, B in GBR planes
          for (size_t ch = 0; ch < 3; ++ch) {
            for (size_t p = 0; p < n; ++p) {
              worst = std::max(worst, std::abs(codes[plane_of[ch] * n + p] / 1023.0 -
                                               frames[i].planes[ch * n + p]));
            }
          }
        } else if (std::string(c.pattern).rfind("exr", 0) == 0) {
          const auto ref = ReferenceFloat(file);
          REQUIRE(ref.size() == frames[i].planes.size());
          for (size_t k = 0; k < ref.size(); ++k) {
            worst = std::max(worst, std::abs(double(ref[k]) - frames[i].planes[k]));
          }
        } else {
          const auto ref = ReferenceRgb48(file);
          const size_t n = 64 * 36;
          REQUIRE(ref.size() == 3 * n);
          for (size_t p = 0; p < n; ++p) {
            for (size_t ch = 0; ch < 3; ++ch) {
              worst = std::max(worst,
                               std::abs(ref[3 * p + ch] / 65535.0 - frames[i].planes[ch * n + p]));
            }
          }
        }
        INFO(file.string());
        CHECK(worst <= c.max_error);
      }
    }
  }
}

TEST_CASE("Frames over the size limit are refused before decoding", "[unit][media]") {
  TempDir dir;
  const fs::path big = dir.path() / "wide.png";
  REQUIRE(Run("ffmpeg -nostdin -v error -y -f lavfi -i color=s=8200x8 -frames:v 1 '" +
              big.string() + "'") == 0);
  auto source = OpenVideoSource(big.string(), 0, 1);
  CHECK(source.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(source.status().message()), Catch::Contains(big.string()) &&
                                                         Catch::Contains("8200x8") &&
                                                         Catch::Contains("limit of 8192x8192"));
  auto info = ProbeVideo(big.string());
  CHECK(info.status().code() == absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace reelfarm::media
