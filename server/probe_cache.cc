#include "server/probe_cache.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace reelfarm::server {

absl::StatusOr<FileIdentity> FileIdentity::Of(int fd, bool* regular) {
  struct stat st;
  if (fstat(fd, &st) != 0) {
    return absl::InternalError(absl::StrCat("fstat: ", std::strerror(errno)));
  }
  if (regular != nullptr) *regular = S_ISREG(st.st_mode);
  FileIdentity id;
  id.device = st.st_dev;
  id.inode = st.st_ino;
  id.size = st.st_size;
  id.mtime_ns = int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
  id.ctime_ns = int64_t{st.st_ctim.tv_sec} * 1'000'000'000 + st.st_ctim.tv_nsec;
  return id;
}

std::optional<media::VideoInfo> ProbeCache::Find(const FileIdentity& id, bool count_miss) {
  std::optional<media::VideoInfo> found;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = index_.find(id); it != index_.end()) {
      ++hits_;
      lru_.splice(lru_.begin(), lru_, it->second);
      found = it->second->second;
    } else if (count_miss) {
      ++misses_;
    } else {
      return std::nullopt;
    }
  }
  if (on_lookup_) on_lookup_(found.has_value());
  return found;
}

void ProbeCache::Insert(const FileIdentity& id, const media::VideoInfo& info) {
  absl::MutexLock lock(&mu_);
  if (auto it = index_.find(id); it != index_.end()) {
    it->second->second = info;
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  lru_.emplace_front(id, info);
  index_[id] = lru_.begin();
  while (lru_.size() > capacity_) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
}

int64_t ProbeCache::hits() const {
  absl::MutexLock lock(&mu_);
  return hits_;
}

int64_t ProbeCache::misses() const {
  absl::MutexLock lock(&mu_);
  return misses_;
}

size_t ProbeCache::size() const {
  absl::MutexLock lock(&mu_);
  return lru_.size();
}

}  // namespace reelfarm::server
