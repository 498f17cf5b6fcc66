// End to end on a real farm: server and worker processes on loopback, a clip made with
// ffmpeg's testsrc2, outputs checked frame by frame against an independent bicubic ×2.
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <thread>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "media/media.h"
#include "tests/testing/checks.h"
#include "tests/testing/farm.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/models.h"

namespace fs = std::filesystem;
using namespace reelfarm;
using testing::CheckUpscaledClip;
using testing::Farm;
using testing::UpscaleSpec;

namespace {

std::set<std::string> ChunkWorkers(const v1::Job& job) {
  std::set<std::string> workers;
  for (const auto& t : job.tasks()) {
    if (t.kind() == v1::TASK_KIND_CHUNK) workers.insert(t.worker());
  }
  return workers;
}

}  // namespace

TEST_CASE("an upscale job runs end to end on two workers", "[integration]") {
  testing::TempDir dir;
  testing::WriteNearestX2Model(dir.path() / "models", "nearest2x");
  const std::string model_path = (dir.path() / "models").string();
  Farm farm(dir.path() / "farm", {"--model-path", model_path});
  testing::MakeTestClip(farm.storage() / "plates/sh010.mp4", 320, 180, 96);
  farm.StartWorker("w1", {"--model-path", model_path});
  farm.StartWorker("w2", {"--model-path", model_path});
  farm.WaitForWorkers(2);

  v1::SubmitJobResponse resp;
  grpc::Status st = farm.Submit(UpscaleSpec("plates/sh010.mp4", "renders/sh010_x2.mp4", 24), &resp);
  REQUIRE(st.ok());
  CHECK(resp.job().tasks_total() == 5);  // 4 chunks + assemble
  CHECK(resp.job().input_info().frame_count() == 96);

  v1::Job job = farm.WaitForJob(resp.job_id());
  REQUIRE(job.state() == v1::JOB_STATE_SUCCEEDED);
  CHECK(job.frames_done() == 96);
  CHECK(job.tasks_done() == 5);
  CHECK(ChunkWorkers(job) == std::set<std::string>{"w1", "w2"});

  CheckUpscaledClip(farm.storage() / "plates/sh010.mp4", farm.storage() / "renders/sh010_x2.mp4",
                    96, "scale=640:360:flags=bicubic", 35.0);

  // Provenance sidecar, and no debris left behind.
  std::ifstream side(farm.storage() / "renders/sh010_x2.mp4.json");
  REQUIRE(side);
  nlohmann::json prov = nlohmann::json::parse(side);
  CHECK(prov["job_id"] == resp.job_id());
  CHECK(prov["model"]["digest"] == "builtin:bicubic");
  CHECK(prov["chunks"].size() == 4);
  CHECK(prov["spec"]["input"] == "plates/sh010.mp4");
  CHECK(prov["software"]["ffmpeg"].get<std::string>().find("lavc") != std::string::npos);
  CHECK_FALSE(fs::exists(farm.storage() / ".reelfarm/jobs" / std::to_string(resp.job_id())));
  for (const auto& e : fs::directory_iterator(farm.storage() / "renders")) {
    CHECK(e.path().filename().string().find(".tmp.") == std::string::npos);
  }

  SECTION("a TorchScript model package runs through the same farm") {
    v1::SubmitJobResponse r2;
    REQUIRE(
        farm.Submit(UpscaleSpec("plates/sh010.mp4", "renders/sh010_nn.mp4", 48, "nearest2x"), &r2)
            .ok());
    v1::Job j2 = farm.WaitForJob(r2.job_id());
    REQUIRE(j2.state() == v1::JOB_STATE_SUCCEEDED);
    CheckUpscaledClip(farm.storage() / "plates/sh010.mp4", farm.storage() / "renders/sh010_nn.mp4",
                      96, "scale=640:360:flags=neighbor", 30.0);
    std::ifstream side2(farm.storage() / "renders/sh010_nn.mp4.json");
    nlohmann::json p2 = nlohmann::json::parse(side2);
    CHECK(p2["model"]["digest"].get<std::string>().rfind("sha256:", 0) == 0);
  }
}

