// Media I/O with the FFmpeg libraries (libavformat/libavcodec/libswscale).
//
// Frames cross this seam as planar float RGB in [0, 1] (CHW order), the layout the
// model stage wants, or, for filter resizes, as opaque NativeFrames in their own YUV
// format; no FFmpeg type or AVERROR leaves media/: every FFmpeg
// failure is converted to an absl::Status whose message names the file, the frame
// (when there is one) and the cause.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace reelfarm::common {
class Storage;
}

namespace reelfarm::media {

// The largest frame width and height decoded; larger inputs are refused
// (FAILED_PRECONDITION naming the size) before any frame buffer is allocated.
inline constexpr int kMaxFrameSide = 8192;

// Colour tags of a video stream, as FFmpeg's AVCOL_* values (ISO/IEC 23091-4 code
// points: 1 BT.709, 2 unspecified, 6 BT.601/SMPTE 170M, 9 BT.2020, ...).
struct ColourInfo {
  int primaries = 2;  // AVCOL_PRI_*
  int transfer = 2;   // AVCOL_TRC_*
  int matrix = 2;     // AVCOL_SPC_*
  int range = 0;      // AVCOL_RANGE_*: 0 unspecified, 1 limited (tv), 2 full (pc)
};

// CIE 1931 xy of a colour space's primaries and white point (OpenEXR's
// `chromaticities` attribute).
struct Chromaticities {
  float red_x = 0, red_y = 0, green_x = 0, green_y = 0, blue_x = 0, blue_y = 0;
  float white_x = 0, white_y = 0;
};

struct VideoInfo {
  // The size of the frames as delivered: upright, with the display matrix of a rotated
  // (phone) clip applied as the ffmpeg tool does by default; `rotation` says by how much.
  int width = 0;
  int height = 0;
  int rotation = 0;  // clockwise degrees applied: 0, 90, 180 or 270
  // Frames on the constant-rate grid (DESIGN.md "Time"): what the ffmpeg tool writes
  // to a constant-frame-rate output by default, counted from the packets.
  int64_t frame_count = 0;
  int64_t coded_frames = 0;    // frames coded in the file (before a cut tail)
  int64_t held_frames = 0;     // grid frames that repeat the one before (empty chunks, VFR)
  int64_t dropped_frames = 0;  // coded frames that fall on no grid frame of their own
  // Grid frames cut from the end: the file is truncated (its last GOP ends mid-way) and
  // frame_count stops before the first frame that does not decode intact. 0 when whole.
  int64_t tail_cut_frames = 0;
  int fps_num = 0;  // frame rate as a fraction, e.g. 24000/1001
  int fps_den = 1;
  std::string codec;         // e.g. "h264"
  std::string pixel_format;  // e.g. "yuv420p"
  ColourInfo colour;
  bool has_audio = false;   // the file also has an audio stream
  int64_t first_frame = 0;  // number of the first frame (image sequences: its file's)
  // SMPTE start timecode of the first frame ("01:00:00:00"; ';' before the frames when
  // drop frame), empty when the file has none (image sequences never have one here).
  std::string timecode;
};

// Opens `path` and describes its best video stream, on its constant-rate grid (the
// frame rate is the grid's: the one ffmpeg writes by default).
// NOT_FOUND when the file does not exist; FAILED_PRECONDITION when it is not a media
// file, is corrupt, has no video stream, or its codec has no decoder; each message
// names the file and says what to give instead.
absl::StatusOr<VideoInfo> ProbeVideo(const std::string& path);

// The start timecode of the movie at `path` (VideoInfo::timecode) without decoding a
// frame; empty when it has none. Errors as ProbeVideo's.
absl::StatusOr<std::string> ReadTimecode(const std::string& path);

// The timecode `frames` frames after `start` at `fps_num/fps_den` (drop-frame counting
// when `start` says so, as SMPTE 12M does at 30000/1001 and 60000/1001), e.g.
// TimecodeAfter("01:00:00:00", 24, 1, 30) is "01:00:01:06". INVALID_ARGUMENT when
// `start` is not a timecode for that rate.
absl::StatusOr<std::string> TimecodeAfter(const std::string& start, int fps_num, int fps_den,
                                          int64_t frames);

// std::allocator whose value-less construct leaves the element uninitialised, so that
// resizing a frame's buffer does not zero it before it is written (44 MB of memset per
// 2560x1440 frame).
template <typename T>
struct DefaultInitAllocator : std::allocator<T> {
  template <typename U>
  struct rebind {
    using other = DefaultInitAllocator<U>;
  };
  DefaultInitAllocator() = default;
  template <typename U>
  DefaultInitAllocator(const DefaultInitAllocator<U>&) noexcept {}
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

// A frame's samples. resize() leaves new values unset: write them all.
using PlaneBuffer = std::vector<float, DefaultInitAllocator<float>>;

// One decoded frame: planar RGB, float in [0, 1] (never NaN: sources and the model
// stage keep that true, and sinks rely on it), `planes.size() == 3 * width * height`
// (all of R, then G, then B). Colour-managed frames (colour.h) may hold scene-referred
// values outside [0, 1] between the source, the colour conversion and the sink.
struct Frame {
  int width = 0;
  int height = 0;
  int64_t index = 0;  // 0-based frame number in the source
  PlaneBuffer planes;
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

