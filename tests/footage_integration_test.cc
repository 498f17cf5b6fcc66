// Real footage through a real farm (2 workers): messy movies (MPEG-4 Part 2 B-frames in
// AVI, held frames, audio that starts first or later) are upscaled on the constant-rate
// grid: chunked equals unchunked frame for frame, every frame matches ffmpeg's own
// bicubic scale of the same grid frame, and the audio stays in sync. The wrong kind of
// file or model is refused at submit in one sentence.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/testing/farm.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/models.h"
#include "tests/testing/remux.h"

namespace fs = std::filesystem;
using namespace reelfarm;
using testing::Farm;

namespace {

void Ffmpeg(const std::string& args) {
  INFO("ffmpeg " << args);
  REQUIRE(testing::Run("ffmpeg -nostdin -hide_banner -loglevel error -y " + args) == 0);
}

v1::JobSpec Spec(const std::string& input, const std::string& output, int chunk,
                 const std::string& model = "bicubic") {
  v1::JobSpec spec;
  auto* u = spec.mutable_upscale();
  u->set_input(input);
  u->set_output(output);
  u->set_model(model);
  u->set_scale(2);
  u->set_chunk_frames(chunk);
  u->set_overwrite(true);
  return spec;
}

double ProbeNumber(const fs::path& path, const std::string& what) {
  const std::string out = testing::Capture("ffprobe -v error " + what + " -of default=nw=1:nk=1 '" +
                                           path.string() + "'");
  return std::atof(out.c_str());
}

// A stream's start time in seconds ("v:0", "a:0").
double StartTime(const fs::path& path, const std::string& stream) {
  return ProbeNumber(path, "-select_streams " + stream + " -show_entries stream=start_time");
}

int64_t CountFrames(const fs::path& path) {
  return static_cast<int64_t>(
      ProbeNumber(path, "-select_streams v:0 -count_frames -show_entries stream=nb_read_frames"));
}

}  // namespace

TEST_CASE("messy movies upscale on the grid, chunked equal to unchunked, with 2 workers",
          "[integration][footage]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm");
  const fs::path plates = farm.storage() / "plates";
  fs::create_directories(plates);
  const std::string src = "-f lavfi -i testsrc2=s=160x90:r=24";
  // MPEG-4 Part 2 with B-frames, Xvid-tagged in AVI: no pts, best-effort timestamps from 1.
  Ffmpeg(src + ":d=2 -c:v mpeg4 -bf 2 -g 12 -q:v 2 -vtag XVID '" + (plates / "xvid.avi").string() +
         "'");
  // Every 4th frame coded, empty chunks between (a screen capture's held frames).
  Ffmpeg(src + ":d=2 -vf \"select='not(mod(n\\,4))'\" -c:v mjpeg -q:v 2 '" +
         (plates / "held.avi").string() + "'");
  farm.StartWorker("w1");
  farm.StartWorker("w2");
  farm.WaitForWorkers(2);

  for (const char* name : {"xvid.avi", "held.avi"}) {
    SECTION(name) {
      const fs::path input = plates / name;
      const std::string stem = fs::path(name).stem().string();
      v1::Job chunked = farm.RunToSuccess(
          Spec("plates/" + std::string(name), "renders/" + stem + "_c/f.####.png", 5));
      v1::Job whole = farm.RunToSuccess(
          Spec("plates/" + std::string(name), "renders/" + stem + "_w/f.####.png", 1000));
      CHECK(chunked.tasks_total() > 3);
      // ffmpeg's own constant-rate output of the input, converted to RGB first (as
      // FrameSource does) and scaled with its bicubic in RGB, as the farm does.
      const fs::path ref = dir.path() / (stem + "_ref.mov");
      Ffmpeg("-i '" + input.string() +
             "' -vf 'scale=flags=bicubic+accurate_rnd+full_chroma_int,format=rgb24,"
             "scale=320:180:flags=bicubic' -c:v png '" +
             ref.string() + "'");
      const auto reference = testing::DecodeRgb(ref, "", nullptr, nullptr);
      const auto c = testing::DecodeRgb(farm.storage() / ("renders/" + stem + "_c/f.%04d.png"), "",
                                        nullptr, nullptr);
      const auto w = testing::DecodeRgb(farm.storage() / ("renders/" + stem + "_w/f.%04d.png"), "",
                                        nullptr, nullptr);
      // 48 frames at 24 fps; held.avi codes every 4th: frame 11 (at 44) is held for the
      // median of the holds before it (3), so its grid ends at 47, as ffmpeg's does.
      CHECK(chunked.input_info().frame_count() == (stem == "held" ? 47 : 48));
      CHECK(static_cast<int64_t>(reference.size()) == chunked.input_info().frame_count());
      REQUIRE(c.size() == static_cast<size_t>(chunked.input_info().frame_count()));
      REQUIRE(w.size() == c.size());
      for (size_t i = 0; i < c.size() && i < reference.size(); ++i) {
        INFO("frame " << i);
        CHECK(c[i] == w[i]);
        const double psnr = testing::Psnr(c[i], reference[i]);
        INFO("psnr " << psnr);
        CHECK(psnr >= 35);
      }
      if (stem == "held") {
        CHECK(chunked.input_info().coded_frames() == 12);
        CHECK(chunked.input_info().held_frames() == 35);
        const std::string shown =
            testing::Capture(farm.Reelctl() + " get " + std::to_string(chunked.id()) + " 2>&1");
        CHECK_THAT(shown, Catch::Contains("12 coded frames") && Catch::Contains("35 held"));
      }
    }
  }
}

