#include "common/storage.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <memory>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace reelfarm::common {
namespace fs = std::filesystem;

absl::StatusOr<Storage> Storage::Open(const fs::path& root) {
  std::error_code ec;
  fs::create_directories(root, ec);
  fs::path canonical = fs::canonical(root, ec);
  if (ec) {
    return absl::NotFoundError(absl::StrCat("storage root '", root.string(),
                                            "': ", ec.message()));
  }
  if (!fs::is_directory(canonical)) {
    return absl::FailedPreconditionError(
        absl::StrCat("storage root '", root.string(), "' is not a folder"));
  }
  return Storage(canonical);
}

absl::StatusOr<fs::path> Storage::Resolve(absl::string_view relative,
                                          absl::string_view field) const {
  if (relative.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is empty; give a path relative to the storage root"));
  }
  fs::path p{std::string(relative)};
  if (p.is_absolute()) {
    return absl::PermissionDeniedError(absl::StrCat(
        field, " '", relative,
        "' is absolute; give a path relative to the storage root"));
  }
  fs::path normal = p.lexically_normal();
  if (normal.empty() || *normal.begin() == ".." || normal == ".") {
    return absl::PermissionDeniedError(absl::StrCat(
        field, " '", relative, "' leaves the storage root; remove the '..'"));
  }
  fs::path full = root_ / normal;
  // Follow what exists of the path: a symbolic link may not lead outside the root.
  fs::path existing = full;
  while (!existing.empty() && existing != root_ && !fs::exists(fs::symlink_status(existing))) {
    existing = existing.parent_path();
  }
  std::error_code ec;
  fs::path real = fs::weakly_canonical(existing, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat(field, " '", relative, "': ", ec.message()));
  }
  auto rel = real.lexically_relative(root_);
  if (rel.empty() || *rel.begin() == "..") {
    return absl::PermissionDeniedError(absl::StrCat(
        field, " '", relative,
        "' resolves outside the storage root (through a symbolic link)"));
  }
  return full;
}

fs::path Storage::TempPathFor(const fs::path& final_path) {
  static std::atomic<uint64_t> counter{0};
  return final_path.parent_path() /
         absl::StrCat(".", final_path.filename().string(), ".tmp.", getpid(), ".",
                      counter.fetch_add(1));
}

absl::Status Storage::Publish(const fs::path& temp, const fs::path& final_path) {
  std::error_code ec;
  fs::create_directories(final_path.parent_path(), ec);
  int fd = ::open(temp.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  fs::rename(temp, final_path, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("publish '", final_path.string(),
                                               "': ", ec.message()));
  }
  return absl::OkStatus();
}

std::string Storage::JobPartsDir(int64_t job_id) {
  return absl::StrCat(".reelfarm/jobs/", job_id, "/parts");
}

absl::StatusOr<std::string> Sha256File(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read '", path.string(), "'"));
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(),
                                                               &EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  char buf[1 << 16];
  while (in) {
    in.read(buf, sizeof(buf));
    EVP_DigestUpdate(ctx.get(), buf, static_cast<size_t>(in.gcount()));
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
