// Operations on a real farm: /metrics of the server and of the workers after a job
// (values equal what the job did, text accepted by `promtool check metrics`), the gRPC
// health and reflection services, worker readiness, task logs through `reelctl logs`,
// and JSON logs.
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

#include <google/protobuf/descriptor.pb.h>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "tests/testing/checks.h"
#include "tests/testing/farm.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/models.h"

namespace fs = std::filesystem;
using namespace reelfarm;
using testing::Farm;

namespace {

// One sample of the text exposition format: name, labels, value.
struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

std::vector<Sample> ParseMetrics(const std::string& text) {
  static const std::regex kLine(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$)");
  static const std::regex kLabel(R"re(([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)")re");
  std::vector<Sample> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::smatch m;
    if (!std::regex_match(line, m, kLine)) continue;
    Sample s;
    s.name = m[1];
    const std::string labels = m[3];
    for (auto it = std::sregex_iterator(labels.begin(), labels.end(), kLabel);
         it != std::sregex_iterator(); ++it) {
      s.labels[(*it)[1]] = (*it)[2];
    }
    s.value = std::stod(m[4]);
    out.push_back(std::move(s));
  }
  return out;
}

// Sum of the samples named `name` whose labels include `match`; -1 if there are none.
double Value(const std::vector<Sample>& samples, const std::string& name,
             const std::map<std::string, std::string>& match = {}) {
  double sum = 0;
  bool found = false;
  for (const auto& s : samples) {
    if (s.name != name) continue;
    bool ok = true;
    for (const auto& [k, v] : match) {
      auto it = s.labels.find(k);
      ok = ok && it != s.labels.end() && it->second == v;
    }
    if (!ok) continue;
    sum += s.value;
    found = true;
  }
  return found ? sum : -1;
}

// `promtool check metrics` on the text: exit status 0 means no lint problem.
void CheckWithPromtool(const std::string& text, const fs::path& scratch) {
  std::ofstream(scratch) << text;
  int status = 0;
  std::string out =
      testing::Capture("promtool check metrics < '" + scratch.string() + "' 2>&1", &status);
  INFO("promtool: " << out);
  CHECK(status == 0);
}

grpc::health::v1::HealthCheckResponse::ServingStatus CheckHealth(const std::string& address,
                                                                 const std::string& service,
                                                                 grpc::Status* status) {
  auto stub = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  *status = stub->Check(&ctx, req, &resp);
  return resp.status();
}

}  // namespace

