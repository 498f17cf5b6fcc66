// Notifications and retention against real farms: webhooks POSTed by the server (libcurl)
// to a local HTTP receiver (cpp-httplib) when jobs end, with retries; `reelctl wait` and
// its exit codes; `reelctl purge`; and --keep-finished on the scheduler's manual clock
// (an in-process server, real gRPC on loopback, a real worker process).
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <future>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <prometheus/registry.h>
#include <nlohmann/json.hpp>

#include "common/process.h"
#include "common/storage.h"
#include "scheduler/clock.h"
#include "server/server.h"
#include "tests/testing/checks.h"
#include "tests/testing/farm.h"
#include "tests/testing/fixtures.h"

extern char** environ;

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace reelfarm;
using testing::Farm;

namespace {

template <typename F>
bool Eventually(F done, int tenths = 300) {
  for (int i = 0; i < tenths; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return done();
}

// A local webhook receiver: answers POST /hook with 503 for the first `fail_first`
// requests (all of them when negative), then 204; keeps every request's body.
class Receiver {
 public:
  explicit Receiver(int fail_first = 0) : fail_first_(fail_first) {
    server_.Post("/hook", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu_);
      ++requests_;
      content_types_.push_back(req.get_header_value("Content-Type"));
      if (fail_first_ < 0 || requests_ <= fail_first_) {
        res.status = 503;
        return;
      }
      bodies_.push_back(req.body);
      res.status = 204;
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    REQUIRE(Eventually([&] { return server_.is_running(); }));
  }
  ~Receiver() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }
  int requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  std::vector<std::string> bodies() {
    std::lock_guard<std::mutex> lock(mu_);
    return bodies_;
  }
  std::vector<std::string> content_types() {
    std::lock_guard<std::mutex> lock(mu_);
    return content_types_;
  }

 private:
  const int fail_first_;
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  int requests_ = 0;
  std::vector<std::string> bodies_;
  std::vector<std::string> content_types_;
};

// The value of the sample `line` (name and labels as exposed) in a /metrics text; -1
// when absent.
double Sample(const std::string& text, const std::string& line) {
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (l.rfind(line + " ", 0) == 0) return std::stod(l.substr(line.size() + 1));
  }
  return -1;
}

// A 12-frame image sequence whose frame 5 is not an image: with one attempt per task
// the job fails, its chunks before frame 5 done and kept in its scratch.
v1::JobSpec FailingSpec(const fs::path& root, const std::string& output) {
  fs::create_directories(root / "bad");
  REQUIRE(testing::Run("ffmpeg -v error -y -f lavfi -i testsrc2=s=64x36 -frames:v 12 " +
                       (root / "bad/p.%04d.png").string()) == 0);
  std::ofstream(root / "bad/p.0005.png") << "not a PNG at all";
  v1::JobSpec spec = testing::UpscaleSpec("bad/p.####.png", output, 2);
  spec.set_max_attempts(1);
  return spec;
}

}  // namespace

TEST_CASE("a job's webhooks and the server's get one POST with state and outputs when it ends",
          "[integration][notify]") {
  testing::TempDir dir;
  Receiver job_hook, server_hook;
  Farm farm(dir.path() / "farm", {"--webhook", server_hook.url(), "--monitor-url",
                                  "http://monitor.example:8080/", "--webhook-backoff-ms", "100"});
  testing::MakeTestClip(farm.storage() / "plates/a.mp4", 64, 36, 12);
  farm.StartWorker("w1");
  v1::JobSpec spec = testing::UpscaleSpec("plates/a.mp4", "renders/a_x2.mp4", 6);
  spec.add_webhooks(job_hook.url());
  const v1::Job job = farm.RunToSuccess(spec);
  REQUIRE(Eventually(
      [&] { return job_hook.bodies().size() == 1 && server_hook.bodies().size() == 1; }));
  // Exactly one, not one per task or per state change.
  std::this_thread::sleep_for(std::chrono::seconds(1));
  CHECK(job_hook.requests() == 1);
  CHECK(server_hook.requests() == 1);
  CHECK(job_hook.content_types() == std::vector<std::string>{"application/json"});
  const json body = json::parse(job_hook.bodies()[0]);
  INFO(body.dump());
  CHECK(body["job_id"] == job.id());
  CHECK(body["name"] == job.spec().name());
  CHECK(body["state"] == "SUCCEEDED");
  CHECK(body["outputs"] == json::array({"renders/a_x2.mp4"}));
  CHECK(body["error"] == "");
  CHECK(body["finished_unix_ms"] == job.finished_unix_ms());
  CHECK(body["monitor"] == "http://monitor.example:8080/jobs/" + std::to_string(job.id()));
  CHECK(body["finished"].get<std::string>().back() == 'Z');
  CHECK(json::parse(server_hook.bodies()[0]) == body);
  // The output named in the body is there.
  CHECK(fs::exists(farm.storage() / body["outputs"][0].get<std::string>()));
  // The job's webhooks are part of its spec.
  const v1::Job stored = farm.Get(job.id());
  REQUIRE(stored.spec().webhooks_size() == 1);
  CHECK(stored.spec().webhooks(0) == job_hook.url());
}

