// Tests for the output formats of media/: movie codecs (H.264, H.265, ProRes,
// DNxHR) and their stream-copy concatenation, image sequences (EXR, PNG, TIFF, DPX),
// 16-bit precision, colour tags, audio, and ResolveOutputFormat's validation. Frames
// are read back with the ffmpeg/ffprobe tools, independent of the code under test.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "media/media.h"
#include "media/output_format.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/frames.h"

namespace reelfarm::media {
namespace {

namespace fs = std::filesystem;
using testing::Capture;
using testing::DecodeRgb;
using testing::DecodeYuv420;
using testing::MakeTestClip;
using testing::Psnr;
using testing::Run;
using testing::TempDir;

void WriteAll(FrameSink* sink, const std::vector<Frame>& frames, size_t begin, size_t end) {
  for (size_t i = begin; i < end; ++i) {
    absl::Status st = sink->Write(frames[i]);
    INFO(st.ToString());
    REQUIRE(st.ok());
  }
  absl::Status st = sink->Close();
  INFO(st.ToString());
  REQUIRE(st.ok());
}

EncodeOptions MovieOptions(const std::string& output, const std::string& codec,
                           const std::string& pix_fmt, int width, int height, int crf = 18) {
  auto format = ResolveOutputFormat(output, codec, pix_fmt, "", crf);
  INFO(format.status().ToString());
  REQUIRE(format.ok());
  EncodeOptions o;
  o.width = width;
  o.height = height;
  o.fps_num = 24;
  o.codec = format->codec;
  o.pix_fmt = format->pix_fmt;
  o.container = format->container;
  o.crf = format->crf;
  o.preset = format->preset.empty() ? "veryfast" : format->preset;
  return o;
}

std::string Probe(const fs::path& path, const std::string& entries) {
  return Capture("ffprobe -v error -select_streams v:0 -show_entries stream=" + entries +
                 " -of default=nw=1:nk=1 '" + path.string() + "'");
}

// PSNR of the luma planes of two YUV 4:2:0 frames of `w`x`h`: the measure of coding
// loss, free of the chroma filters of the conversions around it.
double LumaPsnr(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b, int w, int h) {
  const size_t n = static_cast<size_t>(w) * h;
  return Psnr(std::vector<uint8_t>(a.begin(), a.begin() + n),
              std::vector<uint8_t>(b.begin(), b.begin() + n));
}

int CountFrames(const fs::path& path) {
  return std::stoi("0" + Capture("ffprobe -v error -select_streams v:0 -count_frames "
                                 "-show_entries stream=nb_read_frames -of csv=p=0 '" +
                                 path.string() + "'"));
}

struct MovieCase {
  const char* file;
  const char* codec;
  const char* pix_fmt;         // asked for ("" the codec's default)
  const char* probed_pix_fmt;  // what ffprobe reports
  const char* probed_codec;
  const char* probed_profile;  // substring of ffprobe's profile
  double min_psnr;             // against the ffmpeg tool's decode of the source
};

TEST_CASE("Movie codecs write their format and keep the pictures", "[unit][media][formats]") {
  const MovieCase cases[] = {
      {"out.mp4", "h264", "", "yuv420p", "h264", "High", 40.0},
      {"out10.mp4", "h265", "yuv420p10le", "yuv420p10le", "hevc", "Main 10", 40.0},
      {"hq.mov", "prores_422hq", "", "yuv422p10le", "prores", "HQ", 43.0},
      // FFmpeg's ProRes decoder gives 4444 as 12-bit.
      {"4444.mov", "prores_4444", "", "yuv444p12le", "prores", "4444", 43.0},
      {"dnx.mov", "dnxhr_hq", "", "yuv422p", "dnxhd", "DNXHR HQ", 40.0},
  };
  TempDir dir;
  const fs::path clip = dir.path() / "clip.mp4";
  MakeTestClip(clip, 320, 180, 10, 24);
  const auto frames = testing::ReadFrames(clip, 0, 10);
  // Compared in YUV 4:2:0, the domain the source is coded in (RGB would count the
  // chroma subsampling of the source twice).
  int w = 0, h = 0;
  const auto reference = DecodeYuv420(clip, "", &w, &h);
  for (const MovieCase& c : cases) {
    DYNAMIC_SECTION(c.codec) {
      const fs::path out = dir.path() / c.file;
      auto sink = OpenMovieSink(out.string(), MovieOptions(c.file, c.codec, c.pix_fmt, 320, 180));
      INFO(sink.status().ToString());
      REQUIRE(sink.ok());
      WriteAll(sink->get(), frames, 0, frames.size());
      CHECK(Probe(out, "codec_name") == std::string(c.probed_codec) + "\n");
      CHECK(Probe(out, "pix_fmt") == std::string(c.probed_pix_fmt) + "\n");
      CHECK_THAT(Probe(out, "profile"), Catch::Contains(c.probed_profile));
      CHECK(CountFrames(out) == 10);
      const auto decoded = DecodeYuv420(out, "", &w, &h);
      REQUIRE(decoded.size() == 10);
      CHECK(w == 320);
      for (size_t i = 0; i < decoded.size(); ++i) {
        const double psnr = LumaPsnr(decoded[i], reference[i], w, h);
        INFO(c.codec << " frame " << i << " psnr " << psnr);
        CHECK(psnr >= c.min_psnr);
      }
    }
  }
}

// Segments encoded apart and joined by stream copy decode to the same pictures as one
// encode of all frames: exactly for intra-only and lossless codecs.
TEST_CASE("Chunked segments equal one encode after stream-copy concat", "[unit][media][formats]") {
  struct Case {
    const char* file;
    const char* codec;
    int crf;
    bool exact;
  };
  const Case cases[] = {{"a.mov", "prores_4444", 18, true},
                        {"b.mov", "dnxhr_hq", 18, true},
                        {"c.mp4", "h264", 0, true},  // crf 0: lossless
                        {"d.mp4", "h265", 18, false}};
  TempDir dir;
  const fs::path clip = dir.path() / "clip.mp4";
  MakeTestClip(clip, 320, 180, 13, 24);
  const auto frames = testing::ReadFrames(clip, 0, 13);
  for (const Case& c : cases) {
    DYNAMIC_SECTION(c.codec) {
      const EncodeOptions o = MovieOptions(c.file, c.codec, "", 320, 180, c.crf);
      const fs::path whole = dir.path() / (std::string("whole_") + c.file);
      auto sink = OpenMovieSink(whole.string(), o);
      REQUIRE(sink.ok());
      WriteAll(sink->get(), frames, 0, 13);
      std::vector<std::string> parts;
      const size_t bounds[] = {0, 5, 6, 13};  // a 1-frame chunk too
      for (size_t k = 0; k + 1 < 4; ++k) {
        // Segments are always MOV; the assembled file takes the job's container.
        EncodeOptions part = o;
        part.container = "mov";
        parts.push_back((dir.path() / ("part" + std::to_string(k) + "_" + c.file)).string());
        auto s = OpenMovieSink(parts.back(), part);
        INFO(s.status().ToString());
        REQUIRE(s.ok());
        WriteAll(s->get(), frames, bounds[k], bounds[k + 1]);
      }
      const fs::path joined = dir.path() / (std::string("joined_") + c.file);
      absl::Status st = ConcatSegments(parts, joined.string(), o.container);
      INFO(st.ToString());
      REQUIRE(st.ok());
      CHECK(CountFrames(joined) == 13);
      CHECK(Probe(joined, "codec_tag_string,profile") == Probe(whole, "codec_tag_string,profile"));
      int w = 0, h = 0;
      const auto a = DecodeRgb(whole, "", &w, &h);
      const auto b = DecodeRgb(joined, "", &w, &h);
      REQUIRE(a.size() == 13);
      REQUIRE(b.size() == 13);
      for (size_t i = 0; i < 13; ++i) {
        INFO("frame " << i);
        if (c.exact) {
          CHECK(a[i] == b[i]);
        } else {
          CHECK(Psnr(a[i], b[i]) >= 40.0);
        }
      }
      // Timestamps continue across the seams: 13 frames at 24 fps.
      const double duration =
          std::stod("0" + Capture("ffprobe -v error -show_entries format=duration -of csv=p=0 '" +
                                  joined.string() + "'"));
      CHECK(std::abs(duration - 13.0 / 24.0) < 0.01);
    }
  }
}

// Raw 16-bit RGB of an image file, as the ffmpeg tool decodes it.
std::vector<uint16_t> DecodeRgb48(const fs::path& path) {
  const std::string raw =
      Capture("ffmpeg -nostdin -v error -i '" + path.string() + "' -f rawvideo -pix_fmt rgb48le -");
  std::vector<uint16_t> out(raw.size() / 2);
  std::memcpy(out.data(), raw.data(), out.size() * 2);
  return out;
}

// Raw float RGB of an image file (gbrpf32le planes reordered to R, G, B).
std::vector<float> DecodeFloat(const fs::path& path, size_t n) {
  const std::string raw = Capture("ffmpeg -nostdin -v error -i '" + path.string() +
                                  "' -f rawvideo -pix_fmt gbrpf32le -");
  std::vector<float> gbr(raw.size() / 4);
  std::memcpy(gbr.data(), raw.data(), gbr.size() * 4);
  std::vector<float> rgb(gbr.size());
  if (gbr.size() != 3 * n) return {};
  std::memcpy(rgb.data(), gbr.data() + 2 * n, n * 4);
  std::memcpy(rgb.data() + n, gbr.data(), n * 4);
  std::memcpy(rgb.data() + 2 * n, gbr.data() + n, n * 4);
  return rgb;
}

TEST_CASE("Image sequences are written frame by frame with #### numbers",
          "[unit][media][formats]") {
  struct Case {
    const char* pattern;
    const char* codec;
    const char* pix_fmt;  // what ffprobe reports
    double max_error;     // per value, in [0, 1] units
  };
  const Case cases[] = {
      // Read back as float; the file holds half floats (checked in its header below).
      {"sh010.####.exr", "exr", "gbrpf32le", 1e-3},  // half: 11-bit mantissa
      {"sh010.####.png", "png", "rgb48be", 0.51 / 65535},
      {"sh010.%04d.tiff", "tiff", "rgb48le", 0.51 / 65535},
      {"sh010.####.dpx", "dpx", "gbrp10le", 0.51 / 1023},
  };
  TempDir dir;
  const fs::path clip = dir.path() / "clip.mp4";
  MakeTestClip(clip, 64, 36, 3, 24);
  const auto frames = testing::ReadFrames(clip, 0, 3);
  const size_t n = 64 * 36;
  for (const Case& c : cases) {
    DYNAMIC_SECTION(c.codec) {
      const fs::path folder = dir.path() / c.codec;
      fs::create_directories(folder);
      auto format = ResolveOutputFormat(c.pattern, "", "", "", 18);
      REQUIRE(format.ok());
      CHECK(format->image_sequence());
      ImageSequenceOptions o;
      o.width = 64;
      o.height = 36;
      o.codec = format->codec;
      o.first_number = 1001;
      auto sink = OpenImageSequenceSink((folder / c.pattern).string(), o);
      INFO(sink.status().ToString());
      REQUIRE(sink.ok());
      WriteAll(sink->get(), frames, 0, 3);
      // Exactly the three frames, no temporary files left beside them.
      CHECK(std::distance(fs::directory_iterator(folder), fs::directory_iterator()) == 3);
      for (int i = 0; i < 3; ++i) {
        const fs::path file = folder / FramePath(c.pattern, 1001 + i);
        INFO(file.string());
        REQUIRE(fs::exists(file));
        CHECK(Probe(file, "pix_fmt") == std::string(c.pix_fmt) + "\n");
        CHECK(Probe(file, "width,height") == "64\n36\n");
        const auto& want = frames[i].planes;
        double worst = 0;
        if (std::string(c.codec) == "exr") {
          // Header: channel list entries "B\0" + pixel type (1 = HALF); compression
          // attribute value 3 = ZIP (16 scanlines).
          std::ifstream f(file, std::ios::binary);
          const std::string bytes((std::istreambuf_iterator<char>(f)), {});
          const size_t ch = bytes.find(std::string("B\0", 2));
          REQUIRE(ch != std::string::npos);
          CHECK(bytes[ch + 2] == 1);
          const std::string comp("compression\0compression\0\1\0\0\0", 28);
          const size_t at = bytes.find(comp);
          REQUIRE(at != std::string::npos);
          CHECK(bytes[at + comp.size()] == 3);
          const auto got = DecodeFloat(file, n);
          REQUIRE(got.size() == want.size());
          for (size_t k = 0; k < got.size(); ++k) {
            worst = std::max(worst, std::abs(double(got[k]) - want[k]));
          }
        } else {
          const auto got = DecodeRgb48(file);
          REQUIRE(got.size() == want.size());
          for (size_t p = 0; p < n; ++p) {
            for (size_t ch = 0; ch < 3; ++ch) {
              const double v = got[3 * p + ch] / 65535.0;
              worst = std::max(worst, std::abs(v - want[ch * n + p]));
            }
          }
        }
        CHECK(worst <= c.max_error);
      }
    }
  }
}

TEST_CASE("16-bit PNG goes through a float frame and back without losing a bit",
          "[unit][media][formats]") {
  TempDir dir;
  // A 16-bit gradient that uses every low bit, not an 8-bit picture scaled up.
  const fs::path in = dir.path() / "in.png";
  REQUIRE(Run("ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=s=96x54 -frames:v 1 "
              "-vf \"format=rgb48le,geq=r='X*687+Y*3':g='Y*1213+X':b='65535-X*600-Y*7'\" "
              "-pix_fmt rgb48be '" +
              in.string() + "'") == 0);
  REQUIRE(Probe(in, "pix_fmt") == "rgb48be\n");
  const auto source = DecodeRgb48(in);
  REQUIRE(source.size() == 3u * 96 * 54);
  size_t odd_low_bits = 0;
  for (uint16_t v : source) odd_low_bits += (v & 0xff) != (v >> 8);
  REQUIRE(odd_low_bits > source.size() / 2);  // not 8-bit values times 257

  const auto frames = testing::ReadFrames(in, 0, 1);
  REQUIRE(frames.size() == 1);
  const size_t n = 96 * 54;
  double worst = 0;
  for (size_t p = 0; p < n; ++p) {
    for (size_t c = 0; c < 3; ++c) {
      worst = std::max(worst, std::abs(frames[0].planes[c * n + p] * 65535.0 - source[3 * p + c]));
    }
  }
  CHECK(worst <= 0.5);  // every 16-bit value survives in the float frame

  ImageSequenceOptions o;
  o.width = 96;
  o.height = 54;
  o.codec = "png";
  auto sink = OpenImageSequenceSink((dir.path() / "out.####.png").string(), o);
  REQUIRE(sink.ok());
  WriteAll(sink->get(), frames, 0, 1);
  CHECK(DecodeRgb48(dir.path() / "out.0000.png") == source);
}

TEST_CASE("Colour tags and audio are carried into the output", "[unit][media][formats]") {
  TempDir dir;
  const fs::path clip = dir.path() / "clip.mov";
  REQUIRE(Run("ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=s=320x180:r=24 -f lavfi "
              "-i sine=f=440:r=48000 -frames:v 24 -t 1 -c:v libx264 "
              "-vf scale=out_color_matrix=bt709:out_range=tv,format=yuv420p "
              "-color_primaries bt709 -color_trc bt709 -colorspace bt709 -color_range tv "
              "-timecode 01:02:03:04 -c:a aac -shortest '" +
              clip.string() + "'") == 0);
  auto info = ProbeVideo(clip.string());
  INFO(info.status().ToString());
  REQUIRE(info.ok());
  CHECK(info->colour.primaries == 1);
  CHECK(info->colour.transfer == 1);
  CHECK(info->colour.matrix == 1);
  CHECK(info->colour.range == 1);
  CHECK(info->has_audio);
  CHECK(info->timecode == "01:02:03:04");

  const auto frames = testing::ReadFrames(clip, 0, 24);
  EncodeOptions o = MovieOptions("x.mov", "prores_422hq", "", 320, 180);
  o.colour = info->colour;
  std::vector<std::string> parts;
  for (int k = 0; k < 2; ++k) {
    parts.push_back((dir.path() / ("p" + std::to_string(k) + ".mov")).string());
    auto sink = OpenMovieSink(parts.back(), o);
    REQUIRE(sink.ok());
    WriteAll(sink->get(), frames, 12 * k, 12 * k + 12);
  }
  const fs::path out = dir.path() / "out.mov";
  absl::Status st = ConcatSegments(parts, out.string(), "mov", clip.string(), "01:02:03:10");
  INFO(st.ToString());
  REQUIRE(st.ok());
  CHECK(Probe(out, "color_primaries,color_transfer,color_space,color_range") ==
        "tv\nbt709\nbt709\nbt709\n");
  const std::string audio = Capture(
      "ffprobe -v error -select_streams a:0 -show_entries "
      "stream=codec_name -of csv=p=0 '" +
      out.string() + "'");
  CHECK(audio == "aac\n");
  CHECK(Capture("ffprobe -v error -select_streams v:0 -show_entries stream_tags=timecode "
                "-of csv=p=0 '" +
                out.string() + "'") == "01:02:03:10\n");
  auto read = ReadTimecode(out.string());
  REQUIRE(read.ok());
  CHECK(*read == "01:02:03:10");
  // BT.709 in, BT.709 out: the pictures match the source closely.
  int w = 0, h = 0;
  const auto a = DecodeYuv420(clip, "", &w, &h);
  const auto b = DecodeYuv420(out, "", &w, &h);
  REQUIRE(b.size() == 24);
  CHECK(LumaPsnr(a[5], b[5], w, h) >= 40.0);
}

TEST_CASE("TimecodeAfter counts frames at the clip's rate, drop frame included",
          "[unit][media][formats]") {
  CHECK(TimecodeAfter("01:00:00:00", 24, 1, 0).value() == "01:00:00:00");
  CHECK(TimecodeAfter("01:00:00:00", 24, 1, 30).value() == "01:00:01:06");
  CHECK(TimecodeAfter("00:59:59:24", 25, 1, 1).value() == "01:00:00:00");
  // 29.97 drop frame skips frame numbers 0 and 1 at each minute but every tenth.
  CHECK(TimecodeAfter("00:00:59;29", 30000, 1001, 1).value() == "00:01:00;02");
  CHECK(TimecodeAfter("00:09:59;29", 30000, 1001, 1).value() == "00:10:00;00");
  auto bad = TimecodeAfter("one o'clock", 24, 1, 3);
  CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(bad.status().message()).find("one o'clock") != std::string::npos);
  CHECK(!TimecodeAfter("01:00:00:00", 0, 1, 3).ok());
}

TEST_CASE("ResolveOutputFormat checks the extension, codec and options agree",
          "[unit][media][formats]") {
  auto ok = ResolveOutputFormat("renders/a.mov", "", "", "", 18);
  REQUIRE(ok.ok());
  CHECK(ok->codec == "prores_422hq");
  CHECK(ok->pix_fmt == "yuv422p10le");
  CHECK(ok->container == "mov");
  ok = ResolveOutputFormat("renders/a.mp4", "h265", "yuv420p10le", "fast", 20);
  REQUIRE(ok.ok());
  CHECK(ok->preset == "fast");

  auto bad = ResolveOutputFormat("renders/a.mp4", "prores_4444", "", "", 18);
  CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(bad.status().message()),
             Catch::Contains("upscale.format.codec") && Catch::Contains("h264, h265"));
  bad = ResolveOutputFormat("renders/a.mov", "prores_422hq", "yuv420p", "", 18);
  CHECK_THAT(std::string(bad.status().message()),
             Catch::Contains("upscale.format.pix_fmt") && Catch::Contains("yuv422p10le"));
  bad = ResolveOutputFormat("renders/a.mov", "dnxhr_hq", "", "slow", 18);
  CHECK_THAT(std::string(bad.status().message()), Catch::Contains("upscale.format.preset"));
  bad = ResolveOutputFormat("renders/a.mkv", "", "", "", 18);
  CHECK_THAT(std::string(bad.status().message()), Catch::Contains(".mov"));
  bad = ResolveOutputFormat("renders/a.exr", "", "", "", 18);
  CHECK_THAT(std::string(bad.status().message()), Catch::Contains("####"));
  bad = ResolveOutputFormat("renders/a.####.mov", "", "", "", 18);
  CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
  bad = ResolveOutputFormat("renders/a.mp4", "h264", "", "", 60);
  CHECK_THAT(std::string(bad.status().message()), Catch::Contains("upscale.crf"));

  CHECK(FramePath("renders/sh010.####.exr", 1001) == "renders/sh010.1001.exr");
  CHECK(FramePath("renders/sh010.####.exr", 7) == "renders/sh010.0007.exr");
  CHECK(FramePath("r/s.%04d.dpx", 12) == "r/s.0012.dpx");
  CHECK(FramePath("r/s.#.png", 123) == "r/s.123.png");
}

}  // namespace
}  // namespace reelfarm::media
