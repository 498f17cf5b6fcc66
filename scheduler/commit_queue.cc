#include "scheduler/commit_queue.h"

#include "common/thread_name.h"

namespace reelfarm::scheduler {

CommitQueue::CommitQueue(JobStore* store) : store_(store) {
  thread_ = std::thread([this] {
    common::NameThread("rf-commit");
    Loop();
  });
}

CommitQueue::~CommitQueue() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    work_.Signal();
  }
  thread_.join();
}

uint64_t CommitQueue::Append(std::vector<JobStore::Write> writes, Wake wake) {
  absl::MutexLock lock(&mu_);
  if (writes.empty()) return appended_seq_;
  if (queue_.empty()) {
    queue_ = std::move(writes);  // a large job's writes are not moved one by one
  } else {
    // No exact reserve here: the queue grows geometrically while a commit runs.
    for (auto& w : writes) queue_.push_back(std::move(w));
  }
  ++appended_seq_;
  if (wake == Wake::kCommitter) work_.Signal();
  return appended_seq_;
}

absl::Status CommitQueue::WaitFor(uint64_t seq) {
  absl::MutexLock lock(&mu_);
  for (;;) {
    if (committed_seq_ >= seq) return absl::OkStatus();
    if (!failure_.ok()) return failure_;
    if (!committing_ && !queue_.empty()) {
      // Lead: commit the batch here rather than wake the committer and be woken back.
      ++led_;
      CommitBatchLocked();
      continue;
    }
    committed_.Wait(&mu_);
  }
}

void CommitQueue::AfterCommit(uint64_t seq, std::function<void(const absl::Status&)> done) {
  absl::Status now;
  {
    absl::MutexLock lock(&mu_);
    if (committed_seq_ < seq && failure_.ok()) {
      callbacks_.emplace(seq, std::move(done));
      // Writes appended with Wake::kCaller are committed by their waiter; nobody else
      // need be woken. Otherwise the committer is already due (Append woke it).
      return;
    }
    now = committed_seq_ >= seq ? absl::OkStatus() : failure_;
  }
  done(now);
}

absl::Status CommitQueue::health() {
  absl::MutexLock lock(&mu_);
  return failure_;
}

uint64_t CommitQueue::batches() const {
  absl::MutexLock lock(&mu_);
  return batches_;
}

uint64_t CommitQueue::writes() const {
  absl::MutexLock lock(&mu_);
  return writes_;
}

uint64_t CommitQueue::led_batches() const {
  absl::MutexLock lock(&mu_);
  return led_;
}

void CommitQueue::CommitBatchLocked() {
  committing_ = true;
  std::vector<JobStore::Write> batch;
  batch.swap(queue_);
  const uint64_t covers = appended_seq_;
  mu_.Unlock();
  absl::Status st = store_->Commit(batch);
  mu_.Lock();
  committing_ = false;
  if (st.ok()) {
    committed_seq_ = covers;
    ++batches_;
    writes_ += batch.size();
  } else {
    failure_ = absl::UnavailableError(
        std::string("job store commit failed; the server stops taking changes until it "
                    "reloads its state (a restart; on PostgreSQL, when it leads again): ") +
        std::string(st.message()));
  }
  committed_.SignalAll();
  // What queued during this commit (for the committer, or for a waiter that leads next),
  // or a stop that waited for this commit to end.
  if (!queue_.empty() || stop_ || !failure_.ok()) work_.Signal();
  // Answer those waiting for this commit, outside the lock.
  std::vector<std::function<void(const absl::Status&)>> due;
  const absl::Status result = failure_;
  for (auto it = callbacks_.begin();
       it != callbacks_.end() && (it->first <= committed_seq_ || !result.ok());) {
    due.push_back(std::move(it->second));
    it = callbacks_.erase(it);
  }
  if (!due.empty()) {
    mu_.Unlock();
    for (auto& fn : due) fn(result);
    mu_.Lock();
  }
}

void CommitQueue::Loop() {
  absl::MutexLock lock(&mu_);
  for (;;) {
    while (committing_ || (queue_.empty() && !stop_ && (failure_.ok() || callbacks_.empty()))) {
      work_.Wait(&mu_);
    }
    if (queue_.empty() || !failure_.ok()) {
      if (!failure_.ok() && !callbacks_.empty()) {
        auto due = std::move(callbacks_);
        callbacks_.clear();
        const absl::Status failure = failure_;
        mu_.Unlock();
        for (auto& [seq, fn] : due) fn(failure);
        mu_.Lock();
      }
      if (stop_ && !committing_) return;
      // After a failure nothing more is committed: drop, and let waiters see the error.
      queue_.clear();
      continue;
    }
    CommitBatchLocked();
  }
}

}  // namespace reelfarm::scheduler
