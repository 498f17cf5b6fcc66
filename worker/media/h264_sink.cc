// OpenH264Sink: planar float RGB frames to H.264 (libx264, yuv420p) in MP4.
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "worker/media/av_util.h"
#include "worker/media/media.h"

extern "C" {
#include <libavutil/opt.h>
}

namespace reelfarm::media {
namespace {

// AREA averages each 2x2 block's chroma: it undoes the source's chroma repetition
// exactly, so a decode/encode round trip does not blur colour edges (BICUBIC here
// costs ~6 dB on testsrc2).
constexpr int kSwsFlags = SWS_AREA | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INP;

float Clamp01(float v) { return v >= 0.0f ? (v <= 1.0f ? v : 1.0f) : 0.0f; }  // NaN -> 0

absl::StatusCode WriteErrorCode(int errnum) {
  if (errnum == AVERROR(ENOSPC)) return absl::StatusCode::kResourceExhausted;
  if (errnum == AVERROR(EACCES) || errnum == AVERROR(EPERM)) {
    return absl::StatusCode::kPermissionDenied;
  }
  return absl::StatusCode::kUnavailable;
}

absl::Status ValidateOptions(const std::string& path, const EncodeOptions& o) {
  std::string problem;
  if (o.width <= 0 || o.height <= 0 || o.width % 2 != 0 || o.height % 2 != 0) {
    problem = "size " + std::to_string(o.width) + "x" + std::to_string(o.height) +
              " is not a positive even size (yuv420p needs even sizes)";
  } else if (o.fps_num <= 0 || o.fps_den <= 0) {
    problem = "frame rate " + std::to_string(o.fps_num) + "/" + std::to_string(o.fps_den) +
              " is not positive";
  } else if (o.crf < 0 || o.crf > 51) {
    problem = "crf " + std::to_string(o.crf) + " is outside [0, 51]";
  } else if (o.preset.empty()) {
    problem = "the x264 preset is empty";
  }
  if (problem.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError("output '" + path + "': " + problem +
                                    "; fix the encode options");
}

class H264Sink final : public FrameSink {
 public:
  static absl::StatusOr<std::unique_ptr<FrameSink>> Create(const std::string& path,
                                                           const EncodeOptions& options);
  absl::Status Write(const Frame& frame) override;
  absl::Status Close() override;

 private:
  H264Sink(std::string path, EncodeOptions options)
      : path_(std::move(path)), options_(std::move(options)) {}
  absl::Status OpenEncoder();
  absl::Status OpenStream();
  absl::Status OpenScaler();
  absl::Status ConvertToYuv(const Frame& frame);
  // Sends `frame` (nullptr: end of stream) and writes the packets that come out.
  absl::Status Encode(const AVFrame* frame);
  std::string Where() const {
    return "output '" + path_ + "' frame " + std::to_string(options_.first_index + next_pts_);
  }

  const std::string path_;
  const EncodeOptions options_;
  AvOutputPtr output_;
  AVStream* stream_ = nullptr;  // owned by output_
  AvCodecContextPtr encoder_;
  SwsContextPtr sws_;
  AvFramePtr yuv_;
  AvPacketPtr packet_;
  bool float_input_ = false;  // GBRPF32 into libswscale, else RGB48
  std::vector<float> staging_float_;
  std::vector<uint16_t> staging_48_;
  int64_t next_pts_ = 0;
  bool closed_ = false;
};

absl::StatusOr<std::unique_ptr<FrameSink>> H264Sink::Create(const std::string& path,
                                                            const EncodeOptions& options) {
  RETURN_IF_ERROR(ValidateOptions(path, options));
  std::unique_ptr<H264Sink> sink(new H264Sink(path, options));
  // The container is named: the path may be a temporary name such as "x.mp4.tmp.123".
  ASSIGN_OR_RETURN(sink->output_, OpenOutput(path, "mp4"));
  RETURN_IF_ERROR(sink->OpenEncoder());
  RETURN_IF_ERROR(sink->OpenStream());
  RETURN_IF_ERROR(sink->OpenScaler());
  ASSIGN_OR_RETURN(sink->packet_, AllocPacket());
  return std::unique_ptr<FrameSink>(std::move(sink));
}

absl::Status H264Sink::OpenEncoder() {
  const AVCodec* codec = avcodec_find_encoder_by_name("libx264");
  if (codec == nullptr) {
    return absl::FailedPreconditionError(
        "output '" + path_ + "': this FFmpeg (" + LibraryVersions() +
        ") has no libx264 encoder; install an FFmpeg built with --enable-libx264");
  }
  encoder_.reset(avcodec_alloc_context3(codec));
  if (!encoder_) return absl::ResourceExhaustedError("out of memory allocating an encoder");
  AVCodecContext& e = *encoder_;
  const AVRational fps{options_.fps_num, options_.fps_den};
  e.width = options_.width;
  e.height = options_.height;
  e.pix_fmt = AV_PIX_FMT_YUV420P;
  e.sample_aspect_ratio = AVRational{1, 1};
  e.time_base = av_inv_q(fps);
  e.framerate = fps;
  e.max_b_frames = 0;
  e.flags |= AV_CODEC_FLAG_CLOSED_GOP;
  if (output_->oformat->flags & AVFMT_GLOBALHEADER) e.flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  // What ConvertToYuv writes: BT.601 matrix, limited range.
  e.colorspace = AVCOL_SPC_SMPTE170M;
  e.color_range = AVCOL_RANGE_MPEG;
  AVDictionary* opts = nullptr;
  av_dict_set(&opts, "preset", options_.preset.c_str(), 0);
  av_dict_set(&opts, "crf", std::to_string(options_.crf).c_str(), 0);
  // Headers that do not depend on the content, so segments concatenate.
  av_dict_set(&opts, "x264-params", "stitchable=1", 0);
  const int ret = avcodec_open2(encoder_.get(), codec, &opts);
  av_dict_free(&opts);
  if (ret < 0) {
    return AvError(absl::StatusCode::kInvalidArgument, ret,
                   "output '" + path_ + "': libx264 refused the options (preset '" +
                       options_.preset + "', crf " + std::to_string(options_.crf) + ")",
                   "give a preset x264 knows, e.g. veryfast");
  }
  return absl::OkStatus();
}

absl::Status H264Sink::OpenStream() {
  stream_ = avformat_new_stream(output_.get(), nullptr);
  if (stream_ == nullptr) return absl::ResourceExhaustedError("out of memory adding a stream");
  int ret = avcodec_parameters_from_context(stream_->codecpar, encoder_.get());
  if (ret < 0) {
    return AvError(absl::StatusCode::kInternal, ret,
                   "output '" + path_ + "': cannot copy the encoder parameters");
  }
  const AVRational fps{options_.fps_num, options_.fps_den};
  stream_->time_base = encoder_->time_base;  // the muxer may refine it
  stream_->avg_frame_rate = fps;
  stream_->r_frame_rate = fps;
  ret = avformat_write_header(output_.get(), nullptr);
  if (ret < 0) {
    return AvError(WriteErrorCode(ret), ret, "output '" + path_ + "': cannot write the MP4 header",
                   "check the disk and its free space");
  }
  return absl::OkStatus();
}

absl::Status H264Sink::OpenScaler() {
  float_input_ = sws_isSupportedInput(AV_PIX_FMT_GBRPF32) > 0;
  const AVPixelFormat src = float_input_ ? AV_PIX_FMT_GBRPF32 : AV_PIX_FMT_RGB48;
  const int w = options_.width;
  const int h = options_.height;
  sws_.reset(
      sws_getContext(w, h, src, w, h, AV_PIX_FMT_YUV420P, kSwsFlags, nullptr, nullptr, nullptr));
  if (!sws_) return absl::InternalError("output '" + path_ + "': cannot set up libswscale");
  // Full-range RGB in; BT.601 limited-range YUV out, as tagged on the stream.
  if (sws_setColorspaceDetails(sws_.get(), sws_getCoefficients(SWS_CS_DEFAULT), 1,
                               sws_getCoefficients(SWS_CS_ITU601), 0, 0, 1 << 16, 1 << 16) < 0) {
    return absl::InternalError("output '" + path_ + "': libswscale refused the colour matrix");
  }
  ASSIGN_OR_RETURN(yuv_, AllocFrame());
  yuv_->format = AV_PIX_FMT_YUV420P;
  yuv_->width = w;
  yuv_->height = h;
  yuv_->color_range = AVCOL_RANGE_MPEG;
  yuv_->colorspace = AVCOL_SPC_SMPTE170M;
  const int ret = av_frame_get_buffer(yuv_.get(), 0);
  if (ret < 0) return AvError(absl::StatusCode::kResourceExhausted, ret, "yuv frame buffer");
  return absl::OkStatus();
}

absl::Status H264Sink::ConvertToYuv(const Frame& frame) {
  // The encoder may still hold a reference to the last frame's buffer.
  int ret = av_frame_make_writable(yuv_.get());
  if (ret < 0) return AvError(absl::StatusCode::kResourceExhausted, ret, Where());
  const size_t n = static_cast<size_t>(frame.width) * frame.height;
  const float* rgb = frame.planes.data();
  const uint8_t* src[4] = {};
  int src_stride[4] = {};
  if (float_input_) {
    staging_float_.resize(3 * n);
    const size_t from[3] = {1, 2, 0};  // GBRP wants G, B, R; frames hold R, G, B
    for (size_t p = 0; p < 3; ++p) {
      const float* in = rgb + from[p] * n;
      float* out = staging_float_.data() + p * n;
      for (size_t i = 0; i < n; ++i) out[i] = Clamp01(in[i]);
      src[p] = reinterpret_cast<const uint8_t*>(out);
      src_stride[p] = frame.width * static_cast<int>(sizeof(float));
    }
  } else {
    staging_48_.resize(3 * n);
    for (size_t i = 0; i < n; ++i) {
      for (size_t c = 0; c < 3; ++c) {
        staging_48_[3 * i + c] =
            static_cast<uint16_t>(std::lround(Clamp01(rgb[c * n + i]) * 65535.0f));
      }
    }
    src[0] = reinterpret_cast<const uint8_t*>(staging_48_.data());
    src_stride[0] = frame.width * 3 * static_cast<int>(sizeof(uint16_t));
  }
  ret = sws_scale(sws_.get(), src, src_stride, 0, frame.height, yuv_->data, yuv_->linesize);
  if (ret < 0) {
    return AvError(absl::StatusCode::kInternal, ret, Where() + ": YUV conversion failed");
  }
  return absl::OkStatus();
}

absl::Status H264Sink::Write(const Frame& frame) {
  if (closed_) {
    return absl::FailedPreconditionError("output '" + path_ +
                                         "': Write after Close; open a new sink");
  }
  const size_t expected = 3 * static_cast<size_t>(options_.width) * options_.height;
  if (frame.width != options_.width || frame.height != options_.height ||
      frame.planes.size() != expected) {
    return absl::InvalidArgumentError(
        Where() + " (source frame " + std::to_string(frame.index) + "): frame is " +
        std::to_string(frame.width) + "x" + std::to_string(frame.height) + " with " +
        std::to_string(frame.planes.size()) + " values, but the sink encodes " +
        std::to_string(options_.width) + "x" + std::to_string(options_.height) + " (" +
        std::to_string(expected) + " values); give frames of the sink's size");
  }
  RETURN_IF_ERROR(ConvertToYuv(frame));
  yuv_->pts = next_pts_;
  // The first frame starts the closed GOP the segment begins with.
  yuv_->pict_type = next_pts_ == 0 ? AV_PICTURE_TYPE_I : AV_PICTURE_TYPE_NONE;
  RETURN_IF_ERROR(Encode(yuv_.get()));
  ++next_pts_;
  return absl::OkStatus();
}

absl::Status H264Sink::Encode(const AVFrame* frame) {
  int ret = avcodec_send_frame(encoder_.get(), frame);
  if (ret < 0) {
    return AvError(absl::StatusCode::kInternal, ret, Where() + ": libx264 refused the frame");
  }
  while (true) {
    ret = avcodec_receive_packet(encoder_.get(), packet_.get());
    if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) return absl::OkStatus();
    if (ret < 0) {
      return AvError(absl::StatusCode::kInternal, ret, Where() + ": libx264 failed");
    }
    if (packet_->duration <= 0) packet_->duration = 1;  // one frame, in 1/fps
    av_packet_rescale_ts(packet_.get(), encoder_->time_base, stream_->time_base);
    packet_->stream_index = stream_->index;
    ret = av_interleaved_write_frame(output_.get(), packet_.get());
    if (ret < 0) {
      return AvError(WriteErrorCode(ret), ret, Where() + ": cannot write a packet",
                     "check the disk and its free space");
    }
  }
}

absl::Status H264Sink::Close() {
  if (closed_) return absl::OkStatus();
  closed_ = true;
  RETURN_IF_ERROR(Encode(nullptr));
  int ret = av_write_trailer(output_.get());
  if (ret < 0) {
    return AvError(WriteErrorCode(ret), ret, "output '" + path_ + "': cannot write the trailer",
                   "check the disk and its free space");
  }
  ret = avio_closep(&output_->pb);
  if (ret < 0) {
    return AvError(WriteErrorCode(ret), ret, "output '" + path_ + "': cannot close the file",
                   "check the disk and its free space");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<FrameSink>> OpenH264Sink(const std::string& path,
                                                        const EncodeOptions& options) {
  return H264Sink::Create(path, options);
}

}  // namespace reelfarm::media