TEST_CASE("a worker killed while it holds a lease costs only its chunk", "[integration]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm");
  testing::MakeTestClip(farm.storage() / "plates/sh020.mp4", 320, 180, 96);
  // A slow model (50 ms a frame) so that the kill lands mid-chunk.
  farm.StartWorker("w1", {"--frame-delay-ms", "50"});
  farm.StartWorker("w2", {"--frame-delay-ms", "50"});
  farm.WaitForWorkers(2);

  v1::SubmitJobResponse resp;
  REQUIRE(farm.Submit(UpscaleSpec("plates/sh020.mp4", "renders/sh020_x2.mp4", 12), &resp).ok());
  // Wait until w1 is part-way through a chunk, then SIGKILL it.
  int victim = -1;
  for (int i = 0; i < 600 && victim < 0; ++i) {
    v1::Job job = farm.Get(resp.job_id());
    for (const auto& t : job.tasks()) {
      if (t.state() == v1::TASK_STATE_LEASED && t.worker() == "w1" && t.frames_done() > 0 &&
          t.frames_done() < t.frame_end() - t.frame_begin()) {
        victim = t.index();
      }
    }
    if (victim < 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  REQUIRE(victim >= 0);
  farm.KillWorker("w1", SIGKILL);

  v1::Job job = farm.WaitForJob(resp.job_id());
  REQUIRE(job.state() == v1::JOB_STATE_SUCCEEDED);
  const v1::Task& t = job.tasks(victim);
  CHECK(t.state() == v1::TASK_STATE_SUCCEEDED);
  CHECK(t.attempts() >= 2);
  REQUIRE(t.workers_size() >= 2);
  CHECK(t.workers(0) == "w1");
  CHECK(t.workers(t.workers_size() - 1) == "w2");
  CheckUpscaledClip(farm.storage() / "plates/sh020.mp4", farm.storage() / "renders/sh020_x2.mp4",
                    96, "scale=640:360:flags=bicubic", 35.0);
}

// Bad input: one farm (no workers needed) answers every class with its code and a
// message naming the field.
namespace {

Farm& ValidationFarm() {
  // Destroyed in reverse order at exit: the farm's processes stop, then the folder goes.
  static testing::TempDir dir;
  static Farm farm(dir.path() / "farm");
  static const bool ready = [] {
    const fs::path plates = farm.storage() / "plates";
    testing::MakeTestClip(plates / "good.mp4", 64, 36, 12);
    std::ofstream(plates / "notes.mp4") << "this is a text file, not a movie\n";
    // A truncated movie: the first 2 KiB of a real one.
    testing::MakeTestClip(plates / "full.mp4", 320, 180, 48);
    std::ifstream in(plates / "full.mp4", std::ios::binary);
    std::string bytes(2048, '\0');
    in.read(bytes.data(), 2048);
    std::ofstream(plates / "truncated.mp4", std::ios::binary) << bytes;
    REQUIRE(testing::Run("ffmpeg -nostdin -v error -y -f lavfi -i sine=d=1 '" +
                         (plates / "audio.m4a").string() + "'") == 0);
    return true;
  }();
  (void)ready;
  return farm;
}

void ExpectRefused(const v1::JobSpec& spec, grpc::StatusCode code, const std::string& needle) {
  v1::SubmitJobResponse resp;
  grpc::Status st = ValidationFarm().Submit(spec, &resp);
  INFO("message: " << st.error_message());
  CHECK(st.error_code() == code);
  CHECK(st.error_message().find(needle) != std::string::npos);
}

}  // namespace

TEST_CASE("bad specs are INVALID_ARGUMENT naming the field", "[integration][validation]") {
  ExpectRefused(UpscaleSpec("plates/good.mp4", "out/a.mp4", 24, "bicubic", 5),
                grpc::StatusCode::INVALID_ARGUMENT, "upscale.scale is 5");
  ExpectRefused(UpscaleSpec("plates/good.mp4", "out/a.mp4", 0), grpc::StatusCode::INVALID_ARGUMENT,
                "upscale.chunk_frames is 0");
  ExpectRefused(UpscaleSpec("plates/good.mp4", "out/a.mp4", -3), grpc::StatusCode::INVALID_ARGUMENT,
                "upscale.chunk_frames is -3");
  ExpectRefused(v1::JobSpec(), grpc::StatusCode::INVALID_ARGUMENT, "spec is empty");
  ExpectRefused(UpscaleSpec("plates/good.mp4", "out/a.mkv", 24), grpc::StatusCode::INVALID_ARGUMENT,
                "upscale.output");
  v1::JobSpec prores_in_mp4 = UpscaleSpec("plates/good.mp4", "out/a.mp4", 24);
  prores_in_mp4.mutable_upscale()->mutable_format()->set_codec("prores_4444");
  ExpectRefused(prores_in_mp4, grpc::StatusCode::INVALID_ARGUMENT,
                "upscale.format.codec is 'prores_4444' but upscale.output 'out/a.mp4' is .mp4, "
                "which takes: h264, h265");
  v1::JobSpec bad_pix_fmt = UpscaleSpec("plates/good.mp4", "out/a.mov", 24);
  bad_pix_fmt.mutable_upscale()->mutable_format()->set_pix_fmt("yuv420p");
  ExpectRefused(bad_pix_fmt, grpc::StatusCode::INVALID_ARGUMENT,
                "upscale.format.pix_fmt is 'yuv420p'");
  ExpectRefused(UpscaleSpec("plates/good.mp4", "out/a.exr", 24), grpc::StatusCode::INVALID_ARGUMENT,
                "####");
  v1::JobSpec past_end = UpscaleSpec("plates/good.mp4", "out/a.mp4", 24);
  past_end.mutable_upscale()->set_first_frame(10);
  past_end.mutable_upscale()->set_last_frame(100000);
  ExpectRefused(past_end, grpc::StatusCode::INVALID_ARGUMENT,
                "upscale.first_frame/last_frame 10-100000 is outside upscale.input");
}

TEST_CASE("a missing input or model is NOT_FOUND naming it", "[integration][validation]") {
  ExpectRefused(UpscaleSpec("plates/missing.mp4", "out/a.mp4", 24), grpc::StatusCode::NOT_FOUND,
                "upscale.input 'plates/missing.mp4'");
  ExpectRefused(UpscaleSpec("plates/good.mp4", "out/a.mp4", 24, "esrgan-nope"),
                grpc::StatusCode::NOT_FOUND, "upscale.model 'esrgan-nope'");
}

TEST_CASE("an input that is not a readable video is FAILED_PRECONDITION",
          "[integration][validation]") {
  ExpectRefused(UpscaleSpec("plates/notes.mp4", "out/a.mp4", 24),
                grpc::StatusCode::FAILED_PRECONDITION, "upscale.input 'plates/notes.mp4'");
  ExpectRefused(UpscaleSpec("plates/truncated.mp4", "out/a.mp4", 24),
                grpc::StatusCode::FAILED_PRECONDITION, "upscale.input 'plates/truncated.mp4'");
  ExpectRefused(UpscaleSpec("plates/audio.m4a", "out/a.mp4", 24),
                grpc::StatusCode::FAILED_PRECONDITION, "no video stream");
}

TEST_CASE("paths outside the storage root are PERMISSION_DENIED", "[integration][validation]") {
  ExpectRefused(UpscaleSpec("/etc/passwd", "out/a.mp4", 24), grpc::StatusCode::PERMISSION_DENIED,
                "upscale.input '/etc/passwd'");
  ExpectRefused(UpscaleSpec("plates/../../secret.mp4", "out/a.mp4", 24),
                grpc::StatusCode::PERMISSION_DENIED, "upscale.input");
  ExpectRefused(UpscaleSpec("plates/good.mp4", "../escape.mp4", 24),
                grpc::StatusCode::PERMISSION_DENIED, "upscale.output '../escape.mp4'");
}

TEST_CASE("reelctl reports a refused submit with its code and exit status 4",
          "[integration][validation]") {
  Farm& farm = ValidationFarm();
  int status = 0;
  std::string out = testing::Capture(farm.Reelctl() +
                                         " submit upscale --input /etc/passwd --output "
                                         "out/a.mp4 --scale 2 2>&1",
                                     &status);
  CHECK(status == 4);
  CHECK(out.find("PERMISSION_DENIED") != std::string::npos);
  CHECK(out.find("upscale.input") != std::string::npos);
  // A usage error is exit status 2.
  testing::Capture(std::string(REELFARM_REELCTL_BIN) + " submit upscale --scale 2 2>&1", &status);
  CHECK(status == 2);
  // An unreachable server is exit status 3.
  testing::Capture(std::string(REELFARM_REELCTL_BIN) + " --server 127.0.0.1:1 list 2>&1", &status);
  CHECK(status == 3);
}

TEST_CASE("reelctl chains a job onto another job's output with --depends-on", "[integration]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm");
  testing::MakeTestClip(farm.storage() / "plates/small.mp4", 160, 90, 24);
  const std::string ctl = farm.Reelctl();
  int status = 0;
  // The first job: 160x90 -> 320x180, paused (before any worker is there to finish it)
  // so that the second is submitted while the first's output does not exist yet.
  std::string out =
      testing::Capture(ctl +
                           " --json submit upscale --input plates/small.mp4 --output stage1/x2.mp4 "
                           "--scale 2 --chunk 12",
                       &status);
  REQUIRE(status == 0);
  const int64_t first = std::stoll(nlohmann::json::parse(out)["jobId"].get<std::string>());
  testing::Capture(ctl + " pause " + std::to_string(first), &status);
  REQUIRE(status == 0);
  out = testing::Capture(ctl +
                             " --json submit upscale --input stage1/x2.mp4 --output "
                             "stage2/x4.mp4 --scale 2 --chunk 12 --depends-on " +
                             std::to_string(first),
                         &status);
  REQUIRE(status == 0);
  auto second_json = nlohmann::json::parse(out);
  const int64_t second = std::stoll(second_json["jobId"].get<std::string>());
  CHECK(second_json["job"]["state"] == "JOB_STATE_WAITING");
  farm.StartWorker("w1");
  farm.WaitForWorkers(1);
  testing::Capture(ctl + " resume " + std::to_string(first), &status);
  REQUIRE(status == 0);
  // `watch` exits 0 once the second job succeeds.
  out = testing::Capture(ctl + " watch " + std::to_string(second), &status);
  INFO(out);
  CHECK(status == 0);
  CHECK(farm.WaitForJob(first).state() == v1::JOB_STATE_SUCCEEDED);
  v1::Job job = farm.WaitForJob(second);
  REQUIRE(job.state() == v1::JOB_STATE_SUCCEEDED);
  CHECK(job.input_info().width() == 320);
  CHECK(job.input_info().frame_count() == 24);
  // Two bicubic x2 steps against one x4 of the source.
  CheckUpscaledClip(farm.storage() / "plates/small.mp4", farm.storage() / "stage2/x4.mp4", 24,
                    "scale=640:360:flags=bicubic", 30.0);
}

