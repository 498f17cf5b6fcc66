// Retention in the scheduler (Scheduler::Purge): ages on a manual clock, the rule that
// a job a live dependent needs is kept, dry runs, and what a restart sees.
#include <catch2/catch.hpp>

#include "scheduler/scheduler.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/memory_store.h"

namespace reelfarm::scheduler {
namespace {

constexpr int64_t kDayMs = 24 * 3600 * 1000;

JobSpec Spec(const std::string& name) {
  JobSpec s;
  s.name = name;
  s.upscale.input = "in.mp4";
  s.upscale.output = name + ".mp4";
  s.upscale.model = "bicubic";
  s.upscale.scale = 2;
  s.upscale.chunk_frames = 10;
  return s;
}

MediaInfo Info() {
  MediaInfo m;
  m.width = 320;
  m.height = 180;
  m.frame_count = 10;
  m.fps_num = 24;
  return m;
}

// Runs every task of the job to success on worker "w".
void RunToSuccess(Scheduler& s, int64_t id) {
  WorkerInfo w;
  w.name = "w";
  w.slots = 4;
  w.models = {"bicubic"};
  s.RegisterWorker(w);
  while (auto a = s.LeaseNext("w")) {
    TaskOutcome ok;
    ok.ok = true;
    REQUIRE(a->lease.job_id == id);
    REQUIRE(s.Complete("w", a->lease.id, ok).ok());
  }
  REQUIRE(s.GetJob(id)->job.state == JobState::kSucceeded);
}

std::vector<int64_t> Ids(const Scheduler::PurgeResult& r) {
  std::vector<int64_t> ids;
  for (const Job& j : r.purged) ids.push_back(j.id);
  return ids;
}

}  // namespace

TEST_CASE("purge forgets ended jobs older than the age, keeps younger and live ones",
          "[unit][scheduler][retention]") {
  auto store = testing::NewInMemoryJobStore();
  ManualClock clock;
  auto s = Scheduler::Create(store.get(), &clock, {});
  REQUIRE(s.ok());
  Scheduler& sched = **s;
  const int64_t done = sched.Submit(Spec("done"), Info())->job.id;
  RunToSuccess(sched, done);
  const int64_t cancelled = sched.Submit(Spec("cancelled"), Info())->job.id;
  REQUIRE(sched.Cancel(cancelled).ok());
  clock.AdvanceMs(31 * kDayMs);
  const int64_t young = sched.Submit(Spec("young"), Info())->job.id;
  REQUIRE(sched.Cancel(young).ok());
  const int64_t live = sched.Submit(Spec("live"), Info())->job.id;

  Scheduler::PurgeRequest req;
  req.older_than_ms = 30 * kDayMs;
  req.dry_run = true;
  auto dry = sched.Purge(req);
  REQUIRE(dry.ok());
  CHECK(Ids(*dry) == std::vector<int64_t>{done, cancelled});
  CHECK(sched.GetJob(done).ok());  // a dry run keeps everything
  CHECK(store->LoadAll()->jobs.size() == 4);

  req.dry_run = false;
  auto purged = sched.Purge(req);
  REQUIRE(purged.ok());
  CHECK(Ids(*purged) == std::vector<int64_t>{done, cancelled});
  CHECK(sched.GetJob(done).status().code() == absl::StatusCode::kNotFound);
  CHECK(sched.GetJob(cancelled).status().code() == absl::StatusCode::kNotFound);
  CHECK(sched.GetJob(young).ok());
  CHECK(sched.GetJob(live).ok());
  CHECK(sched.ListJobs({}, 0).size() == 2);
  // Gone from the store too, tasks included.
  auto snap = store->LoadAll();
  REQUIRE(snap.ok());
  REQUIRE(snap->jobs.size() == 2);
  for (const Task& t : snap->tasks) CHECK((t.job_id == young || t.job_id == live));

  // Named jobs: a live one and a young one are kept, with the reason; unknown is NOT_FOUND.
  req.job_ids = {live, young};
  auto named = sched.Purge(req);
  REQUIRE(named.ok());
  CHECK(named->purged.empty());
  REQUIRE(named->kept.size() == 2);
  CHECK(named->kept[0].second.find("has not ended") != std::string::npos);
  CHECK(named->kept[1].second.find("less than") != std::string::npos);
  req.job_ids = {done};
  CHECK(sched.Purge(req).status().code() == absl::StatusCode::kNotFound);
  // A new job never takes a purged id.
  CHECK(sched.Submit(Spec("next"), Info())->job.id > live);
}

TEST_CASE("purge keeps a job that a dependent which has not ended needs",
          "[unit][scheduler][retention]") {
  auto store = testing::NewInMemoryJobStore();
  ManualClock clock;
  auto s = Scheduler::Create(store.get(), &clock, {});
  REQUIRE(s.ok());
  Scheduler& sched = **s;
  const int64_t base = sched.Submit(Spec("base"), Info())->job.id;
  RunToSuccess(sched, base);
  JobSpec dep = Spec("dependent");
  dep.depends_on = {base};
  // Its input is the base job's output, probed once that job succeeded: it waits.
  const int64_t dependent = sched.Submit(dep, std::nullopt)->job.id;
  REQUIRE(sched.GetJob(dependent)->job.state == JobState::kWaiting);
  clock.AdvanceMs(40 * kDayMs);
  Scheduler::PurgeRequest req;
  req.older_than_ms = 30 * kDayMs;
  auto r = sched.Purge(req);
  REQUIRE(r.ok());
  CHECK(r->purged.empty());
  REQUIRE(r->kept.size() == 1);
  CHECK(r->kept[0].first == base);
  CHECK(r->kept[0].second.find("job " + std::to_string(dependent)) != std::string::npos);
  CHECK(sched.GetJob(base).ok());
  // Once the dependent ended (and is old enough too), both go.
  REQUIRE(sched.Cancel(dependent).ok());
  clock.AdvanceMs(31 * kDayMs);
  r = sched.Purge(req);
  REQUIRE(r.ok());
  CHECK(Ids(*r) == std::vector<int64_t>{base, dependent});
}

TEST_CASE("a restarted scheduler does not see purged jobs nor reuse their ids",
          "[unit][scheduler][retention]") {
  testing::TempDir dir;
  const std::string db = (dir.path() / "state.db").string();
  ManualClock clock;
  int64_t newest = 0;
  {
    auto store = OpenSqliteJobStore(db);
    REQUIRE(store.ok());
    auto sched = Scheduler::Create(store->get(), &clock, {});
    REQUIRE(sched.ok());
    const int64_t keep = (*sched)->Submit(Spec("keep"), Info())->job.id;
    newest = (*sched)->Submit(Spec("old"), Info())->job.id;
    REQUIRE((*sched)->Cancel(newest).ok());
    clock.AdvanceMs(kDayMs);
    Scheduler::PurgeRequest req;
    req.older_than_ms = kDayMs;
    auto r = (*sched)->Purge(req);
    REQUIRE(r.ok());
    CHECK(Ids(*r) == std::vector<int64_t>{newest});
    CHECK((*sched)->GetJob(keep).ok());
  }
  auto store = OpenSqliteJobStore(db);
  REQUIRE(store.ok());
  auto sched = Scheduler::Create(store->get(), &clock, {});
  REQUIRE(sched.ok());
  CHECK((*sched)->GetJob(newest).status().code() == absl::StatusCode::kNotFound);
  CHECK((*sched)->ListJobs({}, 0).size() == 1);
  CHECK((*sched)->Submit(Spec("after"), Info())->job.id > newest);
}

}  // namespace reelfarm::scheduler
