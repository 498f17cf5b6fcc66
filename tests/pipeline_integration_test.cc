// The worker's model pipeline end to end: a temporal model chunked equals unchunked at
// every seam (context frames decoded beyond each chunk), and bad input met by a worker
// fails the job at once (non-retryable) with the file, frame and cause, while the
// worker keeps serving.
#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>

#include "tests/testing/checks.h"
#include "tests/testing/farm.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/models.h"

namespace fs = std::filesystem;
using namespace reelfarm;
using testing::Farm;

namespace {

v1::JobSpec Spec(const std::string& input, const std::string& output, int chunk,
                 const std::string& model = "bicubic") {
  v1::JobSpec spec = testing::UpscaleSpec(input, output, chunk, model);
  spec.mutable_upscale()->set_overwrite(true);
  spec.set_max_attempts(3);
  return spec;
}

v1::Job Run(Farm& farm, const v1::JobSpec& spec) {
  v1::SubmitJobResponse resp;
  grpc::Status st = farm.Submit(spec, &resp);
  INFO(st.error_message());
  REQUIRE(st.ok());
  return farm.WaitForJob(resp.job_id());
}

std::string Raw16(const fs::path& file) {
  return testing::Capture("ffmpeg -nostdin -v error -i '" + file.string() +
                          "' -f rawvideo -pix_fmt rgb48le -");
}

void MakeSequence(const fs::path& folder, int frames) {
  fs::create_directories(folder);
  REQUIRE(testing::Run("ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=s=64x36:r=24 "
                       "-frames:v " +
                       std::to_string(frames) +
                       " -pix_fmt rgb48be "
                       "-start_number 1001 '" +
                       (folder / "p.%04d.png").string() + "'") == 0);
}

}  // namespace

TEST_CASE("a temporal model chunked equals unchunked at every seam", "[integration][models]") {
  testing::TempDir dir;
  testing::WriteTemporalX2Model(dir.path() / "models", "temporal3");
  const std::string model_path = (dir.path() / "models").string();
  Farm farm(dir.path() / "farm", {"--model-path", model_path});
  MakeSequence(farm.storage() / "plates/t", 14);
  farm.StartWorker("w1", {"--model-path", model_path});
  farm.StartWorker("w2", {"--model-path", model_path});
  farm.WaitForWorkers(2);

  v1::Job chunked = Run(farm, Spec("plates/t/p.####.png", "renders/c/c.####.png", 3, "temporal3"));
  REQUIRE(chunked.state() == v1::JOB_STATE_SUCCEEDED);
  v1::Job whole = Run(farm, Spec("plates/t/p.####.png", "renders/w/w.####.png", 100, "temporal3"));
  REQUIRE(whole.state() == v1::JOB_STATE_SUCCEEDED);
  CHECK(chunked.tasks_total() == 6);  // 5 chunks + assemble
  for (int n = 1001; n <= 1014; ++n) {
    const std::string a = Raw16(farm.storage() / ("renders/c/c." + std::to_string(n) + ".png"));
    const std::string b = Raw16(farm.storage() / ("renders/w/w." + std::to_string(n) + ".png"));
    INFO("frame " << n);
    REQUIRE(a.size() == 3u * 128 * 72 * 2);
    CHECK(a == b);
  }
  // The model did mix neighbours: frame 1005 is not the nearest x2 of plate frame 1005.
  const std::string own = testing::Capture(
      "ffmpeg -nostdin -v error -i '" + (farm.storage() / "plates/t/p.1005.png").string() +
      "' -vf scale=128:72:flags=neighbor -f rawvideo -pix_fmt rgb48le -");
  CHECK(own != Raw16(farm.storage() / "renders/c/c.1005.png"));
}

TEST_CASE("bad input met by a worker fails at once, naming file, frame and cause",
          "[integration][bad-input]") {
  testing::TempDir dir;
  testing::WriteIdentityModel(dir.path() / "models", "broken");
  const std::string model_path = (dir.path() / "models").string();
  Farm farm(dir.path() / "farm", {"--model-path", model_path});
  for (const char* name : {"gap", "corrupt", "huge", "good"}) {
    MakeSequence(farm.storage() / "plates" / name, 6);
  }
  // Each input is broken after it was accepted and before a worker connects, so the
  // worker is the one to find out.
  auto submit = [&](const v1::JobSpec& spec) {
    v1::SubmitJobResponse resp;
    grpc::Status st = farm.Submit(spec, &resp);
    INFO(st.error_message());
    REQUIRE(st.ok());
    return resp.job_id();
  };
  const int64_t shape = submit(Spec("plates/good/p.####.png", "renders/s/s.####.png", 6, "broken"));
  const int64_t gap = submit(Spec("plates/gap/p.####.png", "renders/g/g.####.png", 6));
  const int64_t corrupt = submit(Spec("plates/corrupt/p.####.png", "renders/k/k.####.png", 6));
  const int64_t huge = submit(Spec("plates/huge/p.####.png", "renders/h/h.####.png", 6));
  fs::remove(farm.storage() / "plates/gap/p.1004.png");
  std::ofstream(farm.storage() / "plates/corrupt/p.1003.png", std::ios::trunc)
      << "\x89PNG\r\n\x1a\n this is not the rest of a PNG";
  REQUIRE(testing::Run("ffmpeg -nostdin -v error -y -f lavfi -i color=s=8200x8 -frames:v 1 "
                       "-pix_fmt rgb48be '" +
                       (farm.storage() / "plates/huge/p.1002.png").string() + "'") == 0);
  farm.StartWorker("w1", {"--model-path", model_path});
  farm.WaitForWorkers(1);

  const std::vector<std::pair<int64_t, std::vector<std::string>>> expect = {
      {shape,
       {"frame 1001", "model 'broken' returned shape [1, 3, 36, 64]", "expected [1, 3, 72, 128]"}},
      {gap, {"plates/gap/p.1004.png", "frame 1004", "missing"}},
      {corrupt, {"plates/corrupt/p.1003.png", "frame 1003", "does not decode"}},
      {huge, {"plates/huge/p.1002.png", "8200x8", "limit of 8192x8192"}},
  };
  for (const auto& [id, needles] : expect) {
    v1::Job job = farm.WaitForJob(id);
    INFO("job " << id << ": " << job.error());
    CHECK(job.state() == v1::JOB_STATE_FAILED);
    for (const auto& n : needles) CHECK_THAT(job.error(), Catch::Contains(n));
    for (const auto& t : job.tasks()) {
      if (t.kind() == v1::TASK_KIND_CHUNK && t.state() == v1::TASK_STATE_FAILED) {
        CHECK(t.attempts() == 1);  // not retried: the input is bad on every worker
      }
    }
  }
  // The same worker process is still serving.
  v1::Job good = Run(farm, Spec("plates/good/p.####.png", "renders/ok/ok.####.png", 3));
  CHECK(good.state() == v1::JOB_STATE_SUCCEEDED);
  CHECK(fs::exists(farm.storage() / "renders/ok/ok.1006.png"));
}
