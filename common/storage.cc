#include "common/storage.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <climits>
#include <cstring>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <memory>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"

namespace reelfarm::common {
namespace fs = std::filesystem;

namespace {

// The local file system's steps.
class LocalStorage final : public Storage {
 public:
  explicit LocalStorage(fs::path root) : Storage(std::move(root)) {}

  int Write(int fd, const char* data, size_t size) const override {
    for (size_t done = 0; done < size;) {
      const ssize_t n = ::write(fd, data + done, size - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return errno;
      if (n == 0) return EIO;
      done += static_cast<size_t>(n);
    }
    return 0;
  }
  int Fsync(int fd) const override { return ::fsync(fd) == 0 ? 0 : errno; }
  int Link(const fs::path& from, const fs::path& to) const override {
    return ::link(from.c_str(), to.c_str()) == 0 ? 0 : errno;
  }
  int Rename(const fs::path& from, const fs::path& to, bool replace) const override {
    return ::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(),
                       replace ? 0 : RENAME_NOREPLACE) == 0
               ? 0
               : errno;
  }
};

// A failed step of `what` (which names the file): the storage, not the job, is at
// fault, so UNAVAILABLE (retryable). A full disk says so.
absl::Status IoError(absl::string_view what, int err) {
  const bool full = err == ENOSPC || err == EDQUOT;
  return absl::UnavailableError(absl::StrCat(
      what, ": ", std::strerror(err), full ? " (the storage is full; free space on it)" : ""));
}

}  // namespace

absl::StatusOr<fs::path> Storage::CanonicalRoot(const fs::path& root) {
  std::error_code ec;
  fs::create_directories(root, ec);
  fs::path canonical = fs::canonical(root, ec);
  if (ec) {
    return absl::NotFoundError(absl::StrCat("storage root '", root.string(), "': ", ec.message()));
  }
  if (!fs::is_directory(canonical)) {
    return absl::FailedPreconditionError(
        absl::StrCat("storage root '", root.string(), "' is not a folder"));
  }
  return canonical;
}

absl::StatusOr<std::unique_ptr<Storage>> Storage::Open(const fs::path& root) {
  ASSIGN_OR_RETURN(fs::path canonical, CanonicalRoot(root));
  return std::make_unique<LocalStorage>(std::move(canonical));
}

namespace {

// openat2 of `path` (relative to `dirfd`) with the given RESOLVE_ flags; magic links
// are always refused. -1 and errno on failure.
int OpenAt2(int dirfd, const char* path, int flags, mode_t mode, uint64_t resolve) {
  struct open_how how {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.mode = (flags & O_CREAT) ? mode : 0;
  how.resolve = resolve | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(::syscall(SYS_openat2, dirfd, path, &how, sizeof(how)));
}

// Opens `path` (absolute) if no component of it is a symbolic link; -1 otherwise, or
// on any other error (errno says which).
int OpenNoSymlinks(const fs::path& path, int flags) {
  return OpenAt2(AT_FDCWD, path.c_str(), flags, 0, RESOLVE_NO_SYMLINKS);
}

// Where `existing` (a path that exists, or the root) leads, as fs::canonical finds it,
// in three system calls: the kernel resolves it once (open O_PATH), and the name of the
// descriptor is that resolution. fs::canonical reads each component as a link in turn
// (a call each), and this runs for every path of every submit. Falls back to
// fs::weakly_canonical where the descriptor's name is not a plain path (no /proc).
fs::path RealPath(const fs::path& existing, std::error_code& ec) {
  const int fd = ::open(existing.c_str(), O_PATH | O_CLOEXEC);
  if (fd >= 0) {
    char name[PATH_MAX];
    const ssize_t n =
        ::readlink(absl::StrCat("/proc/self/fd/", fd).c_str(), name, sizeof(name) - 1);
    ::close(fd);
    if (n > 0 && static_cast<size_t>(n) < sizeof(name) - 1 && name[0] == '/') {
      ec.clear();
      return fs::path(std::string(name, static_cast<size_t>(n)));
    }
  }
  return fs::weakly_canonical(existing, ec);
}

}  // namespace

absl::StatusOr<std::pair<fs::path, fs::path>> Storage::ResolveReal(absl::string_view relative,
                                                                   absl::string_view field) const {
  if (relative.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is empty; give a path relative to the storage root"));
  }
  if (relative.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " holds a NUL character; give a plain relative path"));
  }
  fs::path p{std::string(relative)};
  if (p.is_absolute()) {
    return absl::PermissionDeniedError(absl::StrCat(
        field, " '", relative, "' is absolute; give a path relative to the storage root"));
  }
  fs::path normal = p.lexically_normal();
  if (normal.empty() || *normal.begin() == ".." || normal == ".") {
    return absl::PermissionDeniedError(
        absl::StrCat(field, " '", relative, "' leaves the storage root; remove the '..'"));
  }
  fs::path full = root_ / normal;
  // Follow what exists of the path: a symbolic link may not lead outside the root.
  // The non-throwing calls: a component too long for the file system (ENAMETOOLONG)
  // is an answer, not an exception (found by fuzz/path_resolver_fuzz.cc).
  fs::path existing = full;
  std::error_code ec;
  while (!existing.empty() && existing != root_) {
    const fs::file_status st = fs::symlink_status(existing, ec);
    if (ec && st.type() != fs::file_type::not_found) {
      return absl::InvalidArgumentError(absl::StrCat(field, " '", relative, "': ", ec.message()));
    }
    if (fs::exists(st)) break;
    existing = existing.parent_path();
  }
  // The root is canonical (Open), so a path beneath it with no link in it is its own
  // real path: known without a system call for the root itself, and from one open for
  // a path with no link (RealPath reads /proc, which costs more than the rest of a
  // submit's path checks together).
  fs::path real;
  if (existing == root_) {
    ec.clear();
    real = root_;
  } else if (const int fd = OpenNoSymlinks(existing, O_PATH); fd >= 0) {
    ::close(fd);
    ec.clear();
    real = existing;
  } else {
    real = RealPath(existing, ec);
  }
  if (ec) {
    return absl::PermissionDeniedError(absl::StrCat(field, " '", relative, "': ", ec.message()));
  }
  auto rel = real.lexically_relative(root_);
  if (rel.empty() || *rel.begin() == "..") {
    return absl::PermissionDeniedError(absl::StrCat(
        field, " '", relative, "' resolves outside the storage root (through a symbolic link)"));
  }
  return std::make_pair(std::move(full), std::move(real));
}

