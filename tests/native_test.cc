// The native (YUV) path of media/: decoded frames resized in their own format and bit
// depth by NativeResizer, compared plane by plane with the ffmpeg tool's own
// `-vf scale=W:H:flags=bicubic|lanczos` of the same clip (FFmpeg 5.1, the same
// libswscale), and written by the movie sink as they are.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "media/media.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/remux.h"

namespace reelfarm::media {
namespace {

namespace fs = std::filesystem;
using testing::Capture;
using testing::Run;
using testing::TempDir;

// Samples of one plane, row by row, without the padding.
using Plane = std::vector<uint16_t>;

struct Layout {
  int width = 0, height = 0;
  int chroma_w = 1, chroma_h = 1;  // log2 of the chroma subsampling
  int bytes = 1;                   // per sample
  int PlaneWidth(int p) const { return p == 0 ? width : (width + (1 << chroma_w) - 1) >> chroma_w; }
  int PlaneHeight(int p) const {
    return p == 0 ? height : (height + (1 << chroma_h) - 1) >> chroma_h;
  }
  size_t FrameBytes() const {
    size_t n = 0;
    for (int p = 0; p < 3; ++p) n += static_cast<size_t>(PlaneWidth(p)) * PlaneHeight(p) * bytes;
    return n;
  }
};

Layout LayoutOf(const std::string& pix_fmt, int width, int height) {
  Layout l;
  l.width = width;
  l.height = height;
  l.bytes = pix_fmt.find("p10") != std::string::npos ? 2 : 1;
  l.chroma_w = pix_fmt.rfind("yuv444", 0) == 0 ? 0 : 1;
  l.chroma_h = pix_fmt.rfind("yuv420", 0) == 0 ? 1 : 0;
  return l;
}

// Every frame of `clip` as the ffmpeg tool scales it with `vf` into `pix_fmt`, as
// planes.
std::vector<std::vector<Plane>> FfmpegFrames(const fs::path& clip, const std::string& vf,
                                             const std::string& pix_fmt, int width, int height) {
  int status = 0;
  const std::string raw =
      Capture("ffmpeg -nostdin -hide_banner -loglevel error -i '" + clip.string() + "' -vf '" + vf +
                  "' -f rawvideo -pix_fmt " + pix_fmt + " -",
              &status);
  REQUIRE(status == 0);
  const Layout l = LayoutOf(pix_fmt, width, height);
  REQUIRE(raw.size() % l.FrameBytes() == 0);
  std::vector<std::vector<Plane>> frames;
  size_t at = 0;
  while (at < raw.size()) {
    std::vector<Plane> planes(3);
    for (int p = 0; p < 3; ++p) {
      const size_t n = static_cast<size_t>(l.PlaneWidth(p)) * l.PlaneHeight(p);
      planes[p].resize(n);
      for (size_t i = 0; i < n; ++i) {
        const auto* b = reinterpret_cast<const uint8_t*>(raw.data() + at + i * l.bytes);
        planes[p][i] = l.bytes == 2 ? static_cast<uint16_t>(b[0] | (b[1] << 8)) : b[0];
      }
      at += n * l.bytes;
    }
    frames.push_back(std::move(planes));
  }
  return frames;
}

Plane SamplesOf(const NativeFrame& f, int p) {
  const NativeFrame::Plane v = f.plane(p);
  Plane out;
  out.reserve(static_cast<size_t>(v.width) * v.height);
  for (int y = 0; y < v.height; ++y) {
    const uint8_t* row = v.data + static_cast<ptrdiff_t>(y) * v.linesize;
    for (int x = 0; x < v.width; ++x) {
      if (v.bytes_per_sample == 2) {
        uint16_t s;
        std::memcpy(&s, row + 2 * x, 2);
        out.push_back(s);
      } else {
        out.push_back(row[x]);
      }
    }
  }
  return out;
}

double PlanePsnr(const Plane& a, const Plane& b, int depth) {
  REQUIRE(a.size() == b.size());
  double se = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = double(a[i]) - double(b[i]);
    se += d * d;
  }
  if (se == 0) return std::numeric_limits<double>::infinity();
  const double peak = double((1 << depth) - 1);
  return 10.0 * std::log10(peak * peak / (se / double(a.size())));
}

struct Measured {
  double min_psnr[3] = {std::numeric_limits<double>::infinity(),
                        std::numeric_limits<double>::infinity(),
                        std::numeric_limits<double>::infinity()};
  int frames = 0;
};

// Resizes frames [begin, end) of `clip` natively to `width`x`height` `pix_fmt` and
// compares each plane with ffmpeg's scale of the same frame (after the filters
// `before`, if any).
Measured ResizeAndCompare(const fs::path& clip, int64_t begin, int64_t end, int width, int height,
                          const std::string& pix_fmt, ResizeFilter filter, int depth,
                          const std::string& before = "") {
  const std::string flags = filter == ResizeFilter::kBicubic ? "bicubic" : "lanczos";
  const auto reference = FfmpegFrames(
      clip,
      before + "scale=" + std::to_string(width) + ":" + std::to_string(height) + ":flags=" + flags,
      pix_fmt, width, height);
  auto source = OpenNativeVideoSource(clip.string(), begin, end);
  INFO(source.status().ToString());
  REQUIRE(source.ok());
  auto resizer = NativeResizer::Create(width, height, pix_fmt, filter, 2);
  INFO(resizer.status().ToString());
  REQUIRE(resizer.ok());
  Measured m;
  NativeFrame in, out;
  while (true) {
    auto more = (*source)->Next(&in);
    INFO(more.status().ToString());
    REQUIRE(more.ok());
    if (!*more) break;
    CHECK(in.index == begin + m.frames);
    absl::Status st = (*resizer)->Resize(in, &out);
    INFO(st.ToString());
    REQUIRE(st.ok());
    CHECK(out.index == in.index);
    CHECK(out.width() == width);
    CHECK(out.height() == height);
    CHECK(out.pixel_format() == pix_fmt);
    CHECK(out.bit_depth() == depth);
    REQUIRE(in.index < static_cast<int64_t>(reference.size()));
    for (int p = 0; p < 3; ++p) {
      const double psnr = PlanePsnr(SamplesOf(out, p), reference[in.index][p], depth);
      m.min_psnr[p] = std::min(m.min_psnr[p], psnr);
    }
    ++m.frames;
  }
  CHECK(m.frames == end - begin);
  return m;
}

void CheckPsnr(const Measured& m, double at_least) {
  INFO("min PSNR y " << m.min_psnr[0] << " u " << m.min_psnr[1] << " v " << m.min_psnr[2]
                     << " dB over " << m.frames << " frames");
  for (int p = 0; p < 3; ++p) CHECK(m.min_psnr[p] >= at_least);
}

}  // namespace

