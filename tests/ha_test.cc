// PostgreSQL state and active/standby servers, on real processes and a real
// PostgreSQL: a standby that takes over from a SIGKILLed leader mid-job, a wrong or
// unreachable database at start-up, and a database that goes away while serving.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "tests/testing/checks.h"
#include "tests/testing/farm.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/postgres.h"

namespace fs = std::filesystem;
using namespace reelfarm;
using testing::Farm;
using testing::UpscaleSpec;
using Clock = std::chrono::steady_clock;

namespace {

// Records, behind the store's back, every time a task becomes SUCCEEDED (state 3):
// a chunk committed twice would show as two rows.
constexpr char kAuditSql[] = R"sql(
CREATE TABLE task_commits(job_id BIGINT, idx INT, lease_id BIGINT);
CREATE FUNCTION audit_success() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.state = 3 AND OLD.state <> 3 THEN
    INSERT INTO task_commits VALUES (NEW.job_id, NEW.idx, NEW.lease_id);
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER audit_success AFTER UPDATE ON tasks FOR EACH ROW
  EXECUTE FUNCTION audit_success();
)sql";

int CountTasks(const v1::Job& job, v1::TaskState state) {
  int n = 0;
  for (const auto& t : job.tasks()) n += t.state() == state;
  return n;
}

// GetJob on one server, as a client that does not follow the leader.
grpc::Status GetJobFrom(const std::string& address, int64_t id, grpc::ClientContext* ctx,
                        v1::Job* job) {
  auto stub =
      v1::JobService::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::GetJobRequest req;
  req.set_job_id(id);
  return stub->GetJob(ctx, req, job);
}

std::string Trailer(const grpc::ClientContext& ctx, const std::string& key) {
  const auto& md = ctx.GetServerTrailingMetadata();
  auto it = md.find(key);
  return it == md.end() ? "" : std::string(it->second.data(), it->second.size());
}

}  // namespace

