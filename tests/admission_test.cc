// Admission runs one way (issue 19): a bad spec gets the same status and message whether
// it comes as a SubmitJob, as its dry run (validate_only, reelctl --dry-run), or as a
// job that waited for its dependency to make its input and is admitted when that
// dependency succeeds. A real server and worker on loopback.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "tests/testing/farm.h"
#include "tests/testing/fixtures.h"

namespace fs = std::filesystem;
using namespace reelfarm;
using testing::Farm;

namespace {

v1::JobSpec Upscale(const std::string& in, const std::string& out, int chunk) {
  v1::JobSpec spec;
  auto* u = spec.mutable_upscale();
  u->set_input(in);
  u->set_output(out);
  u->set_model("bicubic");
  u->set_scale(2);
  u->set_chunk_frames(chunk);
  return spec;
}

grpc::Status Submit(Farm& farm, const v1::JobSpec& spec, bool dry_run,
                    v1::SubmitJobResponse* resp) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::SubmitJobRequest req;
  *req.mutable_spec() = spec;
  req.set_validate_only(dry_run);
  return farm.jobs().SubmitJob(&ctx, req, resp);
}

struct BadSpec {
  std::string what;
  v1::JobSpec spec;
  grpc::StatusCode code;
  std::string message;  // the message every path must give
};

}  // namespace

TEST_CASE("a bad spec gets the same status and message by submit, dry run and activation",
          "[integration][admission]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm", {"--max-tasks-per-job", "5"});
  // The dependency's output, the dependents' input: 12 frames at 128x72.
  testing::MakeTestClip(farm.storage() / "plates/a.mp4", 64, 36, 12);
  const std::string mid = "mid/a_x2.mp4";

  std::vector<BadSpec> bad;
  bad.push_back({"past the tasks-per-job limit", Upscale(mid, "renders/chunks.mp4", 1),
                 grpc::StatusCode::INVALID_ARGUMENT,
                 "upscale.chunk_frames 1 makes 13 tasks of 12 frames, over the limit of 5 tasks "
                 "per job; give a larger chunk_frames"});
  {
    v1::JobSpec s = Upscale(mid, "renders/range.mp4", 12);
    s.mutable_upscale()->set_first_frame(4);
    s.mutable_upscale()->set_last_frame(20);
    bad.push_back({"a frame range outside the input", s, grpc::StatusCode::INVALID_ARGUMENT,
                   "upscale.first_frame/last_frame 4-20 is outside upscale.input '" + mid +
                       "', which has frames 0-11; give a range inside it"});
  }
  // A sequence's frames are known only once the input is: frame 3 is there already.
  const std::string seq = "renders/seq.####.png";
  fs::create_directories(farm.storage() / "renders");
  std::ofstream(farm.storage() / "renders/seq.0003.png") << "not ours";
  bad.push_back({"an output frame that exists", Upscale(mid, seq, 12),
                 grpc::StatusCode::ALREADY_EXISTS,
                 "upscale.output 'renders/seq.0003.png' exists; set overwrite to replace it"});

  // The dependency, and each bad spec waiting on it: taken, since their input is not
  // there yet. No worker yet, so the dependency cannot finish first.
  v1::SubmitJobResponse resp;
  REQUIRE(Submit(farm, Upscale("plates/a.mp4", mid, 12), false, &resp).ok());
  const int64_t dep = resp.job_id();
  std::vector<int64_t> waiting;
  for (const BadSpec& b : bad) {
    INFO(b.what);
    v1::JobSpec s = b.spec;
    s.add_depends_on(dep);
    const grpc::Status st = Submit(farm, s, false, &resp);
    INFO(st.error_message());
    REQUIRE(st.ok());
    CHECK(resp.job().state() == v1::JOB_STATE_WAITING);
    waiting.push_back(resp.job_id());
  }
  // A value refused on its own is refused at submit whichever way it comes, even while
  // its input waits for the dependency.
  {
    v1::JobSpec s = Upscale(mid, "renders/scale.mp4", 12);
    s.mutable_upscale()->set_scale(5);
    const std::string message =
        "upscale.scale is 5 but model 'bicubic' is made for scale 2, 3, 4; give one of those or "
        "another model";
    for (bool dry_run : {false, true}) {
      const grpc::Status st = Submit(farm, s, dry_run, &resp);
      CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
      CHECK(st.error_message() == message);
    }
    s.add_depends_on(dep);
    const grpc::Status st = Submit(farm, s, false, &resp);
    CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(st.error_message() == message);
  }

  farm.StartWorker("w1");
  REQUIRE(farm.WaitForJob(dep).state() == v1::JOB_STATE_SUCCEEDED);
  for (size_t i = 0; i < bad.size(); ++i) {
    INFO(bad[i].what);
    // Activation: the job fails with the message.
    const v1::Job job = farm.WaitForJob(waiting[i], std::chrono::seconds(60));
    CHECK(job.state() == v1::JOB_STATE_FAILED);
    CHECK(job.error() == bad[i].message);
    CHECK(job.tasks_size() == 0);
    // SubmitJob and its dry run, now that the input is there: the same status and
    // message, with or without the dependency (which has succeeded).
    for (bool with_dep : {false, true}) {
      v1::JobSpec s = bad[i].spec;
      if (with_dep) s.add_depends_on(dep);
      for (bool dry_run : {false, true}) {
        INFO("dry run " << dry_run << ", depends_on " << with_dep);
        const grpc::Status st = Submit(farm, s, dry_run, &resp);
        CHECK(st.error_code() == bad[i].code);
        CHECK(st.error_message() == bad[i].message);
      }
    }
  }
  // The same specs made good are taken by every path: the check is the spec's, not the
  // path's.
  v1::JobSpec good = bad[0].spec;
  good.mutable_upscale()->set_chunk_frames(3);  // 4 chunks and the assembly: 5 tasks
  REQUIRE(Submit(farm, good, true, &resp).ok());
  CHECK(resp.job().tasks_size() == 5);
  REQUIRE(Submit(farm, good, false, &resp).ok());
  CHECK(farm.WaitForJob(resp.job_id()).state() == v1::JOB_STATE_SUCCEEDED);
}

