// JobStore: one contract suite run unchanged against every implementation (in-memory,
// SQLite, PostgreSQL), then what only the durable stores promise (durability, ids,
// schema, damaged rows) and what only PostgreSQL does (fencing, outages, URLs).
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "scheduler/job_store.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/memory_store.h"
#include "tests/testing/postgres.h"

namespace reelfarm::scheduler {
namespace {

using reelfarm::testing::TempDir;

std::string DbPath(const TempDir& dir) { return (dir.path() / "jobs.db").string(); }

// The PostgreSQL database of the store kept in `dir` (made on first use).
std::string PgUrl(const TempDir& dir) {
  const std::filesystem::path file = dir.path() / "pg_url";
  if (!std::filesystem::exists(file)) {
    const std::string url = testing::NewPostgresDatabase(testing::SharedPostgresUrl());
    std::ofstream(file) << url;
    return url;
  }
  std::string url;
  std::ifstream(file) >> url;
  return url;
}

// "memory", "sqlite" or "postgres"; reopening a durable kind with the same `dir` sees
// the same data.
std::unique_ptr<JobStore> OpenStore(const std::string& kind, const TempDir& dir) {
  if (kind == "memory") return testing::NewInMemoryJobStore();
  absl::StatusOr<std::unique_ptr<JobStore>> store =
      kind == "sqlite" ? OpenSqliteJobStore(DbPath(dir)) : OpenPostgresJobStore(PgUrl(dir));
  INFO(store.status().ToString());
  REQUIRE(store.ok());
  return std::move(store).value();
}

// What a durable store's messages call it.
std::string StoreName(const std::string& kind, const TempDir& dir) {
  return kind == "sqlite" ? DbPath(dir) : PgUrl(dir);
}

// Runs SQL on the file behind the store's back; returns the first column of the
// last row ("" if none).
std::string RawSqlite(const std::string& path, const std::string& sql) {
  sqlite3* raw = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &raw) == SQLITE_OK);
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> db(raw, &sqlite3_close);
  std::string result;
  auto keep = [](void* out, int, char** values, char**) {
    *static_cast<std::string*>(out) = values[0] ? values[0] : "";
    return 0;
  };
  INFO(sql);
  REQUIRE(sqlite3_exec(db.get(), sql.c_str(), keep, &result, nullptr) == SQLITE_OK);
  return result;
}

// Same for either durable kind.
std::string RawSql(const std::string& kind, const TempDir& dir, const std::string& sql) {
  return kind == "sqlite" ? RawSqlite(DbPath(dir), sql) : testing::PostgresQuery(PgUrl(dir), sql);
}

// Every field differs from its default, so a field that is not stored shows.
Job MakeJob(const std::string& name) {
  Job job;
  job.id = 999;  // ignored by CreateJob
  job.spec.name = name;
  job.spec.project = "show \"quoted\" / ünïcode";
  job.spec.owner = "ada \"lovelace\" / ünïcode";
  job.spec.priority = 77;
  job.spec.max_attempts = 5;
  job.spec.upscale.input = "shots/sh010/plate.mov";
  job.spec.upscale.output = "out/sh010_x4.mov";
  job.spec.upscale.model = "realesr-x4";
  job.spec.upscale.scale = 4;
  job.spec.upscale.chunk_frames = 24;
  job.spec.upscale.overwrite = true;
  job.spec.upscale.crf = 21;
  job.spec.webhooks = {"https://hooks.example.com/reelfarm?show=sh010", "http://127.0.0.1:9/x"};
  job.input_info = {1920, 1080, 1234567890123, 24000, 1001, "h264", "yuv420p10le"};
  job.state = JobState::kRunning;
  job.error = "not yet";
  job.created_unix_ms = 1700000000123;
  job.started_unix_ms = 1700000000456;
  job.finished_unix_ms = 1700000000789;
  return job;
}

// `n` tasks given in reverse index order; the last (index n-1) assembles.
std::vector<Task> MakeTasks(int n) {
  std::vector<Task> tasks;
  for (int i = n - 1; i >= 0; --i) {
    Task t;
    t.job_id = 777;  // ignored by CreateJob
    t.index = i;
    t.kind = i == n - 1 ? TaskKind::kAssemble : TaskKind::kChunk;
    t.frame_begin = i * 24;
    t.frame_end = i * 24 + 24;
    t.state = TaskState::kLeased;
    t.attempts = i + 1;
    t.workers = {"w-" + std::to_string(i), "gpu-box/2"};
    t.error = "err " + std::to_string(i) + " in \"C:\\plates\\{a,b}\"";
    t.model_digest = "sha256:" + std::to_string(i);
    t.output_digest = i % 2 ? "" : "sha256:out" + std::to_string(i);
    t.seconds = 0.125 * (i + 1);
    if (i % 2 == 0) {
      t.qc.measured = true;
      t.qc.frames = 24;
      t.qc.nan_inf_samples = i;
      t.qc.black_frames = 3;
      t.qc.clipped_low_fraction = 0.25;
      t.qc.clipped_high_fraction = 0.0625;
      t.qc.median_difference = 0.0123456789;
      t.qc.seam_differences = {0.5, 0.015625};
      t.qc.flags = {"black: 3 of 24 frames black", "seam: chunks 1|2: \"x\""};
      t.thumbnail = ".reelfarm/pictures/1/chunk_00000" + std::to_string(i) + ".jpg";
      t.preview = i == 0 ? "" : ".reelfarm/pictures/1/take_0001.webp";
    }
    tasks.push_back(t);
  }
  return tasks;
}

