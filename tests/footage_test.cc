// Real footage on the constant-rate grid (DESIGN.md "Time"): messy movies made with the
// ffmpeg tool (MPEG-4 Part 2 B-frames in AVI, held frames, VFR, edit lists, audio
// first, many codecs, odd geometry) are read frame for frame as the ffmpeg tool writes
// them to a constant-rate output, whichever range they are read in.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "media/av_util.h"
#include "media/grid.h"
#include "media/media.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/frames.h"
#include "tests/testing/remux.h"

namespace reelfarm::media {
namespace {

namespace fs = std::filesystem;
using testing::Capture;
using testing::Psnr;
using testing::Run;
using testing::TempDir;

// Runs the ffmpeg tool with `args` (quiet, overwriting), failing the test on error.
void Ffmpeg(const std::string& args) {
  INFO("ffmpeg " << args);
  REQUIRE(Run("ffmpeg -nostdin -hide_banner -loglevel error -y " + args) == 0);
}

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

// What `ffmpeg -i in out.mov` writes (its default constant-frame-rate placement), as
// rgb24 frames: the reference the grid must reproduce. The conversion to RGB is the
// one FrameSource does.
std::vector<std::vector<uint8_t>> FfmpegGrid(const fs::path& in, const fs::path& work) {
  const fs::path ref = work / (in.filename().string() + ".ref.mov");
  Ffmpeg("-i '" + in.string() +
         "' -an -sn -dn -vf 'scale=flags=bicubic+accurate_rnd+full_chroma_int,format=rgb24' "
         "-c:v png '" +
         ref.string() + "'");
  return testing::DecodeRgb(ref, "", nullptr, nullptr);
}

// Copies `full` to `cut` up to the middle of its 63rd packet (in file order), as a copy or
// a download that stopped does.
void CutInPacket63(const fs::path& full, const fs::path& cut) {
  const std::string pos = Capture(
      "ffprobe -v error -select_streams v -show_entries packet=pos "
      "-of csv=p=0 '" +
      full.string() + "' | grep -o '[0-9]*' | sed -n '62p;63p'");
  long long pos62 = 0;
  long long pos63 = 0;
  REQUIRE(std::sscanf(pos.c_str(), "%lld %lld", &pos62, &pos63) == 2);
  REQUIRE(Run("head -c " + std::to_string((pos62 + pos63) / 2) + " '" + full.string() + "' > '" +
              cut.string() + "'") == 0);
}

// How many frames at the start of `cut` equal those of `whole`.
size_t IntactPrefix(const std::vector<std::vector<uint8_t>>& cut,
                    const std::vector<std::vector<uint8_t>>& whole) {
  size_t n = 0;
  while (n < cut.size() && n < whole.size() && cut[n] == whole[n]) ++n;
  return n;
}

std::vector<Frame> ReadChunked(const fs::path& path, int64_t count, int64_t chunk) {
  std::vector<Frame> all;
  for (int64_t b = 0; b < count; b += chunk) {
    auto part = testing::ReadFrames(path, b, std::min(count, b + chunk));
    REQUIRE(part.size() == static_cast<size_t>(std::min(count, b + chunk) - b));
    for (auto& f : part) all.push_back(std::move(f));
  }
  return all;
}

// The frames [0, count) of `path` through one source carried on from chunk to chunk
// (FrameSource::ContinueTo, as a worker goes on from the previous chunk's decoder).
std::vector<Frame> ReadCarried(const fs::path& path, int64_t count, int64_t chunk) {
  auto source = OpenVideoSource(path.string(), 0, std::min(count, chunk));
  INFO(source.status().ToString());
  REQUIRE(source.ok());
  std::vector<Frame> all;
  for (int64_t b = 0; b < count; b += chunk) {
    const int64_t e = std::min(count, b + chunk);
    if (b > 0) REQUIRE((*source)->ContinueTo(b, e));
    Frame f;
    for (;;) {
      absl::StatusOr<bool> more = (*source)->Next(&f);
      INFO("chunk [" << b << ", " << e << "): " << more.status().ToString());
      REQUIRE(more.ok());
      if (!*more) break;
      all.push_back(std::move(f));
    }
    REQUIRE(all.size() == static_cast<size_t>(e));
  }
  return all;
}

// The checks every fixture passes: the probe's count is ffmpeg's, frame i is ffmpeg's
// frame i, and reading in chunks (new sources, or one carried on) gives the same frames
// as reading it whole.
VideoInfo CheckOnGrid(const fs::path& clip, const fs::path& work, double min_psnr = 35) {
  INFO("fixture " << clip.filename().string());
  auto info = ProbeVideo(clip.string());
  INFO(info.status().ToString());
  REQUIRE(info.ok());
  const auto reference = FfmpegGrid(clip, work);
  CHECK(info->frame_count == static_cast<int64_t>(reference.size()));
  REQUIRE(std::llabs(info->frame_count - static_cast<int64_t>(reference.size())) <= 1);
  const std::vector<Frame> whole = testing::ReadFrames(clip, 0, info->frame_count);
  REQUIRE(whole.size() == static_cast<size_t>(info->frame_count));
  const size_t n = std::min(whole.size(), reference.size());
  for (size_t i = 0; i < n; ++i) {
    CHECK(whole[i].index == static_cast<int64_t>(i));
    const double psnr = Psnr(ToRgb24(whole[i]), reference[i]);
    INFO("frame " << i << " psnr " << psnr);
    CHECK(psnr >= min_psnr);
  }
  const std::vector<Frame> chunked = ReadChunked(clip, info->frame_count, 7);
  const std::vector<Frame> carried = ReadCarried(clip, info->frame_count, 7);
  REQUIRE(chunked.size() == whole.size());
  REQUIRE(carried.size() == whole.size());
  for (size_t i = 0; i < whole.size(); ++i) {
    INFO("frame " << i);
    CHECK(chunked[i].planes == whole[i].planes);
    CHECK(carried[i].index == static_cast<int64_t>(i));
    CHECK(carried[i].planes == whole[i].planes);
  }
  return *info;
}

constexpr const char* kSrc = "-f lavfi -i testsrc2=s=320x180:r=24";

}  // namespace

TEST_CASE("PlaceOnGrid holds, drops and starts as the ffmpeg tool does", "[unit][media][grid]") {
  // Evenly spaced: one slot each.
  GridPlacement even = PlaceOnGrid({0, 1, 2, 3}, false);
  CHECK(even.slot_frame == std::vector<int64_t>{0, 1, 2, 3});
  CHECK(even.held == 0);
  CHECK(even.dropped == 0);
  // Coded at 0, 5, 10 (empty chunks between): each held until the next one's time,
  // and the last held as long as the ones before it. ffmpeg rounds a gap of d slots to
  // d - 1 repeats of the frame before, so the next frame already fills the slot before
  // its own time (the held-frame AVI below matches ffmpeg's output frame for frame).
  GridPlacement held = PlaceOnGrid({0, 5, 10}, false);
  CHECK(held.slot_frame == std::vector<int64_t>{0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2});
  CHECK(held.held == 11);
  // Two frames in one slot: the grid drifts at most about two slots before dropping.
  GridPlacement dense = PlaceOnGrid({0, 0.3, 0.6, 0.9, 1.2, 1.5, 4}, false);
  CHECK(dense.dropped > 0);
  CHECK(dense.slot_frame.size() == 5);
  // A first frame half a slot or more late: filled from the origin with it, unless the
  // grid may start late (one stream).
  CHECK(PlaceOnGrid({12, 13}, false).slot_frame.size() == 14);
  CHECK(PlaceOnGrid({12, 13}, true).slot_frame == std::vector<int64_t>{0, 1});
}

TEST_CASE("CutGrid ends the grid before a truncated file's first damaged frame",
          "[unit][media][grid]") {
  GridPlacement held = PlaceOnGrid({0, 5, 10}, false);  // 0 x4, 1 x5, 2 x5
  GridPlacement cut = held;
  // Frame 2 damaged: frame 1 is shown once, its repeats stood for the frames lost.
  CHECK(CutGrid(&cut, 2) == 9);
  CHECK(cut.slot_frame == std::vector<int64_t>{0, 0, 0, 0, 1});
  CHECK(cut.held == 3);
  CHECK(cut.dropped == 0);
  GridPlacement whole = held;
  CHECK(CutGrid(&whole, 3) == 0);
  CHECK(whole.slot_frame == held.slot_frame);
  CHECK(whole.held == held.held);
  GridPlacement dense = PlaceOnGrid({0, 0.3, 0.6, 0.9, 1.2, 1.5, 4}, false);
  const int64_t dropped = dense.dropped;
  CHECK(CutGrid(&dense, 7) == 0);
  CHECK(dense.dropped == dropped);
  CHECK(CutGrid(&dense, 0) == 5);
  CHECK(dense.slot_frame.empty());
}

TEST_CASE("MPEG-4 Part 2 with B-frames in AVI is read on ffmpeg's grid", "[unit][media][footage]") {
  TempDir dir;
  const fs::path bf = dir.path() / "xvid_bf.avi";
  Ffmpeg(std::string(kSrc) + ":d=3 -c:v mpeg4 -bf 2 -g 12 -q:v 2 -vtag XVID '" + bf.string() + "'");
  // The packets have no pts and the decoder's best-effort timestamps start at 1.
  int status = 0;
  const std::string pts = Capture(
      "ffprobe -v error -select_streams v -show_entries "
      "packet=pts -of csv=p=0 '" +
          bf.string() + "' | head -2",
      &status);
  REQUIRE(pts.find("N/A") != std::string::npos);
  VideoInfo info = CheckOnGrid(bf, dir.path());
  CHECK(info.frame_count == 72);
  CHECK(info.coded_frames == 72);
  CHECK(info.held_frames == 0);
  CHECK(info.fps_num == 24);

  // The same stream with its B-frames unpacked by the bitstream filter.
  const fs::path unpacked = dir.path() / "xvid_unpacked.avi";
  Ffmpeg("-i '" + bf.string() + "' -c copy -bsf:v mpeg4_unpack_bframes '" + unpacked.string() +
         "'");
  CHECK(CheckOnGrid(unpacked, dir.path()).frame_count == 72);
}

TEST_CASE("an AVI with empty chunks holds each frame until the next one's time",
          "[unit][media][footage]") {
  TempDir dir;
  const fs::path clip = dir.path() / "held.avi";
  // Every 5th frame coded (the muxer writes empty chunks for the others), then 8 in a row.
  Ffmpeg(
      "-f lavfi -i testsrc2=s=320x180:r=15:d=4 -vf \"select='not(mod(n\\,5))+gt(n\\,51)'\" "
      "-c:v mjpeg -q:v 2 '" +
      clip.string() + "'");
  const std::string nb = Capture(
      "ffprobe -v error -count_packets -show_entries "
      "stream=nb_frames,nb_read_packets -of csv=p=0 '" +
      clip.string() + "'");
  INFO("stream frames, packets: " << nb);
  VideoInfo info = CheckOnGrid(clip, dir.path());
  CHECK(info.frame_count == 60);
  CHECK(info.coded_frames == 19);
  CHECK(info.held_frames == 41);
  CHECK(info.dropped_frames == 0);
}

TEST_CASE("variable frame rate from setpts is put on the grid", "[unit][media][footage]") {
  TempDir dir;
  const fs::path clip = dir.path() / "vfr.mkv";
  // Frame n at n*(1 + 0.8*sin(n/5))/24 s: spacings from 0.2 to 1.8 slots.
  Ffmpeg(std::string(kSrc) +
         ":d=4 -vf \"setpts='(N+4*sin(N/5))/(24*TB)'\" -fps_mode vfr "
         "-c:v libx264 -g 24 '" +
         clip.string() + "'");
  VideoInfo info = CheckOnGrid(clip, dir.path());
  CHECK(info.frame_count >= 90);
  CHECK(info.dropped_frames + info.held_frames > 0);
}

TEST_CASE("edit lists and audio that starts first keep their timing", "[unit][media][footage]") {
  TempDir dir;
  const fs::path src = dir.path() / "src.mp4";
  Ffmpeg(std::string(kSrc) +
         ":d=4 -f lavfi -i sine=f=440:r=48000:d=4 -c:v libx264 -g 24 "
         "-bf 3 -c:a aac '" +
         src.string() + "'");
  // -ss with stream copy: an edit list that starts between keyframes (the frames before
  // it are decoded only as references).
  const fs::path cut = dir.path() / "ss_copy.mp4";
  Ffmpeg("-ss 1.3 -i '" + src.string() + "' -c copy '" + cut.string() + "'");
  VideoInfo c = CheckOnGrid(cut, dir.path());
  CHECK(c.frame_count == 64);
  // Video that starts 0.5 s after its audio (an empty edit): the first frame is held
  // over the first 12 slots, as ffmpeg does, so the audio stays in sync.
  const fs::path v = dir.path() / "v.mp4";
  const fs::path a = dir.path() / "a.m4a";
  Ffmpeg(std::string(kSrc) + ":d=3 -c:v libx264 -bf 3 '" + v.string() + "'");
  Ffmpeg("-f lavfi -i sine=f=440:r=48000:d=4 -c:a aac '" + a.string() + "'");
  for (const char* ext : {"mp4", "mkv"}) {
    const fs::path late = dir.path() / (std::string("audio_first.") + ext);
    Ffmpeg("-itsoffset 0.5 -i '" + v.string() + "' -i '" + a.string() +
           "' -map 0:v -map 1:a -c copy '" + late.string() + "'");
    VideoInfo l = CheckOnGrid(late, dir.path());
    CHECK(l.frame_count >= 84);
    CHECK(l.held_frames >= 12);
    CHECK(l.has_audio);
  }
}

TEST_CASE("many codecs and containers are read on ffmpeg's grid", "[unit][media][footage]") {
  TempDir dir;
  struct Case {
    const char* name;
    std::string args;
  };
  const std::vector<Case> cases = {
      {"mpeg2_open_gop.ts", "-c:v mpeg2video -bf 2 -g 12 -q:v 3"},
      {"h264_bpyramid.mp4", "-c:v libx264 -bf 3 -x264-params b-pyramid=normal:b-adapt=0 -g 20"},
      {"hevc10_420.mkv", "-c:v libx265 -pix_fmt yuv420p10le -x265-params log-level=error"},
      {"hevc10_422.mov", "-c:v libx265 -pix_fmt yuv422p10le -x265-params log-level=error"},
      {"prores4444_alpha.mov", "-vf format=yuva444p10le -c:v prores_ks -profile:v 4444"},
      {"dnxhr_hq.mxf", "-c:v dnxhd -profile:v dnxhr_hq -pix_fmt yuv422p"},
      {"mjpeg.avi", "-c:v mjpeg -q:v 2"},
      {"interlaced.mp4", "-c:v libx264 -flags +ildct+ilme -x264-params tff=1"},
  };
  for (const Case& c : cases) {
    SECTION(c.name) {
      const fs::path clip = dir.path() / c.name;
      Ffmpeg(std::string(kSrc) + ":d=2 " + c.args + " '" + clip.string() + "'");
      VideoInfo info = CheckOnGrid(clip, dir.path());
      CHECK(info.frame_count == 48);
    }
  }
}

namespace {

// The luma plane of `frame`, row by row without padding.
std::vector<uint8_t> Luma(const AVFrame& frame) {
  std::vector<uint8_t> y;
  for (int row = 0; row < frame.height; ++row) {
    const uint8_t* p = frame.data[0] + static_cast<ptrdiff_t>(row) * frame.linesize[0];
    y.insert(y.end(), p, p + frame.width);
  }
  return y;
}

}  // namespace

TEST_CASE("a range that starts mid-GOP decodes only the frames before it that others refer to",
          "[unit][media][footage]") {
  TempDir dir;
  // One GOP of 240 frames, I B B B P B B B P ...: B-frames outside a pyramid are
  // referred to by no other frame.
  const fs::path clip = dir.path() / "one_gop.mp4";
  Ffmpeg(std::string(kSrc) +
         ":d=10 -c:v libx264 -bf 3 -x264-params b-pyramid=none:b-adapt=0:keyint=250:scenecut=0 '" +
         clip.string() + "'");
  // ffprobe's account of each frame, in presentation order: its pts and picture type.
  struct Shown {
    int64_t pts;
    char type;
  };
  std::vector<Shown> shown;
  {
    std::istringstream lines(
        Capture("ffprobe -v error -select_streams v -show_entries "
                "frame=pts,pict_type -of csv=p=0 '" +
                clip.string() + "'"));
    std::string line;
    while (std::getline(lines, line)) {
      if (line.empty()) continue;  // ffprobe separates some frames with a blank line
      const auto comma = line.find(',');
      REQUIRE(comma != std::string::npos);
      shown.push_back({std::stoll(line.substr(0, comma)), line[comma + 1]});
    }
  }
  REQUIRE(shown.size() == 240);
  const int64_t start = 200;
  const int64_t refs_before = std::count_if(shown.begin(), shown.begin() + start,
                                            [](const Shown& f) { return f.type != 'B'; });
  REQUIRE(refs_before < start / 2);  // the clip is what the test needs: mostly B-frames

  // Every frame decoded, by pts.
  std::map<int64_t, std::vector<uint8_t>> all;
  {
    auto input = VideoInput::Open(clip.string());
    REQUIRE(input.ok());
    auto frame = AllocFrame();
    REQUIRE(frame.ok());
    for (;;) {
      absl::StatusOr<bool> more = (*input)->ReadFrame(frame->get());
      REQUIRE(more.ok());
      if (!*more) break;
      all[(*frame)->pts] = Luma(**frame);
    }
    CHECK((*input)->frames_decoded() == 240);
  }
  REQUIRE(all.size() == 240);

  // From frame 200 on: the unreferenced frames before it are not decoded; every frame
  // that comes out is the one decoded whole, and none from 200 on is missing.
  auto input = VideoInput::Open(clip.string());
  REQUIRE(input.ok());
  (*input)->SkipUnreferencedBefore(shown[start].pts);
  auto frame = AllocFrame();
  REQUIRE(frame.ok());
  int64_t before = 0;
  int64_t from = 0;
  for (;;) {
    absl::StatusOr<bool> more = (*input)->ReadFrame(frame->get());
    REQUIRE(more.ok());
    if (!*more) break;
    const int64_t pts = (*frame)->pts;
    INFO("pts " << pts);
    REQUIRE(all.count(pts) == 1);
    CHECK(Luma(**frame) == all[pts]);
    (pts < shown[start].pts ? before : from) += 1;
  }
  CHECK(from == 240 - start);
  CHECK(before == refs_before);
  CHECK((*input)->frames_decoded() == refs_before + 240 - start);
}

TEST_CASE("odd sizes and non-square pixels are read on the grid", "[unit][media][footage]") {
  TempDir dir;
  const fs::path odd = dir.path() / "odd_721x405.mkv";
  Ffmpeg("-f lavfi -i testsrc2=s=722x406:r=25:d=1 -vf format=yuv444p,crop=721:405:0:0 -c:v ffv1 '" +
         odd.string() + "'");
  VideoInfo o = CheckOnGrid(odd, dir.path());
  CHECK(o.width == 721);
  CHECK(o.height == 405);
  const fs::path sar = dir.path() / "anamorphic.mp4";
  Ffmpeg(std::string(kSrc) + ":d=1 -vf setsar=4/3 -c:v libx264 '" + sar.string() + "'");
  CHECK(CheckOnGrid(sar, dir.path()).frame_count == 24);
}

TEST_CASE("a phone clip with rotation metadata is delivered upright as ffmpeg shows it",
          "[unit][media][footage]") {
  // A display matrix, as phones write it (the ffmpeg tool of Debian 12 cannot set one,
  // so the clip is remuxed with the FFmpeg API); the reference is the ffmpeg tool's own
  // decode, which applies it (autorotate).
  TempDir dir;
  const fs::path plain = dir.path() / "landscape.mp4";
  Ffmpeg("-f lavfi -i testsrc2=s=320x180:r=30:d=1 -c:v libx264 '" + plain.string() + "'");
  for (const int degrees : {90, 180, 270}) {
    SECTION("rotated " + std::to_string(degrees)) {
      const fs::path phone = dir.path() / ("phone" + std::to_string(degrees) + ".mp4");
      testing::RemuxRotated(plain, phone, degrees);
      const int clockwise = testing::ProbedClockwiseRotation(phone);
      CHECK(clockwise != 0);
      const VideoInfo info = CheckOnGrid(phone, dir.path());
      CHECK(info.frame_count == 30);
      CHECK(info.rotation == clockwise);
      CHECK(info.width == (degrees == 180 ? 320 : 180));
      CHECK(info.height == (degrees == 180 ? 180 : 320));
    }
  }
}

TEST_CASE("a movie that declares no frame rate is refused naming the file and the cause",
          "[unit][media][footage]") {
  // Two frames 0.37 s apart in Matroska without a frame duration: FFmpeg's only guess is
  // the 1/1000 s time base (1000 fps), which is no frame rate.
  TempDir dir;
  const fs::path src = dir.path() / "src.avi";
  Ffmpeg("-f lavfi -i testsrc2=s=64x64:r=25:d=1 -c:v mjpeg '" + src.string() + "'");
  for (const char* name : {"no_rate.mkv", "no_rate.nut"}) {
    const fs::path clip = dir.path() / name;
    testing::RemuxWithoutFrameRate(src, clip);
    const auto info = ProbeVideo(clip.string());
    INFO(info.status().ToString());
    REQUIRE_FALSE(info.ok());
    CHECK(info.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK_THAT(std::string(info.status().message()),
               Catch::Contains(clip.string()) && Catch::Contains("declares no frame rate") &&
                   Catch::Contains("ffmpeg -r RATE"));
    CHECK_FALSE(OpenVideoSource(clip.string(), 0, 1).ok());
  }
  // The same frames with the AVI's 25 fps are read.
  CHECK(CheckOnGrid(src, dir.path()).frame_count == 25);
}

TEST_CASE("an MP4 cut short in its one GOP is not taken for a complete one",
          "[unit][media][footage]") {
  TempDir dir;
  // The sample table at the front (faststart), so the cut file opens; one GOP, so the
  // probe has no keyframe near the end to decode from.
  const fs::path full = dir.path() / "full.mp4";
  Ffmpeg(std::string(kSrc) + ":d=3 -c:v libx264 -bf 3 -movflags +faststart '" + full.string() +
         "'");
  auto complete = ProbeVideo(full.string());
  REQUIRE(complete.ok());
  CHECK(complete->frame_count == 72);
  CHECK(complete->coded_frames == 72);
  CHECK(complete->tail_cut_frames == 0);
  const fs::path clip = dir.path() / "cut.mp4";
  CutInPacket63(full, clip);
  // Its sample table still lists 72 frames; the frames before the cut are the ones
  // ffmpeg decodes exactly as from the whole file.
  const auto reference = FfmpegGrid(clip, dir.path());
  const auto whole_file = FfmpegGrid(full, dir.path());
  REQUIRE(whole_file.size() == 72);
  const size_t intact = IntactPrefix(reference, whole_file);
  INFO("ffmpeg delivers " << reference.size() << " frames of the cut file, " << intact
                          << " intact");
  REQUIRE(intact < 72);
  auto info = ProbeVideo(clip.string());
  INFO(info.status().ToString());
  REQUIRE(info.ok());
  // No frame past the cut (decoded to find it, the probe stops at most one short of
  // ffmpeg's count: 59 of 60 here).
  CHECK(info->frame_count <= static_cast<int64_t>(intact));
  CHECK(info->frame_count >= static_cast<int64_t>(intact) - 1);
  CHECK(info->tail_cut_frames > 0);
}

TEST_CASE("a clip cut short in its last GOP delivers every frame before the cut",
          "[unit][media][footage]") {
  TempDir dir;
  // Cut in the middle of a packet of the last GOP (frames 48-71), as a copy or a
  // download that stopped does. MPEG-TS tolerates it: the demuxer gives the half packet.
  const char* bframes = GENERATE("-bf 0", "-bf 3");
  INFO("x264 " << bframes);
  const fs::path full = dir.path() / "full.ts";
  Ffmpeg(std::string(kSrc) + ":d=3 -c:v libx264 -g 24 " + bframes + " '" + full.string() + "'");
  const fs::path clip = dir.path() / "cut.ts";
  CutInPacket63(full, clip);

  // ffmpeg's own decode of the cut file delivers its damaged frames too (concealed);
  // the frames before the cut are those it decodes exactly as from the whole file.
  const auto reference = FfmpegGrid(clip, dir.path());
  const auto whole_file = FfmpegGrid(full, dir.path());
  REQUIRE(whole_file.size() == 72);
  REQUIRE(reference.size() < 72);
  const size_t intact = IntactPrefix(reference, whole_file);
  INFO("ffmpeg delivers " << reference.size() << " frames of the cut file, " << intact
                          << " intact");
  REQUIRE(intact >= 48);               // the cut is in the last GOP
  REQUIRE(intact < reference.size());  // and some frame of it is damaged

  auto info = ProbeVideo(clip.string());
  INFO(info.status().ToString());
  REQUIRE(info.ok());
  CHECK(info->frame_count == static_cast<int64_t>(intact));
  CHECK(info->tail_cut_frames == static_cast<int64_t>(reference.size() - intact));
  CHECK(info->coded_frames == static_cast<int64_t>(intact));
  CHECK(info->held_frames == 0);

  const std::vector<Frame> whole = testing::ReadFrames(clip, 0, info->frame_count);
  REQUIRE(whole.size() == static_cast<size_t>(info->frame_count));
  for (size_t i = 0; i < whole.size(); ++i) {
    const double psnr = Psnr(ToRgb24(whole[i]), reference[i]);
    INFO("frame " << i << " psnr " << psnr);
    CHECK(psnr >= 35);
  }
  const std::vector<Frame> chunked = ReadChunked(clip, info->frame_count, 7);
  REQUIRE(chunked.size() == whole.size());
  for (size_t i = 0; i < whole.size(); ++i) {
    INFO("frame " << i);
    CHECK(chunked[i].planes == whole[i].planes);
  }

  // The whole file says nothing was cut.
  auto complete = ProbeVideo(full.string());
  REQUIRE(complete.ok());
  CHECK(complete->frame_count == 72);
  CHECK(complete->tail_cut_frames == 0);
}

}  // namespace reelfarm::media

namespace reelfarm::media {

TEST_CASE("a still image given as a movie and a movie given as a sequence are named",
          "[unit][media][footage]") {
  TempDir dir;
  const fs::path png = dir.path() / "still.png";
  REQUIRE(Run("ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=s=64x36 -frames:v 1 '" +
              png.string() + "'") == 0);
  auto still = ProbeVideo(png.string());
  REQUIRE_FALSE(still.ok());
  CHECK(still.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(still.status().message()),
             Catch::Contains("still.png' is a single png image, not a movie") &&
                 Catch::Contains("plate.####.png"));
  for (const char* n : {"1001", "1002"}) {
    REQUIRE(Run("ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=s=64x36:r=24:d=1 "
                "-c:v libx264 '" +
                (dir.path() / (std::string("m.") + n + ".mp4")).string() + "'") == 0);
  }
  auto movies = ProbeImageSequence((dir.path() / "m.####.mp4").string());
  REQUIRE_FALSE(movies.ok());
  CHECK(movies.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(
      std::string(movies.status().message()),
      Catch::Contains("m.1001.mp4' is a movie") && Catch::Contains("without a frame pattern"));
}

}  // namespace reelfarm::media