TEST_CASE("a webhook receiver that fails twice gets the body on the third try, and it is counted",
          "[integration][notify]") {
  testing::TempDir dir;
  Receiver flaky(2), dead(-1);
  Farm farm(dir.path() / "farm",
            {"--metrics", "--webhook-backoff-ms", "200", "--webhook-attempts", "4"});
  testing::MakeTestClip(farm.storage() / "plates/a.mp4", 64, 36, 6);
  farm.StartWorker("w1");
  v1::JobSpec spec = testing::UpscaleSpec("plates/a.mp4", "renders/a_x2.mp4", 6);
  spec.add_webhooks(flaky.url());
  spec.add_webhooks(dead.url());
  const v1::Job job = farm.RunToSuccess(spec);
  REQUIRE(Eventually([&] { return flaky.bodies().size() == 1; }));
  CHECK(flaky.requests() == 3);
  CHECK(json::parse(flaky.bodies()[0])["state"] == "SUCCEEDED");
  // The dead one is tried --webhook-attempts times (back-off 200, 400, 800 ms), then
  // given up.
  REQUIRE(Eventually([&] { return dead.requests() == 4; }));
  std::string metrics;
  REQUIRE(Eventually([&] {
    metrics = Farm::Scrape(farm.server_metrics_port());
    return Sample(metrics, "reelfarm_webhook_deliveries_total{result=\"failed\"}") == 1;
  }));
  CHECK(Sample(metrics, "reelfarm_webhook_deliveries_total{result=\"sent\"}") == 1);
  CHECK(Sample(metrics, "reelfarm_webhook_attempts_total") == 7);
  CHECK(dead.requests() == 4);
  const std::string log = farm.ServerLog();
  CHECK(log.find("webhook try failed job=" + std::to_string(job.id())) != std::string::npos);
  CHECK(log.find("webhook sent job=" + std::to_string(job.id())) != std::string::npos);
  CHECK(log.find("giving up") != std::string::npos);
}

TEST_CASE("a failed job's webhook says FAILED with the error", "[integration][notify]") {
  testing::TempDir dir;
  Receiver hook;
  Farm farm(dir.path() / "farm");  // no monitor (the default here), so no link
  farm.StartWorker("w1");
  v1::JobSpec spec = FailingSpec(farm.storage(), "out/f.####.png");
  spec.add_webhooks(hook.url());
  v1::SubmitJobResponse resp;
  REQUIRE(farm.Submit(spec, &resp).ok());
  const v1::Job job = farm.WaitForJob(resp.job_id());
  REQUIRE(job.state() == v1::JOB_STATE_FAILED);
  REQUIRE(Eventually([&] { return hook.bodies().size() == 1; }));
  const json body = json::parse(hook.bodies()[0]);
  INFO(body.dump());
  CHECK(body["state"] == "FAILED");
  CHECK(body["job_id"] == job.id());
  CHECK(!job.error().empty());
  CHECK(body["error"] == job.error());
  CHECK(body["outputs"] == json::array({"out/f.####.png"}));
  CHECK(body["monitor"] == "");
}

