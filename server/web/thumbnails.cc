#include "server/web/thumbnails.h"

#include <fcntl.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "media/media.h"
#include "media/output_format.h"
#include "media/qc.h"

namespace reelfarm::server::web {
namespace fs = std::filesystem;
namespace {

// Box-filtered reduction of `in` to at most `max_width` wide (aspect kept).
media::Frame Shrink(const media::Frame& in, int max_width) {
  if (in.width <= max_width) return in;
  const int factor = (in.width + max_width - 1) / max_width;
  media::Frame out;
  out.width = std::max(1, in.width / factor);
  out.height = std::max(1, in.height / factor);
  out.index = in.index;
  out.planes.resize(static_cast<size_t>(3) * out.width * out.height);
  const size_t in_plane = static_cast<size_t>(in.width) * in.height;
  const size_t out_plane = static_cast<size_t>(out.width) * out.height;
  for (int c = 0; c < 3; ++c) {
    for (int y = 0; y < out.height; ++y) {
      for (int x = 0; x < out.width; ++x) {
        float sum = 0;
        for (int dy = 0; dy < factor; ++dy) {
          const float* row = in.planes.data() + c * in_plane +
                             static_cast<size_t>(y * factor + dy) * in.width + x * factor;
          for (int dx = 0; dx < factor; ++dx) sum += row[dx];
        }
        out.planes[c * out_plane + static_cast<size_t>(y) * out.width + x] =
            sum / static_cast<float>(factor * factor);
      }
    }
  }
  return out;
}

absl::StatusOr<std::string> ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read '", path.string(), "'"));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

absl::StatusOr<WorkerPicture> ReadWorkerPicture(const common::Storage& storage, int64_t job_id,
                                                const std::string& name) {
  const bool plain =
      !name.empty() && name.size() <= 128 && name[0] != '.' &&
      std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
      });
  const std::string ext = fs::path(name).extension().string();
  if (!plain || (ext != ".jpg" && ext != ".webp")) {
    return absl::PermissionDeniedError(
        absl::StrCat("picture '", name, "' is not a picture of job ", job_id,
                     ": give the file name of a task's thumbnail or preview"));
  }
  const std::string folder = common::Storage::JobPicturesDir(job_id);
  ASSIGN_OR_RETURN(common::UniqueFd dir, storage.OpenDirBeneath(folder, false, "picture"));
  ASSIGN_OR_RETURN(
      common::UniqueFd fd,
      common::OpenBeneathFd(dir.get(), name, O_RDONLY, absl::StrCat("picture '", name, "'"),
                            absl::StrCat("job ", job_id, "'s pictures folder")));
  ASSIGN_OR_RETURN(std::string bytes, ReadAll(fd.path()));
  return WorkerPicture{std::move(bytes), ext == ".jpg" ? "image/jpeg" : "image/webp"};
}

Thumbnailer::Thumbnailer(const common::Storage* storage, fs::path cache_dir, int max_width)
    : storage_(storage), cache_dir_(std::move(cache_dir)), max_width_(max_width) {}

absl::StatusOr<std::string> Thumbnailer::Thumbnail(const std::string& relative) {
  ASSIGN_OR_RETURN(fs::path path, storage_->Resolve(relative, "output"));
  const bool sequence = media::HasFramePattern(path.string());
  // What the key is made of: the file (or the sequence's first file) and its state.
  std::error_code ec;
  int64_t first = 0, count = 0;
  media::VideoInfo info;
  if (sequence) {
    absl::StatusOr<media::VideoInfo> probed = media::ProbeImageSequence(path.string());
    if (!probed.ok()) return probed.status();
    info = *probed;
    first = info.first_frame;
  } else {
    if (!fs::is_regular_file(path, ec)) {
      return absl::NotFoundError(absl::StrCat("output '", relative, "' is not published (yet)"));
    }
    absl::StatusOr<media::VideoInfo> probed = media::ProbeVideo(path.string());
    if (!probed.ok()) return probed.status();
    info = *probed;
  }
  count = info.frame_count;
  if (count <= 0)
    return absl::FailedPreconditionError(absl::StrCat("'", relative, "' has no frames"));
  return Encode(path, sequence, first + count / 2, relative);
}

