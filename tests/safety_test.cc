// Nothing lost, nothing overwritten (issue 16): the failures found by attacking the farm
// as a hostile user and a fault injector would, each against a real server, real
// workers and reelctl.
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <fstream>
#include <iterator>
#include <mutex>
#include <thread>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "common/storage.h"
#include "tests/testing/farm.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/models.h"

namespace fs = std::filesystem;
using namespace reelfarm;
using nlohmann::json;
using testing::Farm;

namespace {

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

std::string Sha(const fs::path& p) {
  auto digest = common::Sha256File(p);
  REQUIRE(digest.ok());
  return *digest;
}

// `reelctl ARGS` against the farm; stdout and stderr together.
std::string Ctl(Farm& farm, const std::string& args, int* status) {
  return testing::Capture(farm.Reelctl() + " " + args + " 2>&1", status);
}

v1::JobSpec Upscale(const std::string& in, const std::string& out, int chunk = 12,
                    bool overwrite = false) {
  v1::JobSpec spec;
  auto* u = spec.mutable_upscale();
  u->set_input(in);
  u->set_output(out);
  u->set_model("bicubic");
  u->set_scale(2);
  u->set_chunk_frames(chunk);
  u->set_overwrite(overwrite);
  return spec;
}

// Polls until `done` or 20 s.
template <typename F>
bool Eventually(F done) {
  for (int i = 0; i < 200; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return done();
}

}  // namespace

TEST_CASE("reelctl submit sends every flag of upscale and generate to the server",
          "[integration][safety]") {
  testing::TempDir dir;
  testing::WriteFixtureDenoiser(dir.path() / "models", "tiny");
  const std::string models = (dir.path() / "models").string();
  // No worker: the jobs stay queued, as submitted.
  Farm farm(dir.path() / "farm", {"--model-path", models});
  testing::MakeTestClip(farm.storage() / "plates/a.mp4", 64, 36, 24);
  int status = -1;
  std::string out = Ctl(farm,
                        "--json submit upscale --input plates/a.mp4 --output renders/a.mp4 "
                        "--codec h265 --pix-fmt yuv420p10le --preset slow "
                        "--first-frame 2 --last-frame 20 --model lanczos --scale 3 --chunk 7 "
                        "--crf 23 --overwrite --priority 90 --max-attempts 1 --name shot-a "
                        "--project sh010 --require gpu=h100 --request-id req-1",
                        &status);
  INFO(out);
  REQUIRE(status == 0);
  const int64_t up_id = std::stoll(json::parse(out)["jobId"].get<std::string>());
  out = Ctl(farm, "--json get " + std::to_string(up_id), &status);
  REQUIRE(status == 0);
  json spec = json::parse(out)["spec"];
  CHECK(spec["priority"] == 90);
  CHECK(spec["maxAttempts"] == 1);
  CHECK(spec["name"] == "shot-a");
  CHECK(spec["project"] == "sh010");
  CHECK(spec["requirements"]["gpu"] == "h100");
  CHECK(spec["requestId"] == "req-1");
  json u = spec["upscale"];
  CHECK(u["input"] == "plates/a.mp4");
  CHECK(u["output"] == "renders/a.mp4");
  CHECK(u["format"]["codec"] == "h265");
  CHECK(u["format"]["pixFmt"] == "yuv420p10le");
  CHECK(u["format"]["preset"] == "slow");
  CHECK(u["firstFrame"] == "2");  // int64 is a string in proto3 JSON
  CHECK(u["lastFrame"] == "20");
  CHECK(u["model"] == "lanczos");
  CHECK(u["scale"] == 3);
  CHECK(u["chunkFrames"] == 7);
  CHECK(u["crf"] == 23);
  CHECK(u["overwrite"] == true);

  out = Ctl(farm,
            "--json submit generate --model tiny --prompt 'red square' --prompt 'blue circle' "
            "--negative-prompt noise --seeds 3-4 --steps 7 --guidance 2.5 --guidance 4 "
            "--sampler ddim --size 32x24 --frames 5 --fps 12 --output gen/g.####.png "
            "--codec png --overwrite --priority 10 --max-attempts 2 --name wedge "
            "--project sh020 --require pool=night --request-id req-2 --depends-on " +
                std::to_string(up_id),
            &status);
  INFO(out);
  REQUIRE(status == 0);
  const int64_t gen_id = std::stoll(json::parse(out)["jobId"].get<std::string>());
  out = Ctl(farm, "--json get " + std::to_string(gen_id), &status);
  REQUIRE(status == 0);
  spec = json::parse(out)["spec"];
  CHECK(spec["priority"] == 10);
  CHECK(spec["maxAttempts"] == 2);
  CHECK(spec["name"] == "wedge");
  CHECK(spec["project"] == "sh020");
  CHECK(spec["requirements"]["pool"] == "night");
  CHECK(spec["requestId"] == "req-2");
  CHECK(spec["dependsOn"][0] == std::to_string(up_id));
  json g = spec["generate"];
  CHECK(g["model"] == "tiny");
  CHECK(g["prompts"] == json::array({"red square", "blue circle"}));
  CHECK(g["negativePrompt"] == "noise");
  CHECK(g["seeds"] == json::array({"3", "4"}));
  CHECK(g["steps"] == 7);
  CHECK(g["guidanceScales"] == json::array({2.5, 4.0}));
  CHECK(g["sampler"] == "ddim");
  CHECK(g["width"] == 32);
  CHECK(g["height"] == 24);
  CHECK(g["frames"] == 5);
  CHECK(g["fps"] == 12);
  CHECK(g["output"] == "gen/g.####.png");
  CHECK(g["format"]["codec"] == "png");
  CHECK(g["overwrite"] == true);

  // Out of range: refused with the range, nothing stored.
  for (const char* bad :
       {"--priority 101", "--priority -1", "--max-attempts 0", "--max-attempts 11"}) {
    out =
        Ctl(farm, std::string("submit upscale --input plates/a.mp4 --output renders/b.mp4 ") + bad,
            &status);
    INFO(bad << ": " << out);
    CHECK(status == 4);
    CHECK(out.find("INVALID_ARGUMENT") != std::string::npos);
    CHECK((out.find("give 0..100") != std::string::npos ||
           out.find("give 1..10") != std::string::npos));
  }
  out = Ctl(farm, "--json list", &status);
  CHECK(json::parse(out)["jobs"].size() == 2);
}

TEST_CASE("dry run in any position of submit validates and submits nothing",
          "[integration][safety]") {
  testing::TempDir dir;
  testing::WriteFixtureDenoiser(dir.path() / "models", "tiny");
  Farm farm(dir.path() / "farm", {"--model-path", (dir.path() / "models").string()});
  testing::MakeTestClip(farm.storage() / "plates/a.mp4", 64, 36, 24);
  int status = -1;
  const std::string up = "upscale --input plates/a.mp4 --output renders/a.mp4 --chunk 12";
  const std::string gen =
      "generate --model tiny --prompt x --size 16x16 --frames 2 "
      "--output gen/g.mov";
  for (const std::string& args :
       {"submit --dry-run " + up, "submit " + up + " --dry-run", "submit --dry-run " + gen,
        "submit " + gen + " --dry-run", "submit --dry-run --watch " + up}) {
    const std::string out = Ctl(farm, args, &status);
    INFO(args << "\n" << out);
    CHECK(status == 0);
    CHECK(out.find("nothing submitted") != std::string::npos);
  }
  // The tasks it would make are listed (2 chunks and the assembly).
  const std::string out = Ctl(farm, "submit " + up + " --dry-run", &status);
  CHECK(out.find("frames 12-23") != std::string::npos);
  CHECK(out.find("assemble  renders/a.mp4") != std::string::npos);
  // A bad spec is still refused.
  Ctl(farm, "submit upscale --input plates/none.mp4 --output r.mp4 --dry-run", &status);
  CHECK(status == 4);
  CHECK(json::parse(Ctl(farm, "--json list", &status))["jobs"].empty());
  CHECK_FALSE(fs::exists(farm.storage() / "renders"));
}

TEST_CASE("no file that exists is replaced without overwrite: sidecars, frames, links",
          "[integration][safety]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm");
  const fs::path root = farm.storage();
  testing::MakeTestClip(root / "plates/a.mp4", 64, 36, 24);
  v1::SubmitJobResponse resp;

