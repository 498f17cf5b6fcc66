#include "tests/testing/faulty_storage.h"

#include <utility>

namespace reelfarm::testing {
namespace fs = std::filesystem;

absl::StatusOr<std::unique_ptr<FaultyStorage>> FaultyStorage::Open(const fs::path& root) {
  ASSIGN_OR_RETURN(std::unique_ptr<common::Storage> local, common::Storage::Open(root));
  fs::path canonical = local->root();
  return std::unique_ptr<FaultyStorage>(new FaultyStorage(std::move(canonical), std::move(local)));
}

void FaultyStorage::FailAt(Step step, int nth, int err, int times) {
  absl::MutexLock lock(&mu_);
  const size_t s = static_cast<size_t>(step);
  Rule& r = rules_[s];
  r.from = calls_[s] + nth;
  r.until = times < 0 ? -1 : r.from + times;
  r.err = err;
}

void FaultyStorage::Heal() {
  absl::MutexLock lock(&mu_);
  rules_ = {};
}

int FaultyStorage::calls(Step step) const {
  absl::MutexLock lock(&mu_);
  return calls_[static_cast<size_t>(step)];
}

int FaultyStorage::failures(Step step) const {
  absl::MutexLock lock(&mu_);
  return failures_[static_cast<size_t>(step)];
}

int FaultyStorage::Next(Step step) const {
  absl::MutexLock lock(&mu_);
  const size_t s = static_cast<size_t>(step);
  const int call = ++calls_[s];
  const Rule& r = rules_[s];
  if (r.from == 0 || call < r.from || (r.until >= 0 && call >= r.until)) return 0;
  ++failures_[s];
  return r.err;
}

int FaultyStorage::Write(int fd, const char* data, size_t size) const {
  if (const int err = Next(Step::kWrite); err != 0) {
    // As a disk that fills: what fits is written, then the write fails.
    local_->Write(fd, data, size / 2);
    return err;
  }
  return local_->Write(fd, data, size);
}

int FaultyStorage::Fsync(int fd) const {
  if (const int err = Next(Step::kFsync); err != 0) return err;
  return local_->Fsync(fd);
}

int FaultyStorage::Link(const fs::path& from, const fs::path& to) const {
  if (const int err = Next(Step::kLink); err != 0) return err;
  return local_->Link(from, to);
}

int FaultyStorage::Rename(const fs::path& from, const fs::path& to, bool replace) const {
  if (const int err = Next(Step::kRename); err != 0) return err;
  return local_->Rename(from, to, replace);
}

}  // namespace reelfarm::testing