TEST_CASE("the webhook's monitor link names the port the monitor bound", "[integration][notify]") {
  testing::TempDir dir;
  Receiver hook;
  // Port 0: the link can only be right if it is made once the monitor listens.
  const fs::path port_file = dir.path() / "web.port";
  Farm farm(dir.path() / "farm", {"--webhook", hook.url(), "--web-listen", "127.0.0.1:0",
                                  "--web-port-file", port_file.string()});
  REQUIRE(Eventually([&] { return fs::exists(port_file) && fs::file_size(port_file) > 0; }));
  int port = 0;
  std::ifstream(port_file) >> port;
  REQUIRE(port > 0);
  testing::MakeTestClip(farm.storage() / "plates/a.mp4", 64, 36, 6);
  farm.StartWorker("w1");
  const v1::Job job = farm.RunToSuccess(testing::UpscaleSpec("plates/a.mp4", "renders/a.mp4", 6));
  REQUIRE(Eventually([&] { return hook.bodies().size() == 1; }));
  CHECK(json::parse(hook.bodies()[0])["monitor"] ==
        "http://127.0.0.1:" + std::to_string(port) + "/jobs/" + std::to_string(job.id()));
}

TEST_CASE("a webhook that is not an http(s) URL is refused at submit", "[integration][notify]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm");
  testing::MakeTestClip(farm.storage() / "plates/a.mp4", 64, 36, 6);
  for (const std::string url : {"ftp://hooks.example.com/x", "file:///etc/passwd",
                                "hooks.example.com/no-scheme", "https://"}) {
    CAPTURE(url);
    v1::JobSpec spec = testing::UpscaleSpec("plates/a.mp4", "renders/a_x2.mp4", 6);
    spec.add_webhooks("https://ok.example.com/hook");
    spec.add_webhooks(url);
    v1::SubmitJobResponse resp;
    const grpc::Status st = farm.Submit(spec, &resp);
    CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(st.error_message().find("webhooks[1]") != std::string::npos);
    CHECK(st.error_message().find("http(s)") != std::string::npos);
  }
  // reelctl: --webhook, and the job file's `webhooks:` list.
  int status = -1;
  std::string out = testing::Capture(
      farm.Reelctl() +
          " submit upscale --input plates/a.mp4 --output renders/b.mp4 --webhook gopher://x 2>&1",
      &status);
  CHECK(status == 4);
  CHECK(out.find("INVALID_ARGUMENT") != std::string::npos);
  const fs::path file = dir.path() / "job.yaml";
  std::ofstream(file) << "upscale: {input: plates/a.mp4, output: renders/c.mp4, model: bicubic, "
                         "scale: 2}\nwebhooks: [\"https://a.example.com/h\", "
                         "\"http://b.example.com:8080/h?x=1\"]\n";
  out = testing::Capture(farm.Reelctl() + " --json submit -f " + file.string(), &status);
  INFO(out);
  REQUIRE(status == 0);
  out = testing::Capture(farm.Reelctl() + " --json list", &status);
  const json jobs = json::parse(out)["jobs"];
  REQUIRE(jobs.size() == 1);
  CHECK(jobs[0]["spec"]["webhooks"] ==
        json::array({"https://a.example.com/h", "http://b.example.com:8080/h?x=1"}));
}

