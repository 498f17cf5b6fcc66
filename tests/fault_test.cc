// Fault tests on real processes: the server killed mid-job and restarted, a worker
// that stalls without heartbeats and comes back with a stale result, cancellation
// reaching running tasks. Each ends with every job in the right state and complete
// outputs.
#include <signal.h>

#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <thread>
#include <utility>

#include "reelfarm/v1/workers.grpc.pb.h"

#include "tests/testing/checks.h"
#include "tests/testing/farm.h"
#include "tests/testing/fixtures.h"

namespace fs = std::filesystem;
using namespace reelfarm;
using testing::CheckUpscaledClip;
using testing::Farm;
using testing::UpscaleSpec;

namespace {

// Polls GetJob until `pred` holds (30 s at most).
template <typename Pred>
v1::Job WaitUntil(Farm& farm, int64_t id, Pred pred) {
  v1::Job job;
  for (int i = 0; i < 1500; ++i) {
    job = farm.Get(id);
    if (pred(job)) return job;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  farm.DumpLogs();
  FAIL("job " << id << " never reached the expected state");
  return job;
}

int CountTasks(const v1::Job& job, v1::TaskState state) {
  int n = 0;
  for (const auto& t : job.tasks()) n += t.state() == state;
  return n;
}

// The server's reelfarm_worker_unhealthy for `worker` (-1: no such sample).
double UnhealthyGauge(Farm& farm, const std::string& worker) {
  const std::string text = Farm::Scrape(farm.server_metrics_port());
  std::smatch m;
  const std::regex re("\\nreelfarm_worker_unhealthy\\{worker=\"" + worker + "\"\\} (\\S+)");
  return std::regex_search(text, m, re) ? std::stod(m[1]) : -1;
}

// The worker's entry in ListWorkers (empty if it is not connected).
v1::Worker FindWorker(Farm& farm, const std::string& name) {
  grpc::ClientContext ctx;
  v1::ListWorkersResponse resp;
  REQUIRE(farm.jobs().ListWorkers(&ctx, v1::ListWorkersRequest(), &resp).ok());
  for (const auto& w : resp.workers()) {
    if (w.name() == name) return w;
  }
  return {};
}

// A worker on the WorkerService stream that reports success for each assignment at
// once (no media work), and records what it was given: dispatch, not rendering, is
// under test.
class InstantWorker {
 public:
  InstantWorker(const std::string& address, std::string name) : name_(std::move(name)) {
    stub_ = v1::WorkerService::NewStub(
        grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
    thread_ = std::thread([this] { Run(); });
  }
  ~InstantWorker() {
    ctx_.TryCancel();
    thread_.join();
  }
  // (job id, task index) of every assignment, in the order received.
  std::vector<std::pair<int64_t, int>> assigned() {
    std::lock_guard<std::mutex> lock(mu_);
    return assigned_;
  }

 private:
  void Run() {
    auto stream = stub_->Connect(&ctx_);
    v1::WorkerMessage hello;
    hello.mutable_hello()->set_name(name_);
    hello.mutable_hello()->set_slots(1);
    hello.mutable_hello()->add_models("bicubic");
    if (!stream->Write(hello)) return;
    v1::ServerMessage msg;
    while (stream->Read(&msg)) {
      if (!msg.has_assignment()) continue;
      {
        std::lock_guard<std::mutex> lock(mu_);
        assigned_.emplace_back(msg.assignment().job_id(), msg.assignment().task_index());
      }
      v1::WorkerMessage result;
      result.mutable_result()->set_lease_id(msg.assignment().lease_id());
      result.mutable_result()->set_ok(true);
      result.mutable_result()->set_model_digest("builtin:bicubic");
      if (!stream->Write(result)) break;
    }
    stream->Finish();
  }

  std::string name_;
  std::unique_ptr<v1::WorkerService::Stub> stub_;
  grpc::ClientContext ctx_;
  std::mutex mu_;
  std::vector<std::pair<int64_t, int>> assigned_;
  std::thread thread_;
};

}  // namespace

TEST_CASE("the server killed with thousands of queued tasks keeps each queued, then runs each once",
          "[integration][fault]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm");
  testing::MakeTestClip(farm.storage() / "plates/long.mp4", 32, 32, 1200);
  // Three jobs of 1-frame chunks: 3 x (1200 chunks + 1 assembly), no worker yet.
  std::vector<int64_t> ids;
  std::map<int64_t, v1::Job> before;
  for (int j = 0; j < 3; ++j) {
    v1::SubmitJobResponse resp;
    REQUIRE(farm.Submit(UpscaleSpec("plates/long.mp4", "renders/l" + std::to_string(j) + ".mp4", 1),
                        &resp)
                .ok());
    ids.push_back(resp.job_id());
    before[resp.job_id()] = farm.Get(resp.job_id());
    REQUIRE(before[resp.job_id()].tasks_size() == 1201);
  }
  farm.RestartServerAfterKill();

  size_t queued = 0;
  for (int64_t id : ids) {
    INFO("job " << id);
    const v1::Job after = farm.Get(id);
    CHECK(after.state() == v1::JOB_STATE_QUEUED);
    REQUIRE(after.tasks_size() == before[id].tasks_size());
    for (int i = 0; i < after.tasks_size(); ++i) {
      const v1::Task& t = after.tasks(i);
      const v1::Task& was = before[id].tasks(i);
      CHECK(t.index() == i);
      CHECK(t.state() == v1::TASK_STATE_PENDING);
      CHECK(t.kind() == was.kind());
      CHECK(t.frame_begin() == was.frame_begin());
      CHECK(t.frame_end() == was.frame_end());
      queued += t.state() == v1::TASK_STATE_PENDING;
    }
  }
  CHECK(queued == 3 * 1201);

  // Every one is dispatched, exactly once, and the jobs succeed.
  InstantWorker worker(farm.address(), "instant");
  for (int64_t id : ids) {
    const v1::Job done = farm.WaitForJob(id);
    REQUIRE(done.state() == v1::JOB_STATE_SUCCEEDED);
    for (const v1::Task& t : done.tasks()) CHECK(t.attempts() == 1);
  }
  const auto assigned = worker.assigned();
  CHECK(assigned.size() == 3 * 1201);
  CHECK(std::set<std::pair<int64_t, int>>(assigned.begin(), assigned.end()).size() ==
        assigned.size());
}

TEST_CASE("the server killed mid-job restarts and loses nothing", "[integration][fault]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm");
  testing::MakeTestClip(farm.storage() / "plates/a.mp4", 320, 180, 96);
  testing::MakeTestClip(farm.storage() / "plates/b.mp4", 320, 180, 48);
  farm.StartWorker("w1", {"--frame-delay-ms", "25"});
  farm.StartWorker("w2", {"--frame-delay-ms", "25"});
  farm.WaitForWorkers(2);

