// The worker's assembly: it joins only the segments its chunks reported (their SHA-256),
// publishes the output and its sidecar together, and a retry recognises what an earlier
// attempt published. A full disk or a failed step of publishing (the Storage fake)
// leaves nothing under the output's names; frames come from the sources the pipeline
// options give.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/storage.h"
#include "media/media.h"
#include "tests/testing/faulty_storage.h"
#include "tests/testing/fixtures.h"
#include "worker/pipeline.h"

namespace fs = std::filesystem;
using namespace reelfarm;

namespace {

// Two 12-frame segments of a 128x72 H.264 clip, as chunks write them, and an assembly
// assignment for them with the digests their results would have reported.
struct AssemblyFixture {
  testing::TempDir dir;
  std::unique_ptr<testing::FaultyStorage> storage;
  v1::Assignment a;
  AssemblyFixture() {
    storage = *testing::FaultyStorage::Open(dir.path());
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

namespace {

using Step = testing::FaultyStorage::Step;

// The names under `dir` (recursively, relative to it), sorted; none when it is missing.
std::vector<std::string> Entries(const fs::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    names.push_back(fs::relative(it->path(), dir).string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// The published movie and sidecar are whole: 24 frames, and JSON naming the output.
void CheckPublished(const fs::path& dir) {
  CHECK(Entries(dir / "renders") == std::vector<std::string>{"a.mp4", "a.mp4.json"});
  auto info = media::ProbeVideo((dir / "renders/a.mp4").string());
  REQUIRE(info.ok());
  CHECK(info->frame_count == 24);
  std::ifstream in(dir / "renders/a.mp4.json");
  const std::string json((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(json.find("\"output\": \"renders/a.mp4\"") != std::string::npos);
}

}  // namespace

TEST_CASE("a full disk while the assembly writes publishes nothing, says so, and a retry succeeds",
          "[integration][worker][storage]") {
  AssemblyFixture f;
  // The first write through the storage is the sidecar's (the movie is joined by
  // FFmpeg): the disk fills in the middle of it.
  f.storage->FailAt(Step::kWrite, 1, ENOSPC);
  worker::TaskReport r = f.Run();
  INFO(r.error);
  CHECK(f.storage->failures(Step::kWrite) == 1);
  CHECK_FALSE(r.ok);
  CHECK(r.retryable);
  CHECK(r.error.find("'a.mp4.json'") != std::string::npos);
  CHECK(r.error.find("No space left on device (the storage is full") != std::string::npos);
  CHECK(Entries(f.dir.path() / "renders").empty());  // not even a temporary file
  for (const std::string& name : Entries(f.dir.path() / common::Storage::JobStagingDir(7))) {
    CHECK(name.find(".tmp.") == std::string::npos);
  }
  // Space again: the retry publishes both.
  f.storage->Heal();
  r = f.Run();
  INFO(r.error);
  REQUIRE(r.ok);
  CheckPublished(f.dir.path());
}

TEST_CASE(
    "a failed step of the assembly's publish leaves nothing published, and a retry publishes all",
    "[integration][worker][storage]") {
  const bool overwrite = GENERATE(false, true);
  AssemblyFixture f;
  f.a.mutable_upscale()->set_overwrite(overwrite);
  // The steps a clean assembly takes.
  std::map<Step, int> steps;
  {
    const worker::TaskReport r = f.Run();
    INFO(r.error);
    REQUIRE(r.ok);
    for (Step s : {Step::kFsync, Step::kLink, Step::kRename}) steps[s] = f.storage->calls(s);
  }
  CHECK(steps[Step::kLink] == 2);   // the movie and the sidecar, linked at their names
  CHECK(steps[Step::kFsync] >= 5);  // staged movie and sidecar, twice each; the folder
  // Each of them fails in turn (the Nth link: a torn publish of two files), each time
  // from the start: no output, nothing staged.
  std::map<Step, int> failed;
  for (const auto& [step, count] : steps) {
    for (int n = 1; n <= count; ++n) {
      fs::remove_all(f.dir.path() / "renders");
      fs::remove_all(f.dir.path() / common::Storage::JobStagingDir(7));
      const int before = f.storage->calls(step);
      f.storage->FailAt(step, n, EIO);
      worker::TaskReport r = f.Run();
      INFO("step " << static_cast<int>(step) << " call " << n << " overwrite " << overwrite << ": "
                   << r.error);
      CHECK(f.storage->failures(step) == ++failed[step]);
      CHECK(f.storage->calls(step) == before + n);  // it stopped at the failed step
      CHECK_FALSE(r.ok);
      CHECK(r.retryable);
      CHECK(r.error.find("Input/output error") != std::string::npos);
      CHECK(Entries(f.dir.path() / "renders").empty());
      f.storage->Heal();
      r = f.Run();
      REQUIRE(r.ok);
      CheckPublished(f.dir.path());
    }
  }
}

namespace {

// A chunk of 6 frames of a 64x36 clip, upscaled x2 (bicubic) into an image sequence.
struct ChunkFixture {
  testing::TempDir dir;
  std::unique_ptr<testing::FaultyStorage> storage;
  v1::Assignment a;
  explicit ChunkFixture(const std::string& output) {
    storage = *testing::FaultyStorage::Open(dir.path());
    a.set_job_id(7);
    a.set_kind(v1::TASK_KIND_CHUNK);
    a.set_frame_begin(0);
    a.set_frame_end(6);
    a.set_segment(common::Storage::JobPartsDir(7) + "/chunk_000000.lease_1.mov");
    auto* u = a.mutable_upscale();
    u->set_input("plates/a.mp4");
    u->set_output(output);
    u->set_model("bicubic");
    u->set_scale(2);
    auto* info = a.mutable_input_info();
    info->set_width(64);
    info->set_height(36);
    info->set_fps_num(24);
    info->set_fps_den(1);
    info->set_frame_count(24);
  }
  worker::TaskReport Run(worker::PipelineOptions options = {}) {
    worker::TaskRunner runner(*storage, std::move(options));
    std::atomic<bool> cancelled{false};
    return runner.Run(
        a, [](int64_t) {}, cancelled);
  }
};

}  // namespace

TEST_CASE(
    "a full disk at a chunk's third frame file leaves only whole frames, and a retry succeeds",
    "[integration][worker][storage]") {
  ChunkFixture f("renders/a.####.png");
  testing::MakeTestClip(f.dir.path() / "plates/a.mp4", 64, 36, 24);
  const fs::path chunk = f.dir.path() / common::Storage::JobPartsDir(7) / "chunk_000000.lease_1";
  f.storage->FailAt(Step::kWrite, 3, ENOSPC);
  worker::TaskReport r = f.Run();
  INFO(r.error);
  CHECK(f.storage->failures(Step::kWrite) == 1);
  CHECK_FALSE(r.ok);
  CHECK(r.retryable);
  // Named as the job's storage names it, not through /proc/self/fd.
  CHECK(r.error.find(common::Storage::JobPartsDir(7) + "/chunk_000000.lease_1/a.0002.png") !=
        std::string::npos);
  CHECK(r.error.find("the storage is full") != std::string::npos);
  // The frames before it, whole; nothing of the third, no temporary file.
  CHECK(Entries(chunk) == std::vector<std::string>{"a.0000.png", "a.0001.png"});
  CHECK_FALSE(fs::exists(f.dir.path() / "renders"));
  f.storage->Heal();
  r = f.Run();
  INFO(r.error);
  REQUIRE(r.ok);
  CHECK(Entries(chunk).size() == 6);
  CHECK(r.output_digest.rfind("sha256:", 0) == 0);
}

namespace {

// Frames of one grey level, any size; records what it was asked for.
class GreySource final : public media::FrameSource {
 public:
  GreySource(int64_t begin, int64_t end) : next_(begin), end_(end) {}
  absl::StatusOr<bool> Next(media::Frame* f) override {
    if (next_ >= end_) return false;
    f->width = 64;
    f->height = 36;
    f->index = next_++;
    f->planes.assign(3 * 64 * 36, 0.25f);
    return true;
  }

 private:
  int64_t next_, end_;
};

// Keeps the frames written; fails the `fail_at`th write (1-based; 0: never). Close()
// writes a file at its path, as a movie sink does.
class KeepingSink final : public media::FrameSink {
 public:
  KeepingSink(std::string path, std::vector<media::Frame>* frames, int fail_at)
      : path_(std::move(path)), frames_(frames), fail_at_(fail_at) {}
  absl::Status Write(const media::Frame& f) override {
    if (static_cast<int>(frames_->size()) + 1 == fail_at_) {
      return absl::DataLossError("the test's sink lost a frame");
    }
    frames_->push_back(f);
    return absl::OkStatus();
  }
  absl::Status Close() override {
    std::ofstream(path_) << frames_->size() << " frames\n";
    return absl::OkStatus();
  }

 private:
  std::string path_;
  std::vector<media::Frame>* frames_;
  int fail_at_;
};

}  // namespace

TEST_CASE("a chunk reads and writes its frames through the sources and sinks its options give",
          "[unit][worker]") {
  ChunkFixture f("renders/a.mp4");
  // Not a movie: only the injected source can read it.
  fs::create_directories(f.dir.path() / "plates");
  std::ofstream(f.dir.path() / "plates/a.mp4") << "not a movie";
  const int fail_at = GENERATE(0, 3);
  std::vector<std::pair<int64_t, int64_t>> asked;
  std::vector<media::Frame> written;
  media::EncodeOptions encode;
  worker::PipelineOptions options;
  options.frames.open_movie = [&](const std::string&, int64_t begin, int64_t end) {
    asked.emplace_back(begin, end);
    return absl::StatusOr<std::unique_ptr<media::FrameSource>>(
        std::make_unique<GreySource>(begin, end));
  };
  options.frames.open_movie_sink = [&](const std::string& path, const media::EncodeOptions& o) {
    encode = o;
    return absl::StatusOr<std::unique_ptr<media::FrameSink>>(
        std::make_unique<KeepingSink>(path, &written, fail_at));
  };
  const worker::TaskReport r = f.Run(options);
  INFO(r.error);
  CHECK(asked == std::vector<std::pair<int64_t, int64_t>>{{0, 6}});
  CHECK(encode.width == 128);
  CHECK(encode.height == 72);
  if (fail_at == 0) {
    REQUIRE(r.ok);
    REQUIRE(written.size() == 6);
    for (size_t i = 0; i < written.size(); ++i) {
      CHECK(written[i].index == static_cast<int64_t>(i));
      CHECK(written[i].width == 128);
      CHECK(written[i].planes[written[i].planes.size() / 2] == Approx(0.25f).margin(1e-3));
    }
    // What the sink closed is the segment, published under its name.
    CHECK(fs::exists(f.dir.path() / f.a.segment()));
  } else {
    CHECK_FALSE(r.ok);
    CHECK(r.error.find("the test's sink lost a frame") != std::string::npos);
    CHECK(r.frames_done == 2);
    CHECK_FALSE(fs::exists(f.dir.path() / f.a.segment()));
  }
}