TEST_CASE("a worker with --prefetch 3 gets its leases in one message and runs them in order",
          "[integration]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm");
  testing::MakeTestClip(farm.storage() / "plates/pb.mp4", 320, 180, 48);
  farm.StartWorker("w1", {"--prefetch", "3"});
  farm.WaitForWorkers(1);
  v1::Job job = farm.RunToSuccess(UpscaleSpec("plates/pb.mp4", "renders/pb.mp4", 6));
  CHECK(job.tasks_done() == 9);  // 8 chunks + assemble
  CheckUpscaledClip(farm.storage() / "plates/pb.mp4", farm.storage() / "renders/pb.mp4", 48,
                    "scale=640:360:flags=bicubic", 35.0);
  // The worker said it reads batches; its first four leases came in one message, and
  // its one slot started the tasks in the order they were leased.
  const std::string log = farm.WorkerLog("w1");
  CHECK_THAT(farm.ServerLog(), Catch::Contains("batches=true"));
  CHECK(std::regex_search(log, std::regex("server batch messages=4")));
  std::vector<int> started;
  const std::regex re("task started job=\\d+ task=(\\d+) ");
  for (auto it = std::sregex_iterator(log.begin(), log.end(), re); it != std::sregex_iterator();
       ++it) {
    started.push_back(std::stoi((*it)[1]));
  }
  CHECK(started == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8});
}

