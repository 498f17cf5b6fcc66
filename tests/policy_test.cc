// Scheduler policy scenarios on an in-memory store and a manual clock: the expected
// order of assignments for priority, fair share, placement, dependencies, retries,
// pause/resume, drain, admission and idempotent submit.
#include <catch2/catch.hpp>

#include <map>
#include <random>

#include "scheduler/scheduler.h"
#include "tests/testing/memory_store.h"

namespace reelfarm::scheduler {
namespace {

JobSpec Spec(const std::string& project, int priority = 50, int chunk = 1) {
  JobSpec s;
  s.name = "shot";
  s.project = project;
  s.priority = priority;
  s.upscale.input = "in.mp4";
  s.upscale.output = "out_" + project + ".mp4";
  s.upscale.model = "bicubic";
  s.upscale.scale = 2;
  s.upscale.chunk_frames = chunk;
  return s;
}

MediaInfo Frames(int64_t n) {
  MediaInfo m;
  m.width = 64;
  m.height = 36;
  m.frame_count = n;
  m.fps_num = 24;
  return m;
}

WorkerInfo Worker(const std::string& name, int slots = 1,
                  std::map<std::string, std::string> tags = {}, int64_t memory = 0) {
  WorkerInfo w;
  w.name = name;
  w.slots = slots;
  w.models = {"bicubic"};
  w.tags = std::move(tags);
  w.memory_bytes = memory;
  return w;
}

TaskOutcome Ok() {
  TaskOutcome o;
  o.ok = true;
  return o;
}

TaskOutcome Fail(const std::string& error, bool retryable) {
  TaskOutcome o;
  o.error = error;
  o.retryable = retryable;
  return o;
}

struct Farm {
  std::unique_ptr<JobStore> store = testing::NewInMemoryJobStore();
  ManualClock clock;
  std::unique_ptr<Scheduler> sched;
  explicit Farm(SchedulerOptions o = {}) {
    auto s = Scheduler::Create(store.get(), &clock, std::move(o));
    REQUIRE(s.ok());
    sched = std::move(*s);
  }
  int64_t Submit(JobSpec spec, int64_t frames) {
    auto v = sched->Submit(std::move(spec), Frames(frames));
    REQUIRE(v.ok());
    return v->job.id;
  }
  JobState State(int64_t id) { return sched->GetJob(id)->job.state; }
  // A new scheduler on the same store, as after a restart.
  void Restart(SchedulerOptions o = {}) {
    sched.reset();
    auto s = Scheduler::Create(store.get(), &clock, std::move(o));
    REQUIRE(s.ok());
    sched = std::move(*s);
  }
  // A job on `first`'s output: waiting, with no tasks (its input is not there yet).
  JobView SubmitOnOutputOf(int64_t first) {
    JobSpec chained = Spec("a");
    chained.depends_on = {first};
    chained.upscale.input = "out_a.mp4";
    auto v = sched->Submit(chained, std::nullopt);
    REQUIRE(v.ok());
    return *v;
  }
  // `worker` (registered here) leases and finishes `n` tasks.
  void Finish(const std::string& worker, int n) {
    sched->RegisterWorker(Worker(worker));
    for (int i = 0; i < n; ++i) {
      auto a = sched->LeaseNext(worker);
      REQUIRE(a);
      REQUIRE(sched->Complete(worker, a->lease.id, Ok()).ok());
    }
  }
};

}  // namespace

TEST_CASE("priority: higher first, and a change applies to the next leases", "[unit][policy]") {
  Farm f;
  const int64_t low = f.Submit(Spec("a", 10), 3);
  const int64_t mid = f.Submit(Spec("a", 50), 3);
  f.sched->RegisterWorker(Worker("w", 1));
  auto a = f.sched->LeaseNext("w");
  REQUIRE(a);
  CHECK(a->lease.job_id == mid);
  REQUIRE(f.sched->Complete("w", a->lease.id, Ok()).ok());
  // Raised while it waits: the low job now goes first.
  auto raised = f.sched->SetPriority(low, 90);
  REQUIRE(raised.ok());
  CHECK(raised->job.spec.priority == 90);
  auto b = f.sched->LeaseNext("w");
  REQUIRE(b);
  CHECK(b->lease.job_id == low);
  CHECK(f.sched->SetPriority(low, 101).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(f.sched->SetPriority(999, 5).status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("fair share: weights 2:1 give a 2:1 split of 300 tasks", "[unit][policy]") {
  SchedulerOptions o;
  o.projects["feature"].weight = 2;
  o.projects["commercial"].weight = 1;
  Farm f(o);
  // Equal priority, plenty of work in both projects; the 1:1 submission order and
  // the job ids would favour neither.
  f.Submit(Spec("commercial"), 1000);
  f.Submit(Spec("feature"), 1000);
  f.sched->RegisterWorker(Worker("w", 30));
  std::map<int64_t, std::string> project_of;
  for (const auto& j : f.sched->ListJobs({}, 0)) project_of[j.job.id] = j.job.spec.project;
  std::vector<Assignment> running;
  std::map<std::string, int> leased;
  std::mt19937 rng(7);
  for (int n = 0; n < 300; ++n) {
    auto a = f.sched->LeaseNext("w");
    if (!a) {
      // All 30 slots busy: a random running task finishes.
      std::uniform_int_distribution<size_t> pick(0, running.size() - 1);
      const size_t i = pick(rng);
      REQUIRE(f.sched->Complete("w", running[i].lease.id, Ok()).ok());
      running.erase(running.begin() + static_cast<long>(i));
      a = f.sched->LeaseNext("w");
    }
    REQUIRE(a);
    ++leased[project_of[a->lease.job_id]];
    running.push_back(*a);
  }
  INFO("feature " << leased["feature"] << ", commercial " << leased["commercial"]);
  const double ratio = double(leased["feature"]) / leased["commercial"];
  CHECK(ratio >= 1.8);
  CHECK(ratio <= 2.2);
}

TEST_CASE("fair share: a project's cap limits its running tasks", "[unit][policy]") {
  SchedulerOptions o;
  o.projects["capped"].max_running = 2;
  Farm f(o);
  f.Submit(Spec("capped", 90), 10);
  f.Submit(Spec("other", 10), 10);
  f.sched->RegisterWorker(Worker("w", 5));
  std::map<int64_t, int> per_job;
  for (int i = 0; i < 5; ++i) {
    auto a = f.sched->LeaseNext("w");
    REQUIRE(a);
    ++per_job[a->lease.job_id];
  }
  CHECK(per_job[1] == 2);  // the high-priority project stops at its cap
  CHECK(per_job[2] == 3);
}

TEST_CASE("placement: tags, memory and slots", "[unit][policy]") {
  Farm f;
  JobSpec h100 = Spec("a");
  h100.requirements = {{"gpu", "h100"}};
  const int64_t tagged = f.Submit(h100, 2);
  JobSpec big = Spec("a");
  big.memory_bytes = 10'000;
  const int64_t heavy = f.Submit(big, 2);
  f.sched->RegisterWorker(Worker("cpu", 4, {{"gpu", "none"}}, 5'000));
  f.sched->RegisterWorker(Worker("gpu", 4, {{"gpu", "h100"}, {"site", "lon"}}, 16'000));
  // The CPU worker fits neither job: wrong tag, too little memory.
  CHECK_FALSE(f.sched->LeaseNext("cpu"));
  // The GPU worker takes the tagged job's tasks, then one heavy task: a second heavy
  // task would need 20,000 bytes of its 16,000.
  std::map<int64_t, int> got;
  while (auto a = f.sched->LeaseNext("gpu")) ++got[a->lease.job_id];
  CHECK(got[tagged] == 2);
  CHECK(got[heavy] == 1);
  auto workers = f.sched->ListWorkers();
  REQUIRE(workers.size() == 2);
  CHECK(workers[1].leases.size() == 3);
}

TEST_CASE("dependencies: a chain runs in order, and a failure fails what depends on it",
          "[unit][policy]") {
  Farm f;
  const int64_t first = f.Submit(Spec("a"), 1);
  JobSpec second_spec = Spec("a");
  second_spec.depends_on = {first};
  const int64_t second = f.Submit(second_spec, 1);
  JobSpec third_spec = Spec("a");
  third_spec.depends_on = {second};
  const int64_t third = f.Submit(third_spec, 1);
  CHECK(f.State(second) == JobState::kWaiting);
  CHECK(f.State(third) == JobState::kWaiting);
  f.sched->RegisterWorker(Worker("w", 4));
  // Only the first job's chunk, then its assemble task.
  auto a = f.sched->LeaseNext("w");
  REQUIRE(a);
  CHECK(a->lease.job_id == first);
  CHECK_FALSE(f.sched->LeaseNext("w"));
  REQUIRE(f.sched->Complete("w", a->lease.id, Ok()).ok());
  auto asm1 = f.sched->LeaseNext("w");
  REQUIRE(asm1);
  REQUIRE(f.sched->Complete("w", asm1->lease.id, Ok()).ok());
  CHECK(f.State(first) == JobState::kSucceeded);
  CHECK(f.State(second) == JobState::kQueued);
  CHECK(f.State(third) == JobState::kWaiting);
  // The second job fails for good: the third fails, naming it.
  auto b = f.sched->LeaseNext("w");
  REQUIRE(b);
  CHECK(b->lease.job_id == second);
  REQUIRE(f.sched->Complete("w", b->lease.id, Fail("model rejects 64x36", false)).ok());
  CHECK(f.State(second) == JobState::kFailed);
  auto t = f.sched->GetJob(third);
  CHECK(t->job.state == JobState::kFailed);
  CHECK(t->job.error.find("depends_on: job " + std::to_string(second) + " failed") !=
        std::string::npos);
  // A new job cannot depend on a failed or unknown one.
  JobSpec late = Spec("a");
  late.depends_on = {second};
  CHECK(f.sched->Submit(late, Frames(1)).status().code() == absl::StatusCode::kFailedPrecondition);
  late.depends_on = {12345};
  CHECK(f.sched->Submit(late, Frames(1)).status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("dependencies: a job on another job's output gets its tasks when it succeeds",
          "[unit][policy]") {
  Farm f;
  const auto v = f.SubmitOnOutputOf(f.Submit(Spec("a"), 1));
  CHECK(v.tasks.empty());
  CHECK(f.sched->JobsToActivate().empty());
  f.Finish("w", 2);
  auto ready = f.sched->JobsToActivate();
  REQUIRE(ready.size() == 1);
  CHECK(ready[0].first == v.job.id);
  REQUIRE(f.sched->Activate(v.job.id, Frames(4)).ok());
  auto after = f.sched->GetJob(v.job.id);
  CHECK(after->job.state == JobState::kQueued);
  CHECK(after->tasks.size() == 5);
  CHECK(after->job.input_info.frame_count == 4);
}

TEST_CASE("dependencies: a waiting job cancelled and retried is activated after a restart too",
          "[unit][policy]") {
  Farm f;
  const auto v = f.SubmitOnOutputOf(f.Submit(Spec("a"), 1));
  REQUIRE(f.sched->Cancel(v.job.id).ok());
  f.Finish("w", 2);
  // Cancelled: not activated, though its dependency succeeded.
  CHECK(f.sched->JobsToActivate().empty());
  REQUIRE(f.sched->Retry(v.job.id).ok());
  CHECK(f.State(v.job.id) == JobState::kWaiting);
  auto ready = f.sched->JobsToActivate();
  REQUIRE(ready.size() == 1);
  CHECK(ready[0].first == v.job.id);
  // The same job found waiting in the store by a new scheduler.
  f.Restart();
  ready = f.sched->JobsToActivate();
  REQUIRE(ready.size() == 1);
  CHECK(ready[0].first == v.job.id);
  REQUIRE(f.sched->Activate(v.job.id, Frames(2)).ok());
  CHECK(f.State(v.job.id) == JobState::kQueued);
  CHECK(f.sched->JobsToActivate().empty());
}

TEST_CASE("admission counts the queue through leases, failures, cancel, retry and a restart",
          "[unit][policy]") {
  SchedulerOptions o;
  o.max_queued_tasks = 8;
  o.max_queued_tasks_per_project = 6;
  Farm f(o);
  // The refusal of a 2-task job (1 chunk + assemble) in `project`, naming `count`.
  auto refused = [&](const std::string& project, const std::string& count) {
    auto r = f.sched->Submit(Spec(project), Frames(1));
    INFO(r.status().ToString());
    return r.status().code() == absl::StatusCode::kResourceExhausted &&
           r.status().message().find(count) != absl::string_view::npos;
  };
  const int64_t a = f.Submit(Spec("a"), 4);  // 4 chunks + assemble: 5 queued in 'a'
  CHECK(refused("a", "project 'a' has 5 queued tasks"));
  // A leased task leaves the queue; one that fails and will be tried again is back in it.
  f.sched->RegisterWorker(Worker("w"));
  auto lease = f.sched->LeaseNext("w");
  REQUIRE(lease);
  CHECK(f.sched->Submit(Spec("a"), Frames(1)).ok());  // 'a': 4 + 2
  REQUIRE(f.sched->Complete("w", lease->lease.id, Fail("out of memory", true)).ok());
  CHECK(refused("b", "the farm has 7 queued tasks"));
  // Cancelled, its tasks leave the queue; retried, they come back.
  REQUIRE(f.sched->Cancel(a).ok());
  CHECK(f.sched->Submit(Spec("b"), Frames(1)).ok());  // 'a' 2, 'b' 2
  CHECK(f.sched->Submit(Spec("a"), Frames(1)).ok());  // 'a' 4
  REQUIRE(f.sched->Retry(a).ok());                    // 'a' 4 + 5
  CHECK(refused("b", "the farm has 11 queued tasks"));
  CHECK(refused("a", "project 'a' has 9 queued tasks"));
  // A new scheduler on the same store counts the same queue.
  f.Restart(o);
  CHECK(refused("b", "the farm has 11 queued tasks"));
  CHECK(refused("a", "project 'a' has 9 queued tasks"));
  const auto stats = f.sched->GetStats();
  CHECK(stats.projects.at("a").tasks_queued == 9);
  CHECK(stats.projects.at("b").tasks_queued == 2);
}

TEST_CASE("retries: on another worker, up to max_attempts", "[unit][policy]") {
  Farm f;
  JobSpec spec = Spec("a");
  spec.max_attempts = 3;
  const int64_t id = f.Submit(spec, 1);
  f.sched->RegisterWorker(Worker("w1"));
  f.sched->RegisterWorker(Worker("w2"));
  auto a = f.sched->LeaseNext("w1");
  REQUIRE(a);
  REQUIRE(f.sched->Complete("w1", a->lease.id, Fail("CUDA out of memory", true)).ok());
  // w1 is free, but the task prefers w2.
  CHECK_FALSE(f.sched->LeaseNext("w1"));
  auto b = f.sched->LeaseNext("w2");
  REQUIRE(b);
  CHECK(b->lease.attempt == 2);
  REQUIRE(f.sched->Complete("w2", b->lease.id, Fail("I/O error", true)).ok());
  // Both failed it: any worker may try the last attempt.
  auto c = f.sched->LeaseNext("w1");
  REQUIRE(c);
  REQUIRE(f.sched->Complete("w1", c->lease.id, Fail("I/O error again", true)).ok());
  auto v = f.sched->GetJob(id);
  CHECK(v->job.state == JobState::kFailed);
  const Task& t = v->tasks[0];
  CHECK(t.workers == std::vector<std::string>{"w1", "w2", "w1"});
  CHECK(t.errors == std::vector<std::string>{"CUDA out of memory", "I/O error", "I/O error again"});
  // Retry gives the failed tasks a fresh budget and keeps their history.
  auto r = f.sched->Retry(id);
  REQUIRE(r.ok());
  CHECK(r->job.state == JobState::kRunning);
  CHECK(r->job.error.empty());
  CHECK(r->tasks[0].state == TaskState::kPending);
  CHECK(r->tasks[0].errors.size() == 3);
  auto d = f.sched->LeaseNext("w2");
  REQUIRE(d);
  REQUIRE(f.sched->Complete("w2", d->lease.id, Ok()).ok());
  CHECK(f.sched->Retry(id).status().code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("pause stops new leases, and resume restores them", "[unit][policy]") {
  Farm f;
  const int64_t id = f.Submit(Spec("a"), 3);
  f.sched->RegisterWorker(Worker("w", 3));
  auto a = f.sched->LeaseNext("w");
  REQUIRE(a);
  auto p = f.sched->Pause(id);
  REQUIRE(p.ok());
  CHECK(p->job.state == JobState::kPaused);
  CHECK_FALSE(f.sched->LeaseNext("w"));
  // The running task finishes normally.
  REQUIRE(f.sched->Complete("w", a->lease.id, Ok()).ok());
  CHECK(f.State(id) == JobState::kPaused);
  auto r = f.sched->Resume(id);
  REQUIRE(r.ok());
  CHECK(r->job.state == JobState::kRunning);
  CHECK(f.sched->LeaseNext("w"));
  CHECK(f.sched->Resume(id).status().code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("drain: a draining worker finishes its task and takes no more", "[unit][policy]") {
  Farm f;
  f.Submit(Spec("a"), 4);
  f.sched->RegisterWorker(Worker("w1"));
  f.sched->RegisterWorker(Worker("w2"));
  auto a = f.sched->LeaseNext("w1");
  REQUIRE(a);
  REQUIRE(f.sched->Drain("w1", true).ok());
  CHECK(f.sched->Complete("w1", a->lease.id, Ok()).ok());
  CHECK_FALSE(f.sched->LeaseNext("w1"));
  CHECK(f.sched->LeaseNext("w2"));
  auto workers = f.sched->ListWorkers();
  CHECK(workers[0].draining);
  CHECK_FALSE(workers[1].draining);
  // Draining survives a reconnect; undrain restores it.
  f.sched->UnregisterWorker("w1");
  f.sched->RegisterWorker(Worker("w1"));
  CHECK_FALSE(f.sched->LeaseNext("w1"));
  REQUIRE(f.sched->Drain("w1", false).ok());
  CHECK(f.sched->LeaseNext("w1"));
  CHECK(f.sched->Drain("nobody", true).code() == absl::StatusCode::kNotFound);
}

TEST_CASE("admission: queue limits per project and in total", "[unit][policy]") {
  SchedulerOptions o;
  o.max_queued_tasks = 20;
  o.max_queued_tasks_per_project = 12;
  Farm f(o);
  f.Submit(Spec("a"), 10);  // 11 tasks with the assemble task
  auto over_project = f.sched->Submit(Spec("a"), Frames(1));
  CHECK(over_project.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK(over_project.status().message().find("project 'a'") != absl::string_view::npos);
  f.Submit(Spec("b"), 8);  // 9 tasks: 20 queued in all
  auto over_farm = f.sched->Submit(Spec("c"), Frames(1));
  CHECK(over_farm.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK(over_farm.status().message().find("farm's queue limit of 20") != absl::string_view::npos);
  // Leasing drains the queue and makes room again.
  f.sched->RegisterWorker(Worker("w", 2));
  REQUIRE(f.sched->LeaseNext("w"));
  REQUIRE(f.sched->LeaseNext("w"));
  CHECK(f.sched->Submit(Spec("c"), Frames(1)).ok());
}

TEST_CASE("idempotent submit: a retried request id returns the first job", "[unit][policy]") {
  Farm f;
  JobSpec spec = Spec("a");
  spec.request_id = "nuke-render-0042";
  auto first = f.sched->Submit(spec, Frames(5));
  auto again = f.sched->Submit(spec, Frames(5));
  REQUIRE((first.ok() && again.ok()));
  CHECK(again->job.id == first->job.id);
  CHECK(f.sched->ListJobs({}, 0).size() == 1);
  // The same id in another project is another request.
  spec.project = "b";
  auto other = f.sched->Submit(spec, Frames(5));
  CHECK(other->job.id != first->job.id);
}

TEST_CASE("stats count queued and running tasks per project, and workers by state",
          "[unit][policy]") {
  Farm f;
  f.Submit(Spec("a"), 3);  // 3 chunks + assemble
  f.Submit(Spec("b"), 1);  // 1 chunk + assemble
  f.sched->RegisterWorker(Worker("w1", 2));
  f.sched->RegisterWorker(Worker("w2", 1));
  f.sched->RegisterWorker(Worker("w3", 1));
  REQUIRE(f.sched->Drain("w3", true).ok());
  REQUIRE(f.sched->LeaseNext("w1"));
  REQUIRE(f.sched->LeaseNext("w1"));
  auto st = f.sched->GetStats();
  // Fair share: one task of each project on w1.
  CHECK(st.projects["a"].tasks_running == 1);
  CHECK(st.projects["b"].tasks_running == 1);
  CHECK(st.projects["a"].tasks_queued == 3);  // 2 chunks + the assemble task
  CHECK(st.projects["b"].tasks_queued == 1);
  CHECK(st.projects["a"].jobs_active == 1);
  CHECK(st.workers_busy == 1);
  CHECK(st.workers_idle == 1);
  CHECK(st.workers_draining == 1);
}

// Issue 16, item 4: a stalled worker got the assemble task back after each expired
// lease (attempts 1, 2, 3 on the same worker) while another worker was idle.
TEST_CASE("a task whose lease expired goes to another worker, the assemble task too",
          "[unit][policy]") {
  SchedulerOptions o;
  o.lease_ms = 1000;
  Farm f(o);
  f.sched->RegisterWorker(Worker("a"));
  f.sched->RegisterWorker(Worker("b"));
  const int64_t id = f.Submit(Spec("p", 50, 1), 2);  // chunks 0, 1, then the assemble (2)
  for (const char* w : {"a", "b"}) {
    auto chunk = f.sched->LeaseNext(w);
    REQUIRE(chunk);
    REQUIRE(f.sched->Complete(w, chunk->lease.id, Ok()).ok());
  }
  auto assemble = f.sched->LeaseNext("a");
  REQUIRE(assemble);
  REQUIRE(assemble->task.kind == TaskKind::kAssemble);
  f.clock.AdvanceMs(1500);
  f.sched->Heartbeat("b", {});
  REQUIRE(f.sched->ExpireLeases().size() == 1);
  // a is alive again, but b can take the task: a is passed over, though asked first.
  CHECK(f.sched->Heartbeat("a", {assemble->lease.id}) == std::vector<uint64_t>{assemble->lease.id});
  CHECK_FALSE(f.sched->LeaseNext("a").has_value());
  auto again = f.sched->LeaseNext("b");
  REQUIRE(again);
  CHECK(again->task.index == 2);
  CHECK(again->lease.attempt == 2);
  REQUIRE(f.sched->Complete("b", again->lease.id, Ok()).ok());
  auto view = f.sched->GetJob(id);
  REQUIRE(view.ok());
  CHECK(view->job.state == JobState::kSucceeded);
  // What happened stays on the task: each attempt's worker and error.
  const Task& t = view->tasks[2];
  CHECK(t.attempts == 2);
  CHECK(t.workers == std::vector<std::string>{"a", "b"});
  REQUIRE(t.errors.size() == 2);
  CHECK_THAT(t.errors[0], Catch::Contains("lease expired: worker 'a'"));
  CHECK(t.errors[1].empty());
}

TEST_CASE("a worker whose lease expired is unhealthy and gets no work until it heartbeats",
          "[unit][policy]") {
  SchedulerOptions o;
  o.lease_ms = 1000;
  Farm f(o);
  f.sched->RegisterWorker(Worker("a", 2));
  f.sched->RegisterWorker(Worker("b"));
  const int64_t first = f.Submit(Spec("p", 50, 10), 10);  // one chunk + assemble
  auto held = f.sched->LeaseNext("a");
  REQUIRE(held);
  f.clock.AdvanceMs(600);
  CHECK(f.sched->Heartbeat("a", {held->lease.id}).empty());  // renewed: still healthy
  f.clock.AdvanceMs(600);
  CHECK(f.sched->ExpireLeases().empty());
  // Then a stops: nothing for a whole lease.
  f.clock.AdvanceMs(1000);
  f.sched->Heartbeat("b", {});
  REQUIRE(f.sched->ExpireLeases().size() == 1);

  auto find = [&](const std::string& name) {
    for (const WorkerView& w : f.sched->ListWorkers()) {
      if (w.info.name == name) return w;
    }
    FAIL("no worker " << name);
    return WorkerView{};
  };
  WorkerView a = find("a");
  CHECK(a.unhealthy);
  CHECK(a.leases_expired == 1);
  CHECK(a.unhealthy_since_ms == f.clock.NowMs());
  CHECK_THAT(a.unhealthy_reason,
             Catch::Contains("job " + std::to_string(first) + " task 0") &&
                 Catch::Contains("lease expired: worker 'a' sent no heartbeat for 1 s"));
  CHECK_FALSE(find("b").unhealthy);
  Scheduler::Stats st = f.sched->GetStats();
  CHECK(st.workers_unhealthy == 1);
  CHECK(st.workers_idle == 1);
  CHECK(st.worker_unhealthy == std::map<std::string, bool>{{"a", true}, {"b", false}});

  // No new work for a, not even a job that never failed on it, though a slot is free.
  const int64_t second = f.Submit(Spec("q", 90, 10), 10);
  CHECK_FALSE(f.sched->LeaseNext("a").has_value());
  auto b1 = f.sched->LeaseNext("b");
  REQUIRE(b1);
  CHECK(b1->lease.job_id == second);  // higher priority
  // Its progress report, under the stale lease, is refused, but shows it is alive.
  CHECK(f.sched->ReportProgress("a", held->lease.id, 3).code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK_FALSE(find("a").unhealthy);
  CHECK(f.sched->GetStats().workers_unhealthy == 0);
  // Healthy again, but the chunk whose lease expired on a waits for b, which fits the
  // job (busy now), rather than go back to a.
  CHECK_FALSE(f.sched->LeaseNext("a").has_value());
  REQUIRE(f.sched->Complete("b", b1->lease.id, Ok()).ok());
  auto b2 = f.sched->LeaseNext("b");  // the second job's assemble (higher priority)
  REQUIRE(b2);
  CHECK(b2->lease.job_id == second);
  REQUIRE(f.sched->Complete("b", b2->lease.id, Ok()).ok());
  auto b3 = f.sched->LeaseNext("b");
  REQUIRE(b3);
  CHECK(b3->lease.job_id == first);
  CHECK(b3->task.index == 0);
  CHECK(b3->lease.attempt == 2);
}

TEST_CASE("a task whose lease expired goes back to its worker when no other can take it",
          "[unit][policy]") {
  SchedulerOptions o;
  o.lease_ms = 1000;
  Farm f(o);
  f.sched->RegisterWorker(Worker("a"));
  WorkerInfo other = Worker("b");
  other.models = {"lanczos"};  // cannot take the job
  f.sched->RegisterWorker(other);
  f.sched->RegisterWorker(Worker("c"));
  REQUIRE(f.sched->Drain("c", true).ok());  // could, but is draining
  const int64_t id = f.Submit(Spec("p", 50, 10), 10);
  auto first = f.sched->LeaseNext("a");
  REQUIRE(first);
  f.clock.AdvanceMs(1001);
  REQUIRE(f.sched->ExpireLeases().size() == 1);
  CHECK_FALSE(f.sched->LeaseNext("a").has_value());  // unhealthy
  f.sched->Heartbeat("a", {});
  auto again = f.sched->LeaseNext("a");
  REQUIRE(again);
  CHECK(again->lease.job_id == id);
  CHECK(again->task.index == 0);
  CHECK(again->lease.attempt == 2);
}

}  // namespace reelfarm::scheduler