  // Carries the source on to frames [begin, end) of the same input when `begin` is the
  // frame it would give next (once read to its end, its range's end): decoding goes on
  // from where it is instead of seeking to a keyframe and decoding forward again, and
  // the frames are those a new source of [begin, end) gives. False, and the source as it
  // was, otherwise: another frame, a source that failed, or one that cannot.
  virtual bool ContinueTo(int64_t /*begin*/, int64_t /*end*/) { return false; }
};

// A decoded frame in its own pixel format and bit depth (yuv420p, yuv422p10le...), for
// the filter resizes that never leave YUV (NativeResizer). Opaque, so no FFmpeg type
// leaves media/: it holds a reference-counted FFmpeg frame, so keeping one shares the
// decoder's buffer instead of copying it. Its samples are read-only. Move-only; safe
// to hand to another thread.
class NativeFrame {
 public:
  NativeFrame();
  ~NativeFrame();
  NativeFrame(NativeFrame&&) noexcept;
  NativeFrame& operator=(NativeFrame&&) noexcept;

  bool empty() const;
  int width() const;
  int height() const;
  std::string pixel_format() const;  // FFmpeg's name, e.g. "yuv420p10le"; "" when empty
  int bit_depth() const;             // bits per sample, e.g. 8 or 10
  // One plane's samples: for plane 0 (Y), the cheap way to measure a frame (QC) without
  // converting it. `bytes_per_sample` is 1 up to 8 bits, else 2 (native-endian).
  struct Plane {
    const uint8_t* data = nullptr;
    int linesize = 0;  // bytes from one row to the next
    int width = 0;
    int height = 0;
    int bytes_per_sample = 1;
  };
  Plane plane(int p) const;  // p < 3; an empty Plane for an empty frame
  size_t bytes() const;      // sample memory it references, all planes

  int64_t index = 0;  // 0-based frame number in the source

  // media/ only (av_util.h defines Impl).
  struct Impl;
  explicit NativeFrame(std::unique_ptr<Impl> impl);
  Impl* impl() const { return impl_.get(); }

 private:
  std::unique_ptr<Impl> impl_;
};

// `in` as planar float RGB, as OpenVideoSource would have delivered it (the frame's own
// matrix, BT.601 when unspecified, to full-range RGB): for a thumbnail or a QC measure
// of a frame of the native path. Costs one libswscale conversion.
absl::Status NativeToRgb(const NativeFrame& in, Frame* out);

// Reads native frames in order. Not thread-safe; one consumer.
class NativeFrameSource {
 public:
  NativeFrameSource() = default;
  NativeFrameSource(const NativeFrameSource&) = delete;
  NativeFrameSource& operator=(const NativeFrameSource&) = delete;
  virtual ~NativeFrameSource() = default;

  // The next frame into `frame`. Returns false at the end of the range.
  virtual absl::StatusOr<bool> Next(NativeFrame* frame) = 0;