TEST_CASE("reelctl wait blocks until jobs end and exits 0, 1, 2, 3 or 5 as documented",
          "[integration][notify][reelctl]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm");
  testing::MakeTestClip(farm.storage() / "plates/a.mp4", 64, 36, 12);
  v1::SubmitJobResponse ok, bad;
  REQUIRE(farm.Submit(testing::UpscaleSpec("plates/a.mp4", "renders/a_x2.mp4", 6), &ok).ok());
  const std::string ctl = farm.Reelctl() + " ";
  const std::string ok_id = std::to_string(ok.job_id());
  int status = -1;
  // No worker yet: the job cannot end, so --timeout passes (exit 5).
  std::string out = testing::Capture(ctl + "wait " + ok_id + " --timeout 1s 2>&1", &status);
  INFO(out);
  CHECK(status == 5);
  CHECK(out.find("--timeout") != std::string::npos);
  // `wait` blocks while the job runs: started before there is a worker.
  auto waiting = std::async(std::launch::async, [&] {
    int st = -1;
    std::string o = testing::Capture(ctl + "--json wait " + ok_id, &st);
    return std::make_pair(st, o);
  });
  CHECK(waiting.wait_for(std::chrono::seconds(2)) == std::future_status::timeout);
  farm.StartWorker("w1");
  REQUIRE(waiting.wait_for(std::chrono::seconds(120)) == std::future_status::ready);
  const auto [ok_status, ok_out] = waiting.get();
  INFO(ok_out);
  CHECK(ok_status == 0);
  const json line = json::parse(ok_out);
  CHECK(line["id"] == ok_id);  // int64 as a string, as protobuf's JSON writes it
  CHECK(line["state"] == "JOB_STATE_SUCCEEDED");

  REQUIRE(farm.Submit(FailingSpec(farm.storage(), "out/f.####.png"), &bad).ok());
  out = testing::Capture(ctl + "wait " + ok_id + " " + std::to_string(bad.job_id()) + " 2>&1",
                         &status);
  CHECK(status == 1);
  CHECK(out.find("job " + ok_id + " succeeded") != std::string::npos);
  CHECK(out.find("job " + std::to_string(bad.job_id()) + " failed") != std::string::npos);

  out = testing::Capture(ctl + "wait " + ok_id + " 999 2>&1", &status);
  CHECK(status == 2);
  CHECK(out.find("NOT_FOUND") != std::string::npos);
  out = testing::Capture(
      std::string(REELFARM_REELCTL_BIN) + " --server 127.0.0.1:1 --insecure wait 1 2>&1", &status);
  CHECK(status == 3);
  // The codes are in the help.
  out = testing::Capture(std::string(REELFARM_REELCTL_BIN) + " wait --help", &status);
  CHECK(status == 0);
  CHECK(out.find("5: --timeout") != std::string::npos);
}

// Calls of `method` the server has finished, summed over codes (its /metrics).
double Calls(const Farm& farm, const std::string& method) {
  const std::string text = Farm::Scrape(farm.server_metrics_port());
  const std::regex sample("^reelfarm_grpc_requests_total\\{[^}]*method=\"" + method +
                          "\"[^}]*\\} ([0-9.e+]+)$");
  double total = 0;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    if (std::regex_match(line, m, sample)) total += std::stod(m[1]);
  }
  return total;
}

TEST_CASE("reelctl wait follows its jobs' event streams and asks for each job once it has ended",
          "[integration][notify][reelctl]") {
  // It returned up to half a second after the job ended, polling GetJob every 0.5 s;
  // now it waits on WatchJob, which the server ends with the job.
  testing::TempDir dir;
  Farm farm(dir.path() / "farm", {"--metrics"});
  testing::MakeTestClip(farm.storage() / "plates/a.mp4", 64, 36, 12);
  v1::SubmitJobResponse ok;
  REQUIRE(farm.Submit(testing::UpscaleSpec("plates/a.mp4", "renders/a_x2.mp4", 6), &ok).ok());
  const std::string id = std::to_string(ok.job_id());
  const double get_before = Calls(farm, "GetJob");
  auto waiting = std::async(std::launch::async, [&] {
    int st = -1;
    std::string o = testing::Capture(farm.Reelctl() + " wait " + id, &st);
    return std::make_pair(st, o);
  });
  // No worker: the job waits, and so does reelctl, on one stream, with one GetJob.
  CHECK(waiting.wait_for(std::chrono::milliseconds(2500)) == std::future_status::timeout);
  CHECK(Calls(farm, "GetJob") - get_before == 1);
  farm.StartWorker("w1");
  REQUIRE(waiting.wait_for(std::chrono::seconds(120)) == std::future_status::ready);
  const auto [status, out] = waiting.get();
  INFO(out);
  CHECK(status == 0);
  CHECK(out.find("job " + id + " succeeded") != std::string::npos);
  // One more, once the stream told it the job had ended; the stream closed with OK.
  CHECK(Calls(farm, "GetJob") - get_before == 2);
  CHECK(Calls(farm, "WatchJob") == 1);
}