absl::StatusOr<fs::path> Storage::Resolve(absl::string_view relative,
                                          absl::string_view field) const {
  ASSIGN_OR_RETURN(auto resolved, ResolveReal(relative, field));
  return std::move(resolved.first);
}

absl::StatusOr<fs::path> Storage::ResolveJobPath(absl::string_view relative,
                                                 absl::string_view field) const {
  ASSIGN_OR_RETURN(auto resolved, ResolveReal(relative, field));
  const auto& [full, real] = resolved;
  const auto reserved = [&](const fs::path& p) {
    const fs::path rel = p.lexically_relative(root_);
    return !rel.empty() && *rel.begin() == kFarmDir;
  };
  // The name as given, and where the part of it that exists leads.
  if (reserved(full.lexically_normal()) || reserved(real)) {
    return absl::PermissionDeniedError(
        absl::StrCat(field, " '", relative, "' lies in the farm's own folder '", kFarmDir,
                     "' (job scratch and segments); give a path outside it"));
  }
  return full;
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

std::string UniqueFd::path() const { return absl::StrCat("/proc/self/fd/", fd_); }

absl::Status NameFdPath(const absl::Status& st, const UniqueFd& fd, absl::string_view name) {
  if (st.ok() || fd.get() < 0) return st;
  const std::string from = fd.path();
  std::string text(st.message());
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at)) {
    const size_t end = at + from.size();
    if (end < text.size() && std::isdigit(static_cast<unsigned char>(text[end]))) {
      at = end;  // /proc/self/fd/7 is not /proc/self/fd/70
      continue;
    }
    text.replace(at, from.size(), name.data(), name.size());
    at += name.size();
  }
  return absl::Status(st.code(), text);
}

namespace {

// openat2 beneath `dirfd`: no component may leave it, magic links are refused.
int OpenAt2Beneath(int dirfd, const std::string& relative, int flags, mode_t mode) {
  return OpenAt2(dirfd, relative.c_str(), flags, mode, RESOLVE_BENEATH);
}

}  // namespace