TEST_CASE("a phone clip with rotation metadata upscales upright with 2 workers",
          "[integration][footage]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm");
  const fs::path plates = farm.storage() / "plates";
  fs::create_directories(plates);
  const fs::path landscape = dir.path() / "landscape.mp4";
  Ffmpeg("-f lavfi -i testsrc2=s=160x90:r=24:d=1 -c:v libx264 -bf 2 '" + landscape.string() + "'");
  const fs::path phone = plates / "phone.mp4";
  testing::RemuxRotated(landscape, phone, 90);
  farm.StartWorker("w1");
  farm.StartWorker("w2");
  farm.WaitForWorkers(2);
  v1::Job job = farm.RunToSuccess(Spec("plates/phone.mp4", "renders/phone/f.####.png", 5));
  CHECK(job.tasks_total() > 3);
  const int clockwise = testing::ProbedClockwiseRotation(phone);
  CHECK((clockwise == 90 || clockwise == 270));
  CHECK(job.input_info().rotation() == clockwise);
  CHECK(job.input_info().width() == 90);
  CHECK(job.input_info().height() == 160);
  // ffmpeg's own decode applies the display matrix (autorotate); scaled as above.
  const fs::path ref = dir.path() / "phone_ref.mov";
  Ffmpeg("-i '" + phone.string() +
         "' -vf 'scale=flags=bicubic+accurate_rnd+full_chroma_int,format=rgb24,"
         "scale=180:320:flags=bicubic' -c:v png '" +
         ref.string() + "'");
  int ref_w = 0, ref_h = 0, out_w = 0, out_h = 0;
  const auto reference = testing::DecodeRgb(ref, "", &ref_w, &ref_h);
  const auto out =
      testing::DecodeRgb(farm.storage() / "renders/phone/f.%04d.png", "", &out_w, &out_h);
  CHECK(ref_w == 180);
  CHECK(ref_h == 320);
  CHECK(out_w == 180);
  CHECK(out_h == 320);
  REQUIRE(out.size() == 24);
  REQUIRE(reference.size() == out.size());
  for (size_t i = 0; i < out.size(); ++i) {
    INFO("frame " << i);
    const double psnr = testing::Psnr(out[i], reference[i]);
    INFO("psnr " << psnr);
    CHECK(psnr >= 35);
  }
  const std::string shown =
      testing::Capture(farm.Reelctl() + " get " + std::to_string(job.id()) + " 2>&1");
  CHECK_THAT(shown, Catch::Contains("rotation  " + std::to_string(clockwise) +
                                    " degrees clockwise, applied") &&
                        Catch::Contains("output    180x320"));
}