TEST_CASE("reelctl purge lists with --dry-run, then forgets jobs, logs and scratch, not outputs",
          "[integration][retention][reelctl]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm");
  const fs::path root = farm.storage();
  testing::MakeTestClip(root / "plates/a.mp4", 64, 36, 12);
  farm.StartWorker("w1");
  const v1::Job done = farm.RunToSuccess(testing::UpscaleSpec("plates/a.mp4", "renders/a.mp4", 6));
  v1::SubmitJobResponse resp;
  REQUIRE(farm.Submit(FailingSpec(root, "out/f.####.png"), &resp).ok());
  const v1::Job failed = farm.WaitForJob(resp.job_id());
  REQUIRE(failed.state() == v1::JOB_STATE_FAILED);
  const fs::path logs = farm.dir() / "logs";
  const std::string a = std::to_string(done.id()), b = std::to_string(failed.id());
  REQUIRE(fs::exists(logs / a));
  REQUIRE(fs::exists(logs / b));
  REQUIRE(fs::exists(root / common::Storage::JobScratchDir(failed.id())));
  const std::string ctl = farm.Reelctl() + " ";
  int status = -1;
  // Both ended moments ago: not older than a day.
  std::string out = testing::Capture(ctl + "purge --older-than 1d", &status);
  CHECK(status == 0);
  CHECK(out.find("nothing purged") != std::string::npos);
  out = testing::Capture(ctl + "purge --dry-run", &status);
  INFO(out);
  CHECK(status == 0);
  CHECK(out.find("would purge job " + a) != std::string::npos);
  CHECK(out.find("would purge job " + b) != std::string::npos);
  CHECK(farm.Get(done.id()).id() == done.id());
  CHECK(fs::exists(logs / a));
  out = testing::Capture(ctl + "--json purge " + a + " " + b, &status);
  CHECK(status == 0);
  const json purged = json::parse(out);
  CHECK(purged["purged"].size() == 2);
  CHECK(purged["dryRun"] == false);
  // Gone from the farm: get says NOT_FOUND, list leaves them out.
  out = testing::Capture(ctl + "get " + a + " 2>&1", &status);
  CHECK(status == 4);
  CHECK(out.find("NOT_FOUND") != std::string::npos);
  out = testing::Capture(ctl + "--json list", &status);
  CHECK(json::parse(out).value("jobs", json::array()).empty());
  // Task logs and scratch gone; the published output stays.
  CHECK_FALSE(fs::exists(logs / a));
  CHECK_FALSE(fs::exists(logs / b));
  CHECK_FALSE(fs::exists(root / common::Storage::JobScratchDir(failed.id())));
  CHECK(fs::exists(root / "renders/a.mp4"));
  // A job that has not ended (no worker has the tag it needs) is kept, with the reason;
  // an unknown one is NOT_FOUND.
  v1::JobSpec queued = testing::UpscaleSpec("plates/a.mp4", "renders/q.mp4", 6);
  (*queued.mutable_requirements())["site"] = "nowhere";
  REQUIRE(farm.Submit(queued, &resp).ok());
  out = testing::Capture(ctl + "purge " + std::to_string(resp.job_id()), &status);
  CHECK(status == 0);
  CHECK(out.find("kept job " + std::to_string(resp.job_id())) != std::string::npos);
  out = testing::Capture(ctl + "purge 999 2>&1", &status);
  CHECK(status == 4);
  CHECK(out.find("NOT_FOUND") != std::string::npos);
}