void CheckSameJob(const Job& got, const Job& want) {
  CHECK(got.id == want.id);
  CHECK(got.spec.name == want.spec.name);
  CHECK(got.spec.project == want.spec.project);
  CHECK(got.spec.owner == want.spec.owner);
  CHECK(got.spec.priority == want.spec.priority);
  CHECK(got.spec.max_attempts == want.spec.max_attempts);
  CHECK(got.spec.webhooks == want.spec.webhooks);
  const UpscaleSpec& g = got.spec.upscale;
  const UpscaleSpec& w = want.spec.upscale;
  CHECK(g.input == w.input);
  CHECK(g.output == w.output);
  CHECK(g.model == w.model);
  CHECK(g.scale == w.scale);
  CHECK(g.chunk_frames == w.chunk_frames);
  CHECK(g.overwrite == w.overwrite);
  CHECK(g.crf == w.crf);
  CHECK(got.input_info.width == want.input_info.width);
  CHECK(got.input_info.height == want.input_info.height);
  CHECK(got.input_info.frame_count == want.input_info.frame_count);
  CHECK(got.input_info.fps_num == want.input_info.fps_num);
  CHECK(got.input_info.fps_den == want.input_info.fps_den);
  CHECK(got.input_info.codec == want.input_info.codec);
  CHECK(got.input_info.pixel_format == want.input_info.pixel_format);
  CHECK(got.state == want.state);
  CHECK(got.error == want.error);
  CHECK(got.created_unix_ms == want.created_unix_ms);
  CHECK(got.started_unix_ms == want.started_unix_ms);
  CHECK(got.finished_unix_ms == want.finished_unix_ms);
}

void CheckSameTask(const Task& got, const Task& want) {
  CHECK(got.job_id == want.job_id);
  CHECK(got.index == want.index);
  CHECK(got.kind == want.kind);
  CHECK(got.frame_begin == want.frame_begin);
  CHECK(got.frame_end == want.frame_end);
  CHECK(got.state == want.state);
  CHECK(got.attempts == want.attempts);
  CHECK(got.workers == want.workers);
  CHECK(got.error == want.error);
  CHECK(got.model_digest == want.model_digest);
  CHECK(got.output_digest == want.output_digest);
  CHECK(got.seconds == want.seconds);
  CHECK(got.qc.measured == want.qc.measured);
  CHECK(got.qc.frames == want.qc.frames);
  CHECK(got.qc.nan_inf_samples == want.qc.nan_inf_samples);
  CHECK(got.qc.black_frames == want.qc.black_frames);
  CHECK(got.qc.clipped_low_fraction == want.qc.clipped_low_fraction);
  CHECK(got.qc.clipped_high_fraction == want.qc.clipped_high_fraction);
  CHECK(got.qc.median_difference == want.qc.median_difference);
  CHECK(got.qc.seam_differences == want.qc.seam_differences);
  CHECK(got.qc.flags == want.qc.flags);
  CHECK(got.thumbnail == want.thumbnail);
  CHECK(got.preview == want.preview);
}

JobStore::Snapshot Load(JobStore& store) {
  absl::StatusOr<JobStore::Snapshot> snapshot = store.LoadAll();
  INFO(snapshot.status().ToString());
  REQUIRE(snapshot.ok());
  return std::move(snapshot).value();
}

int64_t Create(JobStore& store, const Job& job, const std::vector<Task>& tasks) {
  absl::StatusOr<int64_t> id = store.CreateJob(job, tasks);
  INFO(id.status().ToString());
  REQUIRE(id.ok());
  return *id;
}

// The stored form of `tasks` of job `id`, in index order.
std::vector<Task> Stored(std::vector<Task> tasks, int64_t id) {
  std::sort(tasks.begin(), tasks.end(),
            [](const Task& a, const Task& b) { return a.index < b.index; });
  for (Task& t : tasks) t.job_id = id;
  return tasks;
}

TEST_CASE("JobStore round-trips every field of new jobs and their tasks, in order",
          "[unit][store]") {
  const std::string kind = GENERATE(as<std::string>{}, "memory", "sqlite", "postgres");
  CAPTURE(kind);
  TempDir dir;
  std::unique_ptr<JobStore> store = OpenStore(kind, dir);
  const Job first = MakeJob("first");
  const Job second = MakeJob("second");
  const int64_t id1 = Create(*store, first, MakeTasks(3));
  const int64_t id2 = Create(*store, second, MakeTasks(2));
  const int64_t id3 = Create(*store, MakeJob("no tasks"), {});
  CHECK(id1 > 0);
  CHECK(id2 > id1);
  CHECK(id3 > id2);

  const JobStore::Snapshot snap = Load(*store);
  REQUIRE(snap.jobs.size() == 3);
  Job want1 = first, want2 = second;
  want1.id = id1;
  want2.id = id2;
  CheckSameJob(snap.jobs[0], want1);
  CheckSameJob(snap.jobs[1], want2);
  CHECK(snap.jobs[2].id == id3);

  std::vector<Task> want = Stored(MakeTasks(3), id1);
  for (const Task& t : Stored(MakeTasks(2), id2)) want.push_back(t);
  REQUIRE(snap.tasks.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) CheckSameTask(snap.tasks[i], want[i]);
}

