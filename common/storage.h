// Storage: every path a job names is relative to one storage root that the server
// and the workers share. Resolution refuses absolute paths and paths that leave the
// root (lexically, or through a symbolic link), and publishing is atomic: write to a
// temporary name beside the final one, then rename (or link).
#pragma once

#include <filesystem>
#include <memory>
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

// The storage root, and the seam between the farm and the file system it writes to
// (LevelDB's Env): path confinement and publishing are written once here, over four
// file-system steps (write, fsync, link, rename) that an implementation provides.
// Open() gives the local file system's; a test's implementation fails a chosen step
// (tests/testing/faulty_storage.h: a full disk, an I/O error, a torn publish).
// Thread-safe: the steps are; everything else reads only the root.
class Storage {
 public:
  // The local file system's storage at `root`, made if missing; `root` is made absolute
  // and canonical. NOT_FOUND when it cannot be, FAILED_PRECONDITION when not a folder.
  static absl::StatusOr<std::unique_ptr<Storage>> Open(const std::filesystem::path& root);

  virtual ~Storage() = default;
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  // The file-system steps; each returns 0 or an errno value (ENOSPC, EIO, EXDEV...).
  // Writes all `size` bytes at the file position of `fd`.
  virtual int Write(int fd, const char* data, size_t size) const = 0;
  virtual int Fsync(int fd) const = 0;
  // link(2): makes `to`, never replacing anything (EEXIST).
  virtual int Link(const std::filesystem::path& from, const std::filesystem::path& to) const = 0;
  // rename(2); without `replace` an existing `to` is kept (EEXIST).
  virtual int Rename(const std::filesystem::path& from, const std::filesystem::path& to,
                     bool replace) const = 0;

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

  // Writes `bytes` to the new file `path` (a TempPathFor name; replaced if there), with
  // Write; the caller publishes it. On failure nothing is left at `path`. UNAVAILABLE
  // (retryable) naming `name`; a full disk says so.
  absl::Status WriteFile(const std::filesystem::path& path, absl::string_view bytes,
                         absl::string_view name) const;

  // Atomically moves `temp` to `final_path` (creating its folder), fsyncing the file.
  // Without `replace`, an existing `final_path` is kept and ALREADY_EXISTS returned.
  // A failed fsync or rename (read-only or full storage) is UNAVAILABLE: retryable.
  // For the farm's own files (scratch); a job's outputs go out with PublishStaged.
  absl::Status Publish(const std::filesystem::path& temp, const std::filesystem::path& final_path,
                       bool replace = true) const;

  // Publishes job outputs that are complete in the job's scratch folder: each pair is
  // {staged, final}. All or nothing: every staged file is hard-linked at its final path
  // (link(2) never replaces anything), and if one final path is taken, or a step fails,
  // the links made by this call are undone: ALREADY_EXISTS names a taken file. A final
  // path that is already a link to its staged file (an earlier attempt of the same task
  // published it) counts as published. With `replace` (the job says overwrite), a file
  // or a symbolic link at a final path is replaced (never followed); a folder never is.
  // The staged files stay until the job's scratch is removed, so that a retry
  // recognises its own outputs. UNAVAILABLE for I/O errors (retryable).
  using StagedFile = std::pair<std::filesystem::path, std::filesystem::path>;
  absl::Status PublishStaged(const std::vector<StagedFile>& files, bool replace) const;
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
  // The pictures workers make of a job's tasks (thumbnails, previews), in the farm's
  // folder beside the job's scratch: they stay when the scratch is removed (the job
  // succeeded), for the monitor, until the job is purged.
  static std::string JobPicturesDir(int64_t job_id);

 protected:
  // `root` as Open() makes it: made if missing, absolute and canonical, a folder.
  static absl::StatusOr<std::filesystem::path> CanonicalRoot(const std::filesystem::path& root);
  explicit Storage(std::filesystem::path root) : root_(std::move(root)) {}

 private:
  // Resolve()'s work: the full path, and where the part of it that exists leads (its
  // real path: beneath the root, or Resolve() fails).
  absl::StatusOr<std::pair<std::filesystem::path, std::filesystem::path>> ResolveReal(
      absl::string_view relative, absl::string_view field) const;
  // A copy of `staged` beside `final_path` (on another file system than the staging
  // folder: link(2) cannot cross it), written and fsynced, at `*copy`.
  absl::Status CopyBeside(const std::filesystem::path& staged,
                          const std::filesystem::path& final_path,
                          std::filesystem::path* copy) const;

  const std::filesystem::path root_;
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