absl::StatusOr<UniqueFd> Storage::OpenBeneath(const fs::path& path, int flags,
                                              absl::string_view field) const {
  fs::path rel = path.is_absolute() ? path.lexically_relative(root_) : path;
  if (rel.empty() || *rel.begin() == "..") {
    return absl::PermissionDeniedError(
        absl::StrCat(field, " '", path.string(), "' is not beneath the storage root"));
  }
  // A path with no symbolic link in it (the root's own components included) and no
  // '..' stays beneath the root: one openat2 of the whole path. Anything else (a link
  // on the way, a missing name, a file to create) takes the open beneath the root,
  // which refuses a way out and gives the errors.
  if ((flags & O_CREAT) == 0 &&
      std::none_of(rel.begin(), rel.end(), [](const fs::path& part) { return part == ".."; })) {
    const int fd = OpenNoSymlinks(root_ / rel, flags);
    if (fd >= 0) return UniqueFd(fd);
  }
  UniqueFd root(::open(root_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (root.get() < 0) {
    return absl::UnavailableError(
        absl::StrCat("storage root '", root_.string(), "': ", std::strerror(errno)));
  }
  return OpenBeneathFd(root.get(), rel.string(), flags,
                       absl::StrCat(field, " '", rel.string(), "'"), "the storage root");
}

absl::StatusOr<UniqueFd> OpenInFolder(const std::string& folder, const std::string& name, int flags,
                                      const std::string& what) {
  UniqueFd dir(::open(folder.empty() ? "." : folder.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() < 0) {
    const int err = errno;
    if (err == ENOENT) return absl::NotFoundError(absl::StrCat(what, ": no such folder"));
    return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(err)));
  }
  return OpenBeneathFd(dir.get(), name, flags, what, "its folder");
}

absl::StatusOr<UniqueFd> OpenBeneathFd(int dirfd, const std::string& relative, int flags,
                                       const std::string& what, const std::string& beneath) {
  int fd = OpenAt2Beneath(dirfd, relative, flags, 0644);
  if (fd >= 0) return UniqueFd(fd);
  const int err = errno;
  switch (err) {
    case EXDEV:
    case ELOOP:
      return absl::PermissionDeniedError(
          absl::StrCat(what, " resolves outside ", beneath, " (through a symbolic link or '..')"));
    case ENOENT:
      return absl::NotFoundError(absl::StrCat(what, " not found under ", beneath));
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(absl::StrCat(what, ": ", std::strerror(err)));
    case ENOSYS:
      return absl::UnimplementedError(
          "openat2 is missing: this kernel is older than 5.6, which the worker needs");
    default:
      // EROFS, ENOSPC, EIO...: the storage, not the job, is at fault; worth a retry.
      return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(err)));
  }
}