TEST_CASE("a worker with --prefetch 1 runs a job end to end, holding its next task",
          "[integration]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm");
  testing::MakeTestClip(farm.storage() / "plates/pf.mp4", 320, 180, 96);
  farm.StartWorker("w1", {"--prefetch", "1"});
  farm.WaitForWorkers(1);
  v1::Job job = farm.RunToSuccess(UpscaleSpec("plates/pf.mp4", "renders/pf.mp4", 12));
  CHECK(job.tasks_done() == 9);  // 8 chunks + assemble
  for (const auto& t : job.tasks()) {
    CHECK(t.attempts() == 1);
    CHECK(t.worker() == "w1");
    CHECK_FALSE(t.held());
  }
  CheckUpscaledClip(farm.storage() / "plates/pf.mp4", farm.storage() / "renders/pf.mp4", 96,
                    "scale=640:360:flags=bicubic", 35.0);
  // The worker asked for it, and the server held assignments for it.
  CHECK_THAT(farm.WorkerLog("w1"), Catch::Contains("prefetch=1"));
  CHECK_THAT(farm.ServerLog(), Catch::Contains("prefetch=1"));
  CHECK(farm.ServerLog().find(" worker=w1 lease=") != std::string::npos);
  CHECK(std::regex_search(farm.ServerLog(), std::regex("leased job=\\d+ task=\\d+ worker=w1 "
                                                       "lease=\\d+ attempt=1 held")));
}

