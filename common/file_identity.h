// What identifies a file's contents for a cache: (device, inode, size, mtime, ctime).
// A file rewritten in place, renamed over, or touched back to its old mtime gets another.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/statusor.h"

namespace reelfarm::common {

struct FileIdentity {
  dev_t device = 0;
  ino_t inode = 0;
  int64_t size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;

  friend bool operator==(const FileIdentity& a, const FileIdentity& b) {
    return a.device == b.device && a.inode == b.inode && a.size == b.size &&
           a.mtime_ns == b.mtime_ns && a.ctime_ns == b.ctime_ns;
  }
  template <typename H>
  friend H AbslHashValue(H h, const FileIdentity& f) {
    return H::combine(std::move(h), f.device, f.inode, f.size, f.mtime_ns, f.ctime_ns);
  }

  static FileIdentity FromStat(const struct stat& st);
  // The identity of the open file `fd` (fstat); errno's message when it fails.
  // `regular`, when given, is set to whether it is a regular file.
  static absl::StatusOr<FileIdentity> Of(int fd, bool* regular = nullptr);
  // Its fields as text, for a key that holds other things too.
  std::string ToString() const;
};

}  // namespace reelfarm::common