TEST_CASE("a native bicubic or lanczos x2 of a chunk equals ffmpeg's scale filter plane by plane",
          "[unit][media][native]") {
  TempDir dir;
  const fs::path clip = dir.path() / "clip.mp4";
  testing::MakeTestClip(clip, 320, 180, 24);
  const ResizeFilter filter = GENERATE(ResizeFilter::kBicubic, ResizeFilter::kLanczos);
  // A chunk from the middle of the clip: frames 6 to 17.
  const Measured m = ResizeAndCompare(clip, 6, 18, 640, 360, "yuv420p", filter, 8);
  CheckPsnr(m, 45.0);
}

TEST_CASE("a 10-bit input stays 10-bit through the native resize", "[unit][media][native]") {
  TempDir dir;
  const fs::path clip = dir.path() / "clip10.mp4";
  REQUIRE(Run("ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=s=320x180:r=24 -frames:v 8 "
              "-pix_fmt yuv420p10le -c:v libx265 -x265-params log-level=error -crf 12 '" +
              clip.string() + "'") == 0);
  const Measured m =
      ResizeAndCompare(clip, 2, 8, 640, 360, "yuv420p10le", ResizeFilter::kBicubic, 10);
  CheckPsnr(m, 45.0);
  // ffmpeg's scale of the same frames through 8 bits is further from the result: the
  // low bits carry what an 8-bit path would have lost.
  const Measured eight = ResizeAndCompare(clip, 2, 8, 640, 360, "yuv420p10le",
                                          ResizeFilter::kBicubic, 10, "format=yuv420p,");
  INFO("through 8 bits: min PSNR y " << eight.min_psnr[0]);
  CHECK(std::isfinite(eight.min_psnr[0]));  // measured 63.8 dB, against infinity
  CHECK(eight.min_psnr[0] < m.min_psnr[0]);
}

