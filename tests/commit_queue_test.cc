// CommitQueue: who commits (a waiter leads its own batch; the committer thread takes
// what nobody waits for in person), that every acknowledged write is in the store, in
// append order, and that a failed commit fails every later wait.
#include "scheduler/commit_queue.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "tests/testing/memory_store.h"

namespace reelfarm::scheduler {
namespace {

using W = JobStore::Write;

// An in-memory store that records each commit: the thread that ran it and the job ids
// it inserted, in order. Commits can be slowed (so that callers overlap) or made to
// fail.
class RecordingStore final : public JobStore {
 public:
  struct CommitRecord {
    std::thread::id thread;
    std::vector<int64_t> jobs;
  };

  absl::StatusOr<int64_t> CreateJob(const Job& job, const std::vector<Task>& tasks) override {
    return inner_->CreateJob(job, tasks);
  }
  absl::Status Commit(const std::vector<Write>& writes) override {
    if (delay_.count() > 0) std::this_thread::sleep_for(delay_);
    {
      absl::MutexLock lock(&mu_);
      if (fail_from_ > 0 && static_cast<int>(commits_.size()) + 1 >= fail_from_) {
        return absl::UnavailableError("disk on fire");
      }
    }
    RETURN_IF_ERROR(inner_->Commit(writes));
    absl::MutexLock lock(&mu_);
    CommitRecord c;
    c.thread = std::this_thread::get_id();
    for (const Write& w : writes) {
      if (w.kind == Write::Kind::kInsertJob) {
        c.jobs.push_back(w.job.id);
        stored_.insert(w.job.id);
      }
    }
    commits_.push_back(std::move(c));
    return absl::OkStatus();
  }
  absl::StatusOr<Snapshot> LoadAll() override { return inner_->LoadAll(); }

  void set_delay(std::chrono::milliseconds d) { delay_ = d; }
  // The n-th commit (from 1) and every later one fail.
  void FailFrom(int n) {
    absl::MutexLock lock(&mu_);
    fail_from_ = n;
  }
  std::vector<CommitRecord> commits() {
    absl::MutexLock lock(&mu_);
    return commits_;
  }
  bool stored(int64_t id) {
    absl::MutexLock lock(&mu_);
    return stored_.count(id) > 0;
  }

