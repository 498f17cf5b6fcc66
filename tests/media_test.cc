// Tests for media/: probing, ranged decoding, H.264 segments and their concat.
// Clips are made with ffmpeg's testsrc2; frames are compared with the ffmpeg tool's own
// rgb24 decode.
#include "media/media.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/testing/fixtures.h"
#include "tests/testing/frames.h"

namespace reelfarm::media {
namespace {

namespace fs = std::filesystem;
using testing::Capture;
using testing::DecodeRgb;

// The ffmpeg tool's rgb24 conversion with the chroma upsampling FrameSource uses.
const char* const kSameChroma = "scale=flags=bicubic+accurate_rnd+full_chroma_int";
using testing::MakeTestClip;
using testing::Psnr;
using testing::Run;
using testing::TempDir;

// Planar float RGB to packed rgb24, rounding, as the ffmpeg tool's output is laid out.
std::vector<uint8_t> ToRgb24(const Frame& frame) {
  const size_t n = static_cast<size_t>(frame.width) * frame.height;
  std::vector<uint8_t> rgb(3 * n);
  for (size_t i = 0; i < n; ++i) {
    for (size_t c = 0; c < 3; ++c) {
      rgb[3 * i + c] = static_cast<uint8_t>(std::lround(frame.planes[c * n + i] * 255.0f));
    }
  }
  return rgb;
}

// Each frame has index begin.. in order, matches the ffmpeg tool's decode of the same
// frame to at least `min_psnr` dB.
void CheckAgainstReference(const std::vector<Frame>& frames, int64_t begin,
                           const std::vector<std::vector<uint8_t>>& reference, double min_psnr) {
  for (size_t i = 0; i < frames.size(); ++i) {
    const int64_t index = begin + static_cast<int64_t>(i);
    CHECK(frames[i].index == index);
    REQUIRE(index < static_cast<int64_t>(reference.size()));
    const double psnr = Psnr(ToRgb24(frames[i]), reference[index]);
    INFO("frame " << index << " psnr " << psnr);
    CHECK(psnr >= min_psnr);
  }
}

void WriteSegment(const fs::path& path, const std::vector<Frame>& frames, int64_t first,
                  int crf = 12) {
  EncodeOptions options;
  options.width = frames.at(0).width;
  options.height = frames.at(0).height;
  options.fps_num = 24;
  options.fps_den = 1;
  options.crf = crf;
  options.first_index = first;
  auto sink = OpenH264Sink(path.string(), options);
  INFO(sink.status().ToString());
  REQUIRE(sink.ok());
  for (const Frame& frame : frames) {
    absl::Status written = (*sink)->Write(frame);
    INFO(written.ToString());
    REQUIRE(written.ok());
  }
  REQUIRE((*sink)->Close().ok());
  REQUIRE((*sink)->Close().ok());  // a second Close is harmless
}

TEST_CASE("ProbeVideo describes a testsrc2 clip exactly", "[unit][media]") {
  TempDir dir;
  const fs::path clip = dir.path() / "clip.mp4";
  MakeTestClip(clip, 320, 180, 48, 24);
  auto info = ProbeVideo(clip.string());
  INFO(info.status().ToString());
  REQUIRE(info.ok());
  CHECK(info->width == 320);
  CHECK(info->height == 180);
  CHECK(info->frame_count == 48);
  CHECK(info->fps_num == 24);
  CHECK(info->fps_den == 1);
  CHECK(info->codec == "h264");
  CHECK(info->pixel_format == "yuv420p");
}

TEST_CASE("ProbeVideo counts packets when the container has no frame count", "[unit][media]") {
  TempDir dir;
  const fs::path clip = dir.path() / "clip.mp4";
  MakeTestClip(clip, 320, 180, 30, 24);
  const fs::path mkv = dir.path() / "clip.mkv";
  REQUIRE(Run("ffmpeg -nostdin -v error -y -i '" + clip.string() + "' -c copy '" + mkv.string() +
              "'") == 0);
  auto info = ProbeVideo(mkv.string());
  INFO(info.status().ToString());
  REQUIRE(info.ok());
  CHECK(info->frame_count == 30);
  CHECK(info->fps_num == 24);
  CHECK(info->fps_den == 1);
}

TEST_CASE("ProbeVideo refuses what is not a readable video", "[unit][media]") {
  TempDir dir;

  SECTION("a missing file is NOT_FOUND and named") {
    const std::string missing = (dir.path() / "nope.mp4").string();
    auto info = ProbeVideo(missing);
    CHECK(info.status().code() == absl::StatusCode::kNotFound);
    CHECK_THAT(std::string(info.status().message()), Catch::Contains(missing));
  }

  SECTION("a text file") {
    const fs::path text = dir.path() / "notes.txt";
    std::ofstream(text) << "this is not a movie\n";
    auto info = ProbeVideo(text.string());
    INFO(info.status().ToString());
    CHECK(info.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK_THAT(std::string(info.status().message()), Catch::Contains(text.string()));
  }

  SECTION("an audio-only file") {
    const fs::path audio = dir.path() / "tone.m4a";
    REQUIRE(Run("ffmpeg -nostdin -v error -y -f lavfi -i sine=d=1 '" + audio.string() + "'") == 0);
    auto info = ProbeVideo(audio.string());
    INFO(info.status().ToString());
    CHECK(info.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK_THAT(std::string(info.status().message()), Catch::Contains("no video stream"));
  }

  SECTION("a truncated mp4 (moov atom at the end)") {
    const fs::path clip = dir.path() / "clip.mp4";
    MakeTestClip(clip, 320, 180, 48, 24);
    const fs::path cut = dir.path() / "cut.mp4";
    const auto size = fs::file_size(clip);
    fs::copy_file(clip, cut);
    fs::resize_file(cut, size * 3 / 10);
    auto info = ProbeVideo(cut.string());
    INFO(info.status().ToString());
    CHECK(info.status().code() == absl::StatusCode::kFailedPrecondition);
    auto source = OpenVideoSource(cut.string(), 0, 10);
    CHECK(source.status().code() == absl::StatusCode::kFailedPrecondition);
  }

  SECTION("a video stream whose frames are garbage") {
    const fs::path clip = dir.path() / "clip.h264";
    REQUIRE(Run("ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=s=320x180:r=24 "
                "-frames:v 12 -c:v libx264 -bsf:v h264_mp4toannexb '" +
                clip.string() + "'") == 0);
    // Keep the parameter sets (the first bytes) and scramble everything after them.
    std::fstream f(clip, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(0, std::ios::end);
    const auto size = static_cast<size_t>(f.tellp());
    std::string garbage(size - 800, '\0');
    for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<char>(i * 37 + 11);
    f.seekp(800);
    f.write(garbage.data(), garbage.size());
    f.close();
    auto info = ProbeVideo(clip.string());
    INFO(info.status().ToString());
    CHECK(info.status().code() == absl::StatusCode::kFailedPrecondition);
  }
}

TEST_CASE("OpenVideoSource returns exactly the asked frames", "[unit][media]") {
  TempDir dir;
  const fs::path clip = dir.path() / "clip.mp4";
  MakeTestClip(clip, 320, 180, 48, 24);
  int w = 0, h = 0;
  const auto reference = DecodeRgb(clip, kSameChroma, &w, &h);
  REQUIRE(reference.size() == 48);

  SECTION("[10, 20)") {
    const auto frames = testing::ReadFrames(clip, 10, 20);
    REQUIRE(frames.size() == 10);
    CHECK(frames[0].width == 320);
    CHECK(frames[0].height == 180);
    CHECK(frames[0].planes.size() == 3u * 320 * 180);
    CheckAgainstReference(frames, 10, reference, 45.0);
  }

  SECTION("[0, 48)") {
    const auto frames = testing::ReadFrames(clip, 0, 48);
    REQUIRE(frames.size() == 48);
    CheckAgainstReference(frames, 0, reference, 45.0);
  }

  SECTION("an empty range") { CHECK(testing::ReadFrames(clip, 5, 5).empty()); }

  SECTION("[40, 60) fails at frame 48") {
    auto source = OpenVideoSource(clip.string(), 40, 60);
    REQUIRE(source.ok());
    Frame frame;
    int returned = 0;
    absl::StatusOr<bool> more = true;
    while (more.ok() && *more) {
      more = (*source)->Next(&frame);
      if (more.ok() && *more) ++returned;
    }
    CHECK(returned == 8);
    CHECK(more.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK_THAT(std::string(more.status().message()), Catch::Contains("frame 48"));
    CHECK_THAT(std::string(more.status().message()), Catch::Contains(clip.string()));
  }

  SECTION("a negative range is INVALID_ARGUMENT") {
    CHECK(OpenVideoSource(clip.string(), 10, 5).status().code() ==
          absl::StatusCode::kInvalidArgument);
  }
}

TEST_CASE("OpenVideoSource seeks across keyframes", "[unit][media]") {
  TempDir dir;
  const fs::path clip = dir.path() / "gop12.mp4";
  REQUIRE(Run("ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=s=320x180:r=24 "
              "-frames:v 48 -c:v libx264 -crf 12 -g 12 -keyint_min 12 -sc_threshold 0 "
              "-pix_fmt yuv420p '" +
              clip.string() + "'") == 0);
  // Keyframes really are every 12 frames, so [30, 40) starts with a seek to 24 and
  // crosses the keyframe at 36.
  const std::string keys =
      Capture("ffprobe -v error -select_streams v:0 -show_entries packet=flags -of csv=p=0 '" +
              clip.string() + "' | grep -c K");
  CHECK(std::stoi(keys) == 4);
  int w = 0, h = 0;
  const auto reference = DecodeRgb(clip, kSameChroma, &w, &h);
  REQUIRE(reference.size() == 48);

  for (const auto& [begin, end] :
       {std::pair<int64_t, int64_t>{30, 40}, {36, 37}, {35, 48}, {12, 13}, {1, 2}, {47, 48}}) {
    INFO("range [" << begin << ", " << end << ")");
    const auto frames = testing::ReadFrames(clip, begin, end);
    REQUIRE(static_cast<int64_t>(frames.size()) == end - begin);
    CheckAgainstReference(frames, begin, reference, 45.0);
  }

  // MPEG-TS seeks by byte position and lands between keyframes: the source must notice
  // and decode from frame 0 instead of returning nothing or the wrong frames.
  const fs::path ts = dir.path() / "gop12.ts";
  REQUIRE(Run("ffmpeg -nostdin -v error -y -i '" + clip.string() + "' -c copy '" + ts.string() +
              "'") == 0);
  for (const auto& [begin, end] : {std::pair<int64_t, int64_t>{30, 40}, {35, 36}, {47, 48}}) {
    INFO("MPEG-TS range [" << begin << ", " << end << ")");
    const auto frames = testing::ReadFrames(ts, begin, end);
    REQUIRE(static_cast<int64_t>(frames.size()) == end - begin);
    CheckAgainstReference(frames, begin, reference, 45.0);
  }
}

TEST_CASE("Segments from OpenH264Sink concatenate into the whole clip", "[unit][media]") {
  TempDir dir;
  const fs::path clip = dir.path() / "clip.mp4";
  MakeTestClip(clip, 320, 180, 48, 24);
  int w = 0, h = 0;
  // Compared as YUV 4:2:0, the domain both movies are coded in.
  const auto source = testing::DecodeYuv420(clip, "", &w, &h);
  REQUIRE(source.size() == 48);

  std::vector<std::string> segments;
  for (int64_t begin = 0; begin < 48; begin += 16) {
    // A temporary-looking name: the sink picks MP4 by name, not by extension.
    const fs::path segment = dir.path() / ("seg" + std::to_string(begin) + ".mp4.tmp.123");
    WriteSegment(segment, testing::ReadFrames(clip, begin, begin + 16), begin);
    auto info = ProbeVideo(segment.string());
    REQUIRE(info.ok());
    CHECK(info->frame_count == 16);
    segments.push_back(segment.string());
  }
  const fs::path out = dir.path() / "out.mp4";
  absl::Status concat = ConcatSegments(segments, out.string());
  INFO(concat.ToString());
  REQUIRE(concat.ok());

  auto info = ProbeVideo(out.string());
  REQUIRE(info.ok());
  CHECK(info->frame_count == 48);
  CHECK(info->fps_num == 24);
  CHECK(info->fps_den == 1);
  CHECK(info->width == 320);
  CHECK(info->height == 180);
  CHECK(info->codec == "h264");
  const std::string probed = Capture(
      "ffprobe -v error -count_frames -select_streams v:0 -show_entries "
      "stream=nb_read_frames,avg_frame_rate,r_frame_rate -of csv=p=0 '" +
      out.string() + "'");
  CHECK(probed.find("24/1,24/1,48") != std::string::npos);
  int status = -1;
  const std::string errors =
      Capture("ffmpeg -nostdin -v error -i '" + out.string() + "' -f null - 2>&1", &status);
  CHECK(status == 0);
  CHECK(errors.empty());

  const auto decoded = testing::DecodeYuv420(out, "", &w, &h);
  REQUIRE(decoded.size() == 48);
  for (size_t i = 0; i < decoded.size(); ++i) {
    const double own = Psnr(decoded[i], source[i]);
    INFO("frame " << i << " psnr " << own);
    CHECK(own >= 38.0);
    // No frame lost or doubled at a seam: each frame is closest to its own source.
    if (i > 0) CHECK(own > Psnr(decoded[i], source[i - 1]));
    if (i + 1 < decoded.size()) CHECK(own > Psnr(decoded[i], source[i + 1]));
  }
}

TEST_CASE("ConcatSegments refuses mismatched or missing segments", "[unit][media]") {
  TempDir dir;
  const fs::path small = dir.path() / "small.mp4";
  const fs::path large = dir.path() / "large.mp4";
  MakeTestClip(small, 320, 180, 4, 24);
  MakeTestClip(large, 640, 360, 4, 24);
  WriteSegment(dir.path() / "a.mp4", testing::ReadFrames(small, 0, 4), 0);
  WriteSegment(dir.path() / "b.mp4", testing::ReadFrames(large, 0, 4), 4);
  WriteSegment(dir.path() / "c.mp4", testing::ReadFrames(small, 0, 4), 8, /*crf=*/30);

  SECTION("different sizes") {
    const std::string odd = (dir.path() / "b.mp4").string();
    absl::Status st =
        ConcatSegments({(dir.path() / "a.mp4").string(), odd}, (dir.path() / "out.mp4").string());
    INFO(st.ToString());
    CHECK(st.code() == absl::StatusCode::kInvalidArgument);
    CHECK_THAT(std::string(st.message()), Catch::Contains(odd));
  }

  SECTION("same size, another crf still concatenates") {
    const fs::path out = dir.path() / "out.mp4";
    absl::Status st = ConcatSegments(
        {(dir.path() / "a.mp4").string(), (dir.path() / "c.mp4").string()}, out.string());
    INFO(st.ToString());
    REQUIRE(st.ok());
    int status = -1;
    const std::string errors =
        Capture("ffmpeg -nostdin -v error -i '" + out.string() + "' -f null - 2>&1", &status);
    CHECK(status == 0);
    CHECK(errors.empty());
  }

  SECTION("no segments") {
    CHECK(ConcatSegments({}, (dir.path() / "out.mp4").string()).code() ==
          absl::StatusCode::kInvalidArgument);
  }

  SECTION("a missing segment") {
    CHECK(ConcatSegments({(dir.path() / "a.mp4").string(), (dir.path() / "x.mp4").string()},
                         (dir.path() / "out.mp4").string())
              .code() == absl::StatusCode::kNotFound);
  }
}

TEST_CASE("OpenH264Sink checks its options and frames", "[unit][media]") {
  TempDir dir;
  EncodeOptions options;
  options.width = 64;
  options.height = 48;
  SECTION("odd size") {
    options.width = 63;
    CHECK(OpenH264Sink((dir.path() / "x.mp4").string(), options).status().code() ==
          absl::StatusCode::kInvalidArgument);
  }
  SECTION("unknown preset") {
    options.preset = "warpspeed";
    CHECK(OpenH264Sink((dir.path() / "x.mp4").string(), options).status().code() ==
          absl::StatusCode::kInvalidArgument);
  }
  SECTION("a frame of the wrong size") {
    auto sink = OpenH264Sink((dir.path() / "x.mp4").string(), options);
    REQUIRE(sink.ok());
    Frame frame;
    frame.width = 32;
    frame.height = 48;
    frame.planes.assign(3 * 32 * 48, 0.5f);
    CHECK((*sink)->Write(frame).code() == absl::StatusCode::kInvalidArgument);
    frame.width = 64;
    frame.planes.assign(3 * 64 * 48, 0.5f);
    CHECK((*sink)->Write(frame).ok());
    CHECK((*sink)->Close().ok());
    auto info = ProbeVideo((dir.path() / "x.mp4").string());
    REQUIRE(info.ok());
    CHECK(info->frame_count == 1);
  }
}

TEST_CASE("LibraryVersions names FFmpeg and its libraries", "[unit][media]") {
  const std::string versions = LibraryVersions();
  CHECK_THAT(versions, Catch::StartsWith("FFmpeg "));
  CHECK_THAT(versions, Catch::Contains(" lavc 59."));
  CHECK_THAT(versions, Catch::Contains(" lavf 59."));
}

}  // namespace
}  // namespace reelfarm::media