TEST_CASE("JobStore round-trips a generate job's wedge and its take tasks", "[unit][store]") {
  const std::string kind = GENERATE(as<std::string>{}, "memory", "sqlite", "postgres");
  CAPTURE(kind);
  TempDir dir;
  std::unique_ptr<JobStore> store = OpenStore(kind, dir);
  Job job;
  job.spec.name = "wedge";
  GenerateSpec& g = job.spec.generate;
  g.model = "shapes_t2v";
  g.prompt = "red circle moving right";
  g.negative_prompt = "blur";
  g.seeds = {1, -2, 9007199254740993};
  g.prompts = {"red circle moving right", "blue square moving up"};
  g.guidance_scales = {3.5, 5.0};
  g.step_counts = {8, 20};
  g.samplers = {"euler", "ddim"};
  GenerateTake take;
  take.seed = 42;
  take.prompt = "a \"quoted\" prompt";
  g.takes = {take, GenerateTake{}};
  g.width = 96;
  g.height = 64;
  g.frames = 12;
  g.output = "gen/{name}.####.png";
  g.strength = 0.25;
  std::vector<Task> tasks;
  for (int i = 0; i < 3; ++i) {
    Task t;
    t.index = i;
    t.kind = TaskKind::kTake;
    t.frame_end = 12;
    tasks.push_back(t);
  }
  const int64_t id = Create(*store, job, tasks);

  const JobStore::Snapshot snap = Load(*store);
  REQUIRE(snap.jobs.size() == 1);
  const GenerateSpec& got = snap.jobs[0].spec.generate;
  CHECK(snap.jobs[0].spec.is_generate());
  CHECK(got.model == g.model);
  CHECK(got.prompt == g.prompt);
  CHECK(got.negative_prompt == g.negative_prompt);
  CHECK(got.seeds == g.seeds);
  CHECK(got.prompts == g.prompts);
  CHECK(got.guidance_scales == g.guidance_scales);
  CHECK(got.step_counts == g.step_counts);
  CHECK(got.samplers == g.samplers);
  REQUIRE(got.takes.size() == 2);
  CHECK(got.takes[0].seed == std::optional<int64_t>(42));
  CHECK(got.takes[0].prompt == g.takes[0].prompt);
  CHECK(!got.takes[0].steps.has_value());
  CHECK(!got.takes[1].seed.has_value());
  CHECK(got.width == 96);
  CHECK(got.height == 64);
  CHECK(got.frames == 12);
  CHECK(got.output == g.output);
  CHECK(got.strength == 0.25);
  REQUIRE(snap.tasks.size() == 3);
  for (const Task& t : snap.tasks) {
    CHECK(t.job_id == id);
    CHECK(t.kind == TaskKind::kTake);
  }
}

TEST_CASE("JobStore updates of jobs and tasks are visible in LoadAll", "[unit][store]") {
  const std::string kind = GENERATE(as<std::string>{}, "memory", "sqlite", "postgres");
  CAPTURE(kind);
  TempDir dir;
  std::unique_ptr<JobStore> store = OpenStore(kind, dir);
  Job job = MakeJob("update me");
  job.id = Create(*store, job, MakeTasks(2));

  job.state = JobState::kFailed;
  job.error = "task 1 failed 3 times; see worker logs";
  job.started_unix_ms = 11;
  job.finished_unix_ms = 22;
  REQUIRE(store->UpdateJob(job).ok());

  std::vector<Task> tasks = Stored(MakeTasks(2), job.id);
  tasks[1].state = TaskState::kFailed;
  tasks[1].attempts = 3;
  tasks[1].workers = {"a", "b", "c"};
  tasks[1].error = "CUDA out of memory";
  tasks[1].model_digest = "sha256:feed";
  tasks[1].output_digest = "sha256:5e9";
  tasks[1].seconds = 12.5;
  tasks[1].qc.measured = true;
  tasks[1].qc.flags = {"nan: 3 NaN/Inf samples"};
  tasks[1].qc.nan_inf_samples = 3;
  tasks[1].thumbnail = ".reelfarm/pictures/9/chunk_000001.jpg";
  REQUIRE(store->UpdateTask(tasks[1]).ok());
  tasks[0].state = TaskState::kSucceeded;
  tasks[0].workers.clear();
  tasks[0].error.clear();
  REQUIRE(store->UpdateTask(tasks[0]).ok());

  const JobStore::Snapshot snap = Load(*store);
  REQUIRE(snap.jobs.size() == 1);
  CheckSameJob(snap.jobs[0], job);
  REQUIRE(snap.tasks.size() == 2);
  CheckSameTask(snap.tasks[0], tasks[0]);
  CheckSameTask(snap.tasks[1], tasks[1]);
}

TEST_CASE("JobStore update of a missing job or task is NOT_FOUND", "[unit][store]") {
  const std::string kind = GENERATE(as<std::string>{}, "memory", "sqlite", "postgres");
  CAPTURE(kind);
  TempDir dir;
  std::unique_ptr<JobStore> store = OpenStore(kind, dir);
  const int64_t id = Create(*store, MakeJob("only"), MakeTasks(2));

  Job ghost = MakeJob("ghost");
  ghost.id = id + 100;
  CHECK(store->UpdateJob(ghost).code() == absl::StatusCode::kNotFound);
  Task task = Stored(MakeTasks(2), id)[0];
  task.index = 2;  // the job exists, the index does not
  CHECK(store->UpdateTask(task).code() == absl::StatusCode::kNotFound);
  task.job_id = id + 100;
  task.index = 0;
  CHECK(store->UpdateTask(task).code() == absl::StatusCode::kNotFound);
}