TEST_CASE("after a job the server and worker /metrics count what the job did", "[integration]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm", {"--metrics"});
  testing::MakeTestClip(farm.storage() / "plates/m.mp4", 160, 90, 48);

  // Submitted before any worker connects: the queue gauge shows all 3 tasks waiting.
  v1::SubmitJobResponse resp;
  REQUIRE(farm.Submit(testing::UpscaleSpec("plates/m.mp4", "renders/m_x2.mp4", 24), &resp).ok());
  REQUIRE(resp.job().tasks_total() == 3);  // 2 chunks + assemble
  v1::SubmitJobResponse refused;
  CHECK(farm.Submit(testing::UpscaleSpec("plates/missing.mp4", "renders/x.mp4", 24), &refused)
            .error_code() == grpc::StatusCode::NOT_FOUND);
  {
    auto s = ParseMetrics(Farm::Scrape(farm.server_metrics_port()));
    CHECK(Value(s, "reelfarm_tasks_queued", {{"pool", "default"}, {"project", "default"}}) == 3);
    CHECK(Value(s, "reelfarm_tasks_running") == 0);
    CHECK(Value(s, "reelfarm_jobs_active", {{"project", "default"}}) == 1);
  }

  farm.StartWorker("w1");
  farm.StartWorker("w2");
  v1::Job job = farm.WaitForJob(resp.job_id());
  REQUIRE(job.state() == v1::JOB_STATE_SUCCEEDED);
  // w1 may finish the job before w2 has connected (a loaded machine): both count below.
  farm.WaitForWorkers(2);
  const fs::path out = farm.storage() / "renders/m_x2.mp4";
  const double published =
      static_cast<double>(fs::file_size(out) + fs::file_size(out.string() + ".json"));

  {  // The server.
    const std::string text = Farm::Scrape(farm.server_metrics_port());
    CheckWithPromtool(text, dir.path() / "server.prom");
    auto s = ParseMetrics(text);
    CHECK(Value(s, "reelfarm_jobs_submitted_total",
                {{"kind", "upscale"}, {"project", "default"}}) == 1);
    CHECK(Value(s, "reelfarm_jobs_finished_total",
                {{"kind", "upscale"}, {"project", "default"}, {"state", "succeeded"}}) == 1);
    CHECK(Value(s, "reelfarm_job_submissions_refused_total", {{"code", "NOT_FOUND"}}) == 1);
    CHECK(Value(s, "reelfarm_task_attempts_total", {{"kind", "chunk"}, {"result", "succeeded"}}) ==
          2);
    CHECK(Value(s, "reelfarm_task_attempts_total",
                {{"kind", "assemble"}, {"result", "succeeded"}}) == 1);
    CHECK(Value(s, "reelfarm_task_attempts_total", {{"result", "failed"}}) == -1);
    CHECK(Value(s, "reelfarm_task_run_duration_seconds_count", {{"kind", "chunk"}}) == 2);
    CHECK(Value(s, "reelfarm_task_queue_wait_seconds_count") == 3);
    CHECK(Value(s, "reelfarm_task_retries_total") == -1);
    CHECK(Value(s, "reelfarm_lease_expirations_total") == 0);
    CHECK(Value(s, "reelfarm_worker_connections_total") == 2);
    CHECK(Value(s, "reelfarm_workers", {{"state", "idle"}}) == 2);
    CHECK(Value(s, "reelfarm_workers", {{"state", "busy"}}) == 0);
    CHECK(Value(s, "reelfarm_tasks_queued") == -1);  // no job left active
    // Group commits: at least one for the submit, fewer than the writes they carried.
    CHECK(Value(s, "reelfarm_store_commit_duration_seconds_count", {{"op", "commit"}}) >= 1);
    CHECK(Value(s, "reelfarm_grpc_requests_total",
                {{"service", "reelfarm.v1.JobService"}, {"method", "SubmitJob"}, {"code", "OK"}}) ==
          1);
    CHECK(Value(s, "reelfarm_grpc_requests_total",
                {{"method", "SubmitJob"}, {"code", "NOT_FOUND"}}) == 1);
    CHECK(Value(s, "reelfarm_grpc_request_duration_seconds_count", {{"method", "SubmitJob"}}) == 2);
    // No job ids or paths in any label.
    for (const auto& sample : s) {
      for (const auto& [k, v] : sample.labels) {
        CHECK(v.find('/') == std::string::npos);
        CHECK(k != "job");
      }
    }
  }

  {  // The workers, summed.
    std::vector<Sample> all;
    for (const std::string w : {"w1", "w2"}) {
      const std::string text = Farm::Scrape(farm.WorkerMetricsPort(w));
      CheckWithPromtool(text, dir.path() / (w + ".prom"));
      // No GPU here: GPU families are absent, not zero.
      CHECK(text.find("reelfarm_gpu_") == std::string::npos);
      auto s = ParseMetrics(text);
      CHECK(Value(s, "reelfarm_worker_ready") == 1);
      CHECK(Value(s, "reelfarm_worker_model_load_duration_seconds",
                  {{"model", "bicubic"}, {"device", "cpu"}}) > 0);
      CHECK(Value(s, "reelfarm_worker_resident_memory_bytes") > 1e6);
      all.insert(all.end(), s.begin(), s.end());
    }
    CHECK(Value(all, "reelfarm_worker_frames_processed_total",
                {{"model", "bicubic"}, {"device", "cpu"}}) == 48);
    CHECK(Value(all, "reelfarm_worker_tasks_total", {{"kind", "chunk"}, {"result", "ok"}}) == 2);
    CHECK(Value(all, "reelfarm_worker_tasks_total", {{"kind", "assemble"}, {"result", "ok"}}) == 1);
    CHECK(Value(all, "reelfarm_worker_tasks_total", {{"result", "failed"}}) == -1);
    for (const std::string stage : {"decode", "infer", "encode", "publish"}) {
      INFO("stage " << stage);
      CHECK(Value(all, "reelfarm_worker_stage_seconds_total", {{"stage", stage}}) > 0);
      CHECK(Value(all, "reelfarm_worker_stage_duration_seconds_count", {{"stage", stage}}) == 2);
    }
    CHECK(Value(all, "reelfarm_worker_stage_duration_seconds_count", {{"stage", "assemble"}}) == 1);
    CHECK(Value(all, "reelfarm_worker_written_bytes_total", {{"kind", "assemble"}}) == published);
    CHECK(Value(all, "reelfarm_worker_written_bytes_total", {{"kind", "chunk"}}) > 0);
  }
}

