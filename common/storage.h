// Storage: every path a job names is relative to one storage root that the server
// and the workers share. Resolution refuses absolute paths and paths that leave the
// root (lexically, or through a symbolic link), and publishing is atomic: write to a
// temporary name beside the final one, then rename.
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

#include "common/status.h"

namespace reelfarm::common {

// An open file descriptor, closed on destruction. path() names it for libraries that
// take paths (FFmpeg): "/proc/self/fd/N", which reaches the file or folder that was
// opened, whatever has been renamed or swapped in at its old path since.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd();
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  std::string path() const;

 private:
  int fd_ = -1;
};

// `st` with every mention of `fd.path()` replaced by `name`: messages of a library that
// was handed /proc/self/fd/N then name the file or folder as the job does.
absl::Status NameFdPath(const absl::Status& st, const UniqueFd& fd, absl::string_view name);

// Opens `relative` beneath the folder `dirfd` (openat2 RESOLVE_BENEATH |
// RESOLVE_NO_MAGICLINKS): PERMISSION_DENIED when a symbolic link or ".." leads out of it
// (naming `beneath`, e.g. "the storage root"), NOT_FOUND when missing, UNAVAILABLE for
// I/O errors (retryable). `what` starts each message.
absl::StatusOr<UniqueFd> OpenBeneathFd(int dirfd, const std::string& relative, int flags,
                                       const std::string& what, const std::string& beneath);
// The file `name` of `folder` (a path; "" for the current folder), opened beneath the
// folder as OpenBeneathFd: a file that is a link leading out of its folder is refused.
absl::StatusOr<UniqueFd> OpenInFolder(const std::string& folder, const std::string& name, int flags,
                                      const std::string& what);

class Storage {
 public:
  // `root` must exist; it is made absolute and canonical.
  static absl::StatusOr<Storage> Open(const std::filesystem::path& root);

  const std::filesystem::path& root() const { return root_; }

  // Resolves `relative` beneath the root. `field` names the spec field for messages.
  // PERMISSION_DENIED for an absolute path, a ".." that climbs out, or an existing
  // component that is a symbolic link leading outside; INVALID_ARGUMENT when empty.
  absl::StatusOr<std::filesystem::path> Resolve(absl::string_view relative,
                                                absl::string_view field) const;
  // Resolve() for a path a job names (an input or an output): also PERMISSION_DENIED
  // when it lies in the farm's own folder (kFarmDir: job scratch, segments), named
  // directly or reached through a symbolic link.
  absl::StatusOr<std::filesystem::path> ResolveJobPath(absl::string_view relative,
                                                       absl::string_view field) const;

  // Opens `path` (a path Resolve() returned, or one relative to the root) with
  // `flags`, resolving every component beneath the root at the time of the call: a
  // symbolic link (or "..") that leads out of the root, even one swapped in after
  // Resolve(), fails with PERMISSION_DENIED (openat2 RESOLVE_BENEATH). NOT_FOUND when
  // it does not exist. `field` names the spec field for messages.
  absl::StatusOr<UniqueFd> OpenBeneath(const std::filesystem::path& path, int flags,
                                       absl::string_view field) const;
  // The folder `dir` (as OpenBeneath), made first with its missing parents when
  // `create`; opened O_PATH, for use through UniqueFd::path() + "/name".
  absl::StatusOr<UniqueFd> OpenDirBeneath(const std::filesystem::path& dir, bool create,
                                          absl::string_view field) const;

  // A temporary name in the same folder as `final_path` (so rename is atomic).
  static std::filesystem::path TempPathFor(const std::filesystem::path& final_path);

  // Atomically moves `temp` to `final_path` (creating its folder), fsyncing the file.
  // Without `replace`, an existing `final_path` is kept and ALREADY_EXISTS returned.
  // A failed write or rename (read-only or full storage) is UNAVAILABLE: retryable.
  // For the farm's own files (scratch); a job's outputs go out with PublishStaged.
  static absl::Status Publish(const std::filesystem::path& temp,
                              const std::filesystem::path& final_path, bool replace = true);

  // Publishes job outputs that are complete in the job's scratch folder: each pair is
  // {staged, final}. All or nothing: every staged file is hard-linked at its final path
  // (link(2) never replaces anything), and if one final path is taken, the links made
  // by this call are undone and ALREADY_EXISTS names the file. A final path that is
  // already a link to its staged file (an earlier attempt of the same task published
  // it) counts as published. With `replace` (the job says overwrite), a file or a
  // symbolic link at a final path is replaced (never followed); a folder never is.
  // The staged files stay until the job's scratch is removed, so that a retry
  // recognises its own outputs. UNAVAILABLE for I/O errors (retryable).
  using StagedFile = std::pair<std::filesystem::path, std::filesystem::path>;
  static absl::Status PublishStaged(const std::vector<StagedFile>& files, bool replace);
  // Whether `final_path` is `staged` (the same inode): published by this job.
  static bool IsPublished(const std::filesystem::path& staged,
                          const std::filesystem::path& final_path);

  // The farm's own folder under the root; no job may name a path in it.
  static constexpr const char* kFarmDir = ".reelfarm";
  // A job's scratch folder (segments, staged outputs), removed by the server when the
  // job succeeds or is cancelled; and its parts (segments) and staged outputs in it.
  static std::string JobScratchDir(int64_t job_id);
  static std::string JobPartsDir(int64_t job_id);
  static std::string JobStagingDir(int64_t job_id);

 private:
  explicit Storage(std::filesystem::path root) : root_(std::move(root)) {}
  std::filesystem::path root_;
};

// Whether a job may write `path` (as Resolve() gave it): FAILED_PRECONDITION when it is
// a folder, ALREADY_EXISTS when anything else is there (a file, a symbolic link, even
// one that leads nowhere) and not `replace`. `field` and `name` name the output.
absl::Status CheckOutputFree(const std::filesystem::path& path, absl::string_view field,
                             absl::string_view name, bool replace);

// Hex SHA-256 of a file's bytes.
absl::StatusOr<std::string> Sha256File(const std::filesystem::path& path);
// Hex SHA-256 of the files' bytes one after the other (an image sequence chunk).
absl::StatusOr<std::string> Sha256Files(const std::vector<std::filesystem::path>& paths);

}  // namespace reelfarm::common
