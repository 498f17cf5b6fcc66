// Scheduler unit tests: chunking, leasing, lease expiry on a manual clock, fencing of
// stale results, retries, cancellation and restart. No gRPC, no media.
#include <catch2/catch.hpp>

#include <set>

#include "scheduler/scheduler.h"
#include "scheduler/wedge.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/memory_store.h"

namespace reelfarm::scheduler {
namespace {

JobSpec Spec(int chunk, const std::string& model = "bicubic") {
  JobSpec s;
  s.name = "shot";
  s.upscale.input = "in.mp4";
  s.upscale.output = "out.mp4";
  s.upscale.model = model;
  s.upscale.scale = 2;
  s.upscale.chunk_frames = chunk;
  return s;
}

MediaInfo Info(int64_t frames) {
  MediaInfo m;
  m.width = 320;
  m.height = 180;
  m.frame_count = frames;
  m.fps_num = 24;
  return m;
}

WorkerInfo Worker(const std::string& name, int slots = 1,
                  std::vector<std::string> models = {"bicubic"}) {
  WorkerInfo w;
  w.name = name;
  w.slots = slots;
  w.models = std::move(models);
  return w;
}

struct Fixture {
  std::unique_ptr<JobStore> store = testing::NewInMemoryJobStore();
  ManualClock clock;
  std::unique_ptr<Scheduler> sched;
  explicit Fixture(SchedulerOptions o = {}) {
    auto s = Scheduler::Create(store.get(), &clock, o);
    REQUIRE(s.ok());
    sched = std::move(*s);
  }
};

TaskOutcome Ok() {
  TaskOutcome o;
  o.ok = true;
  o.model_digest = "builtin:bicubic";
  return o;
}

}  // namespace

TEST_CASE("chunks cover every frame exactly once, in order", "[unit][scheduler]") {
  for (int64_t frames : {1, 7, 24, 96, 97, 1000}) {
    for (int64_t chunk : {1, 5, 24, 48, 2000}) {
      auto ranges = SplitIntoChunks(frames, chunk);
      std::vector<int> seen(frames, 0);
      int64_t expect_begin = 0;
      for (const auto& r : ranges) {
        CHECK(r.begin == expect_begin);
        CHECK(r.end > r.begin);
        CHECK(r.end - r.begin <= chunk);
        for (int64_t f = r.begin; f < r.end; ++f) seen[f]++;
        expect_begin = r.end;
      }
      CHECK(expect_begin == frames);
      CHECK(std::all_of(seen.begin(), seen.end(), [](int n) { return n == 1; }));
      CHECK(ranges.size() == static_cast<size_t>((frames + chunk - 1) / chunk));
    }
  }
  CHECK(SplitIntoChunks(10, 0).empty());
}

TEST_CASE("a job is chunk tasks then one assemble task, leased in order", "[unit][scheduler]") {
  Fixture f;
  auto v = f.sched->Submit(Spec(24), Info(96));
  REQUIRE(v.ok());
  REQUIRE(v->tasks.size() == 5);
  CHECK(v->tasks[4].kind == TaskKind::kAssemble);
  CHECK(v->frames_total == 96);
  f.sched->RegisterWorker(Worker("w1", 8));
  std::vector<Assignment> got;
  while (auto a = f.sched->LeaseNext("w1")) got.push_back(*a);
  // The assemble task waits for the chunks.
  REQUIRE(got.size() == 4);
  for (int i = 0; i < 4; ++i) {
    CHECK(got[i].task.index == i);
    CHECK(got[i].task.frame_begin == i * 24);
    CHECK(got[i].segment == SegmentPath(v->job.id, i, got[i].lease.id));
  }
  CHECK(f.sched->GetJob(v->job.id)->job.state == JobState::kRunning);
  for (auto& a : got) REQUIRE(f.sched->Complete("w1", a.lease.id, Ok()).ok());
  auto assemble = f.sched->LeaseNext("w1");
  REQUIRE(assemble);
  CHECK(assemble->task.kind == TaskKind::kAssemble);
  REQUIRE(assemble->segments.size() == 4);
  for (int i = 0; i < 4; ++i) CHECK(assemble->segments[i] == got[i].segment);
  CHECK(assemble->provenance_json.find("builtin:bicubic") != std::string::npos);
  REQUIRE(f.sched->Complete("w1", assemble->lease.id, Ok()).ok());
  auto done = f.sched->GetJob(v->job.id);
  CHECK(done->job.state == JobState::kSucceeded);
  CHECK(done->frames_done == 96);
  CHECK(done->tasks_done == 5);
}

TEST_CASE("a worker gets at most its slots and only models it has", "[unit][scheduler]") {
  Fixture f;
  REQUIRE(f.sched->Submit(Spec(10), Info(100)).ok());
  f.sched->RegisterWorker(Worker("two", 2));
  f.sched->RegisterWorker(Worker("other", 4, {"espcn"}));
  CHECK(f.sched->LeaseNext("two"));
  CHECK(f.sched->LeaseNext("two"));
  CHECK_FALSE(f.sched->LeaseNext("two"));
  CHECK_FALSE(f.sched->LeaseNext("other"));
  CHECK_FALSE(f.sched->LeaseNext("unknown"));
}

TEST_CASE("an expired lease puts the task back in the queue", "[unit][scheduler]") {
  SchedulerOptions o;
  o.lease_ms = 10'000;
  Fixture f(o);
  auto v = f.sched->Submit(Spec(50), Info(100));
  REQUIRE(v.ok());
  f.sched->RegisterWorker(Worker("w1"));
  f.sched->RegisterWorker(Worker("w2"));
  auto a = f.sched->LeaseNext("w1");
  REQUIRE(a);

  // Heartbeats renew the lease: 3 × 6 s is past the original deadline.
  for (int i = 0; i < 3; ++i) {
    f.clock.AdvanceMs(6'000);
    CHECK(f.sched->Heartbeat("w1", {a->lease.id}).empty());
    CHECK(f.sched->ExpireLeases().empty());
  }
  // Silence past the lease duration expires it.
  f.clock.AdvanceMs(9'999);
  CHECK(f.sched->ExpireLeases().empty());
  f.clock.AdvanceMs(2);
  auto expired = f.sched->ExpireLeases();
  REQUIRE(expired.size() == 1);
  CHECK(expired[0].id == a->lease.id);
  auto view = f.sched->GetJob(v->job.id);
  CHECK(view->tasks[0].state == TaskState::kPending);
  CHECK(view->tasks[0].error.find("lease expired") != std::string::npos);
  // The revoked lease is handed to the server to tell the worker.
  auto revoked = f.sched->TakeRevoked();
  REQUIRE(revoked.size() == 1);
  CHECK(revoked[0].worker == "w1");
  // w1 is still busy in its own view but holds no lease: the task goes to w2 as
  // attempt 2 with a new lease id.
  auto b = f.sched->LeaseNext("w2");
  REQUIRE(b);
  CHECK(b->task.index == 0);
  CHECK(b->lease.attempt == 2);
  CHECK(b->lease.id != a->lease.id);
  CHECK(f.sched->GetJob(v->job.id)->tasks[0].workers == std::vector<std::string>{"w1", "w2"});
  // A heartbeat for the old lease reports it as stale.
  CHECK(f.sched->Heartbeat("w1", {a->lease.id}) == std::vector<uint64_t>{a->lease.id});
}

TEST_CASE("a result under a stale lease is refused (fencing)", "[unit][scheduler]") {
  SchedulerOptions o;
  o.lease_ms = 1'000;
  Fixture f(o);
  auto v = f.sched->Submit(Spec(100), Info(100));
  f.sched->RegisterWorker(Worker("zombie"));
  f.sched->RegisterWorker(Worker("w2"));
  auto a = f.sched->LeaseNext("zombie");
  REQUIRE(a);
  f.clock.AdvanceMs(1'001);
  REQUIRE(f.sched->ExpireLeases().size() == 1);
  auto b = f.sched->LeaseNext("w2");
  REQUIRE(b);

  TaskOutcome late = Ok();
  late.model_digest = "zombie-digest";
  absl::Status st = f.sched->Complete("zombie", a->lease.id, late);
  CHECK(st.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(st.message().find("not current") != absl::string_view::npos);
  // Nor may it steal the new lease by naming it.
  CHECK(f.sched->Complete("zombie", b->lease.id, late).code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(f.sched->ReportProgress("zombie", a->lease.id, 10).code() ==
        absl::StatusCode::kFailedPrecondition);

  REQUIRE(f.sched->Complete("w2", b->lease.id, Ok()).ok());
  auto view = f.sched->GetJob(v->job.id);
  CHECK(view->tasks[0].state == TaskState::kSucceeded);
  CHECK(view->tasks[0].model_digest == "builtin:bicubic");
}

TEST_CASE("a worker that disconnects releases its tasks at once", "[unit][scheduler]") {
  Fixture f;
  auto v = f.sched->Submit(Spec(10), Info(20));
  f.sched->RegisterWorker(Worker("w1", 2));
  auto a = f.sched->LeaseNext("w1");
  auto b = f.sched->LeaseNext("w1");
  REQUIRE((a && b));
  f.sched->UnregisterWorker("w1");
  auto view = f.sched->GetJob(v->job.id);
  CHECK(view->tasks[0].state == TaskState::kPending);
  CHECK(view->tasks[1].state == TaskState::kPending);
  CHECK(view->tasks[0].error.find("disconnected") != std::string::npos);
  CHECK(f.sched->Complete("w1", a->lease.id, Ok()).code() == absl::StatusCode::kFailedPrecondition);
  CHECK(f.sched->ListWorkers().empty());
}

TEST_CASE("retryable failures retry up to max_attempts, then the job fails", "[unit][scheduler]") {
  Fixture f;
  JobSpec spec = Spec(10);
  spec.max_attempts = 2;
  auto v = f.sched->Submit(spec, Info(20));
  f.sched->RegisterWorker(Worker("w1"));
  TaskOutcome io;
  io.ok = false;
  io.retryable = true;
  io.error = "disk full";
  auto a = f.sched->LeaseNext("w1");
  REQUIRE(f.sched->Complete("w1", a->lease.id, io).ok());
  CHECK(f.sched->GetJob(v->job.id)->job.state == JobState::kRunning);
  auto b = f.sched->LeaseNext("w1");
  REQUIRE(b);
  CHECK(b->task.index == 0);
  REQUIRE(f.sched->Complete("w1", b->lease.id, io).ok());
  auto view = f.sched->GetJob(v->job.id);
  CHECK(view->job.state == JobState::kFailed);
  CHECK(view->job.error.find("task 0 (frames 0-9)") != std::string::npos);
  CHECK(view->job.error.find("after 2 attempts") != std::string::npos);
  CHECK(view->job.error.find("disk full") != std::string::npos);
  CHECK(view->tasks[0].state == TaskState::kFailed);
  CHECK_FALSE(f.sched->LeaseNext("w1"));
}

TEST_CASE("a non-retryable failure fails the job at once", "[unit][scheduler]") {
  Fixture f;
  auto v = f.sched->Submit(Spec(10), Info(30));
  f.sched->RegisterWorker(Worker("w1", 3));
  auto a = f.sched->LeaseNext("w1");
  auto b = f.sched->LeaseNext("w1");
  TaskOutcome bad;
  bad.ok = false;
  bad.retryable = false;
  bad.error = "frame 3: corrupt";
  REQUIRE(f.sched->Complete("w1", a->lease.id, bad).ok());
  auto view = f.sched->GetJob(v->job.id);
  CHECK(view->job.state == JobState::kFailed);
  CHECK(view->job.error.find("not retryable") != std::string::npos);
  CHECK(view->job.error.find("w1") != std::string::npos);
  // The job's other lease is revoked.
  auto revoked = f.sched->TakeRevoked();
  REQUIRE(revoked.size() == 1);
  CHECK(revoked[0].id == b->lease.id);
}

TEST_CASE("cancel ends the job and revokes its leases", "[unit][scheduler]") {
  Fixture f;
  auto v = f.sched->Submit(Spec(10), Info(30));
  f.sched->RegisterWorker(Worker("w1"));
  auto a = f.sched->LeaseNext("w1");
  REQUIRE(a);
  auto c = f.sched->Cancel(v->job.id);
  REQUIRE(c.ok());
  CHECK(c->job.state == JobState::kCancelled);
  CHECK(f.sched->TakeRevoked().size() == 1);
  CHECK(f.sched->Complete("w1", a->lease.id, Ok()).code() == absl::StatusCode::kFailedPrecondition);
  CHECK_FALSE(f.sched->LeaseNext("w1"));
  CHECK(f.sched->Cancel(v->job.id).status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(f.sched->Cancel(999).status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("higher priority jobs are leased first", "[unit][scheduler]") {
  Fixture f;
  JobSpec low = Spec(10), high = Spec(10);
  low.priority = 10;
  high.priority = 90;
  auto l = f.sched->Submit(low, Info(10));
  auto h = f.sched->Submit(high, Info(10));
  f.sched->RegisterWorker(Worker("w1"));
  auto a = f.sched->LeaseNext("w1");
  REQUIRE(a);
  CHECK(a->lease.job_id == h->job.id);
}

TEST_CASE("a restarted scheduler reloads jobs and honours leases of returning workers",
          "[unit][scheduler]") {
  reelfarm::testing::TempDir dir;
  const std::string db = (dir.path() / "state.db").string();
  ManualClock clock;
  int64_t job_id = 0;
  uint64_t lease1 = 0, lease2 = 0;
  {
    auto store = OpenSqliteJobStore(db);
    REQUIRE(store.ok());
    auto sched = Scheduler::Create(store->get(), &clock, {});
    REQUIRE(sched.ok());
    auto v = (*sched)->Submit(Spec(10), Info(30));
    job_id = v->job.id;
    (*sched)->RegisterWorker(Worker("w1"));
    (*sched)->RegisterWorker(Worker("w2"));
    auto a = (*sched)->LeaseNext("w1");
    REQUIRE((*sched)->Complete("w1", a->lease.id, Ok()).ok());
    lease1 = (*sched)->LeaseNext("w1")->lease.id;
    lease2 = (*sched)->LeaseNext("w2")->lease.id;
    // Complete waits for the commit; the later leases are committed when the
    // scheduler (and its commit queue) goes away, as on a clean stop. A crash before
    // their commit would leave the tasks pending, which is also safe.
  }
  clock.AdvanceMs(1);
  auto store = OpenSqliteJobStore(db);
  REQUIRE(store.ok());
  auto sched = Scheduler::Create(store->get(), &clock, {});
  REQUIRE(sched.ok());
  auto view = (*sched)->GetJob(job_id);
  REQUIRE(view.ok());
  CHECK(view->job.state == JobState::kRunning);
  CHECK(view->tasks[0].state == TaskState::kSucceeded);
  CHECK(view->tasks[1].state == TaskState::kLeased);
  CHECK(view->tasks[2].state == TaskState::kLeased);
  CHECK(view->frames_done == 10);

  // w1 comes back still running its task: the lease holds and its result counts.
  CHECK((*sched)->RegisterWorker(Worker("w1"), {lease1}).empty());
  CHECK((*sched)->Complete("w1", lease1, Ok()).ok());
  // w2 comes back without its task (it restarted): the task is queued again, and a
  // lease it does not hold is refused.
  CHECK((*sched)->RegisterWorker(Worker("w2"), {999}) == std::vector<uint64_t>{999});
  view = (*sched)->GetJob(job_id);
  CHECK(view->tasks[1].state == TaskState::kSucceeded);
  CHECK(view->tasks[2].state == TaskState::kPending);
  CHECK(view->tasks[2].errors.back().find("restarted") != std::string::npos);
  CHECK((*sched)->Complete("w2", lease2, Ok()).code() == absl::StatusCode::kFailedPrecondition);
  // The task failed on w2, so w1 (which can take it) gets it.
  CHECK_FALSE((*sched)->LeaseNext("w2"));
  auto c = (*sched)->LeaseNext("w1");
  REQUIRE(c);
  CHECK(c->task.index == 2);
  CHECK(c->lease.id > std::max(lease1, lease2));
}

TEST_CASE("a wedge expands prompts x seeds x parameters in a fixed order, named takes",
          "[unit][generate]") {
  GenerateSpec g;
  g.prompts = {"red circle", "blue square"};
  g.seeds = {1, 2, 3};
  g.guidance_scales = {2.0, 4.0};
  g.steps = 20;
  g.sampler = "euler";
  g.output = "gen/sh010.####.png";
  std::vector<Take> takes = ExpandWedge("sh010", g);
  REQUIRE(takes.size() == 12);
  CHECK(WedgeSize(g) == 12);
  CHECK(takes[0].name == "sh010_take001");
  CHECK(takes[0].output == "gen/sh010_take001.####.png");
  CHECK(takes[11].name == "sh010_take012");
  // Prompts outermost, then seeds, then guidance.
  CHECK(takes[1].prompt == "red circle");
  CHECK(takes[1].seed == 1);
  CHECK(takes[1].guidance_scale == 4.0);
  CHECK(takes[2].seed == 2);
  CHECK(takes[6].prompt == "blue square");
  CHECK(takes[0].varying == std::vector<std::string>{"prompt", "seed", "guidance_scale"});
  CHECK(takes[5].steps == 20);

  GenerateSpec list;
  list.prompt = "red circle";
  list.seeds = {9};
  list.steps = 10;
  list.output = "gen/{take}/f.####.png";
  GenerateTake a, b;
  b.seed = 4;
  b.sampler = "ddim";
  list.takes = {a, b};
  takes = ExpandWedge("look", list);
  REQUIRE(takes.size() == 2);
  CHECK(takes[0].seed == 9);
  CHECK(takes[1].seed == 4);
  CHECK(takes[1].sampler == "ddim");
  CHECK(takes[1].output == "gen/look_take002/f.####.png");
  CHECK(takes[0].varying == std::vector<std::string>{"seed", "sampler"});
  CHECK(TakeOutput("renders/plate.mov", "x_take003") == "renders/x_take003.mov");
}

namespace {

WorkerInfo Prefetching(const std::string& name, int slots, int prefetch) {
  WorkerInfo w = Worker(name, slots);
  w.prefetch = prefetch;
  return w;
}

// A JobStore that records the writes of each Commit (one entry per batch) and passes
// them on to an in-memory store.
class RecordingStore final : public JobStore {
 public:
  absl::StatusOr<int64_t> CreateJob(const Job& job, const std::vector<Task>& tasks) override {
    return inner_->CreateJob(job, tasks);
  }
  absl::Status Commit(const std::vector<Write>& writes) override {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](bool* held) { return !*held; }, &held_));
      batches_.push_back(writes);
    }
    return inner_->Commit(writes);
  }
  // While held, commits wait (nothing becomes durable).
  void Hold(bool held) {
    absl::MutexLock lock(&mu_);
    held_ = held;
  }
  absl::StatusOr<Snapshot> LoadAll() override { return inner_->LoadAll(); }
  std::vector<std::vector<Write>> batches() {
    absl::MutexLock lock(&mu_);
    return batches_;
  }

 private:
  std::unique_ptr<JobStore> inner_ = testing::NewInMemoryJobStore();
  absl::Mutex mu_;
  std::vector<std::vector<Write>> batches_ ABSL_GUARDED_BY(mu_);
  bool held_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

TEST_CASE("a submit wakes the dispatcher only when a worker has room or the job waits",
          "[unit][scheduler]") {
  Fixture f;
  // No worker: nothing for a dispatcher pass to do.
  uint64_t seen = f.sched->version();
  REQUIRE(f.sched->Submit(Spec(10), Info(20)).ok());
  CHECK(f.sched->version() == seen);
  // A worker with a free slot: woken, and the pass leases it the first job's task.
  f.sched->RegisterWorker(Worker("w1", 1));
  seen = f.sched->version();
  REQUIRE(f.sched->Submit(Spec(10), Info(20)).ok());
  CHECK(f.sched->version() > seen);
  CHECK(f.sched->WaitForChange(seen, 0) > seen);
  auto lease = f.sched->LeaseNext("w1");
  REQUIRE(lease);
  // Every slot taken: not woken.
  seen = f.sched->version();
  auto full = f.sched->Submit(Spec(10), Info(20));
  REQUIRE(full.ok());
  CHECK(f.sched->version() == seen);
  // A job that waits (its input not yet probed) is always woken for.
  seen = f.sched->version();
  REQUIRE(f.sched->Submit(Spec(10), std::nullopt).ok());
  CHECK(f.sched->version() > seen);
  // The job submitted while the farm was full is leased as the worker's slot frees
  // (each result is followed by the worker's next lease), after the older jobs' tasks.
  bool reached = false;
  for (int i = 0; i < 12 && lease && !reached; ++i) {
    REQUIRE(f.sched->Complete("w1", lease->lease.id, Ok()).ok());
    lease = f.sched->LeaseNext("w1");
    reached = lease && lease->lease.job_id == full->job.id;
  }
  CHECK(reached);
}

TEST_CASE("a worker with a prefetch holds slots x (1 + prefetch) leases, the extra ones held",
          "[unit][scheduler]") {
  Fixture f;
  auto v = f.sched->Submit(Spec(1), Info(10));
  REQUIRE(v.ok());
  f.sched->RegisterWorker(Prefetching("w1", 2, 1));
  std::vector<Assignment> got;
  while (auto a = f.sched->LeaseNext("w1")) got.push_back(*a);
  REQUIRE(got.size() == 4);
  // The first two run (two slots), the next two wait for a slot.
  CHECK_FALSE(got[0].lease.held);
  CHECK_FALSE(got[1].lease.held);
  CHECK(got[2].lease.held);
  CHECK(got[3].lease.held);
  // Shown as held, not running: in the job's view and in the counts for metrics.
  auto view = f.sched->GetJob(v->job.id);
  CHECK(view->tasks[2].state == TaskState::kLeased);
  CHECK(view->task_held == std::vector<bool>{false, false, true, true, false, false, false, false,
                                             false, false, false});
  auto stats = f.sched->GetStats();
  CHECK(stats.projects["default"].tasks_running == 2);
  CHECK(stats.projects["default"].tasks_held == 2);
  CHECK(stats.projects["default"].tasks_queued == 7);  // 6 chunks and the assembly
  CHECK(stats.workers_busy == 1);

  // A slot frees: the held assignment it got first starts there.
  REQUIRE(f.sched->Complete("w1", got[1].lease.id, Ok()).ok());
  view = f.sched->GetJob(v->job.id);
  CHECK_FALSE(view->task_held[2]);
  CHECK(view->task_held[3]);
  stats = f.sched->GetStats();
  CHECK(stats.projects["default"].tasks_running == 2);
  CHECK(stats.projects["default"].tasks_held == 1);
  // Room for one more, held again.
  auto next = f.sched->LeaseNext("w1");
  REQUIRE(next);
  CHECK(next->lease.held);
  CHECK_FALSE(f.sched->LeaseNext("w1"));

  // Without a prefetch a worker holds only its slots.
  f.sched->RegisterWorker(Worker("w2", 2));
  CHECK(f.sched->LeaseNext("w2"));
  CHECK(f.sched->LeaseNext("w2"));
  CHECK_FALSE(f.sched->LeaseNext("w2"));
}

TEST_CASE("a result and the worker's next lease are committed in one batch", "[unit][scheduler]") {
  RecordingStore store;
  ManualClock clock;
  auto s = Scheduler::Create(&store, &clock, {});
  REQUIRE(s.ok());
  Scheduler& sched = **s;
  auto v = sched.Submit(Spec(1), Info(3));
  REQUIRE(v.ok());
  sched.RegisterWorker(Prefetching("w1", 1, 1));
  auto a = sched.LeaseNext("w1");
  auto b = sched.LeaseNext("w1");
  REQUIRE((a && b));
  CHECK(b->lease.held);

  absl::Mutex mu;
  bool answered = false;
  absl::Status answer;
  std::vector<Assignment> next;
  sched.CompleteAsync(
      "w1", a->lease.id, Ok(),
      [&](const absl::Status& st) {
        absl::MutexLock lock(&mu);
        answer = st;
        answered = true;
      },
      &next);
  // The result freed a slot: b runs, and the room is filled at once.
  REQUIRE(next.size() == 1);
  CHECK(next[0].task.index == 2);
  CHECK(next[0].lease.held);
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(&answered));
    CHECK(answer.ok());
  }
  // The batch that made the result durable also holds the new lease.
  bool together = false;
  for (const auto& batch : store.batches()) {
    bool result = false, lease = false;
    for (const auto& w : batch) {
      if (w.kind != JobStore::Write::Kind::kUpdateTask) continue;
      result |= w.task.index == 0 && w.task.state == TaskState::kSucceeded;
      lease |= w.task.index == 2 && w.task.state == TaskState::kLeased &&
               w.task.lease_id == next[0].lease.id;
    }
    together |= result && lease;
  }
  CHECK(together);
  auto snap = store.LoadAll();
  REQUIRE(snap.ok());
  CHECK(snap->tasks[0].state == TaskState::kSucceeded);
  CHECK(snap->tasks[2].state == TaskState::kLeased);
  CHECK(snap->tasks[2].lease_id == next[0].lease.id);

  // A refused result (fencing) leases nothing.
  std::vector<Assignment> none;
  bool refused = false;
  sched.CompleteAsync(
      "w1", a->lease.id, Ok(),
      [&](const absl::Status& st) {
        absl::MutexLock lock(&mu);
        refused = st.code() == absl::StatusCode::kFailedPrecondition;
      },
      &none);
  {
    absl::MutexLock lock(&mu);
    CHECK(refused);
  }
  CHECK(none.empty());
}

TEST_CASE("several results at once are applied in one commit and answered once it is durable",
          "[unit][scheduler]") {
  RecordingStore store;
  ManualClock clock;
  auto s = Scheduler::Create(&store, &clock, {});
  REQUIRE(s.ok());
  Scheduler& sched = **s;
  auto v = sched.Submit(Spec(1), Info(4));  // chunks 0-3, assembly 4
  REQUIRE(v.ok());
  sched.RegisterWorker(Prefetching("w1", 1, 2));
  auto a = sched.LeaseNext("w1");
  auto b = sched.LeaseNext("w1");
  auto c = sched.LeaseNext("w1");
  REQUIRE((a && b && c));
  CHECK_FALSE(sched.LeaseNext("w1"));

  store.Hold(true);
  absl::Mutex mu;
  bool answered = false;
  std::vector<absl::Status> answers;
  std::vector<Assignment> next;
  TaskOutcome failed;
  failed.error = "disk full";
  failed.retryable = true;
  const uint64_t unknown = c->lease.id + 1000;
  sched.CompleteAllAsync(
      "w1", {{a->lease.id, Ok()}, {unknown, Ok()}, {b->lease.id, failed}},
      [&](const std::vector<absl::Status>& st) {
        absl::MutexLock lock(&mu);
        answers = st;
        answered = true;
      },
      &next);
  // Two results freed two places: chunk 3 is leased in the same commit, and chunk 1
  // (its attempt failed, it goes to another worker when one can take it; none can).
  REQUIRE(next.size() == 2);
  CHECK(next[0].task.index == 1);
  CHECK(next[1].task.index == 3);
  {
    // Nothing is durable yet: no answer.
    absl::MutexLock lock(&mu);
    CHECK_FALSE(answered);
  }
  store.Hold(false);
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(&answered));
    REQUIRE(answers.size() == 3);
    CHECK(answers[0].ok());
    CHECK(answers[1].code() == absl::StatusCode::kFailedPrecondition);
    CHECK(answers[2].ok());
  }
  // One batch made both results and the new leases durable.
  bool together = false;
  for (const auto& batch : store.batches()) {
    bool done0 = false, failed1 = false, lease1 = false, lease3 = false;
    for (const auto& w : batch) {
      if (w.kind != JobStore::Write::Kind::kUpdateTask) continue;
      done0 |= w.task.index == 0 && w.task.state == TaskState::kSucceeded;
      failed1 |= w.task.index == 1 && w.task.state == TaskState::kPending &&
                 w.task.errors.back() == "disk full";
      lease1 |= w.task.index == 1 && w.task.lease_id == next[0].lease.id;
      lease3 |= w.task.index == 3 && w.task.lease_id == next[1].lease.id;
    }
    together |= done0 && failed1 && lease1 && lease3;
  }
  CHECK(together);
  auto snap = store.LoadAll();
  REQUIRE(snap.ok());
  CHECK(snap->tasks[0].state == TaskState::kSucceeded);
  CHECK(snap->tasks[1].state == TaskState::kLeased);
  CHECK(snap->tasks[1].attempts == 2);
  CHECK(snap->tasks[3].state == TaskState::kLeased);

  // Only refused results: answered at once, nothing leased.
  std::vector<absl::Status> refused;
  std::vector<Assignment> none;
  sched.CompleteAllAsync(
      "w1", {{a->lease.id, Ok()}, {unknown, Ok()}},
      [&](const std::vector<absl::Status>& st) { refused = st; }, &none);
  REQUIRE(refused.size() == 2);
  CHECK(refused[0].code() == absl::StatusCode::kFailedPrecondition);
  CHECK(refused[1].code() == absl::StatusCode::kFailedPrecondition);
  CHECK(none.empty());
}

TEST_CASE("a held lease is renewed by heartbeats and expires like any other", "[unit][scheduler]") {
  SchedulerOptions o;
  o.lease_ms = 10'000;
  Fixture f(o);
  auto v = f.sched->Submit(Spec(1), Info(4));
  REQUIRE(v.ok());
  f.sched->RegisterWorker(Prefetching("w1", 1, 1));
  f.sched->RegisterWorker(Worker("w2"));
  auto a = f.sched->LeaseNext("w1");
  auto held = f.sched->LeaseNext("w1");
  REQUIRE((a && held));
  REQUIRE(held->lease.held);
  // Heartbeats naming the held lease renew it, past its first deadline.
  for (int i = 0; i < 3; ++i) {
    f.clock.AdvanceMs(6'000);
    CHECK(f.sched->Heartbeat("w1", {a->lease.id, held->lease.id}).empty());
    CHECK(f.sched->ExpireLeases().empty());
  }
  // Silence: both expire, and the held one's task is queued again.
  f.clock.AdvanceMs(10'000);
  auto expired = f.sched->ExpireLeases();
  REQUIRE(expired.size() == 2);
  auto view = f.sched->GetJob(v->job.id);
  CHECK(view->tasks[held->task.index].state == TaskState::kPending);
  CHECK(view->tasks[held->task.index].errors.back().find("lease expired") != std::string::npos);
  // Fencing: w1's late result for the held lease is refused; w2 does the task.
  absl::Status late = f.sched->Complete("w1", held->lease.id, Ok());
  CHECK(late.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(late.message().find("not current") != absl::string_view::npos);
  std::set<int> done;
  while (auto b = f.sched->LeaseNext("w2")) {
    REQUIRE(f.sched->Complete("w2", b->lease.id, Ok()).ok());
    done.insert(b->task.index);
  }
  CHECK(done.count(held->task.index) == 1);
  CHECK(f.sched->GetJob(v->job.id)->job.state == JobState::kSucceeded);
  CHECK(f.sched->GetJob(v->job.id)->tasks[held->task.index].workers.back() == "w2");
}

TEST_CASE("a held lease of a worker that disconnects goes back to the queue", "[unit][scheduler]") {
  Fixture f;
  auto v = f.sched->Submit(Spec(1), Info(2));
  REQUIRE(v.ok());
  f.sched->RegisterWorker(Prefetching("w1", 1, 1));
  auto a = f.sched->LeaseNext("w1");
  auto held = f.sched->LeaseNext("w1");
  REQUIRE((a && held));
  f.sched->UnregisterWorker("w1");
  auto view = f.sched->GetJob(v->job.id);
  CHECK(view->tasks[held->task.index].state == TaskState::kPending);
  CHECK(view->task_held == std::vector<bool>{false, false, false});
  CHECK(f.sched->GetStats().projects["default"].tasks_held == 0);
  f.sched->RegisterWorker(Worker("w2"));
  auto b = f.sched->LeaseNext("w2");
  REQUIRE(b);
  CHECK(b->task.index == a->task.index);
  REQUIRE(f.sched->Complete("w2", b->lease.id, Ok()).ok());
  auto c = f.sched->LeaseNext("w2");
  REQUIRE(c);
  CHECK(c->task.index == held->task.index);
  CHECK(c->lease.attempt == 2);
}

TEST_CASE("a reconnecting worker's leases run in the order it got them, the rest held",
          "[unit][scheduler]") {
  Fixture f;
  auto v = f.sched->Submit(Spec(1), Info(3));
  REQUIRE(v.ok());
  f.sched->RegisterWorker(Prefetching("w1", 1, 1));
  auto a = f.sched->LeaseNext("w1");
  auto held = f.sched->LeaseNext("w1");
  REQUIRE((a && held));
  // The stream broke and came back: the worker names both leases.
  CHECK(f.sched->RegisterWorker(Prefetching("w1", 1, 1), {held->lease.id, a->lease.id}).empty());
  auto view = f.sched->GetJob(v->job.id);
  CHECK_FALSE(view->task_held[a->task.index]);
  CHECK(view->task_held[held->task.index]);
  CHECK_FALSE(f.sched->LeaseNext("w1"));  // full: one running, one held
  // Back without the running one (it ended while away): the held one runs now.
  CHECK(f.sched->RegisterWorker(Prefetching("w1", 1, 1), {held->lease.id}).empty());
  view = f.sched->GetJob(v->job.id);
  CHECK(view->tasks[a->task.index].state == TaskState::kPending);
  CHECK_FALSE(view->task_held[held->task.index]);
  CHECK(f.sched->GetStats().projects["default"].tasks_running == 1);
}

}  // namespace reelfarm::scheduler
