// Thumbnails of published outputs for the monitor: the middle frame of a movie or an
// image sequence, scaled down and written as PNG, made once and kept on disk under a
// cache folder keyed by the output's path, size and modification time. Paths are
// resolved beneath the storage root (common/storage.h), as every other path.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/storage.h"

namespace reelfarm::server::web {

// A picture a worker made of a task (worker/pictures.h): its bytes and content type.
struct WorkerPicture {
  std::string bytes;
  std::string content_type;  // image/jpeg or image/webp
};

// Reads `name`, a file name in job `job_id`'s pictures folder
// (common::Storage::JobPicturesDir), opened beneath that folder: anything else (a name
// with "/" or "..", not .jpg or .webp, a link that leads out of the folder) is
// PERMISSION_DENIED; NOT_FOUND when there is no such picture.
absl::StatusOr<WorkerPicture> ReadWorkerPicture(const common::Storage& storage, int64_t job_id,
                                                const std::string& name);

class Thumbnailer final {
 public:
  // `storage` is borrowed and must outlive this; `cache_dir` is created when needed.
  Thumbnailer(const common::Storage* storage, std::filesystem::path cache_dir, int max_width = 320);
  Thumbnailer(const Thumbnailer&) = delete;
  Thumbnailer& operator=(const Thumbnailer&) = delete;

  // PNG bytes of the middle frame of `relative` (a movie, or an image sequence with a
  // frame pattern), at most max_width wide. NOT_FOUND while the output is not
  // published; PERMISSION_DENIED for a path outside the root; FAILED_PRECONDITION when
  // it does not decode. Thread-safe; one thumbnail is made at a time.
  absl::StatusOr<std::string> Thumbnail(const std::string& relative);

  // PNG bytes of frame `number` of `relative`, at most max_width wide: a movie's frame on
  // its constant-rate grid (0-based), or an image sequence's file `number`. Cached as
  // Thumbnail(). NOT_FOUND while it is not published; FAILED_PRECONDITION past a
  // movie's end; PERMISSION_DENIED for a path outside the root.
  absl::StatusOr<std::string> Frame(const std::string& relative, int64_t number);

  // The QC flags (media/qc.h) of every frame of `relative` (at most the first 2,000),
  // kept in memory per path, size and modification time. Errors as Thumbnail().
  absl::StatusOr<std::vector<std::string>> QcFlags(const std::string& relative);

 private:
  const common::Storage* const storage_;
  // The PNG of frame `number` of the resolved `path`, made once (under mu_) and kept.
  absl::StatusOr<std::string> Encode(const std::filesystem::path& path, bool sequence,
                                     int64_t number, const std::string& relative);

  const std::filesystem::path cache_dir_;
  const int max_width_;
  absl::Mutex mu_;  // held while making one
  std::map<std::string, std::vector<std::string>> qc_ ABSL_GUARDED_BY(mu_);
};

}  // namespace reelfarm::server::web