TEST_CASE("audio stays in sync when it starts before or after the video",
          "[integration][footage]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm");
  const fs::path plates = farm.storage() / "plates";
  fs::create_directories(plates);
  const fs::path v = dir.path() / "v.mp4";
  const fs::path a = dir.path() / "a.m4a";
  Ffmpeg("-f lavfi -i testsrc2=s=160x90:r=24:d=3 -c:v libx264 -bf 3 '" + v.string() + "'");
  Ffmpeg("-f lavfi -i sine=f=440:r=48000:d=4 -c:a aac '" + a.string() + "'");
  // Video 0.5 s after the audio (an empty edit), and audio 0.5 s after the video.
  Ffmpeg("-itsoffset 0.5 -i '" + v.string() + "' -i '" + a.string() +
         "' -map 0:v -map 1:a -c copy '" + (plates / "audio_first.mp4").string() + "'");
  Ffmpeg("-i '" + v.string() + "' -itsoffset 0.5 -i '" + a.string() +
         "' -map 0:v -map 1:a -c copy -t 3 '" + (plates / "video_first.mp4").string() + "'");
  farm.StartWorker("w1");
  farm.StartWorker("w2");
  farm.WaitForWorkers(2);
  for (const char* name : {"audio_first", "video_first"}) {
    SECTION(name) {
      const fs::path input = plates / (std::string(name) + ".mp4");
      const std::string out = "renders/" + std::string(name) + ".mp4";
      v1::Job job = farm.RunToSuccess(Spec("plates/" + std::string(name) + ".mp4", out, 10));
      const fs::path output = farm.storage() / out;
      const fs::path ffmpeg_out = dir.path() / (std::string(name) + "_ffmpeg.mp4");
      Ffmpeg("-i '" + input.string() + "' '" + ffmpeg_out.string() + "'");
      const int64_t frames = CountFrames(output);
      INFO("farm frames " << frames << ", ffmpeg frames " << CountFrames(ffmpeg_out));
      CHECK(frames == job.input_info().frame_count());
      CHECK(std::llabs(frames - CountFrames(ffmpeg_out)) <= 1);
      // The input's audio offset from its video's first grid frame is kept to a frame.
      const double in_start = ProbeNumber(input, "-show_entries format=start_time");
      const double in_offset = StartTime(input, "a:0") - in_start;
      const double out_offset = StartTime(output, "a:0") - StartTime(output, "v:0");
      INFO("audio offset in " << in_offset << " out " << out_offset);
      CHECK(std::fabs(out_offset - in_offset) <= 1.0 / 24);
      // Video that starts late is held from the file's start, so it lasts as long.
      if (std::string(name) == "audio_first") {
        CHECK(frames == 84);
        CHECK(job.input_info().held_frames() >= 12);
      }
    }
  }
}

TEST_CASE("the wrong kind of file or model is refused at submit in one sentence",
          "[integration][footage]") {
  testing::TempDir dir;
  testing::WriteFixtureDenoiser(dir.path() / "models", "den");
  const std::string model_path = (dir.path() / "models").string();
  Farm farm(dir.path() / "farm", {"--model-path", model_path});
  const fs::path plates = farm.storage() / "plates";
  fs::create_directories(plates / "seq");
  Ffmpeg("-f lavfi -i testsrc2=s=64x36 -frames:v 1 '" + (plates / "still.png").string() + "'");
  for (const char* n : {"1001", "1002"}) {
    Ffmpeg("-f lavfi -i testsrc2=s=64x36:r=24:d=1 -c:v libx264 '" +
           (plates / "seq" / (std::string("m.") + n + ".mp4")).string() + "'");
  }
  Ffmpeg("-f lavfi -i testsrc2=s=64x36:r=24:d=1 -c:v libx264 '" + (plates / "clip.mp4").string() +
         "'");
  const std::vector<std::pair<v1::JobSpec, std::vector<std::string>>> cases = {
      {Spec("plates/still.png", "renders/a.mp4", 24),
       {"plates/still.png", "single png image, not a movie", "frame pattern"}},
      {Spec("plates/seq/m.####.mp4", "renders/b.####.png", 24),
       {"m.1001.mp4", "is a movie", "without a frame pattern"}},
      {Spec("plates/clip.mp4", "renders/c.mp4", 24, "den"),
       {"upscale.model 'den'", "not an upscaler"}},
  };
  for (const auto& [spec, needles] : cases) {
    v1::SubmitJobResponse resp;
    grpc::Status st = farm.Submit(spec, &resp);
    INFO(st.error_message());
    CHECK_FALSE(st.ok());
    for (const auto& n : needles) CHECK_THAT(st.error_message(), Catch::Contains(n));
    CHECK_THAT(st.error_message(), !Catch::Contains("scale 0"));
  }
}