TEST_CASE("JobStore refuses tasks that repeat an index and stores nothing", "[unit][store]") {
  const std::string kind = GENERATE(as<std::string>{}, "memory", "sqlite", "postgres");
  CAPTURE(kind);
  TempDir dir;
  std::unique_ptr<JobStore> store = OpenStore(kind, dir);
  std::vector<Task> tasks = MakeTasks(3);
  tasks[2].index = tasks[0].index;
  CHECK(store->CreateJob(MakeJob("dup"), tasks).status().code() ==
        absl::StatusCode::kInvalidArgument);
  const JobStore::Snapshot snap = Load(*store);
  CHECK(snap.jobs.empty());
  CHECK(snap.tasks.empty());
}

TEST_CASE("JobStore keeps every create and update from 4 threads", "[unit][store]") {
  const std::string kind = GENERATE(as<std::string>{}, "memory", "sqlite", "postgres");
  CAPTURE(kind);
  TempDir dir;
  std::unique_ptr<JobStore> store = OpenStore(kind, dir);
  constexpr int kThreads = 4, kJobsEach = 50, kTasks = 3;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int j = 0; j < kJobsEach; ++j) {
        Job job = MakeJob("t" + std::to_string(t) + "-" + std::to_string(j));
        absl::StatusOr<int64_t> id = store->CreateJob(job, MakeTasks(kTasks));
        if (!id.ok()) {
          ++failures;
          continue;
        }
        job.id = *id;
        job.state = JobState::kSucceeded;
        job.finished_unix_ms = *id;
        if (!store->UpdateJob(job).ok()) ++failures;
        for (Task task : Stored(MakeTasks(kTasks), *id)) {
          task.state = TaskState::kSucceeded;
          task.workers = {"thread-" + std::to_string(t)};
          task.model_digest = "digest-" + std::to_string(*id);
          if (!store->UpdateTask(task).ok()) ++failures;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  CHECK(failures == 0);

  const JobStore::Snapshot snap = Load(*store);
  REQUIRE(snap.jobs.size() == kThreads * kJobsEach);
  REQUIRE(snap.tasks.size() == kThreads * kJobsEach * kTasks);
  int bad = 0;
  for (size_t i = 0; i < snap.jobs.size(); ++i) {
    const Job& job = snap.jobs[i];
    if (i > 0 && job.id <= snap.jobs[i - 1].id) ++bad;
    if (job.state != JobState::kSucceeded || job.finished_unix_ms != job.id) ++bad;
  }
  for (size_t i = 0; i < snap.tasks.size(); ++i) {
    const Task& task = snap.tasks[i];
    if (task.job_id != snap.jobs[i / kTasks].id || task.index != int(i % kTasks)) ++bad;
    if (task.state != TaskState::kSucceeded || task.workers.size() != 1 ||
        task.model_digest != "digest-" + std::to_string(task.job_id)) {
      ++bad;
    }
  }
  CHECK(bad == 0);
}

TEST_CASE("Durable JobStores keep data across reopen and never reuse ids", "[unit][store]") {
  const std::string kind = GENERATE(as<std::string>{}, "sqlite", "postgres");
  CAPTURE(kind);
  TempDir dir;
  Job job = MakeJob("durable");
  int64_t last = 0;
  {
    std::unique_ptr<JobStore> store = OpenStore(kind, dir);
    job.id = Create(*store, job, MakeTasks(2));
    job.state = JobState::kSucceeded;
    REQUIRE(store->UpdateJob(job).ok());
    last = Create(*store, MakeJob("to delete"), MakeTasks(1));
  }
  // Deleting the newest job behind the store's back must not free its id.
  const std::string id = std::to_string(last);
  RawSql(kind, dir,
         "DELETE FROM tasks WHERE job_id = " + id + "; DELETE FROM jobs WHERE id = " + id);
  std::unique_ptr<JobStore> store = OpenStore(kind, dir);
  const JobStore::Snapshot snap = Load(*store);
  REQUIRE(snap.jobs.size() == 1);
  CheckSameJob(snap.jobs[0], job);
  REQUIRE(snap.tasks.size() == 2);
  CheckSameTask(snap.tasks[1], Stored(MakeTasks(2), job.id)[1]);
  CHECK(Create(*store, MakeJob("after"), {}) > last);
}

TEST_CASE("Durable JobStores keep an acknowledged job when the process is killed",
          "[unit][store]") {
  const std::string kind = GENERATE(as<std::string>{}, "sqlite", "postgres");
  CAPTURE(kind);
  TempDir dir;
  const std::string name = StoreName(kind, dir);  // made before the fork
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {  // child: no Catch2 here
    auto store = kind == "sqlite" ? OpenSqliteJobStore(name) : OpenPostgresJobStore(name);
    if (!store.ok() || !(*store)->CreateJob(MakeJob("acked"), MakeTasks(2)).ok()) {
      _exit(1);
    }
    kill(getpid(), SIGKILL);  // no destructors, no close
    _exit(2);
  }
  int wstatus = 0;
  REQUIRE(waitpid(pid, &wstatus, 0) == pid);
  REQUIRE(WIFSIGNALED(wstatus));
  std::unique_ptr<JobStore> store = OpenStore(kind, dir);
  const JobStore::Snapshot snap = Load(*store);
  REQUIRE(snap.jobs.size() == 1);
  CHECK(snap.jobs[0].spec.name == "acked");
  CHECK(snap.tasks.size() == 2);
}

TEST_CASE("SqliteJobStore in a missing or unwritable folder is UNAVAILABLE", "[unit][store]") {
  TempDir dir;
  const std::string missing = (dir.path() / "no-such-folder" / "jobs.db").string();
  absl::StatusOr<std::unique_ptr<JobStore>> store = OpenSqliteJobStore(missing);
  CHECK(store.status().code() == absl::StatusCode::kUnavailable);
  CHECK_THAT(std::string(store.status().message()), Catch::Contains(missing));

  if (geteuid() == 0) {
    WARN(
        "running as root: permissions are not enforced, skipping unwritable "
        "case");
    return;
  }
  const std::filesystem::path locked = dir.path() / "locked";
  std::filesystem::create_directory(locked);
  REQUIRE(chmod(locked.c_str(), 0500) == 0);
  const std::string path = (locked / "jobs.db").string();
  store = OpenSqliteJobStore(path);
  chmod(locked.c_str(), 0700);
  CHECK(store.status().code() == absl::StatusCode::kUnavailable);
  CHECK_THAT(std::string(store.status().message()), Catch::Contains(path));
}

TEST_CASE("SqliteJobStore is in WAL mode with schema version 4", "[unit][store]") {
  TempDir dir;
  std::unique_ptr<JobStore> store = OpenStore("sqlite", dir);
  CHECK(RawSqlite(DbPath(dir), "PRAGMA journal_mode") == "wal");
  CHECK(RawSqlite(DbPath(dir), "SELECT MAX(version) FROM schema_version") == "4");
  store.reset();
  store = OpenStore("sqlite", dir);  // reopening applies no step twice
  CHECK(RawSqlite(DbPath(dir), "SELECT COUNT(*) FROM schema_version") == "4");
}

TEST_CASE(
    "PostgresJobStore migrates once, with schema version 3, even when servers "
    "start together",
    "[unit][store][postgres]") {
  TempDir dir;
  const std::string url = PgUrl(dir);
  constexpr int kOpeners = 4;
  std::vector<absl::Status> results(kOpeners);
  std::vector<std::thread> threads;
  for (int i = 0; i < kOpeners; ++i) {
    threads.emplace_back([&, i] { results[i] = OpenPostgresJobStore(url).status(); });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::Status& st : results) CHECK(st.ToString() == "OK");
  CHECK(RawSql("postgres", dir, "SELECT MAX(version) FROM schema_version") == "3");
  CHECK(RawSql("postgres", dir, "SELECT COUNT(*) FROM schema_version") == "3");
  OpenStore("postgres", dir).reset();  // reopening applies no step twice
  CHECK(RawSql("postgres", dir, "SELECT COUNT(*) FROM schema_version") == "3");
}

TEST_CASE("Durable JobStores refuse a schema newer than they know", "[unit][store]") {
  const std::string kind = GENERATE(as<std::string>{}, "sqlite", "postgres");
  CAPTURE(kind);
  TempDir dir;
  OpenStore(kind, dir).reset();
  RawSql(kind, dir, "INSERT INTO schema_version VALUES(99, 0)");
  absl::StatusOr<std::unique_ptr<JobStore>> store =
      kind == "sqlite" ? OpenSqliteJobStore(DbPath(dir)) : OpenPostgresJobStore(PgUrl(dir));
  CHECK(store.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(store.status().message()), Catch::Contains("'99'"));
}

TEST_CASE("Durable JobStores report a damaged stored row as INTERNAL", "[unit][store]") {
  const std::string kind = GENERATE(as<std::string>{}, "sqlite", "postgres");
  CAPTURE(kind);
  TempDir dir;
  std::unique_ptr<JobStore> store = OpenStore(kind, dir);
  const int64_t id = Create(*store, MakeJob("victim"), MakeTasks(1));
  SECTION("spec is not JSON") { RawSql(kind, dir, "UPDATE jobs SET spec = 'not json'"); }
  SECTION("workers is not a list of names") {
    RawSql(kind, dir, "UPDATE tasks SET workers = '[1, 2]'");
  }
  SECTION("state is out of range") { RawSql(kind, dir, "UPDATE jobs SET state = 42"); }
  absl::StatusOr<JobStore::Snapshot> snap = store->LoadAll();
  CHECK(snap.status().code() == absl::StatusCode::kInternal);
  CHECK_THAT(std::string(snap.status().message()),
             Catch::Contains(std::to_string(id)) && Catch::Contains(StoreName(kind, dir)));
}

TEST_CASE("JobStore commits a batch of writes all or nothing", "[unit][store]") {
  const std::string kind = GENERATE(as<std::string>{}, "memory", "sqlite", "postgres");
  TempDir dir;
  std::unique_ptr<JobStore> store = OpenStore(kind, dir);
  using W = JobStore::Write;
  Job job;
  job.id = 42;
  job.spec.name = "batch";
  job.spec.depends_on = {7, 9};
  job.spec.requirements = {{"gpu", "h100"}};
  job.spec.request_id = "req-1";
  Task t0;
  t0.job_id = 42;
  t0.index = 0;
  Task t1 = t0;
  t1.index = 1;
  REQUIRE(store
              ->Commit({{W::Kind::kInsertJob, job, {}},
                        {W::Kind::kInsertTask, {}, t0},
                        {W::Kind::kInsertTask, {}, t1}})
              .ok());
  // A batch whose last write names a missing task changes nothing.
  Job changed = job;
  changed.state = JobState::kPaused;
  changed.spec.priority = 99;
  Task missing = t0;
  missing.index = 5;
  absl::Status st =
      store->Commit({{W::Kind::kUpdateJob, changed, {}}, {W::Kind::kUpdateTask, {}, missing}});
  CHECK(st.code() == absl::StatusCode::kNotFound);
  auto snap = store->LoadAll();
  REQUIRE(snap.ok());
  REQUIRE(snap->jobs.size() == 1);
  CHECK(snap->jobs[0].state == JobState::kQueued);
  CHECK(snap->jobs[0].spec.priority == 50);
  // A good batch applies every write: spec changes, attempt errors and the lease.
  Task leased = t1;
  leased.state = TaskState::kLeased;
  leased.workers = {"w1", "w2"};
  leased.errors = {"worker 'w1' disconnected", ""};
  leased.lease_id = 123456789012345;
  REQUIRE(
      store->Commit({{W::Kind::kUpdateJob, changed, {}}, {W::Kind::kUpdateTask, {}, leased}}).ok());
  snap = store->LoadAll();
  REQUIRE(snap.ok());
  CHECK(snap->jobs[0].id == 42);
  CHECK(snap->jobs[0].state == JobState::kPaused);
  CHECK(snap->jobs[0].spec.priority == 99);
  CHECK(snap->jobs[0].spec.depends_on == std::vector<int64_t>{7, 9});
  CHECK(snap->jobs[0].spec.requirements.at("gpu") == "h100");
  CHECK(snap->jobs[0].spec.request_id == "req-1");
  REQUIRE(snap->tasks.size() == 2);
  CHECK(snap->tasks[1].errors == leased.errors);
  CHECK(snap->tasks[1].lease_id == leased.lease_id);
  CHECK(snap->tasks[1].state == TaskState::kLeased);
}

TEST_CASE("JobStore applies a run of task updates in order, all or nothing", "[unit][store]") {
  const std::string kind = GENERATE(as<std::string>{}, "memory", "sqlite", "postgres");
  TempDir dir;
  std::unique_ptr<JobStore> store = OpenStore(kind, dir);
  using W = JobStore::Write;
  Job job;
  job.id = 7;
  std::vector<W> create = {{W::Kind::kInsertJob, job, {}}};
  std::vector<Task> tasks(6);
  for (int i = 0; i < 6; ++i) {
    tasks[i].job_id = 7;
    tasks[i].index = i;
    create.push_back({W::Kind::kInsertTask, {}, tasks[i]});
  }
  REQUIRE(store->Commit(create).ok());
  // Six updates in one commit, task 2 twice (the second one wins), with text that
  // needs quoting in an array.
  std::vector<W> run;
  for (int i = 0; i < 6; ++i) {
    Task t = tasks[i];
    t.state = TaskState::kLeased;
    t.attempts = i;
    t.workers = {"w\"" + std::to_string(i) + "\\,{x}"};
    t.lease_id = 1000 + i;
    run.push_back({W::Kind::kUpdateTask, {}, t});
  }
  Task again = run[2].task;
  again.state = TaskState::kSucceeded;
  again.error = "done, \"really\"";
  again.seconds = 2.5;
  run.push_back({W::Kind::kUpdateTask, {}, again});
  REQUIRE(store->Commit(run).ok());
  auto snap = store->LoadAll();
  REQUIRE(snap.ok());
  REQUIRE(snap->tasks.size() == 6);
  for (int i = 0; i < 6; ++i) {
    INFO("task " << i);
    const Task& t = snap->tasks[i];
    CHECK(t.state == (i == 2 ? TaskState::kSucceeded : TaskState::kLeased));
    CHECK(t.attempts == i);
    CHECK(t.workers == std::vector<std::string>{"w\"" + std::to_string(i) + "\\,{x}"});
    CHECK(t.lease_id == static_cast<uint64_t>(1000 + i));
  }
  CHECK(snap->tasks[2].error == "done, \"really\"");
  CHECK(snap->tasks[2].seconds == 2.5);
  // A run that names a missing task among good ones is NOT_FOUND naming it, and
  // changes none of them.
  std::vector<W> bad;
  for (int i = 0; i < 6; ++i) {
    Task t = snap->tasks[i];
    t.state = TaskState::kFailed;
    bad.push_back({W::Kind::kUpdateTask, {}, t});
  }
  Task ghost = tasks[0];
  ghost.index = 40;
  bad.insert(bad.begin() + 3, {W::Kind::kUpdateTask, {}, ghost});
  const absl::Status st = store->Commit(bad);
  CHECK(st.code() == absl::StatusCode::kNotFound);
  CHECK_THAT(std::string(st.message()), Catch::Contains("7/40"));
  auto after = store->LoadAll();
  REQUIRE(after.ok());
  for (const Task& t : after->tasks) CHECK(t.state != TaskState::kFailed);
}

TEST_CASE("PostgresJobStore of a deposed leader commits nothing", "[unit][store][postgres]") {
  TempDir dir;
  OpenStore("postgres", dir).reset();  // schema
  RawSql("postgres", dir, "UPDATE leadership SET epoch = 7, address = 'a:1'");
  absl::StatusOr<std::unique_ptr<JobStore>> leader = OpenPostgresJobStore(PgUrl(dir), 7);
  REQUIRE(leader.ok());
  const int64_t id = Create(**leader, MakeJob("before"), MakeTasks(1));
  // Another server takes over: the epoch moves on.
  RawSql("postgres", dir, "UPDATE leadership SET epoch = 8, address = 'b:2'");
  Job job = MakeJob("after");
  job.id = id;
  job.state = JobState::kFailed;
  const absl::Status st = (*leader)->UpdateJob(job);
  CHECK(st.code() == absl::StatusCode::kUnavailable);
  CHECK_THAT(std::string(st.message()), Catch::Contains("epoch 8") && Catch::Contains("'b:2'"));
  CHECK((*leader)->CreateJob(MakeJob("refused"), {}).status().code() ==
        absl::StatusCode::kUnavailable);
  const JobStore::Snapshot snap = Load(*OpenStore("postgres", dir));
  REQUIRE(snap.jobs.size() == 1);
  CHECK(snap.jobs[0].spec.name == "before");
  CHECK(snap.jobs[0].state == JobState::kRunning);
}

TEST_CASE("PostgresJobStore with a wrong or unreachable URL fails at once, naming it",
          "[unit][store][postgres]") {
  SECTION("nothing listens on the port") {
    const std::string url = "postgres://reelfarm:s3cret@127.0.0.1:1/farm";
    const auto t0 = std::chrono::steady_clock::now();
    absl::StatusOr<std::unique_ptr<JobStore>> store = OpenPostgresJobStore(url);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
    CHECK(store.status().code() == absl::StatusCode::kUnavailable);
    const std::string message(store.status().message());
    CHECK_THAT(message, Catch::Contains("postgres://reelfarm:***@127.0.0.1:1/farm"));
    CHECK_THAT(message, !Catch::Contains("s3cret"));
  }
  SECTION("the database does not exist") {
    const std::string server = testing::SharedPostgresUrl();
    const std::string url = server.substr(0, server.rfind('/')) + "/no_such_db";
    absl::StatusOr<std::unique_ptr<JobStore>> store = OpenPostgresJobStore(url);
    CHECK(store.status().code() == absl::StatusCode::kUnavailable);
    CHECK_THAT(std::string(store.status().message()),
               Catch::Contains(url) && Catch::Contains("no_such_db\" does not exist"));
  }
  SECTION("the URL is malformed") {
    absl::StatusOr<std::unique_ptr<JobStore>> store =
        OpenPostgresJobStore("postgres://reelfarm@127.0.0.1:notaport/farm");
    CHECK(store.status().code() != absl::StatusCode::kOk);
    CHECK_THAT(std::string(store.status().message()),
               Catch::Contains("postgres://reelfarm@127.0.0.1:notaport/farm"));
  }
}

TEST_CASE(
    "PostgresJobStore answers UNAVAILABLE while the database is away and "
    "recovers when it is back",
    "[unit][store][postgres][slow]") {
  testing::PostgresServer server;
  const std::string url = testing::NewPostgresDatabase(server.url());
  absl::StatusOr<std::unique_ptr<JobStore>> opened = OpenPostgresJobStore(url);
  REQUIRE(opened.ok());
  JobStore& store = **opened;
  Job job = MakeJob("kept");
  job.id = Create(store, job, MakeTasks(2));

  server.Pause();
  Job changed = job;
  changed.state = JobState::kSucceeded;
  const absl::Status away = store.UpdateJob(changed);
  CHECK(away.code() == absl::StatusCode::kUnavailable);
  CHECK_THAT(std::string(away.message()), Catch::Contains(url));
  CHECK(store.CreateJob(MakeJob("lost"), {}).status().code() == absl::StatusCode::kUnavailable);
  CHECK(store.LoadAll().status().code() == absl::StatusCode::kUnavailable);

  server.Resume();
  // The next call reconnects; nothing refused while away was stored.
  JobStore::Snapshot snap = Load(store);
  REQUIRE(snap.jobs.size() == 1);
  CheckSameJob(snap.jobs[0], job);
  REQUIRE(store.UpdateJob(changed).ok());
  CHECK(Create(store, MakeJob("after"), {}) > job.id);
  snap = Load(store);
  REQUIRE(snap.jobs.size() == 2);
  CHECK(snap.jobs[0].state == JobState::kSucceeded);
  CHECK(snap.tasks.size() == 2);
}

TEST_CASE("JobStore deletes a job and its tasks in a batch, and never reuses its id",
          "[unit][store]") {
  const std::string kind = GENERATE(as<std::string>{}, "memory", "sqlite", "postgres");
  CAPTURE(kind);
  TempDir dir;
  using W = JobStore::Write;
  std::unique_ptr<JobStore> store = OpenStore(kind, dir);
  const int64_t old_id = Create(*store, MakeJob("old"), MakeTasks(3));
  Job kept = MakeJob("kept");
  kept.id = Create(*store, kept, MakeTasks(2));
  const int64_t newest = Create(*store, MakeJob("newest"), MakeTasks(1));
  Job old_job;
  old_job.id = old_id;
  Job newest_job;
  newest_job.id = newest;
  REQUIRE(store->Commit({{W::Kind::kDeleteJob, old_job, {}}, {W::Kind::kDeleteJob, newest_job, {}}})
              .ok());
  JobStore::Snapshot snap = Load(*store);
  REQUIRE(snap.jobs.size() == 1);
  CheckSameJob(snap.jobs[0], kept);
  REQUIRE(snap.tasks.size() == 2);
  for (const Task& t : snap.tasks) CHECK(t.job_id == kept.id);
  CHECK(snap.next_job_id > newest);
  // A delete of a missing job is NOT_FOUND and undoes the whole batch.
  absl::Status st =
      store->Commit({{W::Kind::kDeleteJob, kept, {}}, {W::Kind::kDeleteJob, old_job, {}}});
  CHECK(st.code() == absl::StatusCode::kNotFound);
  CHECK(Load(*store).jobs.size() == 1);
  if (kind == "memory") return;
  // Reopened, the deleted newest id is still taken.
  store.reset();
  store = OpenStore(kind, dir);
  snap = Load(*store);
  CHECK(snap.jobs.size() == 1);
  CHECK(snap.next_job_id > newest);
  CHECK(Create(*store, MakeJob("after"), {}) > newest);
}

// A restart's sink: each job's tasks in a vector of the count the store gives.
struct RecordingSink final : JobStore::LoadSink {
  void AddJob(Job job, int task_count) override {
    counts.push_back(task_count);
    tasks[job.id].resize(task_count);
    jobs.push_back(std::move(job));
  }
  Task* TaskSlot(int64_t job_id, int index) override {
    ++slots_asked;
    auto it = tasks.find(job_id);
    if (it == tasks.end() || job_id == skipped_job) return nullptr;
    REQUIRE(index >= 0);
    REQUIRE(static_cast<size_t>(index) < it->second.size());
    return &it->second[index];
  }
  void SetNextJobId(int64_t id) override { next_job_id = id; }

  int64_t skipped_job = 0;  // TaskSlot gives no slot for this job's tasks
  std::vector<Job> jobs;
  std::vector<int> counts;
  std::map<int64_t, std::vector<Task>> tasks;
  int64_t next_job_id = -1;
  int slots_asked = 0;
};

TEST_CASE("JobStore Load streams what LoadAll holds, each task in its job's place",
          "[unit][store]") {
  const std::string kind = GENERATE(as<std::string>{}, "memory", "sqlite", "postgres");
  CAPTURE(kind);
  TempDir dir;
  using W = JobStore::Write;
  std::unique_ptr<JobStore> store = OpenStore(kind, dir);
  Job a = MakeJob("a");
  a.id = Create(*store, a, MakeTasks(5));
  // Queued tasks as a submit makes them: empty lists, no lease.
  std::vector<Task> queued(3);
  for (int i = 0; i < 3; ++i) queued[i].index = i;
  Job b = MakeJob("b");
  b.id = Create(*store, b, queued);
  Job waiting = MakeJob("waiting, no tasks yet");
  waiting.id = Create(*store, waiting, {});
  // A task added to `a` after `b`'s were written (a later row in the table).
  Task late = MakeTasks(1)[0];
  late.job_id = a.id;
  late.index = 5;
  REQUIRE(store->Commit({{W::Kind::kInsertTask, {}, late}}).ok());
  const int64_t gone = Create(*store, MakeJob("gone"), MakeTasks(2));
  Job gone_job;
  gone_job.id = gone;
  REQUIRE(store->Commit({{W::Kind::kDeleteJob, gone_job, {}}}).ok());

  const JobStore::Snapshot snap = Load(*store);
  RecordingSink sink;
  const absl::Status st = store->Load(sink);
  INFO(st.ToString());
  REQUIRE(st.ok());
  REQUIRE(sink.jobs.size() == 3);
  REQUIRE(snap.jobs.size() == 3);
  for (size_t i = 0; i < 3; ++i) CheckSameJob(sink.jobs[i], snap.jobs[i]);
  CHECK(sink.counts == std::vector<int>{6, 3, 0});
  CHECK(sink.next_job_id == snap.next_job_id);
  CHECK(sink.next_job_id > gone);
  REQUIRE(snap.tasks.size() == 9);
  CHECK(sink.slots_asked == 9);
  for (const Task& want : snap.tasks) {
    INFO("task " << want.job_id << "/" << want.index);
    CheckSameTask(sink.tasks.at(want.job_id).at(want.index), want);
    CHECK(sink.tasks.at(want.job_id).at(want.index).errors == want.errors);
    CHECK(sink.tasks.at(want.job_id).at(want.index).lease_id == want.lease_id);
  }
  CHECK(sink.tasks.at(b.id)[2].workers.empty());
  CHECK(sink.tasks.at(a.id)[5].workers == late.workers);

  // A job the sink gives no slots for: its rows are skipped, the others still land.
  RecordingSink partial;
  partial.skipped_job = a.id;
  REQUIRE(store->Load(partial).ok());
  CHECK(partial.tasks.at(a.id)[0].job_id == 0);  // never filled
  CheckSameTask(partial.tasks.at(b.id)[1], sink.tasks.at(b.id)[1]);
}

}  // namespace
}  // namespace reelfarm::scheduler
