// Internal to media/: owning wrappers for the FFmpeg C types, AVERROR to
// absl::Status conversion, and an opened input with a decoder for its video stream.
// Nothing here is part of the media seam; only media/*.cc include it.
#pragma once

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/frame.h>
#include <libswscale/swscale.h>
}

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "media/grid.h"
#include "media/media.h"

namespace reelfarm::media {

struct AvInputClose {
  void operator()(AVFormatContext* c) const { avformat_close_input(&c); }
};
using AvInputPtr = std::unique_ptr<AVFormatContext, AvInputClose>;

// Closes the output's file (when the muxer opened one) and frees the context. Does not
// write a trailer: an output dropped before its trailer is left truncated.
struct AvOutputClose {
  void operator()(AVFormatContext* c) const;
};
using AvOutputPtr = std::unique_ptr<AVFormatContext, AvOutputClose>;

struct AvCodecContextFree {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
using AvCodecContextPtr = std::unique_ptr<AVCodecContext, AvCodecContextFree>;

struct AvCodecParametersFree {
  void operator()(AVCodecParameters* p) const { avcodec_parameters_free(&p); }
};
using AvCodecParametersPtr = std::unique_ptr<AVCodecParameters, AvCodecParametersFree>;

struct AvFrameFree {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
using AvFramePtr = std::unique_ptr<AVFrame, AvFrameFree>;

struct AvPacketFree {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
using AvPacketPtr = std::unique_ptr<AVPacket, AvPacketFree>;

struct SwsContextFree {
  void operator()(SwsContext* c) const { sws_freeContext(c); }
};
using SwsContextPtr = std::unique_ptr<SwsContext, SwsContextFree>;

// What a NativeFrame holds: a reference to a decoded or resized frame.
struct NativeFrame::Impl {
  AvFramePtr frame;
};

// FFmpeg's text for an AVERROR code, e.g. "Invalid data found when processing input".
std::string AvErrorText(int errnum);

// The code of a failed write: ENOSPC RESOURCE_EXHAUSTED, EACCES/EPERM PERMISSION_DENIED,
// anything else (EROFS, EIO...) UNAVAILABLE; the first and last are retried.
absl::StatusCode WriteErrorCode(int errnum);

// A status with `code` and the message "<what> (<FFmpeg's text>); <remedy>".
absl::Status AvError(absl::StatusCode code, int errnum, const std::string& what,
                     const std::string& remedy = "");

absl::StatusOr<AvFramePtr> AllocFrame();
absl::StatusOr<AvPacketPtr> AllocPacket();

// True when the decoder reported errors in `frame` (it concealed damage, or a reference
// frame was missing): its pixels are not the file's.
inline bool DecodedWithErrors(const AVFrame& frame) {
  return frame.decode_error_flags != 0 || (frame.flags & AV_FRAME_FLAG_CORRUPT) != 0;
}

// The stream's frame rate: avg_frame_rate, else r_frame_rate, else {0, 1} (unknown).
AVRational StreamFrameRate(const AVStream& stream);

// The start timecode of `video` in `format` (see VideoInput::timecode); empty if none.
std::string FindTimecode(const AVFormatContext& format, const AVStream& video);

class VideoInput;

// Whether `format` was opened by one of FFmpeg's still-image demuxers (png_pipe,
// image2...): a single picture, not a movie.
bool IsImageFormat(const AVFormatContext& format);

// Frame rates above this that come only from a stream's time base are not taken as
// frame rates (GridFrameRate).
inline constexpr double kMaxGuessedFrameRate = 240.0;

// The rate of the constant-rate grid (DESIGN.md "Time"): the one the ffmpeg tool writes
// by default (av_guess_frame_rate), else StreamFrameRate; {0, 1} when unknown, or when
// the only rate is the inverse of the stream's time base and above kMaxGuessedFrameRate
// (the stream declares no frame rate).
AVRational GridFrameRate(const AVFormatContext& format, const AVStream& stream);

// A movie's video stream on the constant-rate grid of DESIGN.md "Time": which coded
// frame each output frame (slot) shows. Probe and every worker compute it the same
// way from the packets alone, so a chunk's frames do not depend on who decodes it.
struct Timeline {
  AVRational rate{0, 1};
  // Coded frames are known by their number in decode order (the packets lack
  // presentation times); otherwise by their pts.
  bool by_count = false;
  // Per coded frame in presentation order: its pts in the stream's time base, or its
  // number in decode order when by_count.
  std::vector<int64_t> keys;
  GridPlacement grid;
};

// Reads `input` (just opened) to its end without decoding and places its frames on the
// grid. FAILED_PRECONDITION naming the file when it has no frame rate or no frame.
absl::StatusOr<Timeline> ReadTimeline(VideoInput& input);

// Opens an output context of format `format_name` for `path` and opens its file.
absl::StatusOr<AvOutputPtr> OpenOutput(const std::string& path, const char* format_name);

// Opens `path` (demuxer only, with stream info) for reading; NOT_FOUND when it does not
// exist, FAILED_PRECONDITION when FFmpeg cannot read it as media.
absl::StatusOr<AvInputPtr> OpenInput(const std::string& path);

// An input file with a decoder opened for its best video stream. Other streams are
// discarded by the demuxer.
class VideoInput final {
 public:
  // NOT_FOUND when `path` does not exist; FAILED_PRECONDITION when it is not media, has
  // no video stream, or no decoder for it.
  static absl::StatusOr<std::unique_ptr<VideoInput>> Open(const std::string& path);