  // At submit: a user's file where the sidecar goes, a frame in the middle of the
  // sequence, a symbolic link (even one that leads nowhere), a folder.
  WriteFile(root / "renders/m.mp4.json", "mine");
  grpc::Status st = farm.Submit(Upscale("plates/a.mp4", "renders/m.mp4"), &resp);
  CHECK(st.error_code() == grpc::StatusCode::ALREADY_EXISTS);
  CHECK(st.error_message().find("renders/m.mp4.json") != std::string::npos);
  WriteFile(root / "seq/f.0017.png", "mine");
  st = farm.Submit(Upscale("plates/a.mp4", "seq/f.####.png"), &resp);
  CHECK(st.error_code() == grpc::StatusCode::ALREADY_EXISTS);
  CHECK(st.error_message().find("seq/f.0017.png") != std::string::npos);
  fs::create_symlink("nowhere.mp4", root / "renders/link.mp4");
  st = farm.Submit(Upscale("plates/a.mp4", "renders/link.mp4"), &resp);
  CHECK(st.error_code() == grpc::StatusCode::ALREADY_EXISTS);
  fs::create_directories(root / "renders/dir.mp4");
  st = farm.Submit(Upscale("plates/a.mp4", "renders/dir.mp4", 12, /*overwrite=*/true), &resp);
  CHECK(st.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK(st.error_message().find("is a folder") != std::string::npos);

  // After submit, while the job waits for a worker: a frame and a sidecar appear. The
  // job fails naming the file, nothing of it is published, the user's files stay.
  REQUIRE(farm.Submit(Upscale("plates/a.mp4", "late/f.####.png"), &resp).ok());
  const int64_t seq_job = resp.job_id();
  REQUIRE(farm.Submit(Upscale("plates/a.mp4", "late/m.mp4"), &resp).ok());
  const int64_t movie_job = resp.job_id();
  WriteFile(root / "late/f.0020.png", "user frame");
  WriteFile(root / "late/m.mp4.json", "user sidecar");
  const std::string frame_sha = Sha(root / "late/f.0020.png");
  farm.StartWorker("w1");
  v1::Job job = farm.WaitForJob(seq_job);
  CHECK(job.state() == v1::JOB_STATE_FAILED);
  CHECK(job.error().find("f.0020.png") != std::string::npos);
  CHECK(job.error().find("overwrite") != std::string::npos);
  CHECK(Sha(root / "late/f.0020.png") == frame_sha);
  CHECK_FALSE(fs::exists(root / "late/f.0000.png"));
  CHECK_FALSE(fs::exists(root / "late/f.0023.png"));
  CHECK_FALSE(fs::exists(root / "late/f.####.png.json"));
  job = farm.WaitForJob(movie_job);
  CHECK(job.state() == v1::JOB_STATE_FAILED);
  CHECK(job.error().find("m.mp4.json") != std::string::npos);
  CHECK(ReadFile(root / "late/m.mp4.json") == "user sidecar");
  CHECK_FALSE(fs::exists(root / "late/m.mp4"));  // the movie went with its sidecar, or not

  // With overwrite, every file is replaced; a symbolic link is replaced, not followed.
  WriteFile(root / "target.txt", "keep");
  fs::create_symlink("../target.txt", root / "late/over.mp4");
  v1::Job done = farm.RunToSuccess(Upscale("plates/a.mp4", "late/over.mp4", 12, true));
  CHECK(fs::is_regular_file(fs::symlink_status(root / "late/over.mp4")));
  CHECK(ReadFile(root / "target.txt") == "keep");
  done = farm.RunToSuccess(Upscale("plates/a.mp4", "late/f.####.png", 12, true));
  CHECK(Sha(root / "late/f.0020.png") != frame_sha);
  CHECK(fs::exists(root / "late/f.0023.png"));
  CHECK(json::parse(ReadFile(root / "late/f.####.png.json"))["output"] == "late/f.####.png");
}

TEST_CASE("a failed image-sequence job publishes no frame, and scratch goes with success",
          "[integration][safety]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm");
  const fs::path root = farm.storage();
  // An image sequence whose frame 5 is not an image: the chunks before and after it
  // succeed, its chunk fails.
  fs::create_directories(root / "plates");
  REQUIRE(testing::Run("ffmpeg -v error -f lavfi -i testsrc2=s=64x36 -frames:v 8 " +
                       (root / "plates/p.%04d.png").string()) == 0);
  WriteFile(root / "plates/p.0005.png", "not a PNG at all");
  farm.StartWorker("w1");
  v1::JobSpec spec = Upscale("plates/p.####.png", "out/f.####.png", 2);
  spec.set_max_attempts(1);
  v1::SubmitJobResponse resp;
  REQUIRE(farm.Submit(spec, &resp).ok());
  const v1::Job failed = farm.WaitForJob(resp.job_id());
  REQUIRE(failed.state() == v1::JOB_STATE_FAILED);
  int done = 0;
  for (const auto& t : failed.tasks()) done += t.state() == v1::TASK_STATE_SUCCEEDED;
  CHECK(done >= 1);  // frames were made, and are not published
  // Nothing under the output pattern; the finished chunks wait in the job's scratch
  // (for `reelctl retry`).
  CHECK((!fs::exists(root / "out") || fs::is_empty(root / "out")));
  CHECK(fs::exists(root / common::Storage::JobScratchDir(resp.job_id())));

