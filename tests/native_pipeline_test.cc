// Which path a chunk's frames take: a built-in filter from a YUV movie to a YUV movie
// resizes the decoded planes (native), anything else goes through planar float RGB.
// The chunk's published segment, decoded by ffmpeg, is compared with ffmpeg's own
// `-vf scale=W:H:flags=...` of the same input frames, plane by plane.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/storage.h"
#include "media/media.h"
#include "media/output_format.h"
#include "tests/testing/faulty_storage.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/models.h"
#include "worker/pipeline.h"

namespace fs = std::filesystem;
using namespace reelfarm;

namespace {

// A chunk task of the movie `input` (under the storage root), frames [begin, end), x2
// into a `codec` segment, with the input described as the server's probe does.
struct NativeChunk {
  testing::TempDir dir;
  std::unique_ptr<testing::FaultyStorage> storage;
  v1::Assignment a;
  worker::PipelineOptions options;

  void Set(const std::string& input, const std::string& output, const std::string& model,
           int64_t begin, int64_t end, const std::string& codec = "", int crf = 0) {
    storage = *testing::FaultyStorage::Open(dir.path());
    a.set_job_id(3);
    a.set_kind(v1::TASK_KIND_CHUNK);
    a.set_frame_begin(begin);
    a.set_frame_end(end);
    a.set_segment(common::Storage::JobPartsDir(3) + "/chunk_000000.lease_1.mov");
    auto* u = a.mutable_upscale();
    u->set_input(input);
    u->set_output(output);
    u->set_model(model);
    u->set_scale(2);
    u->set_crf(crf);
    u->mutable_format()->set_codec(codec);
    const fs::path path = dir.path() / input;
    auto v = media::HasFramePattern(input) ? media::ProbeImageSequence(path.string())
                                           : media::ProbeVideo(path.string());
    INFO(v.status().ToString());
    REQUIRE(v.ok());
    auto* info = a.mutable_input_info();
    info->set_width(v->width);
    info->set_height(v->height);
    info->set_fps_num(v->fps_num);
    info->set_fps_den(v->fps_den);
    info->set_frame_count(v->frame_count);
    info->set_first_frame(v->first_frame);
    info->set_pixel_format(v->pixel_format);
    info->set_colour_primaries(v->colour.primaries);
    info->set_colour_transfer(v->colour.transfer);
    info->set_colour_matrix(v->colour.matrix);
    info->set_colour_range(v->colour.range);
    options.model_path = {(dir.path() / "models").string()};
  }
  worker::TaskReport Run() {
    worker::TaskRunner runner(*storage, options);
    std::atomic<bool> cancelled{false};
    return runner.Run(
        a, [](int64_t) {}, cancelled);
  }
  fs::path Segment() const { return dir.path() / a.segment(); }
};

// Raw frames of `path` through `vf` as `pix_fmt` (8-bit 4:2:0 or 10-bit 4:2:2), split
// into Y, U, V planes of 16-bit samples.
std::vector<std::vector<std::vector<uint16_t>>> Raw(const fs::path& path, const std::string& vf,
                                                    const std::string& pix_fmt, int w, int h) {
  int status = 0;
  const std::string raw =
      testing::Capture("ffmpeg -nostdin -v error -i '" + path.string() + "' -vf '" + vf +
                           "' -f rawvideo -pix_fmt " + pix_fmt + " -",
                       &status);
  REQUIRE(status == 0);
  const bool ten = pix_fmt == "yuv422p10le";
  const size_t bytes = ten ? 2 : 1;
  const size_t cw = static_cast<size_t>(w + 1) / 2;
  const size_t ch = ten ? static_cast<size_t>(h) : static_cast<size_t>(h + 1) / 2;
  const size_t sizes[3] = {static_cast<size_t>(w) * h, cw * ch, cw * ch};
  const size_t frame = (sizes[0] + sizes[1] + sizes[2]) * bytes;
  REQUIRE(raw.size() % frame == 0);
  std::vector<std::vector<std::vector<uint16_t>>> frames;
  for (size_t at = 0; at < raw.size();) {
    std::vector<std::vector<uint16_t>> planes(3);
    for (int p = 0; p < 3; ++p) {
      for (size_t i = 0; i < sizes[p]; ++i, at += bytes) {
        const auto* b = reinterpret_cast<const uint8_t*>(raw.data() + at);
        planes[p].push_back(ten ? static_cast<uint16_t>(b[0] | (b[1] << 8)) : b[0]);
      }
    }
    frames.push_back(std::move(planes));
  }
  return frames;
}

double Psnr(const std::vector<uint16_t>& a, const std::vector<uint16_t>& b, double peak) {
  REQUIRE(a.size() == b.size());
  double se = 0;
  for (size_t i = 0; i < a.size(); ++i) se += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  if (se == 0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(peak * peak * double(a.size()) / se);
}

// The lowest PSNR per plane of the segment's frames against ffmpeg's scale of input
// frames [begin, begin + n).
std::vector<double> CompareWithFfmpeg(const fs::path& segment, const fs::path& input,
                                      const std::string& flags, int64_t begin, int w, int h,
                                      const std::string& pix_fmt = "yuv420p") {
  const auto got = Raw(segment, "null", pix_fmt, w, h);
  const auto want =
      Raw(input, "scale=" + std::to_string(w) + ":" + std::to_string(h) + ":flags=" + flags,
          pix_fmt, w, h);
  REQUIRE(!got.empty());
  REQUIRE(begin + static_cast<int64_t>(got.size()) <= static_cast<int64_t>(want.size()));
  const double peak = pix_fmt == "yuv422p10le" ? 1023.0 : 255.0;
  std::vector<double> low(3, std::numeric_limits<double>::infinity());
  for (size_t i = 0; i < got.size(); ++i) {
    for (int p = 0; p < 3; ++p) {
      low[p] = std::min(low[p], Psnr(got[i][p], want[static_cast<size_t>(begin) + i][p], peak));
    }
  }
  return low;
}

}  // namespace

TEST_CASE("a bicubic or lanczos chunk of a YUV movie resizes its planes as ffmpeg's scale does",
          "[integration][worker][native]") {
  NativeChunk c;
  testing::MakeTestClip(c.dir.path() / "plates/a.mp4", 320, 180, 24);
  const std::string model = GENERATE("bicubic", "lanczos");
  c.Set("plates/a.mp4", "renders/a.mp4", model, 6, 18);  // lossless H.264 (crf 0)
  const worker::TaskReport r = c.Run();
  INFO(r.error);
  REQUIRE(r.ok);
  CHECK(r.frame_path == "native");
  CHECK(r.frames_done == 12);
  const auto low =
      CompareWithFfmpeg(c.Segment(), c.dir.path() / "plates/a.mp4", model, 6, 640, 360);
  INFO("lowest PSNR y " << low[0] << " u " << low[1] << " v " << low[2]);
  for (double db : low) CHECK(db >= 45.0);
}

TEST_CASE("a 10-bit ProRes chunk stays 10-bit on the native path",
          "[integration][worker][native]") {
  NativeChunk c;
  const fs::path plate = c.dir.path() / "plates/p.mov";
  fs::create_directories(plate.parent_path());
  REQUIRE(testing::Run("ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=s=320x180:r=24 "
                       "-frames:v 6 -c:v prores_ks -profile:v hq -pix_fmt yuv422p10le '" +
                       plate.string() + "'") == 0);
  c.Set("plates/p.mov", "renders/p.mov", "bicubic", 0, 6, "prores_422hq");
  const worker::TaskReport r = c.Run();
  INFO(r.error);
  REQUIRE(r.ok);
  CHECK(r.frame_path == "native");
  CHECK(testing::Capture("ffprobe -v error -show_entries stream=pix_fmt -of csv=p=0 '" +
                         c.Segment().string() + "'") == "yuv422p10le\n");
  // ProRes is lossy: against ffmpeg's 10-bit scale, at 10-bit peak.
  const auto low = CompareWithFfmpeg(c.Segment(), plate, "bicubic", 0, 640, 360, "yuv422p10le");
  INFO("lowest PSNR y " << low[0] << " u " << low[1] << " v " << low[2]);
  for (double db : low) CHECK(db >= 45.0);
}

TEST_CASE("an odd-sized movie resizes natively", "[integration][worker][native]") {
  NativeChunk c;
  const fs::path plate = c.dir.path() / "plates/odd.mkv";
  fs::create_directories(plate.parent_path());
  REQUIRE(
      testing::Run("ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=s=853x479:r=24,format=rgb24 "
                   "-frames:v 4 -pix_fmt yuv420p -c:v ffv1 '" +
                   plate.string() + "'") == 0);
  c.Set("plates/odd.mkv", "renders/odd.mp4", "bicubic", 0, 4);
  REQUIRE(c.a.input_info().width() == 853);
  const worker::TaskReport r = c.Run();
  INFO(r.error);
  REQUIRE(r.ok);
  CHECK(r.frame_path == "native");
  const auto low = CompareWithFfmpeg(c.Segment(), plate, "bicubic", 0, 1706, 958);
  INFO("lowest PSNR y " << low[0] << " u " << low[1] << " v " << low[2]);
  for (double db : low) CHECK(db >= 45.0);
}

TEST_CASE("learned models and RGB inputs still take the RGB path",
          "[integration][worker][native]") {
  NativeChunk c;
  SECTION("a learned model on a YUV movie") {
    testing::MakeTestClip(c.dir.path() / "plates/a.mp4", 64, 36, 6);
    testing::WriteNearestX2Model(c.dir.path() / "models", "nearest");
    c.Set("plates/a.mp4", "renders/a.mp4", "nearest", 0, 6);
    const worker::TaskReport r = c.Run();
    INFO(r.error);
    REQUIRE(r.ok);
    CHECK(r.frame_path == "rgb");
    // Nearest x2 through RGB: close to ffmpeg's neighbour scale of the same frames.
    const auto low =
        CompareWithFfmpeg(c.Segment(), c.dir.path() / "plates/a.mp4", "neighbor", 0, 128, 72);
    INFO("lowest PSNR y " << low[0] << " u " << low[1] << " v " << low[2]);
    CHECK(low[0] >= 35.0);
  }
  SECTION("bicubic on an RGB PNG sequence") {
    const fs::path seq = c.dir.path() / "plates/s";
    fs::create_directories(seq);
    REQUIRE(testing::Run("ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=s=64x36:r=24 "
                         "-frames:v 4 -pix_fmt rgb48be '" +
                         (seq / "s.%04d.png").string() + "'") == 0);
    c.Set("plates/s/s.####.png", "renders/s.mp4", "bicubic", 0, 4);
    const worker::TaskReport r = c.Run();
    INFO(r.error);
    REQUIRE(r.ok);
    CHECK(r.frame_path == "rgb");
    const auto low = CompareWithFfmpeg(c.Segment(), seq / "s.%04d.png", "bicubic", 0, 128, 72);
    INFO("lowest PSNR y " << low[0] << " u " << low[1] << " v " << low[2]);
    CHECK(low[0] >= 35.0);
  }
}

namespace {

// Runs frames [begin, end) of `c`'s job as chunk `index` on `runner`, which should take
// frame path `path`.
worker::TaskReport RunChunkOn(worker::TaskRunner& runner, NativeChunk& c, int index, int64_t begin,
                              int64_t end, const std::string& path = "native") {
  c.a.set_task_index(index);
  c.a.set_frame_begin(begin);
  c.a.set_frame_end(end);
  c.a.set_segment(common::Storage::JobPartsDir(3) + "/chunk_00000" + std::to_string(index) +
                  ".lease_1.mov");
  std::atomic<bool> cancelled{false};
  worker::TaskReport r = runner.Run(
      c.a, [](int64_t) {}, cancelled);
  INFO(r.error);
  REQUIRE(r.ok);
  CHECK(r.frame_path == path);
  CHECK(r.frames_done == end - begin);
  return r;
}

}  // namespace

TEST_CASE("chunks in order on one slot go on with the decoder and write what chunks alone write",
          "[integration][worker][native]") {
  NativeChunk c;
  // One keyframe: alone, chunk k decodes from frame 0.
  testing::MakeTestClip(c.dir.path() / "plates/a.mp4", 320, 180, 36);
  c.Set("plates/a.mp4", "renders/a.mp4", "bicubic", 0, 12, "", 18);
  std::vector<std::string> in_order;
  {
    worker::TaskRunner runner(*c.storage, c.options);
    for (int k = 0; k < 3; ++k) {
      const worker::TaskReport r = RunChunkOn(runner, c, k, 12 * k, 12 * (k + 1));
      CHECK(r.continued_decode == (k > 0));
      in_order.push_back(r.output_digest);
      const auto low = CompareWithFfmpeg(c.Segment(), c.dir.path() / "plates/a.mp4", "bicubic",
                                         12 * k, 640, 360);
      INFO("chunk " << k << " lowest PSNR y " << low[0] << " u " << low[1] << " v " << low[2]);
      for (double db : low) CHECK(db >= 40.0);
    }
  }
  // Each chunk alone on a new worker: the same bytes.
  for (int k = 0; k < 3; ++k) {
    worker::TaskRunner alone(*c.storage, c.options);
    const worker::TaskReport r = RunChunkOn(alone, c, k, 12 * k, 12 * (k + 1));
    CHECK_FALSE(r.continued_decode);
    INFO("chunk " << k);
    CHECK(r.output_digest == in_order[static_cast<size_t>(k)]);
  }
}

TEST_CASE(
    "a learned model's chunks in order on one slot go on with the RGB decoder and write "
    "what chunks alone write",
    "[integration][worker][native]") {
  NativeChunk c;
  // One keyframe: alone, chunk k decodes from frame 0.
  testing::MakeTestClip(c.dir.path() / "plates/a.mp4", 64, 36, 36);
  testing::WriteNearestX2Model(c.dir.path() / "models", "nearest");
  testing::WriteTemporalX2Model(c.dir.path() / "models", "temporal");
  SECTION("a frame-by-frame model") {
    c.Set("plates/a.mp4", "renders/a.mp4", "nearest", 0, 12, "", 18);
    std::vector<std::string> in_order;
    {
      worker::TaskRunner runner(*c.storage, c.options);
      for (int k = 0; k < 3; ++k) {
        const worker::TaskReport r = RunChunkOn(runner, c, k, 12 * k, 12 * (k + 1), "rgb");
        CHECK(r.continued_decode == (k > 0));
        in_order.push_back(r.output_digest);
        // Against ffmpeg's own decode of those frames, scaled as the model does.
        const auto low = CompareWithFfmpeg(c.Segment(), c.dir.path() / "plates/a.mp4", "neighbor",
                                           12 * k, 128, 72);
        INFO("chunk " << k << " lowest PSNR y " << low[0] << " u " << low[1] << " v " << low[2]);
        CHECK(low[0] >= 35.0);
      }
      // Out of order: nothing to go on from.
      CHECK_FALSE(RunChunkOn(runner, c, 1, 12, 24, "rgb").continued_decode);
    }
    // Each chunk alone on a new worker: the same bytes.
    for (int k = 0; k < 3; ++k) {
      worker::TaskRunner alone(*c.storage, c.options);
      const worker::TaskReport r = RunChunkOn(alone, c, k, 12 * k, 12 * (k + 1), "rgb");
      CHECK_FALSE(r.continued_decode);
      INFO("chunk " << k);
      CHECK(r.output_digest == in_order[static_cast<size_t>(k)]);
    }
  }
  SECTION("a temporal model, whose next chunk needs frames before where this one stopped") {
    c.Set("plates/a.mp4", "renders/a.mp4", "temporal", 0, 12, "", 18);
    worker::TaskRunner runner(*c.storage, c.options);
    CHECK_FALSE(RunChunkOn(runner, c, 0, 0, 12, "rgb").continued_decode);
    CHECK_FALSE(RunChunkOn(runner, c, 1, 12, 24, "rgb").continued_decode);
  }
  SECTION("a native chunk does not go on from an RGB chunk's decoder") {
    c.Set("plates/a.mp4", "renders/a.mp4", "nearest", 0, 12, "", 18);
    worker::TaskRunner runner(*c.storage, c.options);
    CHECK_FALSE(RunChunkOn(runner, c, 0, 0, 12, "rgb").continued_decode);
    c.a.mutable_upscale()->set_model("bicubic");
    CHECK_FALSE(RunChunkOn(runner, c, 1, 12, 24, "native").continued_decode);
  }
}

TEST_CASE("a chunk goes on only from a decoder of the same file at its first frame",
          "[integration][worker][native]") {
  NativeChunk c;
  const fs::path plate = c.dir.path() / "plates/a.mp4";
  testing::MakeTestClip(plate, 320, 180, 36);
  c.Set("plates/a.mp4", "renders/a.mp4", "bicubic", 0, 12);
  SECTION("out of order") {
    worker::TaskRunner runner(*c.storage, c.options);
    CHECK_FALSE(RunChunkOn(runner, c, 1, 12, 24).continued_decode);
    CHECK_FALSE(RunChunkOn(runner, c, 0, 0, 12).continued_decode);
    CHECK_FALSE(RunChunkOn(runner, c, 2, 24, 36).continued_decode);  // 12 was next
  }
  SECTION("the input replaced between chunks") {
    worker::TaskRunner runner(*c.storage, c.options);
    CHECK_FALSE(RunChunkOn(runner, c, 0, 0, 12).continued_decode);
    const fs::path other = c.dir.path() / "plates/other.mp4";
    REQUIRE(testing::Run("ffmpeg -nostdin -v error -y -f lavfi -i testsrc=s=320x180:r=24 "
                         "-frames:v 36 -c:v libx264 -crf 12 -pix_fmt yuv420p '" +
                         other.string() + "'") == 0);
    fs::rename(other, plate);
    const worker::TaskReport r = RunChunkOn(runner, c, 1, 12, 24);
    CHECK_FALSE(r.continued_decode);
    // The new file's frames.
    const auto low = CompareWithFfmpeg(c.Segment(), plate, "bicubic", 12, 640, 360);
    INFO("lowest PSNR y " << low[0] << " u " << low[1] << " v " << low[2]);
    for (double db : low) CHECK(db >= 45.0);
  }
  SECTION("after the decoder's time is up") {
    c.options.keep_source_seconds = 1.5;
    worker::TaskRunner runner(*c.storage, c.options);
    CHECK_FALSE(RunChunkOn(runner, c, 0, 0, 12).continued_decode);
    CHECK(RunChunkOn(runner, c, 1, 12, 24).continued_decode);
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    CHECK_FALSE(RunChunkOn(runner, c, 2, 24, 36).continued_decode);
  }
  SECTION("kept for no time") {
    c.options.keep_source_seconds = 0;
    worker::TaskRunner runner(*c.storage, c.options);
    CHECK_FALSE(RunChunkOn(runner, c, 0, 0, 12).continued_decode);
    CHECK_FALSE(RunChunkOn(runner, c, 1, 12, 24).continued_decode);
  }
}
