// CommitQueue: group commit. The scheduler appends store writes in the order it makes
// its changes (under its own lock); everything queued so far is committed in one
// transaction, so one durable commit covers many changes. Callers that must not
// acknowledge before durability wait for their sequence number.
//
// Who commits (leader/follower): a caller that waits (WaitFor) while no commit is in
// progress commits the queued batch itself, on its own thread, and returns: no hand-off
// to another thread and back. Callers that arrive while a commit is in progress wait
// for it, and then one of them commits what queued meanwhile (covering them all). A
// background committer thread commits what nobody waits for in person: writes whose
// acknowledgement is an AfterCommit callback (the dispatch path), or writes appended
// with Wake::kCommitter (the default) before their caller waits. One commit runs at a
// time, in append order.
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

  // Who is woken to commit appended writes.
  enum class Wake {
    kCommitter,  // the committer thread, now (for writes nobody may wait for in person)
    kCaller,     // nobody: the caller calls WaitFor(seq) at once and commits them itself
  };
  // Queues `writes` (in order, after everything queued before) and returns the
  // sequence number that covers them. Thread-safe.
  uint64_t Append(std::vector<JobStore::Write> writes, Wake wake = Wake::kCommitter);
  // Blocks until every write up to `seq` is committed; when no commit is in progress,
  // commits the queued batch on this thread (and runs the AfterCommit callbacks it
  // answers before returning). After a failed commit every
  // later wait fails with that error: the in-memory state is then ahead of the store
  // and the server must stop taking writes (a restart reloads the committed state).
  absl::Status WaitFor(uint64_t seq);
  // Runs `done` once every write up to `seq` is committed (with OK) or commits have
  // failed (with the error): at once in this thread if that is already so, else on the
  // thread that commits it (the committer thread, or a waiter leading a commit). `done`
  // must be quick and must not call back into this queue.
  void AfterCommit(uint64_t seq, std::function<void(const absl::Status&)> done);
  // The error that stopped commits, or OK.
  absl::Status health();

  // For metrics: batches committed and writes in them; batches committed by a waiter
  // on its own thread (part of batches()).
  uint64_t batches() const;
  uint64_t writes() const;
  uint64_t led_batches() const;

 private:
  void Loop();
  // Commits everything queued, as one batch, on this thread; then wakes the waiters and
  // runs the callbacks it answered (with mu_ released). Requires a queue and no commit
  // in progress.
  void CommitBatchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  JobStore* const store_;
  mutable absl::Mutex mu_;
  absl::CondVar work_;       // writes queued, a commit ended, or stopping
  absl::CondVar committed_;  // committed_seq_ moved, or failed
  std::vector<JobStore::Write> queue_ ABSL_GUARDED_BY(mu_);
  std::multimap<uint64_t, std::function<void(const absl::Status&)>> callbacks_ ABSL_GUARDED_BY(mu_);
  uint64_t appended_seq_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t committed_seq_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status failure_ ABSL_GUARDED_BY(mu_);
  bool committing_ ABSL_GUARDED_BY(mu_) = false;  // a thread is in store_->Commit
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t batches_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t writes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t led_ ABSL_GUARDED_BY(mu_) = 0;  // batches committed by a waiter
  std::thread thread_;
};

}  // namespace reelfarm::scheduler