  v1::SubmitJobResponse a;
  REQUIRE(farm.Submit(UpscaleSpec("plates/a.mp4", "renders/a.mp4", 12), &a).ok());
  // Some chunks done and two running when the server dies.
  v1::Job before = WaitUntil(farm, a.job_id(), [](const v1::Job& j) {
    return CountTasks(j, v1::TASK_STATE_SUCCEEDED) >= 2 &&
           CountTasks(j, v1::TASK_STATE_LEASED) == 2;
  });
  // A second job, acknowledged just before the kill. Its acknowledgement also means
  // that every change made before it (the leases seen above) is committed.
  v1::SubmitJobResponse b;
  REQUIRE(farm.Submit(UpscaleSpec("plates/b.mp4", "renders/b.mp4", 24), &b).ok());
  std::map<int, std::string> running;
  for (const auto& t : before.tasks()) {
    if (t.state() == v1::TASK_STATE_LEASED) running[t.index()] = t.worker();
  }
  farm.RestartServerAfterKill();

  v1::Job ja = farm.WaitForJob(a.job_id());
  v1::Job jb = farm.WaitForJob(b.job_id());
  REQUIRE(ja.state() == v1::JOB_STATE_SUCCEEDED);
  REQUIRE(jb.state() == v1::JOB_STATE_SUCCEEDED);
  // Finished chunks were not redone, and the leases running at the kill were honoured
  // when their workers reconnected: one attempt each, by the same worker.
  for (const auto& t : before.tasks()) {
    if (t.state() == v1::TASK_STATE_SUCCEEDED) CHECK(ja.tasks(t.index()).attempts() == 1);
  }
  for (const auto& [index, worker] : running) {
    INFO("task " << index);
    CHECK(ja.tasks(index).attempts() == 1);
    CHECK(ja.tasks(index).worker() == worker);
  }
  CheckUpscaledClip(farm.storage() / "plates/a.mp4", farm.storage() / "renders/a.mp4", 96,
                    "scale=640:360:flags=bicubic", 35.0);
  CheckUpscaledClip(farm.storage() / "plates/b.mp4", farm.storage() / "renders/b.mp4", 48,
                    "scale=640:360:flags=bicubic", 35.0);
}