  // A job that succeeds publishes every frame; its scratch is then removed.
  testing::MakeTestClip(root / "plates/a.mp4", 64, 36, 8);
  const v1::Job ok = farm.RunToSuccess(Upscale("plates/a.mp4", "out/g.####.png", 3));
  for (int i = 0; i < 8; ++i) {
    CHECK(fs::exists(root / ("out/g.000" + std::to_string(i) + ".png")));
  }
  CHECK(Eventually([&] { return !fs::exists(root / common::Storage::JobScratchDir(ok.id())); }));
  // The failed job's scratch stays (a retry reuses its chunks).
  CHECK(fs::exists(root / common::Storage::JobScratchDir(resp.job_id())));
}

TEST_CASE("the farm's own folder is no job's input or output, and assembly checks segments",
          "[integration][safety]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm");
  const fs::path root = farm.storage();
  testing::MakeTestClip(root / "plates/a.mp4", 64, 36, 24);
  testing::MakeTestClip(root / "plates/b.mp4", 64, 36, 24);
  // A job whose chunks wait for a worker: its segments will be under .reelfarm/.
  v1::SubmitJobResponse resp;
  REQUIRE(farm.Submit(Upscale("plates/a.mp4", "renders/a.mp4"), &resp).ok());
  const int64_t victim = resp.job_id();
  const std::string parts = common::Storage::JobPartsDir(victim);
  // Named directly, by a path that climbs into it, or through a link: refused.
  fs::create_symlink(".reelfarm", root / "innocent");
  for (const std::string& out :
       std::vector<std::string>{parts + "/chunk_000000.lease_1.mov", "renders/../.reelfarm/x.mp4",
                                "innocent/jobs/1/parts/x.mov"}) {
    grpc::Status st = farm.Submit(Upscale("plates/b.mp4", out), &resp);
    INFO(out << ": " << st.error_message());
    CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(st.error_message().find("farm's own folder") != std::string::npos);
  }
  grpc::Status st = farm.Submit(Upscale(".reelfarm/jobs/1/staged/x.mp4", "renders/y.mp4"), &resp);
  CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  // The victim runs and succeeds with its own frames.
  farm.StartWorker("w1");
  CHECK(farm.WaitForJob(victim).state() == v1::JOB_STATE_SUCCEEDED);
}

