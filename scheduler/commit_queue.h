// CommitQueue: group commit. The scheduler appends store writes in the order it makes
// its changes (under its own lock); a background thread commits everything queued so
// far in one transaction, so one durable commit covers many changes. Callers that must
// not acknowledge before durability wait for their sequence number.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "scheduler/job_store.h"

namespace reelfarm::scheduler {

class CommitQueue final {
 public:
  explicit CommitQueue(JobStore* store);
  ~CommitQueue();  // commits what is queued, then stops the thread
  CommitQueue(const CommitQueue&) = delete;
  CommitQueue& operator=(const CommitQueue&) = delete;

  // Queues `writes` (in order, after everything queued before) and returns the
  // sequence number that covers them. Thread-safe.
  uint64_t Append(std::vector<JobStore::Write> writes);
  // Blocks until every write up to `seq` is committed. After a failed commit every
  // later wait fails with that error: the in-memory state is then ahead of the store
  // and the server must stop taking writes (a restart reloads the committed state).
  absl::Status WaitFor(uint64_t seq);
  // Runs `done` once every write up to `seq` is committed (with OK) or commits have
  // failed (with the error): at once in this thread if that is already so, else on the
  // committer thread. `done` must be quick and must not call back into this queue.
  void AfterCommit(uint64_t seq, std::function<void(const absl::Status&)> done);
  // The error that stopped commits, or OK.
  absl::Status health();

  // For metrics: batches committed and writes in them.
  uint64_t batches() const;
  uint64_t writes() const;

 private:
  void Loop();

  JobStore* const store_;
  mutable absl::Mutex mu_;
  absl::CondVar work_;       // writes queued, or stopping
  absl::CondVar committed_;  // committed_seq_ moved, or failed
  std::vector<JobStore::Write> queue_ ABSL_GUARDED_BY(mu_);
  std::multimap<uint64_t, std::function<void(const absl::Status&)>> callbacks_ ABSL_GUARDED_BY(mu_);
  uint64_t appended_seq_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t committed_seq_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status failure_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t batches_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t writes_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace reelfarm::scheduler