TEST_CASE("a stalled worker loses its lease, and its late result is refused",
          "[integration][fault]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm", {"--lease-seconds", "2"});
  testing::MakeTestClip(farm.storage() / "plates/c.mp4", 320, 180, 48);
  farm.StartWorker("stalls", {"--frame-delay-ms", "40"});
  farm.WaitForWorkers(1);
  v1::SubmitJobResponse resp;
  REQUIRE(farm.Submit(UpscaleSpec("plates/c.mp4", "renders/c.mp4", 48), &resp).ok());
  // Mid-chunk, the worker stops (no heartbeats, no progress).
  WaitUntil(farm, resp.job_id(), [](const v1::Job& j) { return j.tasks(0).frames_done() > 4; });
  farm.KillWorker("stalls", SIGSTOP);
  farm.StartWorker("healthy");
  // The lease expires and the chunk moves to the healthy worker, which finishes the job.
  v1::Job job = farm.WaitForJob(resp.job_id());
  REQUIRE(job.state() == v1::JOB_STATE_SUCCEEDED);
  const v1::Task& t = job.tasks(0);
  REQUIRE(t.workers_size() == 2);
  CHECK(t.workers(0) == "stalls");
  CHECK(t.workers(1) == "healthy");
  CHECK(t.errors(0).find("lease expired") != std::string::npos);
  // The stalled worker wakes up: whatever it sends under its old lease is refused or
  // cancelled, and the published output stays the one that counted.
  farm.KillWorker("stalls", SIGCONT);
  for (int i = 0; i < 150; ++i) {
    const std::string log = farm.WorkerLog("stalls");
    if (log.find("cancel lease=") != std::string::npos ||
        log.find("refused the result") != std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const std::string log = farm.WorkerLog("stalls");
  CHECK((log.find("cancel lease=") != std::string::npos ||
         log.find("refused the result") != std::string::npos));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  CHECK(farm.Get(resp.job_id()).state() == v1::JOB_STATE_SUCCEEDED);
  CheckUpscaledClip(farm.storage() / "plates/c.mp4", farm.storage() / "renders/c.mp4", 48,
                    "scale=640:360:flags=bicubic", 35.0);
}

TEST_CASE("cancel stops running tasks within 2 s", "[integration][fault]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm");
  testing::MakeTestClip(farm.storage() / "plates/d.mp4", 320, 180, 96);
  farm.StartWorker("w1", {"--frame-delay-ms", "100"});
  farm.WaitForWorkers(1);
  v1::SubmitJobResponse resp;
  REQUIRE(farm.Submit(UpscaleSpec("plates/d.mp4", "renders/d.mp4", 96), &resp).ok());
  WaitUntil(farm, resp.job_id(), [](const v1::Job& j) { return j.tasks(0).frames_done() > 0; });
  grpc::ClientContext ctx;
  v1::CancelJobRequest req;
  req.set_job_id(resp.job_id());
  v1::Job cancelled;
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(farm.jobs().CancelJob(&ctx, req, &cancelled).ok());
  CHECK(cancelled.state() == v1::JOB_STATE_CANCELLED);
  // The worker logs the task's end when its pipeline has stopped.
  bool stopped = false;
  while (!stopped && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5)) {
    stopped = farm.WorkerLog("w1").find("task cancelled") != std::string::npos;
    if (!stopped) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  INFO("stopped after " << seconds << " s");
  CHECK(stopped);
  CHECK(seconds < 2.0);
  CHECK_FALSE(fs::exists(farm.storage() / "renders/d.mp4"));
}