TEST_CASE("a submit whose probe blocks holds up no other call", "[integration][admission]") {
  // Each input is a FIFO: probing it blocks in open() until a writer comes. SubmitJob's
  // admission runs off gRPC's callback threads, so while more submits than the server
  // has cores wait on their probes, other calls are answered.
  testing::TempDir dir;
  Farm farm(dir.path() / "farm");
  testing::MakeTestClip(farm.storage() / "plates/a.mp4", 64, 36, 12);
  v1::SubmitJobResponse first;
  REQUIRE(Submit(farm, Upscale("plates/a.mp4", "renders/a.mp4", 6), false, &first).ok());
  constexpr int kBlocked = 8;
  std::vector<std::string> fifos;
  for (int i = 0; i < kBlocked; ++i) {
    fifos.push_back((farm.storage() / ("plates/fifo" + std::to_string(i) + ".mp4")).string());
    REQUIRE(::mkfifo(fifos.back().c_str(), 0600) == 0);
  }
  std::vector<grpc::Status> results(kBlocked);
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kBlocked; ++i) {
    threads.emplace_back([&, i] {
      v1::SubmitJobResponse resp;
      results[i] = Submit(farm,
                          Upscale("plates/fifo" + std::to_string(i) + ".mp4",
                                  "renders/f" + std::to_string(i) + ".mp4", 6),
                          i % 2 == 1, &resp);
      ++done;
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(2));  // the submits are in their probes
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::GetJobRequest req;
    req.set_job_id(first.job_id());
    v1::Job job;
    const grpc::Status st = farm.jobs().GetJob(&ctx, req, &job);
    INFO(st.error_message());
    CHECK(st.ok());
    CHECK(job.id() == first.job_id());
  }
  // A writer that writes nothing, each time a probe opens its FIFO (the executor runs
  // a few at a time): each probe reads an empty file and is refused.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (done.load() < kBlocked && std::chrono::steady_clock::now() < deadline) {
    for (const std::string& f : fifos) {
      const int fd = ::open(f.c_str(), O_WRONLY | O_NONBLOCK);  // ENXIO: no reader now
      if (fd >= 0) ::close(fd);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  REQUIRE(done.load() == kBlocked);
  for (auto& t : threads) t.join();
  for (int i = 0; i < kBlocked; ++i) {
    INFO(i << ": " << results[i].error_message());
    CHECK(results[i].error_code() == grpc::StatusCode::FAILED_PRECONDITION);
    CHECK_THAT(results[i].error_message(), Catch::StartsWith("upscale.input 'plates/fifo"));
  }
}