namespace {

// An in-process server (real gRPC on loopback) on a manual clock, and a real worker
// process connected to it.
class ClockedFarm {
 public:
  ClockedFarm(const fs::path& dir, int64_t keep_finished_ms) : dir_(dir) {
    fs::create_directories(dir / "storage");
    server::ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.store = (dir / "state.db").string();
    o.storage_root = (dir / "storage").string();
    o.task_log_dir = (dir / "logs").string();
    o.tls.insecure = true;
    o.keep_finished_ms = keep_finished_ms;
    o.clock = &clock;
    auto s = server::FarmServer::Start(o, registry_);
    INFO(s.status().ToString());
    REQUIRE(s.ok());
    server_ = std::move(*s);
    stub_ =
        v1::JobService::NewStub(grpc::CreateChannel(address(), grpc::InsecureChannelCredentials()));
    const std::vector<std::string> argv = {REELFARM_WORKER_BIN,
                                           "--server",
                                           address(),
                                           "--insecure",
                                           "--name",
                                           "w1",
                                           "--storage-root",
                                           (dir / "storage").string(),
                                           "--threads",
                                           "1",
                                           "--metrics-listen",
                                           "127.0.0.1:0",
                                           "--metrics-port-file",
                                           (dir / "w1.metrics.port").string(),
                                           "--health-listen",
                                           "127.0.0.1:0",
                                           "--health-port-file",
                                           (dir / "w1.health.port").string()};
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    const std::string log = (dir / "worker.log").string();
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    REQUIRE(posix_spawn(&worker_, args[0], &actions, nullptr, args.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&actions);
  }
  ~ClockedFarm() {
    common::StopProcesses({worker_}, std::chrono::seconds(10));
    server_->Shutdown();
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(server_->port()); }
  std::string Reelctl() const {
    return std::string(REELFARM_REELCTL_BIN) + " --server " + address() + " --insecure ";
  }
  fs::path storage() const { return dir_ / "storage"; }
  fs::path logs() const { return dir_ / "logs"; }
  int64_t Submit(const v1::JobSpec& spec) {
    grpc::ClientContext ctx;
    v1::SubmitJobRequest req;
    *req.mutable_spec() = spec;
    v1::SubmitJobResponse resp;
    const grpc::Status st = stub_->SubmitJob(&ctx, req, &resp);
    INFO(st.error_message());
    REQUIRE(st.ok());
    return resp.job_id();
  }
  // The job's state, or UNSPECIFIED once it is NOT_FOUND.
  v1::JobState State(int64_t id) {
    grpc::ClientContext ctx;
    v1::GetJobRequest req;
    req.set_job_id(id);
    v1::Job job;
    const grpc::Status st = stub_->GetJob(&ctx, req, &job);
    if (st.error_code() == grpc::StatusCode::NOT_FOUND) return v1::JOB_STATE_UNSPECIFIED;
    REQUIRE(st.ok());
    return job.state();
  }
  v1::JobState WaitForEnd(int64_t id) {
    v1::JobState s = v1::JOB_STATE_UNSPECIFIED;
    Eventually(
        [&] {
          s = State(id);
          return s == v1::JOB_STATE_SUCCEEDED || s == v1::JOB_STATE_FAILED ||
                 s == v1::JOB_STATE_CANCELLED;
        },
        1200);
    return s;
  }
  void Cancel(int64_t id) {
    grpc::ClientContext ctx;
    v1::CancelJobRequest req;
    req.set_job_id(id);
    v1::Job job;
    REQUIRE(stub_->CancelJob(&ctx, req, &job).ok());
  }

  scheduler::ManualClock clock{std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count()};

 private:
  fs::path dir_;
  prometheus::Registry registry_;
  std::unique_ptr<server::FarmServer> server_;
  std::unique_ptr<v1::JobService::Stub> stub_;
  pid_t worker_ = -1;
};

constexpr int64_t kDayMs = 24 * 3600 * 1000;

}  // namespace

TEST_CASE("retention by --keep-finished purges old ended jobs, keeps those a live dependent needs",
          "[integration][retention]") {
  testing::TempDir dir;
  ClockedFarm farm(dir.path(), 30 * kDayMs);
  const fs::path root = farm.storage();
  testing::MakeTestClip(root / "plates/a.mp4", 64, 36, 12);
  // old: ends and has nobody depending on it. needed: ends, but `dependent` waits for it
  // and for `blocker`, which no worker can run (its tag is nowhere).
  const int64_t old_id = farm.Submit(testing::UpscaleSpec("plates/a.mp4", "renders/old.mp4", 6));
  REQUIRE(farm.WaitForEnd(old_id) == v1::JOB_STATE_SUCCEEDED);
  const int64_t failed = farm.Submit(FailingSpec(root, "out/f.####.png"));
  REQUIRE(farm.WaitForEnd(failed) == v1::JOB_STATE_FAILED);
  const int64_t needed = farm.Submit(testing::UpscaleSpec("plates/a.mp4", "renders/needed.mp4", 6));
  REQUIRE(farm.WaitForEnd(needed) == v1::JOB_STATE_SUCCEEDED);
  v1::JobSpec blocker_spec = testing::UpscaleSpec("plates/a.mp4", "renders/blocked.mp4", 6);
  (*blocker_spec.mutable_requirements())["site"] = "nowhere";
  const int64_t blocker = farm.Submit(blocker_spec);
  v1::JobSpec dep_spec = testing::UpscaleSpec("renders/needed.mp4", "renders/dep.mp4", 6);
  dep_spec.add_depends_on(needed);
  dep_spec.add_depends_on(blocker);
  const int64_t dependent = farm.Submit(dep_spec);
  REQUIRE(farm.State(dependent) == v1::JOB_STATE_WAITING);
  const std::string o = std::to_string(old_id), f = std::to_string(failed),
                    n = std::to_string(needed);
  REQUIRE(fs::exists(farm.logs() / o));
  REQUIRE(fs::exists(farm.logs() / f));
  REQUIRE(fs::exists(root / common::Storage::JobScratchDir(failed)));

  // Not old yet: a few sweeps purge nothing.
  farm.clock.AdvanceMs(29 * kDayMs);
  std::this_thread::sleep_for(std::chrono::seconds(3));
  CHECK(farm.State(old_id) == v1::JOB_STATE_SUCCEEDED);
  CHECK(farm.State(failed) == v1::JOB_STATE_FAILED);

  farm.clock.AdvanceMs(2 * kDayMs);
  CHECK(Eventually([&] {
    return farm.State(old_id) == v1::JOB_STATE_UNSPECIFIED &&
           farm.State(failed) == v1::JOB_STATE_UNSPECIFIED;
  }));
  int status = -1;
  std::string out = testing::Capture(farm.Reelctl() + "get " + o + " 2>&1", &status);
  CHECK(status == 4);
  CHECK(out.find("NOT_FOUND") != std::string::npos);
  out = testing::Capture(farm.Reelctl() + "--json list", &status);
  INFO(out);
  const json list = json::parse(out);
  std::set<std::string> listed;
  for (const json& j : list["jobs"]) listed.insert(j["id"].get<std::string>());
  CHECK(listed == std::set<std::string>{n, std::to_string(blocker), std::to_string(dependent)});
  CHECK_FALSE(fs::exists(farm.logs() / o));
  CHECK_FALSE(fs::exists(farm.logs() / f));
  CHECK_FALSE(fs::exists(root / common::Storage::JobScratchDir(failed)));
  CHECK(fs::exists(root / "renders/old.mp4"));  // outputs are never retention's
  // `needed` is as old, but `dependent` has not ended.
  CHECK(farm.State(needed) == v1::JOB_STATE_SUCCEEDED);
  CHECK(fs::exists(farm.logs() / n));

  // Once the chain has ended and aged, it goes too.
  farm.Cancel(blocker);
  REQUIRE(farm.WaitForEnd(dependent) == v1::JOB_STATE_FAILED);
  farm.clock.AdvanceMs(31 * kDayMs);
  CHECK(Eventually([&] {
    return farm.State(needed) == v1::JOB_STATE_UNSPECIFIED &&
           farm.State(dependent) == v1::JOB_STATE_UNSPECIFIED &&
           farm.State(blocker) == v1::JOB_STATE_UNSPECIFIED;
  }));
  CHECK_FALSE(fs::exists(farm.logs() / n));
  CHECK(fs::exists(root / "renders/needed.mp4"));
}

TEST_CASE("reelctl purge is an admin action: a submitter's or viewer's token is refused",
          "[integration][retention][reelctl]") {
  testing::TempDir dir;
  const fs::path tokens = dir.path() / "tokens.yaml";
  std::ofstream(tokens) << "tokens:\n"
                        << "  - {name: root, role: admin, token: admin-token-0123456789abcdef}\n"
                        << "  - {name: alice, role: submitter, projects: [showA], token: "
                           "alice-token-0123456789abcdef}\n"
                        << "  - {name: viewer, role: viewer, token: viewer-token-0123456789abc}\n";
  Farm farm(dir.path() / "farm", {"--tokens-file", tokens.string()});
  const std::string ctl = farm.Reelctl() + " --token ";
  int status = -1;
  for (const std::string token : {"alice-token-0123456789abcdef", "viewer-token-0123456789abc"}) {
    CAPTURE(token);
    const std::string out = testing::Capture(ctl + token + " purge --dry-run 2>&1", &status);
    INFO(out);
    CHECK(status == 4);
    CHECK(out.find("PERMISSION_DENIED") != std::string::npos);
    CHECK(out.find("purge jobs") != std::string::npos);
  }
  const std::string out =
      testing::Capture(ctl + "admin-token-0123456789abcdef purge --dry-run 2>&1", &status);
  INFO(out);
  CHECK(status == 0);
  CHECK(out.find("nothing to purge") != std::string::npos);
}