namespace {

// The value of `var` in the environment of process `pid` ("" when unset).
std::string EnvironmentOf(pid_t pid, const std::string& var) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
  std::string entry;
  while (std::getline(in, entry, '\0')) {
    if (entry.rfind(var + "=", 0) == 0) return entry.substr(var.size() + 1);
  }
  return "";
}

}  // namespace

TEST_CASE("a worker runs LibTorch's OpenMP threads with passive waits unless told otherwise",
          "[integration]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm");
  unsetenv("OMP_WAIT_POLICY");
  farm.StartWorker("default");
  setenv("OMP_WAIT_POLICY", "ACTIVE", 1);
  farm.StartWorker("spinning");
  unsetenv("OMP_WAIT_POLICY");
  farm.WaitForWorkers(2);  // both restarted or not, they serve
  CHECK(EnvironmentOf(farm.WorkerPid("default"), "OMP_WAIT_POLICY") == "PASSIVE");
  CHECK(EnvironmentOf(farm.WorkerPid("spinning"), "OMP_WAIT_POLICY") == "ACTIVE");
  // The same process: the restart is an exec, so the pid the server knows stays true.
  CHECK(farm.Alive("default"));
  testing::MakeTestClip(farm.storage() / "plates/a.mp4", 160, 90, 24);
  const v1::Job job = farm.RunToSuccess(testing::UpscaleSpec("plates/a.mp4", "renders/a.mp4", 12));
  CHECK(job.state() == v1::JOB_STATE_SUCCEEDED);
}

