#include "common/file_identity.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace reelfarm::common {

FileIdentity FileIdentity::FromStat(const struct stat& st) {
  FileIdentity id;
  id.device = st.st_dev;
  id.inode = st.st_ino;
  id.size = st.st_size;
  id.mtime_ns = int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
  id.ctime_ns = int64_t{st.st_ctim.tv_sec} * 1'000'000'000 + st.st_ctim.tv_nsec;
  return id;
}

absl::StatusOr<FileIdentity> FileIdentity::Of(int fd, bool* regular) {
  struct stat st;
  if (fstat(fd, &st) != 0) {
    return absl::InternalError(absl::StrCat("fstat: ", std::strerror(errno)));
  }
  if (regular != nullptr) *regular = S_ISREG(st.st_mode);
  return FromStat(st);
}

std::string FileIdentity::ToString() const {
  return absl::StrCat(device, ":", inode, ":", size, ":", mtime_ns, ":", ctime_ns);
}

}  // namespace reelfarm::common
