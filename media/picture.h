// Small pictures of frames for people to look at (the monitor's thumbnails and take
// previews): a frame scaled down, encoded as a JPEG, or frames as a looping animated
// WebP. Values are clamped to [0, 1]; NaN shows as 0.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "media/media.h"

namespace reelfarm::media {

// `in` scaled down by area averaging to `max_width` wide (its height keeping the aspect,
// both rounded to even and at least 2); returned as it is when already that narrow.
Frame ShrinkFrame(const Frame& in, int max_width);

// The JPEG file (FFmpeg's mjpeg encoder, full-range 4:4:4) of `frame`, as bytes.
absl::StatusOr<std::string> EncodeJpeg(const Frame& frame, int quality = 85);

// An animated WebP (FFmpeg's libwebp_anim encoder, looping forever) of `frames`, all of
// the same size, at `fps`, as bytes. FAILED_PRECONDITION when the encoder is missing.
absl::StatusOr<std::string> EncodeAnimatedWebp(const std::vector<Frame>& frames, int fps,
                                               int quality = 70);

}  // namespace reelfarm::media
