#include "worker/pictures.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "media/picture.h"

namespace reelfarm::worker {

void OutputCheck::Add(const media::Frame& frame) {
  meter_.Add(frame);
  if (added_ == frames_ / 2) middle_ = media::ShrinkFrame(frame, kThumbnailWidth);
  ++added_;
}

v1::TaskQc OutputCheck::Qc() const {
  media::QcStats s = meter_.stats();
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

}  // namespace reelfarm::worker
