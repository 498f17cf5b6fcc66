// Output formats end to end on a real farm: a chunked ProRes job equals a single-task
// one frame for frame, with the input's colour tags, audio and timecode; an EXR sequence job
// publishes every frame under its number and only a sidecar at assembly.
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/testing/farm.h"
#include "tests/testing/fixtures.h"

namespace fs = std::filesystem;
using namespace reelfarm;
using testing::Farm;

namespace {

v1::JobSpec Spec(const std::string& input, const std::string& output, int chunk,
                 const std::string& codec = "") {
  v1::JobSpec spec;
  auto* u = spec.mutable_upscale();
  u->set_input(input);
  u->set_output(output);
  u->set_model("bicubic");
  u->set_scale(2);
  u->set_chunk_frames(chunk);
  u->mutable_format()->set_codec(codec);
  return spec;
}

int64_t SubmitAndWait(Farm& farm, const v1::JobSpec& spec) {
  v1::SubmitJobResponse resp;
  grpc::Status st = farm.Submit(spec, &resp);
  INFO(st.error_message());
  REQUIRE(st.ok());
  v1::Job job = farm.WaitForJob(resp.job_id());
  INFO(job.error());
  if (job.state() != v1::JOB_STATE_SUCCEEDED) farm.DumpLogs();
  REQUIRE(job.state() == v1::JOB_STATE_SUCCEEDED);
  return resp.job_id();
}

std::string Probe(const fs::path& path, const std::string& what) {
  return testing::Capture("ffprobe -v error " + what + " -of default=nw=1:nk=1 '" + path.string() +
                          "'");
}

}  // namespace

TEST_CASE("a chunked ProRes job equals a single-task job and keeps colour, audio, timecode",
          "[integration][formats]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm");
  const fs::path plate = farm.storage() / "plates/sh030.mov";
  fs::create_directories(plate.parent_path());
  REQUIRE(testing::Run("ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=s=320x180:r=24 "
                       "-f lavfi -i sine=f=440:r=48000 -frames:v 24 -t 1 -c:v libx264 -crf 12 "
                       "-vf scale=out_color_matrix=bt709:out_range=tv,format=yuv420p "
                       "-color_primaries bt709 -color_trc bt709 -colorspace bt709 "
                       "-color_range tv -timecode 10:00:00:00 -c:a aac -shortest '" +
                       plate.string() + "'") == 0);
  farm.StartWorker("w1");
  farm.StartWorker("w2");
  farm.WaitForWorkers(2);

  SubmitAndWait(farm, Spec("plates/sh030.mov", "renders/chunked.mov", 5, "prores_4444"));
  SubmitAndWait(farm, Spec("plates/sh030.mov", "renders/single.mov", 100, "prores_4444"));
  const fs::path chunked = farm.storage() / "renders/chunked.mov";
  const fs::path single = farm.storage() / "renders/single.mov";

  CHECK(Probe(chunked,
              "-select_streams v:0 -show_entries stream=codec_name,profile,width,"
              "height,color_space,color_transfer,color_primaries") ==
        "prores\n4444\n640\n360\nbt709\nbt709\nbt709\n");
  CHECK(Probe(chunked, "-select_streams a:0 -show_entries stream=codec_name") == "aac\n");
  CHECK(Probe(chunked, "-select_streams v:0 -show_entries stream_tags=timecode") ==
        "10:00:00:00\n");
  // A frame range starts at the timecode of its first frame.
  v1::JobSpec range = Spec("plates/sh030.mov", "renders/range.mov", 5);
  range.mutable_upscale()->set_first_frame(6);
  range.mutable_upscale()->set_last_frame(17);
  SubmitAndWait(farm, range);
  CHECK(Probe(farm.storage() / "renders/range.mov",
              "-select_streams v:0 -show_entries stream=nb_frames:stream_tags=timecode") ==
        "12\n10:00:00:06\n");
  int w = 0, h = 0;
  const auto a = testing::DecodeRgb(chunked, "", &w, &h);
  const auto b = testing::DecodeRgb(single, "", &w, &h);
  REQUIRE(a.size() == 24);
  REQUIRE(b.size() == 24);
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("frame " << i);
    CHECK(a[i] == b[i]);
  }
  // And the pictures are the bicubic x2 of their own source frames.
  const auto out = testing::DecodeYuv420(chunked, "", &w, &h);
  const auto ref = testing::DecodeYuv420(plate, "scale=640:360:flags=bicubic", &w, &h);
  REQUIRE(ref.size() == 24);
  for (size_t i = 0; i < 24; ++i) {
    INFO("frame " << i);
    CHECK(testing::Psnr(out[i], ref[i]) >= 35.0);
  }
}

