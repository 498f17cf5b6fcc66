// Media I/O with the FFmpeg libraries (libavformat/libavcodec/libswscale).
//
// Frames cross this seam as planar float RGB in [0, 1] (CHW order), the layout the
// model stage wants, so no FFmpeg type or AVERROR leaves worker/media/: every FFmpeg
// failure is converted to an absl::Status whose message names the file, the frame
// (when there is one) and the cause.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace reelfarm::media {

struct VideoInfo {
  int width = 0;
  int height = 0;
  int64_t frame_count = 0;  // counted exactly when the container does not say
  int fps_num = 0;          // frame rate as a fraction, e.g. 24000/1001
  int fps_den = 1;
  std::string codec;         // e.g. "h264"
  std::string pixel_format;  // e.g. "yuv420p"
};

// Opens `path` and describes its best video stream.
// NOT_FOUND when the file does not exist; FAILED_PRECONDITION when it is not a media
// file, is corrupt, has no video stream, or its codec has no decoder; each message
// names the file and says what to give instead.
absl::StatusOr<VideoInfo> ProbeVideo(const std::string& path);

// One decoded frame: planar RGB, float in [0, 1], `planes.size() == 3 * width * height`
// (all of R, then G, then B).
struct Frame {
  int width = 0;
  int height = 0;
  int64_t index = 0;  // 0-based frame number in the source
  std::vector<float> planes;
};

// Reads frames in order. Not thread-safe; one consumer.
class FrameSource {
 public:
  FrameSource() = default;
  FrameSource(const FrameSource&) = delete;
  FrameSource& operator=(const FrameSource&) = delete;
  virtual ~FrameSource() = default;

  // Decodes the next frame into `frame`. Returns false at the end of the range.
  virtual absl::StatusOr<bool> Next(Frame* frame) = 0;
};

// Frames [begin, end) of the movie at `path`, in order, each exactly once. Seeks to
// the keyframe at or before `begin` and decodes forward, so a chunk never decodes the
// whole file. A range past the end of the file is an error when the first missing
// frame is reached (FAILED_PRECONDITION naming the frame).
absl::StatusOr<std::unique_ptr<FrameSource>> OpenVideoSource(const std::string& path,
                                                             int64_t begin, int64_t end);

struct EncodeOptions {
  int width = 0;
  int height = 0;
  int fps_num = 24;
  int fps_den = 1;
  int crf = 18;
  std::string preset = "veryfast";
  // Frame number of the first frame written: the segment's timestamps start at 0;
  // this is recorded only for messages.
  int64_t first_index = 0;
};

// Writes frames to a movie. Not thread-safe; one producer.
class FrameSink {
 public:
  FrameSink() = default;
  FrameSink(const FrameSink&) = delete;
  FrameSink& operator=(const FrameSink&) = delete;
  virtual ~FrameSink() = default;

  // Encodes one frame (its size must be the sink's).
  virtual absl::Status Write(const Frame& frame) = 0;
  // Flushes the encoder and writes the trailer. The file is complete only after this
  // returns OK. Destroying an unclosed sink leaves a truncated file: callers write to a
  // temporary name and publish only after Close().
  virtual absl::Status Close() = 0;
};

// H.264 (libx264, yuv420p) in MP4 at `path`, as a closed-GOP segment with timestamps
// from 0 and no B-frames, so that segments concatenate by stream copy.
absl::StatusOr<std::unique_ptr<FrameSink>> OpenH264Sink(const std::string& path,
                                                        const EncodeOptions& options);

// Stream-copies `segments` (made by OpenH264Sink with the same options), in order,
// into one MP4 at `output_path` with continuous timestamps; no re-encode. The caller
// publishes `output_path` (a temporary name) itself.
absl::Status ConcatSegments(const std::vector<std::string>& segments,
                            const std::string& output_path);

// Sends only FFmpeg's errors to stderr (x264 prints statistics at every close
// otherwise). `verbose` keeps FFmpeg's default (info) level.
void SetLibraryLogging(bool verbose);

// "Lavc59.37.100 / Lavf59.27.100" style version string for provenance.
std::string LibraryVersions();

}  // namespace reelfarm::media