TEST_CASE("a standby takes over within 15 s when the leader is SIGKILLed mid-job",
          "[integration][postgres][failover]") {
  testing::TempDir dir;
  const std::string url = testing::NewPostgresDatabase(testing::SharedPostgresUrl());
  Farm farm(dir.path() / "farm", {"--store", url});
  farm.StartStandby();
  testing::PostgresQuery(url, kAuditSql);
  testing::MakeTestClip(farm.storage() / "plates/a.mp4", 320, 180, 80);
  farm.StartWorker("w1", {"--frame-delay-ms", "40"});
  farm.StartWorker("w2", {"--frame-delay-ms", "40"});
  farm.WaitForWorkers(2);

  v1::SubmitJobResponse a;
  REQUIRE(farm.Submit(UpscaleSpec("plates/a.mp4", "renders/a.mp4", 2), &a).ok());
  // The standby refuses, naming the leader in its message and trailing metadata.
  {
    grpc::ClientContext ctx;
    v1::Job job;
    const grpc::Status st = GetJobFrom(farm.standby_address(), a.job_id(), &ctx, &job);
    CHECK(st.error_code() == grpc::StatusCode::UNAVAILABLE);
    CHECK_THAT(st.error_message(),
               Catch::Contains("standby") && Catch::Contains("'" + farm.address() + "'"));
    CHECK(Trailer(ctx, "reelfarm-leader") == farm.address());
  }
  // reelctl given the standby first goes to the leader it names.
  {
    int status = 0;
    const std::string out = testing::Capture(
        std::string(REELFARM_REELCTL_BIN) + " --insecure --server " + farm.standby_address() + "," +
            farm.address() + " --json get " + std::to_string(a.job_id()),
        &status);
    INFO(out);
    CHECK(status == 0);
    CHECK_THAT(out, Catch::Contains("plates/a.mp4"));
  }
  // reelctl watch, started on the leader, goes on with the standby once it leads.
  int watch_status = -1;
  std::string watch_out;
  std::thread watcher([&] {
    watch_out = testing::Capture("timeout 180 " + std::string(REELFARM_REELCTL_BIN) +
                                     " --insecure --server " + farm.address() + "," +
                                     farm.standby_address() + " watch " +
                                     std::to_string(a.job_id()) + " 2>&1",
                                 &watch_status);
  });
  struct JoinAtExit {
    std::thread& t;
    ~JoinAtExit() {
      if (t.joinable()) t.join();
    }
  } join_watcher{watcher};
  // Some chunks done and some running when the leader dies.
  v1::Job before;
  for (int i = 0; i < 1500; ++i) {
    before = farm.Get(a.job_id());
    if (CountTasks(before, v1::TASK_STATE_SUCCEEDED) >= 8 &&
        CountTasks(before, v1::TASK_STATE_LEASED) >= 1) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  REQUIRE(before.tasks_size() == 41);
  REQUIRE(CountTasks(before, v1::TASK_STATE_SUCCEEDED) >= 8);
  REQUIRE(CountTasks(before, v1::TASK_STATE_SUCCEEDED) < 40);

  const auto killed = Clock::now();
  farm.KillLeader();
  // Taken over: the standby answers the job.
  grpc::Status st;
  while (Clock::now() - killed < std::chrono::seconds(60)) {
    grpc::ClientContext ctx;
    v1::Job job;
    st = GetJobFrom(farm.standby_address(), a.job_id(), &ctx, &job);
    if (st.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const double takeover_s = std::chrono::duration<double>(Clock::now() - killed).count();
  INFO("takeover " << takeover_s << " s; last answer: " << st.error_message());
  REQUIRE(st.ok());
  CHECK(takeover_s < 15.0);
  std::printf("failover: the standby served %.2f s after the leader was SIGKILLed\n", takeover_s);

  const v1::Job done = farm.WaitForJob(a.job_id());
  watcher.join();
  {
    INFO(watch_out);
    CHECK(watch_status == 0);
    CHECK_THAT(watch_out, Catch::Contains("job " + std::to_string(a.job_id()) + " succeeded"));
  }
  REQUIRE(done.state() == v1::JOB_STATE_SUCCEEDED);
  // reelctl given the dead leader first passes on to the new one.
  {
    int status = 0;
    const std::string out = testing::Capture(
        std::string(REELFARM_REELCTL_BIN) + " --insecure --server " + farm.address() + "," +
            farm.standby_address() + " --json get " + std::to_string(a.job_id()),
        &status);
    INFO(out);
    CHECK(status == 0);
    CHECK_THAT(out, Catch::Contains("SUCCEEDED"));
  }
  CHECK_THAT(farm.StandbyLog(), Catch::Contains("leading epoch=2"));
  // Complete: every frame, decodable, each close to its own source frame.
  testing::CheckUpscaledClip(farm.storage() / "plates/a.mp4", farm.storage() / "renders/a.mp4", 80,
                             "scale=640:360:flags=bicubic", 35.0);
  // No chunk committed twice: 41 transitions to SUCCEEDED, one per task, under leases
  // of both epochs (the old leader's honoured after the takeover, and the new one's).
  CHECK(testing::PostgresQuery(url, "SELECT COUNT(*) FROM task_commits") == "41");
  CHECK(testing::PostgresQuery(url, "SELECT COUNT(DISTINCT (job_id, idx)) FROM task_commits") ==
        "41");
  CHECK(testing::PostgresQuery(url, "SELECT COUNT(DISTINCT lease_id >> 40) FROM task_commits") ==
        "2");
}

TEST_CASE("reelfarm-server with a wrong or unreachable database fails at once, naming it",
          "[integration][postgres]") {
  testing::TempDir dir;
  std::string url, expect;
  SECTION("nothing listens there") {
    url = "postgres://reelfarm:s3cret@127.0.0.1:1/farm";
    expect = "postgres://reelfarm:***@127.0.0.1:1/farm";
  }
  SECTION("no such database") {
    const std::string server = testing::SharedPostgresUrl();
    url = expect = server.substr(0, server.rfind('/')) + "/no_such_farm";
  }
  const auto t0 = Clock::now();
  int status = 0;
  const std::string out = testing::Capture(
      std::string(REELFARM_SERVER_BIN) +
          " --listen 127.0.0.1:0 --insecure --no-auth --metrics-listen '' --data-dir '" +
          dir.path().string() + "' --store '" + url + "' 2>&1",
      &status);
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  INFO(out);
  CHECK(status == 2);  // a start-up error: the flag (--store) is to be changed
  CHECK(seconds < 10.0);
  CHECK_THAT(out, Catch::Contains("cannot start") && Catch::Contains("'" + expect + "'"));
  CHECK_THAT(out, !Catch::Contains("s3cret"));
}

TEST_CASE("a server whose database goes away refuses writes and recovers when it is back",
          "[integration][postgres]") {
  testing::PostgresServer pg;
  const std::string url = testing::NewPostgresDatabase(pg.url());
  testing::TempDir dir;
  Farm farm(dir.path() / "farm", {"--store", url});
  testing::MakeTestClip(farm.storage() / "plates/a.mp4", 320, 180, 24);
  testing::MakeTestClip(farm.storage() / "plates/b.mp4", 320, 180, 24);
  farm.StartWorker("w1");
  farm.WaitForWorkers(1);
  v1::SubmitJobResponse a;
  REQUIRE(farm.Submit(UpscaleSpec("plates/a.mp4", "renders/a.mp4", 12), &a).ok());
  REQUIRE(farm.WaitForJob(a.job_id()).state() == v1::JOB_STATE_SUCCEEDED);

  pg.Pause();
  // The server notices (its commits fail, or its leadership session ends), stops
  // serving and stands by: reads and writes answer UNAVAILABLE, saying why.
  grpc::Status st;
  const auto away = Clock::now();
  while (Clock::now() - away < std::chrono::seconds(30)) {
    grpc::ClientContext ctx;
    v1::Job job;
    st = GetJobFrom(farm.address(), a.job_id(), &ctx, &job);
    if (st.error_code() == grpc::StatusCode::UNAVAILABLE &&
        st.error_message().find("stands by") != std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  v1::SubmitJobResponse b;
  st = farm.Submit(UpscaleSpec("plates/b.mp4", "renders/b.mp4", 12), &b);
  INFO("submit while the database is away: " << st.error_message());
  CHECK(st.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK_THAT(st.error_message(), Catch::Contains("stands by") && Catch::Contains(url));

  pg.Resume();
  // Leads again once the database is back: the job from before answers.
  const auto back = Clock::now();
  while (Clock::now() - back < std::chrono::seconds(60)) {
    grpc::ClientContext ctx;
    v1::Job job;
    st = GetJobFrom(farm.address(), a.job_id(), &ctx, &job);
    if (st.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  REQUIRE(st.ok());
  st = farm.Submit(UpscaleSpec("plates/b.mp4", "renders/b.mp4", 12), &b);
  INFO("submit once the database is back: " << st.error_message());
  REQUIRE(st.ok());
  CHECK(b.job_id() > a.job_id());
  REQUIRE(farm.WaitForJob(b.job_id()).state() == v1::JOB_STATE_SUCCEEDED);
  // The job from before the outage is intact.
  const v1::Job ja = farm.Get(a.job_id());
  CHECK(ja.state() == v1::JOB_STATE_SUCCEEDED);
  CHECK(ja.tasks_size() == 3);
  CHECK(CountTasks(ja, v1::TASK_STATE_SUCCEEDED) == 3);
  testing::CheckUpscaledClip(farm.storage() / "plates/b.mp4", farm.storage() / "renders/b.mp4", 24,
                             "scale=640:360:flags=bicubic", 35.0);
  CHECK_THAT(farm.ServerLog(), Catch::Contains("stepping down from epoch 1"));
}

TEST_CASE("a stalled leader is replaced, and once it wakes it changes nothing",
          "[integration][postgres][failover][slow]") {
  testing::TempDir dir;
  const std::string url = testing::NewPostgresDatabase(testing::SharedPostgresUrl());
  Farm farm(dir.path() / "farm", {"--store", url});
  farm.StartStandby();
  testing::MakeTestClip(farm.storage() / "plates/a.mp4", 320, 180, 24);
  v1::SubmitJobResponse a;  // no workers: it stays queued
  REQUIRE(farm.Submit(UpscaleSpec("plates/a.mp4", "renders/a.mp4", 12), &a).ok());

  // Stopped, not dead: its sessions stay open until PostgreSQL ends the idle
  // leadership session, which frees the lock for the standby.
  farm.SignalLeader(SIGSTOP);
  const auto stopped = Clock::now();
  grpc::Status st;
  while (Clock::now() - stopped < std::chrono::seconds(60)) {
    grpc::ClientContext ctx;
    v1::Job job;
    st = GetJobFrom(farm.standby_address(), a.job_id(), &ctx, &job);
    if (st.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const double takeover_s = std::chrono::duration<double>(Clock::now() - stopped).count();
  INFO("takeover after " << takeover_s << " s; last answer: " << st.error_message());
  REQUIRE(st.ok());
  CHECK(takeover_s < 30.0);
  std::printf("stalled leader: the standby served %.2f s after SIGSTOP\n", takeover_s);

  // The old leader wakes up believing it leads: a change sent to it is refused.
  farm.SignalLeader(SIGCONT);
  {
    auto stub = v1::JobService::NewStub(
        grpc::CreateChannel(farm.address(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::CancelJobRequest req;
    req.set_job_id(a.job_id());
    v1::Job job;
    st = stub->CancelJob(&ctx, req, &job);
    INFO("cancel sent to the deposed leader: " << st.error_code() << " " << st.error_message());
    // Refused: UNAVAILABLE, or CANCELLED when the call meets the server stepping down
    // (gRPC's answer to a call cut by a shutdown); the state check below shows that
    // nothing changed either way.
    CHECK((st.error_code() == grpc::StatusCode::UNAVAILABLE ||
           st.error_code() == grpc::StatusCode::CANCELLED));
  }
  // It steps down; the new leader's state is untouched.
  for (int i = 0;
       i < 100 && farm.ServerLog().find("stepping down from epoch 1") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK_THAT(farm.ServerLog(), Catch::Contains("stepping down from epoch 1"));
  grpc::ClientContext ctx;
  v1::Job job;
  REQUIRE(GetJobFrom(farm.standby_address(), a.job_id(), &ctx, &job).ok());
  CHECK(job.state() == v1::JOB_STATE_QUEUED);
  CHECK(testing::PostgresQuery(
            url, "SELECT state FROM jobs WHERE id = " + std::to_string(a.job_id())) == "1");
  CHECK(testing::PostgresQuery(url, "SELECT epoch FROM leadership") == "2");
}
