// A Storage for tests that fails a chosen file-system step (LevelDB's SpecialEnv): the
// Nth write, fsync, link or rename from now fails with the errno a test gives (ENOSPC
// for a full disk, EIO), without mounting anything. Every other step is the local file
// system's, on the same root. Thread-safe.
#pragma once

#include <array>
#include <filesystem>
#include <memory>

#include "absl/synchronization/mutex.h"

#include "common/storage.h"

namespace reelfarm::testing {

class FaultyStorage final : public common::Storage {
 public:
  enum class Step { kWrite = 0, kFsync, kLink, kRename };

  static absl::StatusOr<std::unique_ptr<FaultyStorage>> Open(const std::filesystem::path& root);

  // The `nth` call of `step` from now (1: the next) fails with `err` (a failed write
  // writes half its bytes first, as a disk that fills), and so do the
  // `times - 1` calls after it (times < 0: every call after it). Replaces an earlier
  // FailAt of the same step.
  void FailAt(Step step, int nth, int err, int times = 1);
  // No step fails any more.
  void Heal();
  // Calls of `step` since Open, and how many of them failed.
  int calls(Step step) const;
  int failures(Step step) const;

  int Write(int fd, const char* data, size_t size) const override;
  int Fsync(int fd) const override;
  int Link(const std::filesystem::path& from, const std::filesystem::path& to) const override;
  int Rename(const std::filesystem::path& from, const std::filesystem::path& to,
             bool replace) const override;

 private:
  FaultyStorage(std::filesystem::path root, std::unique_ptr<common::Storage> local)
      : Storage(std::move(root)), local_(std::move(local)) {}
  // 0, or the errno the call of `step` being made now fails with.
  int Next(Step step) const;

  struct Rule {
    int from = 0;   // the call number (counted since Open) that fails first; 0: none
    int until = 0;  // the first call number that succeeds again; -1: none
    int err = 0;
  };
  const std::unique_ptr<common::Storage> local_;
  mutable absl::Mutex mu_;
  mutable std::array<int, 4> calls_ ABSL_GUARDED_BY(mu_) = {};
  mutable std::array<int, 4> failures_ ABSL_GUARDED_BY(mu_) = {};
  std::array<Rule, 4> rules_ ABSL_GUARDED_BY(mu_) = {};
};

}  // namespace reelfarm::testing
