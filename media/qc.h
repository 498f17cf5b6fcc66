// Visual checks of frames (QC): what a render wrangler looks for in a broken render, as
// numbers and flags. Measures NaN/Inf samples, black frames, pixels clipped at 0 and 1,
// and frozen (repeated) frames. Thresholds follow FFmpeg's blackdetect (a pixel is black
// at luma <= 0.10, a frame when 98% of its pixels are) and freezedetect (a frame is
// frozen when its mean absolute difference to the one before is under 0.001).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "media/media.h"

namespace reelfarm::media {

struct QcThresholds {
  double black_pixel_luma = 0.10;   // blackdetect pix_th
  double black_frame_ratio = 0.98;  // blackdetect picture_black_ratio_th
  double frozen_mafd = 0.001;       // freezedetect noise (-60 dB)
  // A pixel is clipped when all its channels are within this of 0 (or of 1): half an
  // 8-bit step and more, so that decoded 8-bit black and white count.
  double clip_epsilon = 1.5 / 255;
  // Flags: any NaN/Inf; a black frame; more than this share of pixels clipped; more
  // than this share of frames frozen.
  double clipped_fraction = 0.25;
  double frozen_fraction = 0.5;
};

struct QcStats {
  int64_t frames = 0;
  int64_t nan_inf_samples = 0;
  int64_t black_frames = 0;
  int64_t frozen_frames = 0;         // frames (after the first) equal to the one before
  double clipped_low_fraction = 0;   // pixels whose channels are all at 0
  double clipped_high_fraction = 0;  // pixels whose channels are all at 1
  // Median of the mean absolute differences between consecutive frames (0: fewer than
  // two frames): the clip's own motion, against which a seam is judged.
  double median_difference = 0;
  double black_fraction() const { return frames > 0 ? double(black_frames) / frames : 0; }
  double frozen_fraction() const {
    return frames > 1 ? double(frozen_frames) / double(frames - 1) : 0;
  }
};

// Accumulates QcStats over frames given in order (any size; planar RGB as Frame).
class QcMeter final {
 public:
  explicit QcMeter(QcThresholds t = QcThresholds()) : t_(t) {}
  void Add(const Frame& frame);
  QcStats stats() const;

 private:
  QcThresholds t_;
  QcStats s_;
  int64_t pixels_ = 0, low_ = 0, high_ = 0;
  Frame previous_;
  std::vector<double> differences_;
};

// Mean absolute difference of the samples of two frames of the same size (NaN/Inf
// samples left out); -1 when their sizes differ.
double MeanAbsoluteDifference(const Frame& a, const Frame& b);

// Seam flicker: the difference across a seam between two chunks (last frame of one,
// first of the next) against each chunk's median_difference. A seam is flagged when its
// difference is more than kSeamRatio times the larger median and more than
// kSeamMinDifference (so that still clips, whose medians are near 0, do not flag noise
// or compression steps): on testsrc2 a seam measures like any other frame step (ratio
// about 1); a brightness jump of 0.4 at the seam measures over 10 times the medians.
inline constexpr double kSeamRatio = 3.0;
inline constexpr double kSeamMinDifference = 0.02;
bool IsSeamFlicker(double seam_difference, double median_before, double median_after);

// The flags `s` raises: "nan" (NaN/Inf samples), "black" (black frames), "clipped",
// "frozen", each with what was measured, e.g. "black: 12 of 48 frames black".
std::vector<std::string> QcFlags(const QcStats& s, const QcThresholds& t = QcThresholds());

}  // namespace reelfarm::media