TEST_CASE(
    "the server answers the standard health and reflection services and workers "
    "report not ready until their models are warm",
    "[integration]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm");
  grpc::Status st;
  CHECK(CheckHealth(farm.address(), "", &st) == grpc::health::v1::HealthCheckResponse::SERVING);
  CHECK(st.ok());
  CHECK(CheckHealth(farm.address(), "reelfarm.v1.JobService", &st) ==
        grpc::health::v1::HealthCheckResponse::SERVING);
  CHECK(CheckHealth(farm.address(), "reelfarm.v1.WorkerService", &st) ==
        grpc::health::v1::HealthCheckResponse::SERVING);
  CheckHealth(farm.address(), "no.such.Service", &st);
  CHECK(st.error_code() == grpc::StatusCode::NOT_FOUND);

  // reelctl health: exit status 0 when SERVING, 3 when nothing answers.
  int status = -1;
  std::string out = testing::Capture(farm.Reelctl() + " health 2>&1", &status);
  CHECK(status == 0);
  CHECK(out.find("SERVING") != std::string::npos);
  testing::Capture(std::string(REELFARM_REELCTL_BIN) + " --server 127.0.0.1:1 health 2>&1",
                   &status);
  CHECK(status == 3);

  // Reflection: the services are listed and JobService's file describes GetTaskLogs.
  auto refl = grpc::reflection::v1alpha::ServerReflection::NewStub(
      grpc::CreateChannel(farm.address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stream = refl->ServerReflectionInfo(&ctx);
  grpc::reflection::v1alpha::ServerReflectionRequest req;
  req.set_list_services("");
  REQUIRE(stream->Write(req));
  grpc::reflection::v1alpha::ServerReflectionResponse resp;
  REQUIRE(stream->Read(&resp));
  std::set<std::string> services;
  for (const auto& s : resp.list_services_response().service()) services.insert(s.name());
  CHECK(services.count("reelfarm.v1.JobService") == 1);
  CHECK(services.count("reelfarm.v1.WorkerService") == 1);
  CHECK(services.count("grpc.health.v1.Health") == 1);
  req.set_file_containing_symbol("reelfarm.v1.JobService");
  REQUIRE(stream->Write(req));
  REQUIRE(stream->Read(&resp));
  bool described = false;
  for (const auto& bytes : resp.file_descriptor_response().file_descriptor_proto()) {
    google::protobuf::FileDescriptorProto file;
    REQUIRE(file.ParseFromString(bytes));
    for (const auto& svc : file.service()) {
      if (svc.name() != "JobService") continue;
      CHECK(file.name() == "reelfarm/v1/jobs.proto");
      for (const auto& m : svc.method()) described |= m.name() == "GetTaskLogs";
    }
  }
  CHECK(described);
  stream->WritesDone();
  CHECK(stream->Finish().ok());

  // A worker answers NOT_SERVING while it warms its models (made slow here: 2 s per
  // model), is not connected to the server meanwhile, then turns SERVING.
  farm.StartWorker("w1", {"--frame-delay-ms", "2000"});
  const std::string worker_health = "127.0.0.1:" + std::to_string(farm.WorkerHealthPort("w1"));
  CHECK(CheckHealth(worker_health, "", &st) == grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  CHECK(st.ok());
  CHECK(Value(ParseMetrics(Farm::Scrape(farm.WorkerMetricsPort("w1"))), "reelfarm_worker_ready") ==
        0);
  {
    grpc::ClientContext list_ctx;
    v1::ListWorkersResponse workers;
    REQUIRE(farm.jobs().ListWorkers(&list_ctx, v1::ListWorkersRequest(), &workers).ok());
    CHECK(workers.workers_size() == 0);
  }
  auto state = grpc::health::v1::HealthCheckResponse::NOT_SERVING;
  for (int i = 0; i < 300 && state != grpc::health::v1::HealthCheckResponse::SERVING; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    state = CheckHealth(worker_health, "", &st);
  }
  CHECK(state == grpc::health::v1::HealthCheckResponse::SERVING);
  CHECK(Value(ParseMetrics(Farm::Scrape(farm.WorkerMetricsPort("w1"))), "reelfarm_worker_ready") ==
        1);
  farm.WaitForWorkers(1);
}

TEST_CASE("reelctl logs shows a failed task's LibTorch error and logs can be JSON",
          "[integration]") {
  testing::TempDir dir;
  testing::WriteFailsOnWideFramesModel(dir.path() / "models", "widefail");
  const std::string model_path = (dir.path() / "models").string();
  Farm farm(dir.path() / "farm", {"--model-path", model_path, "--log-format", "json"});
  testing::MakeTestClip(farm.storage() / "plates/l.mp4", 64, 36, 12);
  farm.StartWorker("w1", {"--model-path", model_path, "--log-format", "json"});
  farm.WaitForWorkers(1);

  v1::SubmitJobResponse resp;
  REQUIRE(
      farm.Submit(testing::UpscaleSpec("plates/l.mp4", "renders/l_x2.mp4", 12, "widefail"), &resp)
          .ok());
  v1::Job job = farm.WaitForJob(resp.job_id());
  REQUIRE(job.state() == v1::JOB_STATE_FAILED);
  const std::string id = std::to_string(resp.job_id());
  const std::string reelctl = farm.Reelctl() + " ";

  int status = -1;
  std::string out = testing::Capture(reelctl + "logs " + id + " 2>&1", &status);
  INFO("reelctl logs: " << out);
  CHECK(status == 0);
  CHECK(out.find("[task 0] [w1 attempt 1]") != std::string::npos);
  CHECK(out.find("task failed job=" + id + " task=0") != std::string::npos);
  CHECK(out.find("frame too wide for this test model") != std::string::npos);

  // One task; --follow on an ended job prints everything and returns.
  std::string one =
      testing::Capture("timeout 30 " + reelctl + "logs " + id + " --task 0 --follow 2>&1", &status);
  CHECK(status == 0);
  CHECK(one.find("frame too wide for this test model") != std::string::npos);
  std::string none = testing::Capture(reelctl + "logs " + id + " --task 1 2>&1", &status);
  CHECK(status == 0);  // the assemble task never ran: no lines
  CHECK(none.empty());
  std::string bad = testing::Capture(reelctl + "logs " + id + " --task 7 2>&1", &status);
  CHECK(status == 4);
  CHECK(bad.find("INVALID_ARGUMENT") != std::string::npos);
  testing::Capture(reelctl + "logs 999 2>&1", &status);
  CHECK(status == 4);

  // Kept on the server's disk, under its data folder.
  CHECK(fs::exists(farm.dir() / "logs" / id / "0.log"));

  // --follow on a job that is still running: returns once the job has ended, with the
  // lines of every task, the last one (assemble) included.
  v1::SubmitJobResponse ok;
  REQUIRE(farm.Submit(testing::UpscaleSpec("plates/l.mp4", "renders/l_ok.mp4", 6), &ok).ok());
  const std::string ok_id = std::to_string(ok.job_id());
  std::string followed =
      testing::Capture("timeout 60 " + reelctl + "logs " + ok_id + " --follow 2>&1", &status);
  INFO("reelctl logs --follow: " << followed);
  CHECK(status == 0);
  CHECK(farm.Get(ok.job_id()).state() == v1::JOB_STATE_SUCCEEDED);
  for (int t = 0; t < 3; ++t) {
    CHECK(followed.find("[task " + std::to_string(t) + "] [w1 attempt 1]") != std::string::npos);
    CHECK(followed.find("task done job=" + ok_id + " task=" + std::to_string(t)) !=
          std::string::npos);
  }

  // --log-format json: every line of both processes' logs is a JSON object, and the
  // failure carries the job and task ids as fields.
  bool found = false;
  for (const std::string log : {"server.log", "worker-w1.log"}) {
    std::ifstream in(farm.dir() / log);
    std::string line;
    int lines = 0;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      ++lines;
      nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      INFO(log << ": " << line);
      REQUIRE_FALSE(j.is_discarded());
      CHECK(j.contains("ts"));
      CHECK(j.contains("level"));
      if (j.value("msg", "").rfind("task failed", 0) == 0 && j.value("job", "") == id &&
          j.value("task", "") == "0") {
        found = true;
      }
    }
    CHECK(lines > 0);
  }
  CHECK(found);
}

// Issue 21, point 1: SubmitJob's probe is cached by the input's file identity, so a
// submit of a known input reads no media; a file rewritten in place is probed again.
TEST_CASE("a submit of an input already probed reads no media and a rewritten one is probed again",
          "[integration]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm", {"--metrics"});
  const fs::path clip = farm.storage() / "plates/p.mp4";
  testing::MakeTestClip(clip, 64, 36, 12);
  auto dry_run = [&](const std::string& output) {
    grpc::ClientContext ctx;
    v1::SubmitJobRequest req;
    *req.mutable_spec() = testing::UpscaleSpec("plates/p.mp4", output, 4);
    req.set_validate_only(true);
    v1::SubmitJobResponse resp;
    const grpc::Status st = farm.jobs().SubmitJob(&ctx, req, &resp);
    INFO(st.error_message());
    REQUIRE(st.ok());
    return resp.job();
  };
  auto lookups = [&](const std::string& result) {
    return Value(ParseMetrics(Farm::Scrape(farm.server_metrics_port())),
                 "reelfarm_input_probe_cache_lookups_total", {{"result", result}});
  };

  CHECK(dry_run("renders/a.mp4").input_info().frame_count() == 12);
  CHECK(lookups("miss") == 1);
  CHECK(lookups("hit") == -1);
  // The same file again, for another output: answered from the cache, same facts.
  const v1::Job again = dry_run("renders/b.mp4");
  CHECK(again.input_info().frame_count() == 12);
  CHECK(again.input_info().width() == 64);
  CHECK(again.tasks_total() == 4);  // 3 chunks of 4 frames + assemble
  CHECK(lookups("hit") == 1);
  CHECK(lookups("miss") == 1);

  // Rewritten in place (same path and inode) with 20 frames: a new identity.
  testing::MakeTestClip(clip, 64, 36, 20);
  CHECK(dry_run("renders/c.mp4").input_info().frame_count() == 20);
  CHECK(lookups("miss") == 2);
  v1::SubmitJobResponse resp;
  REQUIRE(farm.Submit(testing::UpscaleSpec("plates/p.mp4", "renders/d.mp4", 4), &resp).ok());
  CHECK(resp.job().input_info().frame_count() == 20);
  CHECK(resp.job().tasks_total() == 6);  // 5 chunks + assemble
  CHECK(lookups("hit") == 2);
  CHECK(lookups("miss") == 2);
}