TEST_CASE("the native resize converts to the output's format in the same step as ffmpeg",
          "[unit][media][native]") {
  TempDir dir;
  const fs::path clip = dir.path() / "clip.mp4";
  testing::MakeTestClip(clip, 320, 180, 6);
  // yuv420p in, ProRes 422 HQ's yuv422p10le out.
  const Measured m =
      ResizeAndCompare(clip, 0, 6, 640, 360, "yuv422p10le", ResizeFilter::kBicubic, 10);
  CheckPsnr(m, 45.0);
}

TEST_CASE("odd frame sizes resize natively", "[unit][media][native]") {
  TempDir dir;
  const fs::path clip = dir.path() / "odd.mkv";
  // FFV1 holds 853x479 in 4:2:0 (H.264 would need even sizes); testsrc2 makes odd sizes
  // only in RGB.
  REQUIRE(Run("ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=s=853x479:r=24,format=rgb24 "
              "-frames:v 4 "
              "-pix_fmt yuv420p -c:v ffv1 '" +
              clip.string() + "'") == 0);
  auto info = ProbeVideo(clip.string());
  REQUIRE(info.ok());
  REQUIRE(info->width == 853);
  REQUIRE(info->height == 479);
  const Measured m = ResizeAndCompare(clip, 0, 4, 1706, 958, "yuv420p", ResizeFilter::kLanczos, 8);
  CheckPsnr(m, 45.0);
}

TEST_CASE("the movie sink writes native frames as they are", "[unit][media][native]") {
  TempDir dir;
  const fs::path clip = dir.path() / "clip.mp4";
  testing::MakeTestClip(clip, 320, 180, 12);
  EncodeOptions o;
  o.width = 640;
  o.height = 360;
  o.crf = 0;  // lossless: what is decoded is what was written
  o.container = "mov";
  o.native_frames = true;
  const fs::path out = dir.path() / "out.mov";
  auto sink = OpenMovieSink(out.string(), o);
  INFO(sink.status().ToString());
  REQUIRE(sink.ok());
  auto source = OpenNativeVideoSource(clip.string(), 0, 12);
  REQUIRE(source.ok());
  auto resizer = NativeResizer::Create(640, 360, "yuv420p", ResizeFilter::kBicubic);
  REQUIRE(resizer.ok());
  NativeFrame in, resized;
  while (*(*source)->Next(&in)) {
    REQUIRE((*resizer)->Resize(in, &resized).ok());
    // The decoded frame is the wrong size for this sink.
    absl::Status wrong = (*sink)->WriteNative(in);
    CHECK(wrong.code() == absl::StatusCode::kInvalidArgument);
    CHECK(std::string(wrong.message()).find("320x180 yuv420p") != std::string::npos);
    absl::Status st = (*sink)->WriteNative(resized);
    INFO(st.ToString());
    REQUIRE(st.ok());
  }
  Frame rgb;
  CHECK((*sink)->Write(rgb).code() == absl::StatusCode::kFailedPrecondition);
  REQUIRE((*sink)->Close().ok());
  // Decoded by ffmpeg: ffmpeg's own scale of the input, exactly.
  const auto written = FfmpegFrames(out, "null", "yuv420p", 640, 360);
  const auto reference = FfmpegFrames(clip, "scale=640:360:flags=bicubic", "yuv420p", 640, 360);
  REQUIRE(written.size() == 12);
  REQUIRE(reference.size() == 12);
  for (size_t i = 0; i < written.size(); ++i) {
    for (int p = 0; p < 3; ++p) CHECK(PlanePsnr(written[i][p], reference[i][p], 8) >= 60.0);
  }
}

