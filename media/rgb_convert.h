// Internal to media/: decoded AVFrames to planar float RGB frames (media.h's
// Frame), shared by the movie and image-sequence sources.
#pragma once

#include <string>

#include "media/av_util.h"
#include "media/media.h"

namespace reelfarm::media {

// Converts decoded frames to planar float RGB with the colour defaults of the ffmpeg
// tool's rgb24 conversion: the frame's own matrix (BT.601 when unspecified) and range
// (limited when unspecified), to full-range RGB.
class RgbConverter {
 public:
  // `context` ("input 'x' frame 12") starts the error messages.
  absl::Status Convert(const AVFrame& in, const std::string& context, Frame* out);
  // Float RGB images keep values outside [0, 1] (scene-referred plates; NaN still
  // becomes 0, infinities the largest half float); integer and YUV sources are bounded.
  void KeepFloatRange(bool keep) { keep_float_range_ = keep; }

 private:
  absl::Status Configure(const AVFrame& in, const std::string& context);
  // From rgb48_ into `out`.
  void CopyOut48(Frame* out) const;

  bool keep_float_range_ = false;
  SwsContextPtr sws_;
  bool float_out_ = false;  // libswscale writes GBRPF32 straight into the frame's planes
  AvFramePtr rgb48_;        // else RGB48 here, then converted

  int width_ = 0;
  int height_ = 0;
  int format_ = AV_PIX_FMT_NONE;
  int colorspace_ = AVCOL_SPC_UNSPECIFIED;
  int range_ = AVCOL_RANGE_UNSPECIFIED;
};

}  // namespace reelfarm::media
