// Output formats: which codecs a job may ask for, how they agree with the output
// path's extension, and how image-sequence patterns name their frames. Pure logic (no
// FFmpeg calls), shared by the server (submit-time validation) and the worker (which
// resolves the same spec the same way).
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace reelfarm::media {

// A job's output, resolved from the output path and the spec's format fields.
struct OutputFormat {
  // Movie codecs: "h264", "h265", "prores_422hq", "prores_4444", "dnxhr_hq".
  // Image codecs: "exr" (half float, zip), "png" (16-bit), "tiff" (16-bit),
  // "dpx" (10-bit).
  std::string codec;
  std::string pix_fmt;    // FFmpeg pixel format name written, e.g. "yuv422p10le"
  std::string preset;     // x264/x265 preset; empty for other codecs
  int crf = 18;           // x264/x265 constant rate factor; unused by other codecs
  std::string container;  // "mp4" or "mov"; empty for image sequences

  bool image_sequence() const { return container.empty(); }
  // Intra-only codecs: every frame is a keyframe and frames are coded independently.
  bool intra_only() const { return codec != "h264" && codec != "h265"; }
};

// Resolves the output format of `output` (a path relative to the storage root):
//   .mp4         h264 (default) or h265
//   .mov         prores_422hq (default), prores_4444, dnxhr_hq, h264, h265
//   .exr .png .tif/.tiff .dpx   the image codec of the same name; the path must hold a
//                frame-number pattern (`####` or `%04d`)
// Empty `codec`, `pix_fmt` and `preset` take the codec's defaults. INVALID_ARGUMENT
// naming the field (upscale.output, upscale.format.codec, .pix_fmt, .preset,
// upscale.crf), its value and the allowed values when they do not agree.
absl::StatusOr<OutputFormat> ResolveOutputFormat(const std::string& output,
                                                 const std::string& codec,
                                                 const std::string& pix_fmt,
                                                 const std::string& preset, int crf);

// True when `path` holds a frame-number pattern: a run of '#' (one digit each, so
// `####` pads to 4) or printf's `%0Nd` / `%d`.
bool HasFramePattern(const std::string& path);

// `pattern` with its frame-number pattern replaced by `number`, zero-padded to the
// pattern's width (`sh010.####.exr`, 1001 -> `sh010.1001.exr`). Numbers wider than the
// padding are written in full. Returns `pattern` unchanged when it has none.
std::string FramePath(const std::string& pattern, int64_t number);

}  // namespace reelfarm::media