TEST_CASE("a clip cut short in its last GOP upscales every frame before the cut with 2 workers",
          "[integration][footage]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm");
  const fs::path plates = farm.storage() / "plates";
  fs::create_directories(plates);
  // H.264 with B-frames in MPEG-TS, cut in the middle of a packet of its last GOP.
  const fs::path full = dir.path() / "full.ts";
  Ffmpeg("-f lavfi -i testsrc2=s=320x180:r=24:d=3 -c:v libx264 -g 24 -bf 3 '" + full.string() +
         "'");
  const std::string pos =
      testing::Capture("ffprobe -v error -select_streams v -show_entries packet=pos -of csv=p=0 '" +
                       full.string() + "' | grep -o '[0-9]*' | sed -n '62p;63p'");
  long long pos62 = 0;
  long long pos63 = 0;
  REQUIRE(std::sscanf(pos.c_str(), "%lld %lld", &pos62, &pos63) == 2);
  const fs::path input = plates / "cut.ts";
  REQUIRE(testing::Run("head -c " + std::to_string((pos62 + pos63) / 2) + " '" + full.string() +
                       "' > '" + input.string() + "'") == 0);
  // ffmpeg's bicubic scale of its own decode of the cut file (damaged frames included)
  // and of the whole file: the frames before the cut are the ones that agree. Like the
  // farm, it converts the frames to RGB first (as FrameSource does) and scales in RGB.
  const auto scaled = [&](const fs::path& in) {
    const fs::path ref = dir.path() / (in.stem().string() + "_ref.mov");
    Ffmpeg("-i '" + in.string() +
           "' -vf 'scale=flags=bicubic+accurate_rnd+full_chroma_int,format=rgb24,"
           "scale=640:360:flags=bicubic' -c:v png '" +
           ref.string() + "'");
    return testing::DecodeRgb(ref, "", nullptr, nullptr);
  };
  const auto reference = scaled(input);
  const auto whole_file = scaled(full);
  size_t intact = 0;
  while (intact < reference.size() && reference[intact] == whole_file[intact]) ++intact;
  INFO("ffmpeg delivers " << reference.size() << " frames of the cut file, " << intact
                          << " intact");
  REQUIRE(intact >= 48);
  REQUIRE(intact < reference.size());

  farm.StartWorker("w1");
  farm.StartWorker("w2");
  farm.WaitForWorkers(2);
  v1::Job chunked = farm.RunToSuccess(Spec("plates/cut.ts", "renders/cut_c/f.####.png", 10));
  v1::Job whole = farm.RunToSuccess(Spec("plates/cut.ts", "renders/cut_w/f.####.png", 1000));
  CHECK(chunked.tasks_total() > 3);
  CHECK(chunked.input_info().frame_count() == static_cast<int64_t>(intact));
  CHECK(chunked.input_info().tail_cut_frames() == static_cast<int64_t>(reference.size() - intact));
  const auto c =
      testing::DecodeRgb(farm.storage() / "renders/cut_c/f.%04d.png", "", nullptr, nullptr);
  const auto w =
      testing::DecodeRgb(farm.storage() / "renders/cut_w/f.%04d.png", "", nullptr, nullptr);
  REQUIRE(c.size() == intact);
  REQUIRE(w.size() == intact);
  for (size_t i = 0; i < intact; ++i) {
    INFO("frame " << i);
    CHECK(c[i] == w[i]);
    const double psnr = testing::Psnr(c[i], reference[i]);
    INFO("psnr " << psnr);
    CHECK(psnr >= 35);
  }
  // The job says the tail was cut: reelctl get and the sidecar.
  const std::string shown =
      testing::Capture(farm.Reelctl() + " get " + std::to_string(chunked.id()) + " 2>&1");
  CHECK_THAT(shown, Catch::Contains("the file is truncated; its last " +
                                    std::to_string(reference.size() - intact) + " frames"));
  std::ifstream side(farm.storage() / "renders/cut_c/f.####.png.json");
  REQUIRE(side);
  const nlohmann::json prov = nlohmann::json::parse(side);
  CHECK(prov["input_info"]["tail_cut_frames"] == reference.size() - intact);
  CHECK(prov["input_info"]["frame_count"] == intact);
}