// Issue 16, item 4: with --lease-seconds 3, a SIGSTOPped worker got the assemble task
// three times in a row and the job failed while a healthy worker was idle.
TEST_CASE(
    "a stopped worker's task goes to the healthy worker, and the stopped one is "
    "unhealthy until it heartbeats again",
    "[integration][fault]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm", {"--lease-seconds", "3", "--metrics"});
  testing::MakeTestClip(farm.storage() / "plates/s.mp4", 320, 180, 24);
  farm.StartWorker("sa");
  farm.StartWorker("sb");
  farm.WaitForWorkers(2);
  // sa stops while idle: the server cannot know, and offers work to workers in name
  // order, so sa gets the first task and holds it stopped.
  farm.KillWorker("sa", SIGSTOP);
  v1::SubmitJobResponse resp;
  REQUIRE(farm.Submit(UpscaleSpec("plates/s.mp4", "renders/s.mp4", 24), &resp).ok());
  const auto t0 = std::chrono::steady_clock::now();
  v1::Job job = farm.WaitForJob(resp.job_id(), std::chrono::seconds(60));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  INFO("job ended after " << seconds << " s: " << job.error());
  REQUIRE(job.state() == v1::JOB_STATE_SUCCEEDED);
  // The chunk: first on sa (lease expired), then on sb. The assemble: sb only.
  REQUIRE(job.tasks_size() == 2);
  const v1::Task& chunk = job.tasks(0);
  REQUIRE(chunk.workers_size() == 2);
  CHECK(chunk.workers(0) == "sa");
  CHECK(chunk.workers(1) == "sb");
  CHECK_THAT(chunk.errors(0), Catch::Contains("lease expired: worker 'sa'"));
  const v1::Task& assemble = job.tasks(1);
  CHECK(assemble.attempts() == 1);
  CHECK(assemble.worker() == "sb");
  CheckUpscaledClip(farm.storage() / "plates/s.mp4", farm.storage() / "renders/s.mp4", 24,
                    "scale=640:360:flags=bicubic", 35.0);
  // `reelctl get` says what happened.
  {
    int status = 0;
    const std::string out = testing::Capture(
        farm.Reelctl() + " get " + std::to_string(resp.job_id()) + " 2>&1", &status);
    INFO(out);
    CHECK(status == 0);
    CHECK_THAT(out, Catch::Contains("attempt 1 on sa: lease expired: worker 'sa' sent no "
                                    "heartbeat for 3 s"));
  }
  // sa is unhealthy: ListWorkers, `reelctl workers` and the metric say so.
  v1::Worker sa = FindWorker(farm, "sa");
  CHECK(sa.state() == "unhealthy");
  CHECK(sa.leases_expired() == 1);
  CHECK_THAT(sa.unhealthy_reason(),
             Catch::Contains("job " + std::to_string(resp.job_id()) + " task 0"));
  CHECK(FindWorker(farm, "sb").state() == "idle");
  {
    int status = 0;
    const std::string out = testing::Capture(farm.Reelctl() + " workers 2>&1", &status);
    INFO(out);
    CHECK(status == 0);
    CHECK(std::regex_search(out, std::regex("\nsa +unhealthy ")));
    CHECK(std::regex_search(out, std::regex("\nsb +idle ")));
    CHECK_THAT(out, Catch::Contains("1 lease(s) expired, no heartbeat since"));
  }
  CHECK(UnhealthyGauge(farm, "sa") == 1);
  CHECK(UnhealthyGauge(farm, "sb") == 0);
  // Woken up, sa heartbeats (its stale lease is cancelled) and is healthy again.
  farm.KillWorker("sa", SIGCONT);
  std::string state;
  for (int i = 0; i < 250 && state != "idle"; ++i) {
    state = FindWorker(farm, "sa").state();
    if (state != "idle") std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(state == "idle");
  CHECK(UnhealthyGauge(farm, "sa") == 0);
  // And it takes work again: a job offered to sa first runs there.
  v1::Job next = farm.RunToSuccess(UpscaleSpec("plates/s.mp4", "renders/s2.mp4", 24));
  CHECK(next.tasks(0).workers_size() == 1);
  CHECK(next.tasks(0).worker() == "sa");
}