namespace {

// The names of the threads of process `pid`, with how many carry each.
std::map<std::string, int> ThreadNames(pid_t pid) {
  std::map<std::string, int> names;
  for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    if (std::getline(comm, name)) ++names[name];
  }
  return names;
}

// Processes that keep a core busy each, from construction until destruction (even when
// a REQUIRE throws in between).
class BusyProcesses {
 public:
  explicit BusyProcesses(unsigned n) {
    for (unsigned i = 0; i < n; ++i) {
      const pid_t pid = fork();
      if (pid == 0) {
        volatile unsigned long spins = 0;
        for (;;) spins = spins + 1;
      }
      if (pid > 0) pids_.push_back(pid);
    }
  }
  ~BusyProcesses() {
    for (const pid_t pid : pids_) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
  BusyProcesses(const BusyProcesses&) = delete;
  BusyProcesses& operator=(const BusyProcesses&) = delete;

 private:
  std::vector<pid_t> pids_;
};

// gRPC's callback threads ("nexting_thread") in process `pid`.
int CallbackThreads(pid_t pid) { return ThreadNames(pid)["nexting_thread"]; }

}  // namespace

TEST_CASE("one gRPC callback thread serves every call and the rest are held until shutdown",
          "[integration]") {
  testing::TempDir dir;
  std::optional<Farm> started;
  {
    // The server starts on a busy machine, as on a farm node or a CI runner: gRPC's
    // threads then name themselves late, and the server must still find them all.
    const BusyProcesses load(2 * std::max(1u, std::thread::hardware_concurrency()));
    started.emplace(dir.path() / "farm", std::vector<std::string>{"--metrics"});
  }
  Farm& farm = *started;
  testing::MakeTestClip(farm.storage() / "plates/one.mp4", 64, 36, 4);
  const int threads = CallbackThreads(farm.server_pid());
  REQUIRE(threads >= 2);  // gRPC runs at least two
  const std::string held =
      "reelfarm_grpc_callback_threads{state=\"held\"} " + std::to_string(threads - 1);
  const std::string serving = "reelfarm_grpc_callback_threads{state=\"serving\"} 1";
  std::string metrics = Farm::Scrape(farm.server_metrics_port());
  CHECK_THAT(metrics, Catch::Contains(held));
  CHECK_THAT(metrics, Catch::Contains(serving));
  CHECK_THAT(farm.ServerLog(),
             Catch::Contains("gRPC: 1 of " + std::to_string(threads) + " callback threads serve"));

  // Callers at once, each on a connection of its own: the one thread serves them all.
  constexpr int kCallers = 8, kSubmits = 5;
  std::vector<std::vector<int64_t>> ids(kCallers);
  std::vector<std::string> errors(kCallers);
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&, c] {
      grpc::ChannelArguments args;
      args.SetInt("reelfarm.caller", c);  // not shared with the other callers' channels
      auto stub = v1::JobService::NewStub(
          grpc::CreateCustomChannel(farm.address(), grpc::InsecureChannelCredentials(), args));
      for (int i = 0; i < kSubmits; ++i) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
        // gRPC 1.51's client can fail a connect that is only in progress (it reads errno
        // after calls that may change it: grpc/grpc#35064), about once in a hundred runs
        // of 8 channels connecting at once ("failed to connect to all addresses ... No
        // such file or directory"); waiting for the channel retries that connect.
        ctx.set_wait_for_ready(true);
        v1::SubmitJobRequest req;
        *req.mutable_spec() =
            UpscaleSpec("plates/one.mp4",
                        "renders/c" + std::to_string(c) + "_" + std::to_string(i) + ".mp4", 4);
        v1::SubmitJobResponse resp;
        const grpc::Status st = stub->SubmitJob(&ctx, req, &resp);
        if (!st.ok()) {
          errors[c] = st.error_message();
          return;
        }
        grpc::ClientContext get_ctx;
        v1::GetJobRequest get;
        get.set_job_id(resp.job_id());
        v1::Job job;
        if (const grpc::Status g = stub->GetJob(&get_ctx, get, &job); !g.ok()) {
          errors[c] = g.error_message();
          return;
        }
        ids[c].push_back(job.id());
      }
    });
  }
  for (auto& t : callers) t.join();
  std::set<int64_t> distinct;
  for (int c = 0; c < kCallers; ++c) {
    CHECK(errors[c] == "");
    distinct.insert(ids[c].begin(), ids[c].end());
  }
  CHECK(distinct.size() == kCallers * kSubmits);

  // The method of the holds is no method to anyone else: no token, or a wrong one.
  grpc::GenericStub generic(
      grpc::CreateChannel(farm.address(), grpc::InsecureChannelCredentials()));
  for (const std::string token : {"", "0123456789abcdef0123456789abcdef"}) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!token.empty()) ctx.AddMetadata("x-reelfarm-hold-token", token);
    grpc::Slice empty("");
    const grpc::ByteBuffer request(&empty, 1);
    grpc::ByteBuffer response;
    grpc::Status status;
    grpc::CompletionQueue cq;
    auto call = generic.PrepareUnaryCall(&ctx, "/reelfarm.internal.v1.Serving/HoldCallbackThread",
                                         request, &cq);
    call->StartCall();
    call->Finish(&response, &status, &ctx);
    void* tag = nullptr;
    bool ok = false;
    REQUIRE(cq.Next(&tag, &ok));
    CHECK(status.error_code() == grpc::StatusCode::UNIMPLEMENTED);
    CHECK_THAT(status.error_message(), Catch::Contains("is not served here"));
  }
  metrics = Farm::Scrape(farm.server_metrics_port());
  CHECK_THAT(metrics, Catch::Contains(held));

  // At shutdown the held threads are let go: the server ends on SIGTERM, with status 0.
  const int status = farm.StopServer(std::chrono::seconds(20));
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("the farm's own threads carry names that top -H and ps -T show", "[integration]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm", {"--web-listen", "127.0.0.1:0", "--web-threads", "20"});
  farm.StartWorker("w1", {"--slots", "2"});
  // Each thread names itself once it runs, which can be a moment after its process
  // answers: wait until every name is there (or 30 s), then check each once.
  const auto names_within = [](pid_t pid, const std::vector<std::string>& wanted) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    std::map<std::string, int> names = ThreadNames(pid);
    const auto all_there = [&] {
      return std::all_of(wanted.begin(), wanted.end(),
                         [&](const std::string& n) { return names[n] > 0; });
    };
    while (!all_there() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      names = ThreadNames(pid);
    }
    return names;
  };
  const std::vector<std::string> worker_names = {"rf-heartbeat", "rf-slot-0", "rf-slot-1",
                                                 "rf-signals"};
  std::map<std::string, int> worker = names_within(farm.WorkerPid("w1"), worker_names);
  for (const std::string& name : worker_names) {
    INFO(name);
    CHECK(worker[name] == 1);
  }
  const std::vector<std::string> server_names = {"rf-dispatch",   "rf-sweep",  "rf-commit",
                                                 "rf-checkpoint", "rf-notify", "rf-web-accept",
                                                 "rf-web-poll",   "rf-web"};
  std::map<std::string, int> server = names_within(farm.server_pid(), server_names);
  for (const std::string& name : server_names) {
    INFO(name);
    // The monitor's pool (--web-threads) is rf-web, one thread each.
    CHECK(server[name] == (name == "rf-web" ? 20 : 1));
  }
}