absl::StatusOr<UniqueFd> Storage::OpenDirBeneath(const fs::path& dir, bool create,
                                                 absl::string_view field) const {
  fs::path rel = dir.is_absolute() ? dir.lexically_relative(root_) : dir.lexically_normal();
  if (rel.empty() || rel == ".") {
    UniqueFd root(::open(root_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (root.get() < 0) {
      return absl::UnavailableError(
          absl::StrCat("storage root '", root_.string(), "': ", std::strerror(errno)));
    }
    return root;
  }
  if (!create) return OpenBeneath(rel, O_PATH | O_DIRECTORY, field);
  // One component at a time, each made (if missing) inside the folder opened before
  // it, so that no step can be redirected out of the root.
  fs::path done;
  for (const fs::path& part : rel) {
    done /= part;
    auto fd = OpenBeneath(done, O_PATH | O_DIRECTORY, field);
    if (fd.ok()) continue;
    if (fd.status().code() != absl::StatusCode::kNotFound) return fd.status();
    ASSIGN_OR_RETURN(UniqueFd parent, OpenDirBeneath(done.parent_path(), false, field));
    if (::mkdirat(parent.get(), part.c_str(), 0755) != 0 && errno != EEXIST) {
      return absl::UnavailableError(absl::StrCat(field, " folder '", done.string(),
                                                 "' cannot be made: ", std::strerror(errno)));
    }
  }
  return OpenBeneath(rel, O_PATH | O_DIRECTORY, field);
}

fs::path Storage::TempPathFor(const fs::path& final_path) {
  static std::atomic<uint64_t> counter{0};
  return final_path.parent_path() / absl::StrCat(".", final_path.filename().string(), ".tmp.",
                                                 getpid(), ".", counter.fetch_add(1));
}

absl::Status Storage::WriteFile(const fs::path& path, absl::string_view bytes,
                                absl::string_view name) const {
  UniqueFd out(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  int err = out.get() < 0 ? errno : Write(out.get(), bytes.data(), bytes.size());
  if (err == 0 && ::close(out.release()) != 0) err = errno;
  if (err != 0) {
    ::unlink(path.c_str());
    return IoError(absl::StrCat("cannot write '", name, "'"), err);
  }
  return absl::OkStatus();
}

absl::Status Storage::Publish(const fs::path& temp, const fs::path& final_path,
                              bool replace) const {
  std::error_code ec;
  fs::create_directories(final_path.parent_path(), ec);
  UniqueFd fd(::open(temp.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() >= 0) {
    if (const int err = Fsync(fd.get()); err != 0) {
      return IoError(absl::StrCat("publish '", final_path.string(), "': fsync"), err);
    }
  }
  if (const int err = Rename(temp, final_path, replace); err != 0) {
    if (err == EEXIST) {
      return absl::AlreadyExistsError(
          absl::StrCat("'", final_path.filename().string(),
                       "' exists (made after the job was submitted); set overwrite to replace it"));
    }
    return IoError(absl::StrCat("publish '", final_path.string(), "'"), err);
  }
  return absl::OkStatus();
}

std::string Storage::JobScratchDir(int64_t job_id) {
  return absl::StrCat(kFarmDir, "/jobs/", job_id);
}

std::string Storage::JobPartsDir(int64_t job_id) {
  return absl::StrCat(JobScratchDir(job_id), "/parts");
}

std::string Storage::JobStagingDir(int64_t job_id) {
  return absl::StrCat(JobScratchDir(job_id), "/staged");
}

std::string Storage::JobPicturesDir(int64_t job_id) {
  return absl::StrCat(kFarmDir, "/pictures/", job_id);
}

namespace {

// Whether two regular files hold the same bytes.
bool SameBytes(const fs::path& a, const fs::path& b) {
  std::ifstream fa(a, std::ios::binary), fb(b, std::ios::binary);
  std::vector<char> ba(1 << 16), bb(1 << 16);
  while (fa && fb) {
    fa.read(ba.data(), static_cast<std::streamsize>(ba.size()));
    fb.read(bb.data(), static_cast<std::streamsize>(bb.size()));
    if (fa.gcount() != fb.gcount() ||
        !std::equal(ba.begin(), ba.begin() + fa.gcount(), bb.begin())) {
      return false;
    }
  }
  return !fa.bad() && !fb.bad() && fa.eof() && fb.eof();
}

}  // namespace

bool Storage::IsPublished(const fs::path& staged, const fs::path& final_path) {
  struct stat a, b;
  if (::stat(staged.c_str(), &a) != 0 || ::lstat(final_path.c_str(), &b) != 0) return false;
  if (a.st_dev == b.st_dev) return a.st_ino == b.st_ino;
  // Published as a copy onto another file system: the same bytes.
  return S_ISREG(a.st_mode) && S_ISREG(b.st_mode) && a.st_size == b.st_size &&
         SameBytes(staged, final_path);
}

absl::Status Storage::CopyBeside(const fs::path& staged, const fs::path& final_path,
                                 fs::path* copy) const {
  *copy = TempPathFor(final_path);
  // Plain reads and writes, so that a full disk reads as ENOSPC (the kernel's
  // in-kernel copy may report it otherwise).
  UniqueFd in(::open(staged.c_str(), O_RDONLY | O_CLOEXEC));
  UniqueFd out(in.get() < 0 ? -1
                            : ::open(copy->c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  int err = in.get() < 0 || out.get() < 0 ? errno : 0;
  std::vector<char> buf(1 << 16);
  while (err == 0) {
    const ssize_t n = ::read(in.get(), buf.data(), buf.size());
    if (n < 0) err = errno;
    if (n <= 0) break;
    err = Write(out.get(), buf.data(), static_cast<size_t>(n));
  }
  if (err == 0) err = Fsync(out.get());
  if (err != 0) {
    ::unlink(copy->c_str());
    return IoError(absl::StrCat("publish '", final_path.filename().string(), "'"), err);
  }
  return absl::OkStatus();
}

absl::Status Storage::PublishStaged(const std::vector<StagedFile>& files, bool replace) const {
  const auto taken = [](const fs::path& final_path) {
    return absl::AlreadyExistsError(absl::StrCat(
        "'", final_path.filename().string(),
        "' exists and is not this job's; set overwrite to replace it, or move it away"));
  };
  const auto failed = [](const fs::path& final_path, int err) {
    return IoError(absl::StrCat("publish '", final_path.filename().string(), "'"), err);
  };
  // Checked first, so that a taken name fails the job before anything is published.
  std::vector<bool> done(files.size(), false);
  for (size_t i = 0; i < files.size(); ++i) {
    const auto& [staged, final_path] = files[i];
    UniqueFd fd(::open(staged.c_str(), O_RDONLY | O_CLOEXEC));
    if (const int err = fd.get() < 0 ? errno : Fsync(fd.get()); err != 0) {
      return failed(final_path, err);
    }
    done[i] = IsPublished(staged, final_path);
    struct stat st;
    if (done[i] || ::lstat(final_path.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      return absl::FailedPreconditionError(absl::StrCat("'", final_path.filename().string(),
                                                        "' is a folder; give an output file name"));
    }
    if (!replace) return taken(final_path);
  }
  std::vector<size_t> linked;
  const auto undo = [&] {
    for (size_t i : linked) {
      if (IsPublished(files[i].first, files[i].second)) ::unlink(files[i].second.c_str());
    }
  };
  for (size_t i = 0; i < files.size(); ++i) {
    if (done[i]) continue;
    const auto& [staged, final_path] = files[i];
    // Without `replace`: linked at the final name. With it: a second link made in the
    // staging folder (so that nothing of ours is left beside the output if the process
    // dies here) and renamed over the final name. Across file systems (a mount inside
    // the root), a copy beside the final name takes the staged file's place.
    int err = 0;
    if (replace) {
      const fs::path temp = TempPathFor(staged);
      err = Link(staged, temp);
      if (err == 0) {
        err = Rename(temp, final_path, true);
        if (err != 0) ::unlink(temp.c_str());
      }
    } else {
      err = Link(staged, final_path);
    }
    if (err == EXDEV) {
      fs::path copy;
      absl::Status copied = CopyBeside(staged, final_path, &copy);
      if (!copied.ok()) {
        undo();
        return copied;
      }
      err = replace ? Rename(copy, final_path, true) : Link(copy, final_path);
      if (err != 0 || !replace) ::unlink(copy.c_str());
    }
    if (err != 0) {
      undo();
      if (err == EEXIST) return taken(final_path);  // made since the check
      if (err == EISDIR) {
        return absl::FailedPreconditionError(absl::StrCat(
            "'", final_path.filename().string(), "' is a folder; give an output file name"));
      }
      return failed(final_path, err);
    }
    linked.push_back(i);
  }
  // The new names are durable once their folders are.
  std::vector<std::pair<fs::path, fs::path>> folders;  // a folder, and a file in it
  for (const auto& [staged, final_path] : files) {
    if (folders.empty() || folders.back().first != final_path.parent_path()) {
      folders.emplace_back(final_path.parent_path(), final_path);
    }
  }
  for (const auto& [folder, file] : folders) {
    UniqueFd fd(::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd.get() < 0) continue;
    if (const int err = Fsync(fd.get()); err != 0) {
      undo();
      return failed(file, err);
    }
  }
  return absl::OkStatus();
}

absl::Status CheckOutputFree(const fs::path& path, absl::string_view field, absl::string_view name,
                             bool replace) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return absl::OkStatus();
  if (S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(
        field, " '", name, "' is a folder; give a file name (a folder is never replaced)"));
  }
  if (replace) return absl::OkStatus();
  return absl::AlreadyExistsError(
      absl::StrCat(field, " '", name, "' exists; set overwrite to replace it"));
}

absl::StatusOr<std::string> Sha256File(const fs::path& path) { return Sha256Files({path}); }

absl::StatusOr<std::string> Sha256Files(const std::vector<fs::path>& paths) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 16);
  for (const fs::path& path : paths) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return absl::NotFoundError(absl::StrCat("cannot read '", path.string(), "'"));
    while (in) {
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(in.gcount()));
    }
    if (in.bad()) return absl::UnavailableError(absl::StrCat("cannot read '", path.string(), "'"));
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  std::string hex;
  static const char* kHex = "0123456789abcdef";
  for (unsigned int i = 0; i < len; ++i) {
    hex.push_back(kHex[md[i] >> 4]);
    hex.push_back(kHex[md[i] & 15]);
  }
  return hex;
}

}  // namespace reelfarm::common
