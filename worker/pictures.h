// What a worker makes of a task's output frames besides the output: the QC numbers and
// flags (media/qc.h) and small pictures for the monitor (a thumbnail of the middle
// frame, a take's looping preview), written in the job's pictures folder in its
// farm folder (common::Storage::JobPicturesDir) through the storage, as every other file.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/storage.h"
#include "media/media.h"
#include "media/qc.h"
#include "reelfarm/v1/workers.pb.h"

namespace reelfarm::worker {

inline constexpr int kThumbnailWidth = 320;
inline constexpr int kPreviewWidth = 256;

// Watches the frames a task writes, in order, from one thread.
class OutputCheck final {
 public:
  // `frames`: how many the task writes (the middle one is kept for the thumbnail).
  explicit OutputCheck(int64_t frames);
  ~OutputCheck();
  // A frame of the RGB path: NaN/Inf, black, clipped and frozen measured on it as it is;
  // the frame-to-frame differences on a kThumbnailWidth copy (as the seams are).
  void Add(const media::Frame& frame);
  // A frame of the native path (a filter's YUV output): everything measured on a
  // kThumbnailWidth RGB copy (libswscale area scaling, then the frame's own matrix). A
  // filter makes no NaN and its frames are many: this costs a fraction of a full-size
  // conversion.
  absl::Status AddNative(const media::NativeFrame& frame);
  // NaN/Inf samples the model produced that the frames no longer show (Model replaces
  // them): counted with the frames' own.
  void AddNonFiniteSamples(int64_t n) { model_nonfinite_ += n; }
  // The numbers and flags of what was added ("measured" set).
  v1::TaskQc Qc() const;
  // The middle frame, scaled down to kThumbnailWidth; empty (width 0) before it came.
  const media::Frame& middle() const { return middle_; }
  // The first and last frames at kThumbnailWidth, as EncodeChunkEdges writes them for
  // the assembly's seam check; empty before a frame came.
  const media::Frame& first() const { return first_; }
  const media::Frame& last() const { return last_; }

 private:
  void AddSmall(media::Frame small);

  const int64_t frames_;
  int64_t added_ = 0;
  int64_t model_nonfinite_ = 0;
  bool full_size_ = false;  // meter_ saw the frames at full size (RGB path)
  media::QcMeter meter_;    // the frames as written (RGB path)
  media::QcMeter small_;    // their kThumbnailWidth copies: differences (both paths)
  std::unique_ptr<media::NativeResizer> shrink_;  // native path: to the small copies
  media::Frame middle_, first_, last_;
};

// The first and last frames of a chunk (OutputCheck::first/last) as one file's bytes,
// and back: the assembly compares them across each seam with the chunks' medians, so
// that it decodes no segment. INVALID_ARGUMENT when the bytes are not such a file.
std::string EncodeChunkEdges(const media::Frame& first, const media::Frame& last);
absl::Status DecodeChunkEdges(const std::string& bytes, media::Frame* first, media::Frame* last);
// The name of chunk `task_index`'s edges file in the job's pictures folder.
std::string ChunkEdgesName(int task_index);

// The QC record of seams: `differences[k]` is the difference across the seam between
// chunk k and k+1, `medians` each chunk's median_difference. Flags each seam that
// media::IsSeamFlicker calls flicker.
v1::TaskQc SeamQc(const std::vector<double>& differences, const std::vector<double>& medians);

// The error of a task whose QC flags fail it (the job says qc: fail): "qc: ..." with
// the flags; empty when nothing is flagged or the job only warns.
std::string QcFailure(const std::string& mode, const v1::TaskQc& qc);

// Writes `bytes` as `name` in the job's pictures folder, atomically; returns its
// storage-relative path. ReadPicture reads one back, opened beneath that folder.
absl::StatusOr<std::string> WritePicture(const common::Storage& storage, int64_t job_id,
                                         const std::string& name, const std::string& bytes);
absl::StatusOr<std::string> ReadPicture(const common::Storage& storage, int64_t job_id,
                                        const std::string& name);

}  // namespace reelfarm::worker