  // As FrameSource::ContinueTo: the following range of the same movie, decoded on.
  virtual bool ContinueTo(int64_t /*begin*/, int64_t /*end*/) { return false; }
};

// The frames of OpenVideoSource(path, begin, end), the same grid frames, as the decoder
// made them (no RGB conversion, no copy). FAILED_PRECONDITION when the movie is rotated
// (upright frames are made on the RGB path only) or its frames are not planar YUV.
absl::StatusOr<std::unique_ptr<NativeFrameSource>> OpenNativeVideoSource(const std::string& path,
                                                                         int64_t begin,
                                                                         int64_t end);

// Whether `pixel_format` (FFmpeg's name) is one the native path takes and gives: planar
// YUV without alpha, 8 to 16 bits, limited-range by convention (not the yuvj formats).
bool IsNativeYuvFormat(const std::string& pixel_format);

// kArea (libswscale's SWS_AREA, averaging) is for shrinking: thumbnails and QC copies.
enum class ResizeFilter { kBicubic, kLanczos, kArea };

// Resizes native frames to `width`x`height` in `pixel_format` (IsNativeYuvFormat) with
// libswscale as ffmpeg's scale filter sets it up (FFmpeg 5.1 vf_scale: the filter's
// SWS_BICUBIC / SWS_LANCZOS flags with default parameters, MPEG-2 chroma siting for
// yuv420p, no matrix or range change), so the result is the one of
// `ffmpeg -vf scale=W:H:flags=bicubic` to the same pixel format. A format change (e.g.
// yuv420p to ProRes' yuv422p10le) happens in the same libswscale step, as in ffmpeg.
// One thread uses a resizer at a time; `threads` slices each frame (0: one per core).
class NativeResizer final {
 public:
  static absl::StatusOr<std::unique_ptr<NativeResizer>> Create(int width, int height,
                                                               const std::string& pixel_format,
                                                               ResizeFilter filter,
                                                               int threads = 1);
  ~NativeResizer();
  NativeResizer(const NativeResizer&) = delete;
  NativeResizer& operator=(const NativeResizer&) = delete;

  // `in` resized into a new frame `out` (index copied). FAILED_PRECONDITION when `in`
  // is not planar YUV.
  absl::Status Resize(const NativeFrame& in, NativeFrame* out);

  struct State;

