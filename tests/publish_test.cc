// The worker's assembly: it joins only the segments its chunks reported (their SHA-256),
// publishes the output and its sidecar together, and a retry recognises what an earlier
// attempt published.
#include <catch2/catch.hpp>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <optional>

#include "common/storage.h"
#include "media/media.h"
#include "tests/testing/fixtures.h"
#include "worker/pipeline.h"

namespace fs = std::filesystem;
using namespace reelfarm;

namespace {

// Two 12-frame segments of a 128x72 H.264 clip, as chunks write them, and an assembly
// assignment for them with the digests their results would have reported.
struct AssemblyFixture {
  testing::TempDir dir;
  std::optional<common::Storage> storage;
  v1::Assignment a;
  AssemblyFixture() {
    storage = *common::Storage::Open(dir.path());
    testing::MakeTestClip(dir.path() / "plates/a.mp4", 64, 36, 24);
    a.set_job_id(7);
    a.set_kind(v1::TASK_KIND_ASSEMBLE);
    auto* u = a.mutable_upscale();
    u->set_input("plates/a.mp4");
    u->set_output("renders/a.mp4");
    u->set_model("bicubic");
    u->set_scale(2);
    auto* info = a.mutable_input_info();
    info->set_width(64);
    info->set_height(36);
    info->set_fps_num(24);
    info->set_fps_den(1);
    info->set_frame_count(24);
    const fs::path parts = dir.path() / common::Storage::JobPartsDir(7);
    fs::create_directories(parts);
    for (int i = 0; i < 2; ++i) {
      const std::string name = "chunk_00000" + std::to_string(i) + ".lease_1.mov";
      REQUIRE(testing::Run("ffmpeg -v error -f lavfi -i testsrc2=s=128x72:r=24 -ss " +
                           std::to_string(i * 0.5) +
                           " -frames:v 12 -c:v libx264 -pix_fmt yuv420p -g 12 -y " +
                           (parts / name).string()) == 0);
      a.add_segments(common::Storage::JobPartsDir(7) + "/" + name);
      a.add_segment_digests("sha256:" + *common::Sha256File(parts / name));
      a.add_segment_frames(12);
    }
  }
  worker::TaskReport Run() {
    worker::TaskRunner runner(*storage, worker::PipelineOptions{});
    std::atomic<bool> cancelled{false};
    return runner.Run(
        a, [](int64_t) {}, cancelled);
  }
};

}  // namespace

TEST_CASE("assembly joins only the segments its chunks published", "[integration][worker]") {
  AssemblyFixture f;
  const fs::path out = f.dir.path() / "renders/a.mp4";
  // A segment replaced since its chunk's result was accepted (another job, a person, a
  // zombie): refused for good, naming it; nothing published.
  const fs::path second = f.dir.path() / f.a.segments(1);
  const std::string good = second.string() + ".good";
  fs::copy_file(second, good);
  REQUIRE(testing::Run("ffmpeg -v error -f lavfi -i smptebars=s=128x72:r=24 -frames:v 12 "
                       "-c:v libx264 -pix_fmt yuv420p -y " +
                       second.string()) == 0);
  worker::TaskReport r = f.Run();
  CHECK_FALSE(r.ok);
  CHECK_FALSE(r.retryable);
  CHECK(r.error.find(f.a.segments(1)) != std::string::npos);
  CHECK(r.error.find("SHA-256") != std::string::npos);
  CHECK_FALSE(fs::exists(out));
  CHECK_FALSE(fs::exists(out.string() + ".json"));

  // The segments as published: joined, the movie and its sidecar published together.
  fs::rename(good, second);
  r = f.Run();
  INFO(r.error);
  REQUIRE(r.ok);
  auto info = media::ProbeVideo(out.string());
  REQUIRE(info.ok());
  CHECK(info->frame_count == 24);
  CHECK(info->width == 128);
  CHECK(fs::exists(out.string() + ".json"));
  // A retry (the worker died before its result was accepted) finds its own output and
  // succeeds without touching it; the staged copy is the published file.
  const std::string sha = *common::Sha256File(out);
  r = f.Run();
  INFO(r.error);
  CHECK(r.ok);
  CHECK(*common::Sha256File(out) == sha);
  CHECK(common::Storage::IsPublished(f.dir.path() / common::Storage::JobStagingDir(7) / "a.mp4",
                                     out));
}
