// What a worker makes of a task's output frames besides the output: the QC numbers and
// flags (media/qc.h) and small pictures for the monitor (a thumbnail of the middle
// frame, a take's looping preview), written in the job's pictures folder in its
// farm folder (common::Storage::JobPicturesDir) through the storage, as every other file.
#pragma once

#include <cstdint>
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
  explicit OutputCheck(int64_t frames) : frames_(frames) {}
  void Add(const media::Frame& frame);
  // NaN/Inf samples the model produced that the frames no longer show (Model replaces
  // them): counted with the frames' own.
  void AddNonFiniteSamples(int64_t n) { model_nonfinite_ += n; }
  // The numbers and flags of what was added ("measured" set).
  v1::TaskQc Qc() const;
  // The middle frame, scaled down to kThumbnailWidth; empty (width 0) before it came.
  const media::Frame& middle() const { return middle_; }

 private:
  const int64_t frames_;
  int64_t added_ = 0;
  int64_t model_nonfinite_ = 0;
  media::QcMeter meter_;
  media::Frame middle_;
};

// The QC record of seams: `differences[k]` is the difference across the seam between
// chunk k and k+1, `medians` each chunk's median_difference. Flags each seam that
// media::IsSeamFlicker calls flicker.
v1::TaskQc SeamQc(const std::vector<double>& differences, const std::vector<double>& medians);

// The error of a task whose QC flags fail it (the job says qc: fail): "qc: ..." with
// the flags; empty when nothing is flagged or the job only warns.
std::string QcFailure(const std::string& mode, const v1::TaskQc& qc);

// Writes `bytes` as `name` in the job's pictures folder, atomically; returns its
// storage-relative path.
absl::StatusOr<std::string> WritePicture(const common::Storage& storage, int64_t job_id,
                                         const std::string& name, const std::string& bytes);

}  // namespace reelfarm::worker
