// Storage: every path a job names is relative to one storage root that the server
// and the workers share. Resolution refuses absolute paths and paths that leave the
// root (lexically, or through a symbolic link), and publishing is atomic: write to a
// temporary name beside the final one, then rename.
#pragma once

#include <filesystem>
#include <string>
#include "absl/strings/string_view.h"

#include "common/status.h"

namespace reelfarm::common {

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

  // A temporary name in the same folder as `final_path` (so rename is atomic).
  static std::filesystem::path TempPathFor(const std::filesystem::path& final_path);

  // Atomically moves `temp` to `final_path` (creating its folder), fsyncing the file.
  static absl::Status Publish(const std::filesystem::path& temp,
                              const std::filesystem::path& final_path);

  // The folder holding a job's intermediate files (segments), relative to the root.
  static std::string JobPartsDir(int64_t job_id);

 private:
  explicit Storage(std::filesystem::path root) : root_(std::move(root)) {}
  std::filesystem::path root_;
};

// Hex SHA-256 of a file's bytes.
absl::StatusOr<std::string> Sha256File(const std::filesystem::path& path);

}  // namespace reelfarm::common