// The SQLite store's WAL checkpoints on a real server's /metrics: a stream of submits
// fills the WAL to 2,500 pages and the checkpoint is due; the checkpointer copies the
// WAL whole in the first pause of the stream ("pause"), or, with none, copies the bulk
// ("background") and a submit after that pass copies the rest ("rest")
// (scheduler/sqlite_store.cc, Checkpointer).
TEST_CASE("a stream of submits shows the WAL's checkpoint passes on the server's /metrics",
          "[integration]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm", {"--metrics"});
  testing::MakeTestClip(farm.storage() / "plates/c.mp4", 64, 36, 2);
  const auto passes = [&](const std::string& pass) {
    return std::max(0.0,
                    Value(ParseMetrics(Farm::Scrape(farm.server_metrics_port())),
                          "reelfarm_store_checkpoint_duration_seconds_count", {{"pass", pass}}));
  };
  const auto submit = [&](int i) {
    v1::SubmitJobResponse resp;
    const grpc::Status st = farm.Submit(
        testing::UpscaleSpec("plates/c.mp4", "renders/c" + std::to_string(i) + ".mp4", 1), &resp);
    INFO(st.error_message());
    REQUIRE(st.ok());
  };
  CHECK(passes("background") + passes("pause") == 0);  // none before the WAL is long
  // Bursts of 50 submits, each followed by a pause of 100 ms.
  int submits = 0;
  while (submits < 2000 && passes("pause") + passes("rest") < 1) {
    for (int i = 0; i < 50; ++i) submit(submits++);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  INFO(submits << " submits");
  CHECK(submits >= 100);        // each writes a few WAL pages: the WAL reached 2,500 on the way
  CHECK(passes("pause") == 1);  // in a pause: no submit copied any of it
  CHECK(passes("rest") == 0);
  CHECK(passes("background") == 0);
  // Submits back to back: the bulk in the background, the rest by a submit after it
  // (or, where the stream stalls for a moment, as a scrape of /metrics may make it, the
  // rest or all of it in that pause).
  const int first = submits;
  while (submits < first + 4000 && (submits % 200 != 0 || passes("rest") + passes("pause") < 2)) {
    submit(submits++);
  }
  INFO(submits - first << " submits back to back; pause " << passes("pause") << ", background "
                       << passes("background") << ", rest " << passes("rest"));
  CHECK(passes("rest") + passes("pause") >= 2);  // copied again
  if (passes("rest") >= 1) {
    // The rest follows a copy of the bulk. Reported just after the pass's end lets a
    // commit copy the rest.
    for (int i = 0; i < 100 && passes("background") + passes("pause") < 2; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    CHECK(passes("background") + passes("pause") >= 2);
  }
  CHECK(passes("limit") == 0);
  CHECK(Value(ParseMetrics(Farm::Scrape(farm.server_metrics_port())),
              "reelfarm_store_errors_total") == -1);
}