 private:
  std::unique_ptr<JobStore> inner_ = testing::NewInMemoryJobStore();
  std::chrono::milliseconds delay_{0};
  absl::Mutex mu_;
  int fail_from_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<CommitRecord> commits_ ABSL_GUARDED_BY(mu_);
  std::set<int64_t> stored_ ABSL_GUARDED_BY(mu_);
};

std::vector<W> NewJob(int64_t id) {
  Job job;
  job.id = id;
  job.spec.name = "j" + std::to_string(id);
  Task t;
  t.job_id = id;
  t.index = 0;
  return {{W::Kind::kInsertJob, job, {}}, {W::Kind::kInsertTask, {}, t}};
}

TEST_CASE("CommitQueue commits a waiting caller's batch on the caller's own thread",
          "[unit][commit]") {
  RecordingStore store;
  CommitQueue queue(&store);
  for (int64_t id = 1; id <= 3; ++id) {
    const uint64_t seq = queue.Append(NewJob(id), CommitQueue::Wake::kCaller);
    REQUIRE(queue.WaitFor(seq).ok());
    CHECK(store.stored(id));
  }
  const auto commits = store.commits();
  REQUIRE(commits.size() == 3);
  for (const auto& c : commits) CHECK(c.thread == std::this_thread::get_id());
  CHECK(queue.led_batches() == 3);
  CHECK(queue.batches() == 3);
  CHECK(queue.writes() == 6);
}

TEST_CASE("CommitQueue commits what nobody waits for on its committer thread", "[unit][commit]") {
  RecordingStore store;
  CommitQueue queue(&store);
  const uint64_t seq = queue.Append(NewJob(1));
  // Nobody waits: the committer thread commits it.
  for (int i = 0; i < 2000 && !store.stored(1); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  REQUIRE(store.stored(1));
  const auto commits = store.commits();
  REQUIRE(commits.size() == 1);
  CHECK(commits[0].thread != std::this_thread::get_id());
  CHECK(queue.WaitFor(seq).ok());
  CHECK(queue.led_batches() == 0);
}

TEST_CASE("CommitQueue makes every concurrent waiter's writes durable, in append order",
          "[unit][commit]") {
  RecordingStore store;
  store.set_delay(std::chrono::milliseconds(2));  // so that callers queue behind a commit
  CommitQueue queue(&store);
  constexpr int kThreads = 8;
  constexpr int kEach = 25;
  std::atomic<int64_t> next_id{1};
  absl::Mutex order_mu;
  std::map<int, std::vector<int64_t>> appended;  // per thread, in its append order
  std::atomic<int> missing{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        uint64_t seq;
        int64_t id;
        {
          // Ids in append order, as the scheduler assigns them under its lock.
          absl::MutexLock lock(&order_mu);
          id = next_id++;
          seq = queue.Append(NewJob(id), CommitQueue::Wake::kCaller);
          appended[t].push_back(id);
        }
        if (!queue.WaitFor(seq).ok() || !store.stored(id)) ++missing;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(missing == 0);
  const auto commits = store.commits();
  std::vector<int64_t> committed;
  for (const auto& c : commits) committed.insert(committed.end(), c.jobs.begin(), c.jobs.end());
  REQUIRE(committed.size() == kThreads * kEach);
  // Commits apply writes in append order: ids ascending.
  CHECK(std::is_sorted(committed.begin(), committed.end()));
  // Group commit: waiters that arrived during a commit were covered by a later one.
  CHECK(queue.batches() < static_cast<uint64_t>(kThreads * kEach));
  CHECK(queue.batches() == commits.size());
}

TEST_CASE("CommitQueue batches AfterCommit acknowledgements on its committer thread",
          "[unit][commit]") {
  RecordingStore store;
  store.set_delay(std::chrono::milliseconds(2));
  CommitQueue queue(&store);
  constexpr int kJobs = 200;
  std::atomic<int> ok{0};
  std::atomic<int> on_caller{0};
  absl::Notification all;
  const std::thread::id caller = std::this_thread::get_id();
  for (int64_t id = 1; id <= kJobs; ++id) {
    queue.AfterCommit(queue.Append(NewJob(id)), [&, id](const absl::Status& st) {
      if (st.ok() && store.stored(id)) ++ok;
      if (std::this_thread::get_id() == caller) ++on_caller;
      if (id == kJobs) all.Notify();
    });
  }
  REQUIRE(all.WaitForNotificationWithTimeout(absl::Seconds(30)));
  CHECK(ok == kJobs);
  CHECK(on_caller == 0);
  CHECK(queue.batches() < static_cast<uint64_t>(kJobs));
  CHECK(queue.led_batches() == 0);
}

TEST_CASE("CommitQueue after a failed commit fails the waiter that led it and every later wait",
          "[unit][commit]") {
  RecordingStore store;
  CommitQueue queue(&store);
  REQUIRE(queue.WaitFor(queue.Append(NewJob(1), CommitQueue::Wake::kCaller)).ok());
  store.FailFrom(2);
  const uint64_t failed = queue.Append(NewJob(2), CommitQueue::Wake::kCaller);
  absl::Status st = queue.WaitFor(failed);
  CHECK(st.code() == absl::StatusCode::kUnavailable);
  CHECK(st.message().find("disk on fire") != std::string::npos);
  CHECK(queue.led_batches() == 2);
  CHECK(!queue.health().ok());
  CHECK(!store.stored(2));
  // Later writes, waited for or acknowledged by a callback, fail with the same error.
  CHECK(queue.WaitFor(queue.Append(NewJob(3), CommitQueue::Wake::kCaller)).code() ==
        absl::StatusCode::kUnavailable);
  absl::Status later;
  queue.AfterCommit(queue.Append(NewJob(4)), [&](const absl::Status& s) { later = s; });
  CHECK(later.code() == absl::StatusCode::kUnavailable);
  CHECK(!store.stored(3));
  CHECK(!store.stored(4));
  // What was committed before stays acknowledged.
  CHECK(queue.WaitFor(1).ok());
}

TEST_CASE("CommitQueue fails a pending callback when a waiter's commit fails", "[unit][commit]") {
  RecordingStore store;
  store.set_delay(std::chrono::milliseconds(50));
  store.FailFrom(1);
  CommitQueue queue(&store);
  // The waiter leads the commit; a callback registered on a write queued in the same
  // batch is answered with the failure.
  const uint64_t seq = queue.Append(NewJob(1), CommitQueue::Wake::kCaller);
  std::atomic<int> called{0};
  absl::Status got;
  absl::Notification done;
  queue.AfterCommit(seq, [&](const absl::Status& s) {
    got = s;
    ++called;
    done.Notify();
  });
  CHECK(queue.WaitFor(seq).code() == absl::StatusCode::kUnavailable);
  REQUIRE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  CHECK(called == 1);
  CHECK(got.code() == absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace reelfarm::scheduler