  VideoInput(const VideoInput&) = delete;
  VideoInput& operator=(const VideoInput&) = delete;

  // Decodes the next frame into `frame` (unreferenced first). False at the end of the
  // stream; FAILED_PRECONDITION when a packet cannot be read or decoded.
  absl::StatusOr<bool> ReadFrame(AVFrame* frame);

  struct PacketTimes {
    int64_t pts = AV_NOPTS_VALUE;
    int64_t dts = AV_NOPTS_VALUE;
    int flags = 0;  // AV_PKT_FLAG_*
    int size = 0;   // bytes the demuxer read
  };
  // Reads the rest of the file without decoding; returns its video packets' times in
  // file (decode) order.
  absl::StatusOr<std::vector<PacketTimes>> ReadRemainingPacketTimes();

  // Seeks to the keyframe at or before `timestamp` (in the stream's time base) and
  // flushes the decoder. Returns false (and leaves the position alone) when the
  // demuxer cannot seek there.
  bool SeekBackward(int64_t timestamp);

  // From now on, a packet whose pts is before `pts` (the stream's time base) is given to
  // the decoder with skip_frame = AVDISCARD_NONREF: a frame that no other frame refers
  // to is not decoded at all (B-frames outside a pyramid; every B-frame of MPEG-2 and
  // MPEG-4 Part 2), the others are. For a range that starts mid-GOP: the frames before
  // it are decoded only as far as the frames wanted need. Packets without a pts are
  // decoded whole. AV_NOPTS_VALUE (the default) skips nothing.
  void SkipUnreferencedBefore(int64_t pts) { skip_before_ = pts; }
  // Frames the decoder gave out since Open (ReadFrame's true answers).
  int64_t frames_decoded() const { return frames_decoded_; }

  const std::string& path() const { return path_; }
  const AVStream& stream() const { return *stream_; }
  const AVFormatContext& format() const { return *format_; }
  const AVCodecContext& decoder() const { return *decoder_; }
  // Whether the file has an audio stream (discarded here; ConcatSegments copies it).
  bool has_audio() const { return has_audio_; }
  // SMPTE timecode of the first frame ("01:00:00:00", ";" before the frames when drop
  // frame), from the video stream's, a timecode track's or the file's metadata; empty
  // when the file has none.
  const std::string& timecode() const { return timecode_; }
  // Clockwise rotation in degrees (0, 90, 180 or 270) that the stream's display matrix
  // asks a player to apply (a phone clip filmed upright); the ffmpeg tool applies it by
  // default (autorotate), and so do VideoInfo's size and every FrameSource.
  int rotation() const { return rotation_; }
  // Video packets read since Open, including the ones given to the decoder.
  int64_t packets_read() const { return packets_read_; }
  // Pts of the first video packet read since Open or the last seek; AV_NOPTS_VALUE
  // when none was read or it had none.
  int64_t first_packet_pts() const { return first_packet_pts_; }
  // Whether that packet was flagged as a keyframe.
  bool first_packet_key() const { return first_packet_key_; }

 private:
  VideoInput(std::string path, AvInputPtr format, AVStream* stream, AvCodecContextPtr decoder,
             AvPacketPtr packet);
  // Gives the decoder the next video packet, or the end-of-stream signal.
  absl::Status FeedDecoder();

  std::string path_;
  AvInputPtr format_;
  AVStream* stream_;  // owned by format_
  AvCodecContextPtr decoder_;
  AvPacketPtr packet_;
  bool draining_ = false;
  bool any_packet_ = false;
  int64_t packets_read_ = 0;
  int64_t frames_decoded_ = 0;
  int64_t skip_before_ = AV_NOPTS_VALUE;
  int64_t first_packet_pts_ = AV_NOPTS_VALUE;
  bool first_packet_key_ = false;
  bool has_audio_ = false;
  std::string timecode_;
  int rotation_ = 0;
};

// The clockwise rotation (0, 90, 180, 270) that the display matrix of `stream` asks
// for, rounded to the nearest quarter turn as the ffmpeg tool does; 0 without one.
int DisplayRotation(const AVStream& stream);

// Rotates planar RGB `frame` clockwise by `degrees` (0, 90, 180 or 270) in place,
// using `scratch` as the buffer it swaps with.
void RotateFrame(int degrees, Frame* frame, PlaneBuffer* scratch);

}  // namespace reelfarm::media
