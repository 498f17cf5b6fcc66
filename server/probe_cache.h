// What SubmitJob learnt of an input file, kept by the file's identity so that a submit of
// an input already probed does no media I/O: one fstat of the opened file, then a lookup.
// The identity is (device, inode, size, mtime, ctime): a file rewritten in place, renamed
// over, or touched back to its old mtime gets a new entry. Image sequences are not
// cached (a frame rewritten in place changes no identity of the folder). Least recently
// used entries are dropped beyond the capacity. Thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <list>
#include <optional>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/file_identity.h"
#include "media/media.h"

namespace reelfarm::server {

using common::FileIdentity;

class ProbeCache {
 public:
  // `on_lookup(hit)` is called after each Find (outside the lock), e.g. to count it.
  explicit ProbeCache(std::function<void(bool hit)> on_lookup = nullptr, size_t capacity = 4096)
      : capacity_(capacity), on_lookup_(std::move(on_lookup)) {}
  ProbeCache(const ProbeCache&) = delete;
  ProbeCache& operator=(const ProbeCache&) = delete;

  // The probe of the file with `id`, counted as a hit; nullopt (a miss) when none,
  // counted unless `count_miss` is false (a caller that will look again, and probe).
  std::optional<media::VideoInfo> Find(const FileIdentity& id, bool count_miss = true)
      ABSL_LOCKS_EXCLUDED(mu_);
  void Insert(const FileIdentity& id, const media::VideoInfo& info) ABSL_LOCKS_EXCLUDED(mu_);

  int64_t hits() const ABSL_LOCKS_EXCLUDED(mu_);
  int64_t misses() const ABSL_LOCKS_EXCLUDED(mu_);
  size_t size() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  using Entry = std::pair<FileIdentity, media::VideoInfo>;
  const size_t capacity_;
  const std::function<void(bool hit)> on_lookup_;
  mutable absl::Mutex mu_;
  std::list<Entry> lru_ ABSL_GUARDED_BY(mu_);  // most recently used first
  absl::flat_hash_map<FileIdentity, std::list<Entry>::iterator> index_ ABSL_GUARDED_BY(mu_);
  int64_t hits_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t misses_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace reelfarm::server
