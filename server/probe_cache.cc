#include "server/probe_cache.h"

namespace reelfarm::server {

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