absl::StatusOr<std::string> Thumbnailer::Frame(const std::string& relative, int64_t number) {
  ASSIGN_OR_RETURN(fs::path path, storage_->Resolve(relative, "output"));
  const bool sequence = media::HasFramePattern(path.string());
  std::error_code ec;
  if (sequence) {
    if (!fs::is_regular_file(media::FramePath(path.string(), number), ec)) {
      return absl::NotFoundError(
          absl::StrCat("frame ", number, " of '", relative, "' is not published (yet)"));
    }
  } else {
    if (!fs::is_regular_file(path, ec)) {
      return absl::NotFoundError(absl::StrCat("'", relative, "' is not published (yet)"));
    }
  }
  if (number < 0) {
    return absl::OutOfRangeError(absl::StrCat("'", relative, "' has no frame ", number));
  }
  return Encode(path, sequence, number, relative);
}

absl::StatusOr<std::string> Thumbnailer::Encode(const fs::path& path, bool sequence, int64_t number,
                                                const std::string& relative) {
  std::error_code ec;
  const fs::path keyed = sequence ? fs::path(media::FramePath(path.string(), number)) : path;
  const auto mtime = fs::last_write_time(keyed, ec).time_since_epoch().count();
  const auto size = fs::file_size(keyed, ec);
  const size_t key = std::hash<std::string>()(
      absl::StrCat(path.string(), "|", number, "|", mtime, "|", size, "|", max_width_));
  const fs::path cached = cache_dir_ / absl::StrCat("thumb-", key, ".0000.png");

  absl::MutexLock lock(&mu_);
  if (fs::is_regular_file(cached, ec)) return ReadAll(cached);
  std::unique_ptr<media::FrameSource> source;
  if (sequence) {
    ASSIGN_OR_RETURN(source, media::OpenImageSequenceSource(path.string(), number, number + 1));
  } else {
    ASSIGN_OR_RETURN(source, media::OpenVideoSource(path.string(), number, number + 1));
  }
  media::Frame frame;
  ASSIGN_OR_RETURN(bool got, source->Next(&frame));
  if (!got) {
    return absl::FailedPreconditionError(
        absl::StrCat("'", relative, "': frame ", number, " did not decode"));
  }
  const media::Frame small = Shrink(frame, max_width_);
  fs::create_directories(cache_dir_, ec);
  media::ImageSequenceOptions options;
  options.width = small.width;
  options.height = small.height;
  options.codec = "png";
  const std::string pattern = (cache_dir_ / absl::StrCat("thumb-", key, ".####.png")).string();
  ASSIGN_OR_RETURN(std::unique_ptr<media::FrameSink> sink,
                   media::OpenImageSequenceSink(pattern, options));
  media::Frame first_frame = small;
  first_frame.index = 0;
  RETURN_IF_ERROR(sink->Write(first_frame));
  RETURN_IF_ERROR(sink->Close());
  return ReadAll(cached);
}

absl::StatusOr<std::vector<std::string>> Thumbnailer::QcFlags(const std::string& relative) {
  ASSIGN_OR_RETURN(fs::path path, storage_->Resolve(relative, "output"));
  const bool sequence = media::HasFramePattern(path.string());
  std::error_code ec;
  if (!sequence && !fs::is_regular_file(path, ec)) {
    return absl::NotFoundError(absl::StrCat("output '", relative, "' is not published (yet)"));
  }
  absl::StatusOr<media::VideoInfo> info =
      sequence ? media::ProbeImageSequence(path.string()) : media::ProbeVideo(path.string());
  if (!info.ok()) return info.status();
  const fs::path keyed =
      sequence ? fs::path(media::FramePath(path.string(), info->first_frame)) : path;
  const std::string key =
      absl::StrCat(path.string(), "|", fs::last_write_time(keyed, ec).time_since_epoch().count(),
                   "|", fs::file_size(keyed, ec), "|", info->frame_count);
  absl::MutexLock lock(&mu_);
  if (auto it = qc_.find(key); it != qc_.end()) return it->second;
  const int64_t count = std::min<int64_t>(info->frame_count, 2000);
  std::unique_ptr<media::FrameSource> source;
  if (sequence) {
    ASSIGN_OR_RETURN(source, media::OpenImageSequenceSource(path.string(), info->first_frame,
                                                            info->first_frame + count));
  } else {
    ASSIGN_OR_RETURN(source, media::OpenVideoSource(path.string(), 0, count));
  }
  media::QcMeter meter;
  media::Frame frame;
  while (true) {
    ASSIGN_OR_RETURN(bool more, source->Next(&frame));
    if (!more) break;
    meter.Add(frame);
  }
  std::vector<std::string> flags = media::QcFlags(meter.stats());
  if (qc_.size() > 10000) qc_.clear();
  qc_[key] = flags;
  return flags;
}

}  // namespace reelfarm::server::web