TEST_CASE("an EXR sequence job publishes numbered frames and a sidecar", "[integration][formats]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm");
  testing::MakeTestClip(farm.storage() / "plates/sh040.mp4", 320, 180, 20);
  farm.StartWorker("w1");
  farm.WaitForWorkers(1);
  const int64_t id =
      SubmitAndWait(farm, Spec("plates/sh040.mp4", "renders/sh040/sh040.####.exr", 8));

  const fs::path folder = farm.storage() / "renders/sh040";
  int files = 0;
  for (const auto& e : fs::directory_iterator(folder)) {
    ++files;
    CHECK(e.path().filename().string().find(".tmp.") == std::string::npos);
  }
  CHECK(files == 21);  // 20 frames and the sidecar
  CHECK(fs::exists(folder / "sh040.0000.exr"));
  CHECK(fs::exists(folder / "sh040.0019.exr"));
  CHECK(Probe(folder / "sh040.0007.exr", "-show_entries stream=width,height") == "640\n360\n");
  std::ifstream side(folder / "sh040.####.exr.json");
  REQUIRE(side);
  nlohmann::json prov = nlohmann::json::parse(side);
  CHECK(prov["job_id"] == id);
  // The server sweeps a succeeded job's scratch every 2 s.
  const fs::path scratch = farm.storage() / ".reelfarm/jobs" / std::to_string(id);
  for (int i = 0; i < 100 && fs::exists(scratch); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK_FALSE(fs::exists(scratch));

  int w = 0, h = 0;
  const auto out = testing::DecodeYuv420(folder / "sh040.%04d.exr", "", &w, &h);
  const auto ref = testing::DecodeYuv420(farm.storage() / "plates/sh040.mp4",
                                         "scale=640:360:flags=bicubic", &w, &h);
  REQUIRE(out.size() == 20);
  REQUIRE(ref.size() == 20);
  for (size_t i = 0; i < 20; ++i) {
    INFO("frame " << i);
    CHECK(testing::Psnr(out[i], ref[i]) >= 38.0);
  }
}

TEST_CASE("a 16-bit PNG sequence keeps its frame numbers and gaps are refused naming them",
          "[integration][formats]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm");
  const fs::path plates = farm.storage() / "plates/sh050";
  fs::create_directories(plates);
  REQUIRE(testing::Run("ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=s=160x90:r=24 "
                       "-frames:v 12 -pix_fmt rgb48be -start_number 1001 '" +
                       (plates / "sh050.%04d.png").string() + "'") == 0);
  farm.StartWorker("w1");
  farm.WaitForWorkers(1);

  v1::JobSpec spec = Spec("plates/sh050/sh050.####.png", "renders/sh050/sh050.####.png", 3);
  spec.mutable_upscale()->set_first_frame(1003);
  spec.mutable_upscale()->set_last_frame(1010);
  SubmitAndWait(farm, spec);
  const fs::path out = farm.storage() / "renders/sh050";
  CHECK_FALSE(fs::exists(out / "sh050.1002.png"));
  CHECK_FALSE(fs::exists(out / "sh050.1011.png"));
  for (int n = 1003; n <= 1010; ++n) {
    const fs::path file = out / ("sh050." + std::to_string(n) + ".png");
    INFO(file.string());
    REQUIRE(fs::exists(file));
    CHECK(Probe(file, "-show_entries stream=width,height,pix_fmt") == "320\n180\nrgb48be\n");
    // Frame n of the output is the bicubic x2 of frame n of the input.
    int w = 0, h = 0;
    const auto got = testing::DecodeYuv420(file, "", &w, &h);
    const auto want = testing::DecodeYuv420(plates / ("sh050." + std::to_string(n) + ".png"),
                                            "scale=320:180:flags=bicubic", &w, &h);
    REQUIRE(got.size() == 1);
    REQUIRE(want.size() == 1);
    CHECK(testing::Psnr(got[0], want[0]) >= 35.0);
  }

  fs::remove(plates / "sh050.1005.png");
  fs::remove(plates / "sh050.1006.png");
  v1::SubmitJobResponse resp;
  grpc::Status st =
      farm.Submit(Spec("plates/sh050/sh050.####.png", "renders/gap/gap.####.exr", 4), &resp);
  CHECK(st.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK_THAT(st.error_message(), Catch::Contains("upscale.input 'plates/sh050/sh050.####.png'") &&
                                     Catch::Contains("1005-1006"));
}