TEST_CASE("a native frame converts to the RGB frame the RGB source gives",
          "[unit][media][native]") {
  TempDir dir;
  const fs::path clip = dir.path() / "clip.mp4";
  testing::MakeTestClip(clip, 160, 90, 4);
  auto native = OpenNativeVideoSource(clip.string(), 1, 3);
  auto rgb = OpenVideoSource(clip.string(), 1, 3);
  REQUIRE(native.ok());
  REQUIRE(rgb.ok());
  NativeFrame n;
  Frame expected, got;
  while (*(*native)->Next(&n)) {
    REQUIRE(*(*rgb)->Next(&expected));
    REQUIRE(NativeToRgb(n, &got).ok());
    CHECK(got.index == expected.index);
    CHECK(got.width == expected.width);
    CHECK(got.height == expected.height);
    CHECK(got.planes == expected.planes);
  }
}

TEST_CASE("the native source refuses what only the RGB path makes upright",
          "[unit][media][native]") {
  TempDir dir;
  const fs::path clip = dir.path() / "clip.mp4";
  const fs::path rotated = dir.path() / "rotated.mp4";
  testing::MakeTestClip(clip, 160, 90, 4);
  testing::RemuxRotated(clip, rotated, 90);
  auto native = OpenNativeVideoSource(rotated.string(), 0, 4);
  CHECK(native.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(std::string(native.status().message()).find("rotated") != std::string::npos);
  CHECK(IsNativeYuvFormat("yuv420p"));
  CHECK(IsNativeYuvFormat("yuv422p10le"));
  CHECK_FALSE(IsNativeYuvFormat("yuvj420p"));
  CHECK_FALSE(IsNativeYuvFormat("rgb24"));
  CHECK_FALSE(IsNativeYuvFormat("nv12"));
  CHECK_FALSE(IsNativeYuvFormat("yuva444p10le"));
  CHECK(NativeResizer::Create(640, 360, "rgb48le", ResizeFilter::kBicubic).status().code() ==
        absl::StatusCode::kInvalidArgument);
}

// Frames [begin, end) of `clip` as the native source gives them: through `source` carried
// on (ContinueTo) when given, else through a new source of that range.
std::vector<std::vector<Plane>> ChunkFrames(const fs::path& clip, int64_t begin, int64_t end,
                                            NativeFrameSource* carried = nullptr) {
  std::unique_ptr<NativeFrameSource> fresh;
  NativeFrameSource* source = carried;
  if (source == nullptr) {
    auto opened = OpenNativeVideoSource(clip.string(), begin, end);
    INFO(opened.status().ToString());
    REQUIRE(opened.ok());
    fresh = std::move(*opened);
    source = fresh.get();
  } else {
    REQUIRE(source->ContinueTo(begin, end));
  }
  std::vector<std::vector<Plane>> frames;
  NativeFrame f;
  while (true) {
    auto more = source->Next(&f);
    INFO(more.status().ToString());
    REQUIRE(more.ok());
    if (!*more) break;
    CHECK(f.index == begin + static_cast<int64_t>(frames.size()));
    frames.push_back({SamplesOf(f, 0), SamplesOf(f, 1), SamplesOf(f, 2)});
  }
  CHECK(static_cast<int64_t>(frames.size()) == end - begin);
  return frames;
}

TEST_CASE("a native source carried on to the next chunk gives the frames a new source gives",
          "[unit][media][native]") {
  TempDir dir;
  struct Clip {
    const char* name;
    std::string args;
    bool cfr;  // ffmpeg's own decode is the grid as it is
  };
  const Clip c = GENERATE(
      Clip{"one_key.mp4", "-f lavfi -i testsrc2=s=160x90:r=24 -frames:v 30 -c:v libx264", true},
      // Keyframes inside the chunks, B-frames reordered across their boundaries.
      Clip{"gop7_bf2.mp4",
           "-f lavfi -i testsrc2=s=160x90:r=24 -frames:v 30 -c:v libx264 -g 7 -bf 2 "
           "-x264-params scenecut=0",
           true},
      // Held and dropped frames on the grid.
      Clip{"vfr.mkv",
           "-f lavfi -i testsrc2=s=160x90:r=24:d=2 -vf \"setpts='(N+4*sin(N/5))/(24*TB)'\" "
           "-fps_mode vfr -c:v libx264 -g 9",
           false});
  const fs::path clip = dir.path() / c.name;
  REQUIRE(Run("ffmpeg -nostdin -v error -y " + c.args + " -pix_fmt yuv420p '" + clip.string() +
              "'") == 0);
  auto info = ProbeVideo(clip.string());
  REQUIRE(info.ok());
  const int64_t n = std::min<int64_t>(info->frame_count, 30);
  REQUIRE(n >= 24);
  // Chunks of 10 frames (the last one shorter), one source carried through them.
  auto first = OpenNativeVideoSource(clip.string(), 0, 10);
  REQUIRE(first.ok());
  NativeFrameSource& source = **first;
  std::vector<std::vector<Plane>> carried;
  for (int64_t begin = 0; begin < n; begin += 10) {
    const int64_t end = std::min<int64_t>(begin + 10, n);
    std::vector<std::vector<Plane>> chunk;
    if (begin == 0) {
      NativeFrame f;
      while (*source.Next(&f)) chunk.push_back({SamplesOf(f, 0), SamplesOf(f, 1), SamplesOf(f, 2)});
    } else {
      chunk = ChunkFrames(clip, begin, end, &source);
    }
    const auto alone = ChunkFrames(clip, begin, end);
    INFO(c.name << ": chunk [" << begin << ", " << end << ")");
    REQUIRE(chunk.size() == alone.size());
    for (size_t i = 0; i < chunk.size(); ++i) {
      INFO("frame " << begin + static_cast<int64_t>(i));
      CHECK(chunk[i] == alone[i]);
    }
    for (auto& f : chunk) carried.push_back(std::move(f));
  }
  REQUIRE(static_cast<int64_t>(carried.size()) == n);
  if (c.cfr) {
    // And ffmpeg's own decode of the clip, frame by frame.
    const auto reference = FfmpegFrames(clip, "null", "yuv420p", 160, 90);
    REQUIRE(static_cast<int64_t>(reference.size()) >= n);
    for (int64_t i = 0; i < n; ++i) {
      INFO(c.name << ": frame " << i);
      CHECK(carried[static_cast<size_t>(i)] == reference[static_cast<size_t>(i)]);
    }
  }
}

TEST_CASE("a native source goes on only from the frame it stands at", "[unit][media][native]") {
  TempDir dir;
  const fs::path clip = dir.path() / "clip.mp4";
  testing::MakeTestClip(clip, 160, 90, 20);
  auto source = OpenNativeVideoSource(clip.string(), 0, 8);
  REQUIRE(source.ok());
  NativeFrame f;
  for (int i = 0; i < 5; ++i) REQUIRE(*(*source)->Next(&f));
  // Not read to its end: frame 8 is not next.
  CHECK_FALSE((*source)->ContinueTo(8, 12));
  CHECK_FALSE((*source)->ContinueTo(4, 12));  // behind
  CHECK_FALSE((*source)->ContinueTo(6, 12));  // ahead
  // Refused, it goes on with its own range.
  int64_t last = -1;
  while (*(*source)->Next(&f)) last = f.index;
  CHECK(last == 7);
  CHECK_FALSE((*source)->ContinueTo(9, 12));
  CHECK_FALSE((*source)->ContinueTo(8, 7));  // an empty range the wrong way round
  REQUIRE((*source)->ContinueTo(8, 12));
  std::vector<int64_t> got;
  while (*(*source)->Next(&f)) got.push_back(f.index);
  CHECK(got == std::vector<int64_t>{8, 9, 10, 11});
  // Past the movie's end it fails as a new source would, and then goes on no more.
  REQUIRE((*source)->ContinueTo(12, 25));
  absl::StatusOr<bool> more = true;
  while (more.ok() && *more) more = (*source)->Next(&f);
  CHECK(more.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(f.index == 19);
  CHECK_FALSE((*source)->ContinueTo(20, 25));
}

}  // namespace reelfarm::media