namespace {

// The server's gauge `name` summed over its samples (-1: no sample).
double GaugeSum(Farm& farm, const std::string& name) {
  const std::string text = Farm::Scrape(farm.server_metrics_port());
  const std::regex re("\\n" + name + "\\{[^}]*\\} (\\S+)");
  double sum = -1;
  for (std::sregex_iterator it(text.begin(), text.end(), re), end; it != end; ++it) {
    sum = std::max(sum, 0.0) + std::stod((*it)[1]);
  }
  return sum;
}

}  // namespace

TEST_CASE("a held (prefetched) task shows as held, and when its worker dies another does it",
          "[integration][fault]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm", {"--metrics"});
  testing::MakeTestClip(farm.storage() / "plates/p.mp4", 320, 180, 48);
  // 24 frames of 150 ms: 3.6 s per chunk, so the held one is seen waiting.
  farm.StartWorker("holder", {"--frame-delay-ms", "150", "--prefetch", "1"});
  farm.WaitForWorkers(1);
  v1::SubmitJobResponse resp;
  REQUIRE(farm.Submit(UpscaleSpec("plates/p.mp4", "renders/p.mp4", 24), &resp).ok());
  // One task runs on the single slot, the next is held for it.
  v1::Job mid = WaitUntil(farm, resp.job_id(), [](const v1::Job& j) {
    int held = 0, running = 0;
    for (const auto& t : j.tasks()) {
      if (t.state() == v1::TASK_STATE_LEASED) ++(t.held() ? held : running);
    }
    return held == 1 && running == 1 && j.tasks(0).frames_done() > 0;
  });
  int held_index = -1;
  for (const auto& t : mid.tasks()) {
    if (t.held()) held_index = t.index();
  }
  REQUIRE(held_index == 1);
  CHECK(mid.tasks(held_index).worker() == "holder");
  CHECK(mid.tasks(held_index).frames_done() == 0);
  // Not counted as running: the gauges and `reelctl get` tell them apart.
  CHECK(GaugeSum(farm, "reelfarm_tasks_running") == 1);
  CHECK(GaugeSum(farm, "reelfarm_tasks_held") == 1);
  {
    int status = 0;
    const std::string out = testing::Capture(
        farm.Reelctl() + " get " + std::to_string(resp.job_id()) + " 2>&1", &status);
    INFO(out);
    CHECK(status == 0);
    CHECK(std::regex_search(out, std::regex("\n +1 +chunk +24-47 +held +1 +holder")));
    CHECK(std::regex_search(out, std::regex("\n +0 +chunk +0-23 +running +1 +holder")));
  }
  CHECK(FindWorker(farm, "holder").prefetch() == 1);

  // The worker dies holding both: its stream drops, both tasks go back to the queue
  // and a new worker does them.
  farm.KillWorker("holder", SIGKILL);
  farm.StartWorker("heir");
  v1::Job job = farm.WaitForJob(resp.job_id());
  REQUIRE(job.state() == v1::JOB_STATE_SUCCEEDED);
  const v1::Task& t = job.tasks(held_index);
  REQUIRE(t.workers_size() == 2);
  CHECK(t.workers(0) == "holder");
  CHECK(t.workers(1) == "heir");
  CHECK_THAT(t.errors(0), Catch::Contains("disconnected"));
  CHECK_FALSE(t.held());
  CheckUpscaledClip(farm.storage() / "plates/p.mp4", farm.storage() / "renders/p.mp4", 48,
                    "scale=640:360:flags=bicubic", 35.0);
  CHECK(GaugeSum(farm, "reelfarm_tasks_held") <= 0);
}

