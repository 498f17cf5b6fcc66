#include "worker/pictures.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "media/picture.h"

namespace reelfarm::worker {

OutputCheck::OutputCheck(int64_t frames) : frames_(frames) {}
OutputCheck::~OutputCheck() = default;

void OutputCheck::Add(const media::Frame& frame) {
  full_size_ = true;
  meter_.Add(frame);
  AddSmall(media::ShrinkFrame(frame, kThumbnailWidth));
}

absl::Status OutputCheck::AddNative(const media::NativeFrame& frame) {
  const int width = std::min(frame.width(), kThumbnailWidth) / 2 * 2;
  const int height = std::max(
      2, static_cast<int>(std::lround(double(width) * frame.height() / frame.width() / 2)) * 2);
  if (!shrink_) {
    ASSIGN_OR_RETURN(shrink_, media::NativeResizer::Create(std::max(2, width), height, "yuv444p",
                                                           media::ResizeFilter::kArea));
  }
  media::NativeFrame small_native;
  RETURN_IF_ERROR(shrink_->Resize(frame, &small_native));
  media::Frame small;
  RETURN_IF_ERROR(media::NativeToRgb(small_native, &small));
  AddSmall(std::move(small));
  return absl::OkStatus();
}

void OutputCheck::AddSmall(media::Frame small) {
  small_.Add(small);
  if (added_ == frames_ / 2) middle_ = small;
  if (added_ == 0) first_ = small;
  last_ = std::move(small);
  ++added_;
}

v1::TaskQc OutputCheck::Qc() const {
  // The RGB path's frames are measured at full size; the differences (against which
  // seams are judged) are always those of the small copies.
  media::QcStats s = full_size_ ? meter_.stats() : small_.stats();
  s.median_difference = small_.stats().median_difference;
  s.nan_inf_samples += model_nonfinite_;
  v1::TaskQc qc;
  qc.set_measured(true);
  qc.set_frames(s.frames);
  qc.set_nan_inf_samples(s.nan_inf_samples);
  qc.set_black_frames(s.black_frames);
  qc.set_clipped_low_fraction(s.clipped_low_fraction);
  qc.set_clipped_high_fraction(s.clipped_high_fraction);
  qc.set_median_difference(s.median_difference);
  for (const std::string& flag : media::QcFlags(s)) qc.add_flags(flag);
  return qc;
}

namespace {
// The edges file: this magic, the width and height (int32, native-endian: the file is
// written and read by the farm's workers on one job), then both frames' float planes.
constexpr char kEdgesMagic[8] = {'R', 'F', 'E', 'D', 'G', 'E', 'S', '1'};
}  // namespace

std::string ChunkEdgesName(int task_index) {
  return absl::StrFormat("chunk_%06d.edges", task_index);
}

std::string EncodeChunkEdges(const media::Frame& first, const media::Frame& last) {
  std::string bytes(kEdgesMagic, sizeof(kEdgesMagic));
  const int32_t size[2] = {first.width, first.height};
  bytes.append(reinterpret_cast<const char*>(size), sizeof(size));
  for (const media::Frame* f : {&first, &last}) {
    bytes.append(reinterpret_cast<const char*>(f->planes.data()), f->planes.size() * sizeof(float));
  }
  return bytes;
}

absl::Status DecodeChunkEdges(const std::string& bytes, media::Frame* first, media::Frame* last) {
  int32_t size[2] = {0, 0};
  const size_t header = sizeof(kEdgesMagic) + sizeof(size);
  if (bytes.size() < header ||
      bytes.compare(0, sizeof(kEdgesMagic), kEdgesMagic, sizeof(kEdgesMagic)) != 0) {
    return absl::InvalidArgumentError("not a chunk edges file");
  }
  std::memcpy(size, bytes.data() + sizeof(kEdgesMagic), sizeof(size));
  if (size[0] <= 0 || size[1] <= 0 || size[0] > media::kMaxFrameSide ||
      size[1] > media::kMaxFrameSide) {
    return absl::InvalidArgumentError("chunk edges file: bad frame size");
  }
  const size_t samples = 3 * static_cast<size_t>(size[0]) * size[1];
  if (bytes.size() != header + 2 * samples * sizeof(float)) {
    return absl::InvalidArgumentError("chunk edges file: truncated or too long");
  }
  const char* at = bytes.data() + header;
  for (media::Frame* f : {first, last}) {
    f->width = size[0];
    f->height = size[1];
    f->planes.resize(samples);
    std::memcpy(f->planes.data(), at, samples * sizeof(float));
    at += samples * sizeof(float);
  }
  return absl::OkStatus();
}

v1::TaskQc SeamQc(const std::vector<double>& differences, const std::vector<double>& medians) {
  v1::TaskQc qc;
  qc.set_measured(true);
  for (size_t k = 0; k < differences.size(); ++k) {
    qc.add_seam_differences(differences[k]);
    if (k + 1 >= medians.size() || medians[k] <= 0 || medians[k + 1] <= 0) continue;
    if (!media::IsSeamFlicker(differences[k], medians[k], medians[k + 1])) continue;
    qc.add_flags(absl::StrFormat(
        "seam: chunks %d|%d: difference %.4f across the seam is %.1fx the chunks' medians "
        "(%.4f, %.4f)",
        k + 1, k + 2, differences[k], differences[k] / std::max(medians[k], medians[k + 1]),
        medians[k], medians[k + 1]));
  }
  return qc;
}

std::string QcFailure(const std::string& mode, const v1::TaskQc& qc) {
  if (mode != "fail" || qc.flags().empty()) return "";
  return absl::StrCat("qc: ", absl::StrJoin(qc.flags(), "; "),
                      " (the job says qc: fail; submit with qc: warn to keep the output)");
}

absl::StatusOr<std::string> WritePicture(const common::Storage& storage, int64_t job_id,
                                         const std::string& name, const std::string& bytes) {
  const std::string dir = common::Storage::JobPicturesDir(job_id);
  ASSIGN_OR_RETURN(common::UniqueFd fd, storage.OpenDirBeneath(dir, true, "pictures"));
  const std::filesystem::path final_path = std::filesystem::path(fd.path()) / name;
  const std::filesystem::path tmp = common::Storage::TempPathFor(final_path);
  RETURN_IF_ERROR(storage.WriteFile(tmp, bytes, name));
  RETURN_IF_ERROR(storage.Publish(tmp, final_path));
  return absl::StrCat(dir, "/", name);
}

absl::StatusOr<std::string> ReadPicture(const common::Storage& storage, int64_t job_id,
                                        const std::string& name) {
  const std::string dir = common::Storage::JobPicturesDir(job_id);
  ASSIGN_OR_RETURN(common::UniqueFd folder, storage.OpenDirBeneath(dir, false, "pictures"));
  ASSIGN_OR_RETURN(common::UniqueFd fd,
                   common::OpenBeneathFd(folder.get(), name, O_RDONLY | O_CLOEXEC, name,
                                         "the job's pictures folder"));
  std::string bytes;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) return absl::UnavailableError(absl::StrCat(name, ": ", std::strerror(errno)));
    if (n == 0) break;
    bytes.append(buf, static_cast<size_t>(n));
  }
  return bytes;
}

}  // namespace reelfarm::worker
