#include "media/qc.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace reelfarm::media {

void QcMeter::Add(const Frame& f) {
  const size_t n = static_cast<size_t>(f.width) * f.height;
  if (n == 0 || f.planes.size() < 3 * n) return;
  const float* r = f.planes.data();
  const float* g = r + n;
  const float* b = g + n;
  int64_t black = 0;
  for (size_t i = 0; i < n; ++i) {
    const float cr = r[i], cg = g[i], cb = b[i];
    if (!std::isfinite(cr)) ++s_.nan_inf_samples;
    if (!std::isfinite(cg)) ++s_.nan_inf_samples;
    if (!std::isfinite(cb)) ++s_.nan_inf_samples;
    // BT.709 luma of the (gamma-encoded) values, as blackdetect reads Y.
    const double y = 0.2126 * cr + 0.7152 * cg + 0.0722 * cb;
    if (y <= t_.black_pixel_luma) ++black;
    const float lo = static_cast<float>(t_.clip_epsilon);
    const float hi = static_cast<float>(1 - t_.clip_epsilon);
    if (cr <= lo && cg <= lo && cb <= lo) ++low_;
    if (cr >= hi && cg >= hi && cb >= hi) ++high_;
  }
  pixels_ += static_cast<int64_t>(n);
  if (static_cast<double>(black) >= t_.black_frame_ratio * static_cast<double>(n)) {
    ++s_.black_frames;
  }
  if (s_.frames > 0) {
    const double mafd = MeanAbsoluteDifference(f, previous_);
    if (mafd >= 0) {
      differences_.push_back(mafd);
      if (mafd < t_.frozen_mafd) ++s_.frozen_frames;
    }
  }
  previous_ = f;
  ++s_.frames;
}

double MeanAbsoluteDifference(const Frame& a, const Frame& b) {
  const size_t n = static_cast<size_t>(a.width) * a.height * 3;
  if (a.width != b.width || a.height != b.height || a.planes.size() < n || b.planes.size() < n) {
    return -1;
  }
  if (n == 0) return 0;
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = std::fabs(double(a.planes[i]) - double(b.planes[i]));
    if (std::isfinite(d)) sum += d;
  }
  return sum / static_cast<double>(n);
}

bool IsSeamFlicker(double seam_difference, double median_before, double median_after) {
  return seam_difference > kSeamMinDifference &&
         seam_difference > kSeamRatio * std::max(median_before, median_after);
}

QcStats QcMeter::stats() const {
  QcStats s = s_;
  if (!differences_.empty()) {
    std::vector<double> d = differences_;
    const size_t mid = d.size() / 2;
    std::nth_element(d.begin(), d.begin() + static_cast<std::ptrdiff_t>(mid), d.end());
    s.median_difference = d[mid];
    if (d.size() % 2 == 0) {
      s.median_difference =
          (s.median_difference +
           *std::max_element(d.begin(), d.begin() + static_cast<std::ptrdiff_t>(mid))) /
          2;
    }
  }
  if (pixels_ > 0) {
    s.clipped_low_fraction = static_cast<double>(low_) / static_cast<double>(pixels_);
    s.clipped_high_fraction = static_cast<double>(high_) / static_cast<double>(pixels_);
  }
  return s;
}

std::vector<std::string> QcFlags(const QcStats& s, const QcThresholds& t) {
  std::vector<std::string> flags;
  char buf[160];
  if (s.nan_inf_samples > 0) {
    std::snprintf(buf, sizeof(buf), "nan: %lld NaN/Inf samples",
                  static_cast<long long>(s.nan_inf_samples));
    flags.push_back(buf);
  }
  if (s.black_frames > 0) {
    std::snprintf(buf, sizeof(buf), "black: %lld of %lld frames black",
                  static_cast<long long>(s.black_frames), static_cast<long long>(s.frames));
    flags.push_back(buf);
  }
  const double clipped = s.clipped_low_fraction + s.clipped_high_fraction;
  if (clipped > t.clipped_fraction) {
    std::snprintf(buf, sizeof(buf), "clipped: %.0f%% of pixels at 0 (%.0f%%) or 1 (%.0f%%)",
                  clipped * 100, s.clipped_low_fraction * 100, s.clipped_high_fraction * 100);
    flags.push_back(buf);
  }
  if (s.frames > 1 && s.frozen_fraction() > t.frozen_fraction) {
    std::snprintf(buf, sizeof(buf), "frozen: %lld of %lld frames repeat the one before",
                  static_cast<long long>(s.frozen_frames), static_cast<long long>(s.frames - 1));
    flags.push_back(buf);
  }
  return flags;
}

}  // namespace reelfarm::media