TEST_CASE("server start-up errors: one line naming the flag, exit 2, no crash",
          "[integration][safety]") {
  testing::TempDir dir;
  const std::string server = std::string(REELFARM_SERVER_BIN) + " --data-dir " +
                             (dir.path() / "data").string() + " --metrics-listen ''";
  // A port that is taken.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  REQUIRE(::listen(fd, 1) == 0);
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const std::string taken = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  struct Case {
    std::string args, flag;
  };
  const Case cases[] = {
      {"--no-auth", "--insecure"},
      {"--insecure --no-auth --listen " + taken, "--listen"},
      {"--insecure --tokens-file " + (dir.path() / "missing.yaml").string(), "--tokens-file"},
      {"--insecure --no-auth --storage-root " + (dir.path() / "nowhere").string(),
       "--storage-root"},
  };
  for (const Case& c : cases) {
    int status = -1;
    const std::string out = testing::Capture(server + " " + c.args + " 2>&1", &status);
    INFO(c.args << "\n" << out);
    CHECK(status == 2);
    CHECK(out.find(c.flag) != std::string::npos);
    // One line of ours (gRPC's own noise stays out of it).
    CHECK(std::count(out.begin(), out.end(), '\n') == 1);
  }
  ::close(fd);
}

TEST_CASE("names with control characters are refused at submit", "[integration][safety]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm");
  testing::MakeTestClip(farm.storage() / "plates/a.mp4", 64, 36, 24);
  v1::SubmitJobResponse resp;
  struct Case {
    std::string field;
    std::function<void(v1::JobSpec*)> set;
  };
  const std::vector<Case> cases = {
      {"name", [](v1::JobSpec* s) { s->set_name("sh010\nFAILED job 7"); }},
      {"name", [](v1::JobSpec* s) { s->set_name("\x1b[2J\x1b[31mred"); }},
      {"project", [](v1::JobSpec* s) { s->set_project("p\rq"); }},
      {"requirements", [](v1::JobSpec* s) { (*s->mutable_requirements())["gpu"] = "a\x07"; }},
      {"upscale.output",
       [](v1::JobSpec* s) { s->mutable_upscale()->set_output("r/\x1b]0;x\x07.mp4"); }},
      {"name",
       [](v1::JobSpec* s) {
         s->set_name(
             "csi \xc2\x9b"
             "31m");
       }},
  };
  for (const Case& c : cases) {
    v1::JobSpec spec = Upscale("plates/a.mp4", "renders/a.mp4");
    c.set(&spec);
    grpc::Status st = farm.Submit(spec, &resp);
    INFO(c.field << ": " << st.error_message());
    CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(st.error_message().find(c.field) != std::string::npos);
    CHECK(st.error_message().find("control character") != std::string::npos);
  }
  // Printable UTF-8 is fine.
  v1::JobSpec spec = Upscale("plates/a.mp4", "renders/été.mp4");
  spec.set_name("plan séquence ✓");
  CHECK(farm.Submit(spec, &resp).ok());
}

TEST_CASE("a call to a method the port does not serve is answered with a message",
          "[integration][safety]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm");
  auto channel = grpc::CreateChannel(farm.address(), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  for (const std::string& method :
       {std::string("/no.such.Service/Method"), std::string("/reelfarm.v1.JobService/S\xc3\xbc"
                                                            "bmit")}) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::Slice slice(std::string("\x08\x01"));
    grpc::ByteBuffer request(&slice, 1), response;
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    grpc::Status status;
    stub.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response, [&](grpc::Status st) {
      std::lock_guard<std::mutex> lock(mu);
      status = st;
      done = true;
      cv.notify_one();
    });
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return done; });
    INFO(status.error_message());
    CHECK(status.error_code() == grpc::StatusCode::UNIMPLEMENTED);
    CHECK(status.error_message().find("is not served here") != std::string::npos);
    CHECK(status.error_message().find("reelfarm.v1.JobService") != std::string::npos);
    CHECK(status.error_message().find('\xc3') == std::string::npos);  // escaped
    if (method.find('\xc3') != std::string::npos) {
      CHECK(status.error_message().find("S\\xc3\\xbcbmit") != std::string::npos);
    }
  }
}