TEST_CASE(
    "a worker that reads batches gets its held leases in one message, in order, and its "
    "batched results are each applied and acknowledged once durable",
    "[integration][fault]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm");
  testing::MakeTestClip(farm.storage() / "plates/six.mp4", 32, 32, 6);
  auto stub = v1::WorkerService::NewStub(
      grpc::CreateChannel(farm.address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto stream = stub->Connect(&ctx);
  v1::WorkerMessage hello;
  hello.mutable_hello()->set_name("batcher");
  hello.mutable_hello()->set_slots(1);
  hello.mutable_hello()->set_prefetch(3);
  hello.mutable_hello()->add_models("bicubic");
  hello.mutable_hello()->set_batches(true);
  REQUIRE(stream->Write(hello));
  v1::ServerMessage msg;
  REQUIRE(stream->Read(&msg));
  REQUIRE(msg.has_welcome());
  CHECK(msg.welcome().batches());
  farm.WaitForWorkers(1);

  // 6 one-frame chunks and an assembly; the worker has room for 1 + 3.
  v1::SubmitJobResponse resp;
  REQUIRE(farm.Submit(UpscaleSpec("plates/six.mp4", "renders/six.mp4", 1), &resp).ok());
  REQUIRE(stream->Read(&msg));
  REQUIRE(msg.has_batch());
  REQUIRE(msg.batch().messages_size() == 4);
  std::vector<uint64_t> leases;
  for (int i = 0; i < 4; ++i) {
    const v1::ServerMessage& m = msg.batch().messages(i);
    REQUIRE(m.has_assignment());
    CHECK(m.assignment().job_id() == resp.job_id());
    CHECK(m.assignment().task_index() == i);
    if (!leases.empty()) CHECK(m.assignment().lease_id() > leases.back());
    leases.push_back(m.assignment().lease_id());
  }

  // Four results and one under a lease that is not current, in one message.
  const uint64_t stale = leases.back() + 1000;
  v1::WorkerMessage results;
  for (uint64_t id : {leases[0], leases[1], stale, leases[2], leases[3]}) {
    v1::TaskResult* r = results.mutable_batch()->add_messages()->mutable_result();
    r->set_lease_id(id);
    r->set_ok(true);
    r->set_model_digest("builtin:bicubic");
  }
  REQUIRE(stream->Write(results));
  // Each is answered once, the four accepted and the stale one refused; the room they
  // freed brings chunks 4 and 5.
  std::map<uint64_t, int> acks;
  std::map<uint64_t, bool> accepted;
  std::vector<int> next;
  const auto take = [&](const v1::ServerMessage& m) {
    if (m.has_ack()) {
      ++acks[m.ack().lease_id()];
      accepted[m.ack().lease_id()] = m.ack().accepted();
    }
    if (m.has_assignment()) next.push_back(m.assignment().task_index());
  };
  while (acks.size() < 5 || next.size() < 2) {
    REQUIRE(stream->Read(&msg));
    take(msg);
    for (const v1::ServerMessage& m : msg.batch().messages()) take(m);
  }
  for (uint64_t id : leases) {
    CHECK(acks[id] == 1);
    CHECK(accepted[id]);
  }
  CHECK(acks[stale] == 1);
  CHECK_FALSE(accepted[stale]);
  CHECK(next == std::vector<int>{4, 5});

  // Acknowledged means durable: a server killed now has the four chunks done.
  ctx.TryCancel();
  stream->Finish();
  farm.RestartServerAfterKill();
  v1::Job job = farm.Get(resp.job_id());
  REQUIRE(job.tasks_size() == 7);
  for (int i = 0; i < 4; ++i) {
    CHECK(job.tasks(i).state() == v1::TASK_STATE_SUCCEEDED);
    CHECK(job.tasks(i).attempts() == 1);
  }
  CHECK(job.tasks(4).state() != v1::TASK_STATE_SUCCEEDED);
}