 private:
  explicit NativeResizer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// Frames [begin, end) of the movie at `path` on its constant-rate grid (DESIGN.md
// "Time"), in order: frame i is the coded frame that slot i shows, the same whichever
// range it is asked in. Reads the packets' times first (no decoding), then seeks to
// the keyframe at or before the first coded frame wanted and decodes forward, so a
// chunk never decodes the whole file (a file whose packets have no presentation times
// is decoded from its start). A range past the end of the grid is an error when the
// first missing frame is reached (FAILED_PRECONDITION naming the frame).
absl::StatusOr<std::unique_ptr<FrameSource>> OpenVideoSource(const std::string& path, int64_t begin,
                                                             int64_t end);

// Describes the image sequence `pattern` (`plates/sh010.####.exr` or `%04d`) over the
// frame numbers [first, last] (inclusive; -1: the lowest/highest number on disk).
// NOT_FOUND when no frame exists; FAILED_PRECONDITION naming every missing frame (as
// ranges) when there are gaps, or naming the file when the first frame does not
// decode. fps is 24/1 (images carry none); first_frame is `first`.
absl::StatusOr<VideoInfo> ProbeImageSequence(const std::string& pattern, int64_t first = -1,
                                             int64_t last = -1);

// Frames numbered [begin, end) of the image sequence `pattern`, one file each, in
// order; Frame::index is the frame's number. A missing or undecodable file fails when
// reached (FAILED_PRECONDITION naming the file and frame). 8- to 16-bit integer and
// float RGB images are converted exactly.
absl::StatusOr<std::unique_ptr<FrameSource>> OpenImageSequenceSource(const std::string& pattern,
                                                                     int64_t begin, int64_t end);

// OpenImageSequenceSource for colour-managed jobs (colour.h): float images (EXR) keep
// their values outside [0, 1] (highlights above 1.0, negatives) instead of being
// clamped; NaN still becomes 0. Such frames go through a ColourPipeline before the model.
absl::StatusOr<std::unique_ptr<FrameSource>> OpenSceneReferredImageSequenceSource(
    const std::string& pattern, int64_t begin, int64_t end);

struct EncodeOptions {
  int width = 0;
  int height = 0;
  int fps_num = 24;
  int fps_den = 1;
  // Codec and pixel format as output_format.h names them (ResolveOutputFormat).
  std::string codec = "h264";
  std::string pix_fmt = "yuv420p";
  std::string container = "mp4";    // muxer: "mp4" or "mov"
  int crf = 18;                     // h264/h265 only
  std::string preset = "veryfast";  // h264/h265 only
  // Tagged on the stream. The matrix is also the one RGB is converted with when
  // libswscale has it (else BT.601, tagged so); range is full only for h264/h265.
  ColourInfo colour;
  // The frames come through WriteNative, in the source's YUV (limited range): tagged as
  // the RGB path tags (BT.601 for an unspecified matrix, the one the RGB path reads such
  // frames with), a matrix libswscale lacks kept as it is; no RGB conversion is set up
  // (Write with an RGB frame is then refused).
  bool native_frames = false;
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
  // Encodes a native frame of the sink's size in the pixel format it encodes
  // (NativeResizer makes them). UNIMPLEMENTED for sinks that take RGB frames only.
  virtual absl::Status WriteNative(const NativeFrame& frame);
  // Flushes the encoder and writes the trailer. The file is complete only after this
  // returns OK. Destroying an unclosed sink leaves a truncated file: callers write to a
  // temporary name and publish only after Close().
  virtual absl::Status Close() = 0;
};

// A movie at `path` in `options.container` with `options.codec` (h264, h265,
// prores_422hq, prores_4444, dnxhr_hq): a closed-GOP segment with timestamps from 0
// and no B-frames, so that segments made with the same options concatenate by stream
// copy. INVALID_ARGUMENT naming the option for options the encoder refuses.
absl::StatusOr<std::unique_ptr<FrameSink>> OpenMovieSink(const std::string& path,
                                                         const EncodeOptions& options);

// OpenMovieSink with H.264 (yuv420p) in MP4.
absl::StatusOr<std::unique_ptr<FrameSink>> OpenH264Sink(const std::string& path,
                                                        const EncodeOptions& options);

struct ImageSequenceOptions {
  int width = 0;
  int height = 0;
  std::string codec = "exr";  // exr (half, zip), png (16-bit), tiff (16-bit), dpx (10-bit)
  // File number of the frame with index 0: a frame with index i is written to
  // FramePath(pattern, first_number + i) (output_format.h).
  int64_t first_number = 0;
  // Writes and publishes each file (borrowed); null: the local file system's.
  const common::Storage* storage = nullptr;
  // exr only: written as each file's `chromaticities` attribute (FFmpeg's EXR encoder
  // writes none; the file is re-written with OpenEXR, its pixels copied as they are).
  std::optional<Chromaticities> chromaticities;
};

// Writes each frame to its own file named by `pattern` (`renders/sh010.####.exr`),
// to a temporary name first and renamed into place (Storage::Publish) as soon as it
// is complete, so a reader never sees a partial image. Close() has nothing left to do.
absl::StatusOr<std::unique_ptr<FrameSink>> OpenImageSequenceSink(
    const std::string& pattern, const ImageSequenceOptions& options);

// Stream-copies `segments` (made by OpenMovieSink with the same options), in order,
// into one movie at `output_path` (muxer `container`: "mp4" or "mov") with continuous
// timestamps; no re-encode. When `audio_from` is not empty, that file's first audio
// stream is stream-copied beside the video (cut to the video's length). A non-empty
// `timecode` is the output's start timecode (written as a timecode track). The caller
// publishes `output_path` (a temporary name) itself.
absl::Status ConcatSegments(const std::vector<std::string>& segments,
                            const std::string& output_path, const std::string& container = "mp4",
                            const std::string& audio_from = "", const std::string& timecode = "");

// Sends only FFmpeg's errors to stderr (x264 prints statistics at every close
// otherwise). `verbose` keeps FFmpeg's default (info) level.
void SetLibraryLogging(bool verbose);

// "Lavc59.37.100 / Lavf59.27.100" style version string for provenance.
std::string LibraryVersions();

}  // namespace reelfarm::media
