// Server unit tests without processes: ServerMetrics fed by a real Scheduler on a
// manual clock (counters, histograms, scrape-time gauges, retries and lease expiry),
// the timing store decorator, and the task log files.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>

#include <prometheus/registry.h>

#include "common/storage.h"
#include "scheduler/job_store.h"
#include "scheduler/scheduler.h"
#include "server/metrics.h"
#include "server/probe_cache.h"
#include "server/task_logs.h"
#include "server/timed_store.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/memory_store.h"

namespace reelfarm::server {
namespace {

using scheduler::ManualClock;

// The value of the sample of family `name` whose labels include `match`; -1 if none.
double Find(const std::vector<prometheus::MetricFamily>& families, const std::string& name,
            const std::map<std::string, std::string>& match = {},
            const std::string& field = "value") {
  for (const auto& f : families) {
    if (f.name != name) continue;
    for (const auto& m : f.metric) {
      bool ok = true;
      for (const auto& [k, v] : match) {
        bool has = false;
        for (const auto& l : m.label) has |= l.name == k && l.value == v;
        ok = ok && has;
      }
      if (!ok) continue;
      if (field == "count") return static_cast<double>(m.histogram.sample_count);
      switch (f.type) {
        case prometheus::MetricType::Counter:
          return m.counter.value;
        case prometheus::MetricType::Gauge:
          return m.gauge.value;
        default:
          return static_cast<double>(m.histogram.sample_count);
      }
    }
  }
  return -1;
}

scheduler::JobSpec Spec(const std::string& project) {
  scheduler::JobSpec s;
  s.project = project;
  s.upscale.input = "in.mp4";
  s.upscale.output = "out.mp4";
  s.upscale.model = "bicubic";
  s.upscale.chunk_frames = 10;
  s.max_attempts = 2;
  return s;
}

scheduler::MediaInfo Info(int64_t frames) {
  scheduler::MediaInfo m;
  m.width = 64;
  m.height = 36;
  m.frame_count = frames;
  m.fps_num = 24;
  return m;
}

}  // namespace

TEST_CASE("server metrics follow the scheduler: jobs, attempts, retries, expiry, gauges",
          "[unit][server]") {
  prometheus::Registry registry;
  ServerMetrics metrics(registry);
  TimedJobStore store(testing::NewInMemoryJobStore(), &metrics);
  ManualClock clock;
  scheduler::SchedulerOptions opts;
  opts.lease_ms = 1000;
  auto created = scheduler::Scheduler::Create(&store, &clock, opts, &metrics);
  REQUIRE(created.ok());
  scheduler::Scheduler& sched = **created;
  metrics.AttachScheduler(&sched);

  REQUIRE(sched.Submit(Spec("showA"), Info(20)).ok());  // 2 chunks + assemble
  auto gauges = metrics.stats_collectable()->Collect();
  CHECK(Find(gauges, "reelfarm_tasks_queued", {{"pool", "default"}, {"project", "showA"}}) == 3);
  CHECK(Find(gauges, "reelfarm_jobs_active", {{"project", "showA"}}) == 1);
  CHECK(Find(gauges, "reelfarm_workers", {{"state", "idle"}}) == 0);

  scheduler::WorkerInfo w1;
  w1.name = "w1";
  w1.models = {"bicubic"};
  sched.RegisterWorker(w1);
  auto a = sched.LeaseNext("w1");
  REQUIRE(a.has_value());
  clock.AdvanceMs(1500);  // past the lease: expires, queued again (attempt 1 of 2)
  REQUIRE(sched.ExpireLeases().size() == 1);
  // w1 sent no heartbeat for a whole lease: unhealthy until it sends one.
  gauges = metrics.stats_collectable()->Collect();
  CHECK(Find(gauges, "reelfarm_workers", {{"state", "unhealthy"}}) == 1);
  CHECK(Find(gauges, "reelfarm_workers", {{"state", "idle"}}) == 0);
  CHECK(Find(gauges, "reelfarm_worker_unhealthy", {{"worker", "w1"}}) == 1);
  CHECK_FALSE(sched.LeaseNext("w1").has_value());
  sched.Heartbeat("w1", {});
  gauges = metrics.stats_collectable()->Collect();
  CHECK(Find(gauges, "reelfarm_workers", {{"state", "unhealthy"}}) == 0);
  CHECK(Find(gauges, "reelfarm_workers", {{"state", "idle"}}) == 1);
  CHECK(Find(gauges, "reelfarm_worker_unhealthy", {{"worker", "w1"}}) == 0);

  // Then every task succeeds.
  scheduler::TaskOutcome ok;
  ok.ok = true;
  while (auto next = sched.LeaseNext("w1")) {
    gauges = metrics.stats_collectable()->Collect();
    CHECK(Find(gauges, "reelfarm_tasks_running", {{"project", "showA"}}) == 1);
    CHECK(Find(gauges, "reelfarm_workers", {{"state", "busy"}}) == 1);
    clock.AdvanceMs(200);
    REQUIRE(sched.Complete("w1", next->lease.id, ok).ok());
  }
  REQUIRE(sched.GetJob(1)->job.state == scheduler::JobState::kSucceeded);

  auto families = registry.Collect();
  CHECK(Find(families, "reelfarm_jobs_submitted_total",
             {{"kind", "upscale"}, {"project", "showA"}}) == 1);
  CHECK(Find(families, "reelfarm_jobs_finished_total",
             {{"project", "showA"}, {"state", "succeeded"}}) == 1);
  CHECK(Find(families, "reelfarm_lease_expirations_total") == 1);
  CHECK(Find(families, "reelfarm_task_retries_total", {{"kind", "chunk"}}) == 1);
  CHECK(Find(families, "reelfarm_task_attempts_total", {{"kind", "chunk"}, {"result", "failed"}}) ==
        1);
  CHECK(Find(families, "reelfarm_task_attempts_total",
             {{"kind", "chunk"}, {"result", "succeeded"}}) == 2);
  CHECK(Find(families, "reelfarm_task_attempts_total",
             {{"kind", "assemble"}, {"result", "succeeded"}}) == 1);
  CHECK(Find(families, "reelfarm_task_run_duration_seconds", {{"kind", "chunk"}}, "count") == 3);
  CHECK(Find(families, "reelfarm_task_queue_wait_seconds", {{"kind", "chunk"}}, "count") == 3);
  // One store call per group commit (the scheduler batches its writes).
  const double commits =
      Find(families, "reelfarm_store_commit_duration_seconds", {{"op", "commit"}}, "count");
  CHECK(commits >= 1);
  CHECK(commits == static_cast<double>(sched.GetStats().commit_batches));
  CHECK(Find(families, "reelfarm_store_errors_total") == -1);

  // Finished jobs leave the gauges; a detached collector reports nothing.
  gauges = metrics.stats_collectable()->Collect();
  CHECK(Find(gauges, "reelfarm_tasks_queued") == -1);
  metrics.AttachScheduler(nullptr);
  CHECK(metrics.stats_collectable()->Collect().empty());
}

TEST_CASE("a SQLite store's WAL checkpoints are timed by pass", "[unit][server]") {
  prometheus::Registry registry;
  ServerMetrics metrics(registry);
  reelfarm::testing::TempDir dir;
  // As the server opens it (server.cc).
  absl::StatusOr<std::unique_ptr<scheduler::JobStore>> store = scheduler::OpenSqliteJobStore(
      (dir.path() / "state.db").string(), [&metrics](const char* pass, double seconds, bool ok) {
        metrics.StoreCheckpoint(pass, seconds, ok);
      });
  REQUIRE(store.ok());
  const auto count = [&](const std::string& pass) {
    return Find(registry.Collect(), "reelfarm_store_checkpoint_duration_seconds", {{"pass", pass}},
                "count");
  };
  // Jobs of ~4 pages (their spec's name), back to back, until the WAL's 3,000 pages
  // start the background pass, and that pass has ended: the commit that finds 3,500
  // after it copies the rest. (A pause in the loop, a slow moment of the machine, lets
  // the checkpointer copy the WAL whole instead, "pause", and the WAL fills again.)
  int64_t id = 0;
  while (count("rest") < 1 && id < 20000) {
    scheduler::Job job;
    job.id = ++id;
    job.spec.name = std::string(15000, 'n');
    REQUIRE((*store)->Commit({{scheduler::JobStore::Write::Kind::kInsertJob, job, {}}}).ok());
  }
  CHECK(id >= 400);  // not before the WAL held 3,500 pages (at most 8 a commit)
  CHECK(count("rest") == 1);
  // Reported once the pass has ended, after the phase that lets a commit copy the rest.
  for (int i = 0; i < 500 && count("background") < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(count("background") >= 1);
  CHECK(count("background") <= 1 + std::max(0.0, count("pause")));
  // A pause: nothing is due (the WAL starts over at the commit after the rest).
  const double pauses = count("pause");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CHECK(count("pause") == pauses);
  CHECK(Find(registry.Collect(), "reelfarm_store_checkpoint_duration_seconds", {{"pass", "limit"}},
             "count") == -1);
  CHECK(Find(registry.Collect(), "reelfarm_store_errors_total") == -1);
}

TEST_CASE("gRPC calls are labelled by known method and code only", "[unit][server]") {
  prometheus::Registry registry;
  ServerMetrics metrics(registry);
  metrics.GrpcCall("/reelfarm.v1.JobService/SubmitJob", 3, 0.01);
  metrics.GrpcCall("/evil.Service/" + std::string(50, 'x'), 12, 0.01);
  auto families = registry.Collect();
  CHECK(Find(families, "reelfarm_grpc_requests_total",
             {{"service", "reelfarm.v1.JobService"},
              {"method", "SubmitJob"},
              {"code", "INVALID_ARGUMENT"}}) == 1);
  CHECK(Find(families, "reelfarm_grpc_requests_total",
             {{"service", "unknown"}, {"method", "unknown"}, {"code", "UNIMPLEMENTED"}}) == 1);
}

TEST_CASE("task logs: appended per task, read back from offsets, whole lines only",
          "[unit][server]") {
  testing::TempDir dir;
  TaskLogStore logs(dir.path());
  REQUIRE(logs.Append(7, 0, "[w1 attempt 1] ", {"first", "two\nlines"}).ok());
  REQUIRE(logs.Append(7, 2, "[w2 attempt 1] ", {"other task"}).ok());
  std::map<int, uint64_t> offsets;
  auto all = logs.ReadNew(7, std::nullopt, &offsets, 100);
  REQUIRE(all.size() == 2);
  CHECK(all[0].task_index == 0);
  CHECK(all[0].lines == std::vector<std::string>{"[w1 attempt 1] first", "[w1 attempt 1] two",
                                                 "[w1 attempt 1] lines"});
  CHECK(all[1].task_index == 2);
  CHECK(all[1].lines == std::vector<std::string>{"[w2 attempt 1] other task"});
  CHECK(logs.ReadNew(7, std::nullopt, &offsets, 100).empty());

  // A half-written line waits for its newline.
  std::ofstream(dir.path() / "7" / "0.log", std::ios::app) << "partial";
  CHECK(logs.ReadNew(7, 0, &offsets, 100).empty());
  std::ofstream(dir.path() / "7" / "0.log", std::ios::app) << " line\n";
  auto more = logs.ReadNew(7, 0, &offsets, 100);
  REQUIRE(more.size() == 1);
  CHECK(more[0].lines == std::vector<std::string>{"partial line"});

  // Long logs come back in pieces of at most max_lines.
  std::vector<std::string> many(25, "x");
  REQUIRE(logs.Append(8, 1, "", many).ok());
  std::map<int, uint64_t> fresh;
  auto pieces = logs.ReadNew(8, 1, &fresh, 10);
  REQUIRE(pieces.size() == 3);
  CHECK(pieces[2].lines.size() == 5);
  CHECK(logs.ReadNew(99, std::nullopt, &fresh, 10).empty());  // unknown job: nothing
}

}  // namespace reelfarm::server

namespace reelfarm {

TEST_CASE("a file rewritten in place has a new identity even with its old mtime put back",
          "[unit]") {
  testing::TempDir dir;
  const std::string path = (dir.path() / "plate.mp4").string();
  std::ofstream(path) << "first";
  auto identity = [&] {
    common::UniqueFd fd(open(path.c_str(), O_RDONLY));
    REQUIRE(fd.get() >= 0);
    auto id = server::FileIdentity::Of(fd.get());
    REQUIRE(id.ok());
    return *id;
  };
  const server::FileIdentity before = identity();
  CHECK(identity() == before);
  struct stat st;
  REQUIRE(stat(path.c_str(), &st) == 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::ofstream(path) << "other";  // same size
  const timespec times[2] = {st.st_atim, st.st_mtim};
  REQUIRE(utimensat(AT_FDCWD, path.c_str(), times, 0) == 0);
  const server::FileIdentity after = identity();
  CHECK(after.size == before.size);
  CHECK(after.mtime_ns == before.mtime_ns);
  CHECK_FALSE(after == before);  // the ctime moved
}

TEST_CASE("the probe cache keeps the most recently used inputs and counts its lookups", "[unit]") {
  int hits = 0, misses = 0;
  server::ProbeCache cache([&](bool hit) { ++(hit ? hits : misses); }, /*capacity=*/2);
  auto id = [](ino_t inode) {
    server::FileIdentity f;
    f.inode = inode;
    return f;
  };
  media::VideoInfo info;
  for (ino_t i : {1, 2}) {
    info.frame_count = 10 * i;
    cache.Insert(id(i), info);
  }
  REQUIRE(cache.Find(id(1)).has_value());  // 1 is now the most recent
  info.frame_count = 30;
  cache.Insert(id(3), info);  // drops 2, the least recently used
  CHECK(cache.size() == 2);
  CHECK_FALSE(cache.Find(id(2)).has_value());
  CHECK(cache.Find(id(1))->frame_count == 10);
  CHECK(cache.Find(id(3))->frame_count == 30);
  CHECK(hits == 3);
  CHECK(misses == 1);
  CHECK(cache.hits() == 3);
  CHECK(cache.misses() == 1);
}

TEST_CASE("the probe cache counts no miss for a lookup that will be made again", "[unit]") {
  // SubmitJob looks an input up on gRPC's thread first (no media I/O there); on a miss
  // it admits the job again on its executor, whose lookup is the one counted.
  int hits = 0, misses = 0;
  server::ProbeCache cache([&](bool hit) { ++(hit ? hits : misses); });
  server::FileIdentity f;
  f.inode = 7;
  CHECK_FALSE(cache.Find(f, /*count_miss=*/false).has_value());
  CHECK(cache.misses() == 0);
  CHECK(misses == 0);
  CHECK_FALSE(cache.Find(f).has_value());
  CHECK(cache.misses() == 1);
  media::VideoInfo info;
  info.frame_count = 5;
  cache.Insert(f, info);
  REQUIRE(cache.Find(f, /*count_miss=*/false).has_value());
  CHECK(cache.hits() == 1);
  CHECK(hits == 1);
  CHECK(misses == 1);
}

}  // namespace reelfarm
