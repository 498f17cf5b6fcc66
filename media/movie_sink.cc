// OpenMovieSink: planar float RGB frames (or native YUV frames, as they are) to H.264,
// H.265, ProRes or DNxHR in MP4/MOV, as closed-GOP segments that concatenate by stream
// copy.
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "media/av_util.h"
#include "media/media.h"

extern "C" {
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
}

namespace reelfarm::media {
namespace {

// AREA averages each 2x2 block's chroma: it undoes the source's chroma repetition
// exactly, so a decode/encode round trip does not blur colour edges (BICUBIC here
// costs ~6 dB on testsrc2).
constexpr int kSwsFlags = SWS_AREA | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INP;

float Clamp01(float v) { return v >= 0.0f ? (v <= 1.0f ? v : 1.0f) : 0.0f; }  // NaN -> 0

absl::Status ValidateOptions(const std::string& path, const EncodeOptions& o) {
  std::string problem;
  const AVPixelFormat pix_fmt = av_get_pix_fmt(o.pix_fmt.c_str());
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(pix_fmt);
  if (desc == nullptr) {
    problem = "pixel format '" + o.pix_fmt + "' is unknown";
  } else if (o.width <= 0 || o.height <= 0 || o.width % (1 << desc->log2_chroma_w) != 0 ||
             o.height % (1 << desc->log2_chroma_h) != 0) {
    problem = "size " + std::to_string(o.width) + "x" + std::to_string(o.height) +
              " is not a positive size that " + o.pix_fmt + " can hold (" + o.pix_fmt + " needs " +
              (desc->log2_chroma_h ? "even sizes" : "an even width") + ")";
  } else if (o.fps_num <= 0 || o.fps_den <= 0) {
    problem = "frame rate " + std::to_string(o.fps_num) + "/" + std::to_string(o.fps_den) +
              " is not positive";
  } else if (o.crf < 0 || o.crf > 51) {
    problem = "crf " + std::to_string(o.crf) + " is outside [0, 51]";
  } else if (o.container != "mp4" && o.container != "mov") {
    problem = "container '" + o.container + "' is not mp4 or mov";
  }
  if (problem.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError("output '" + path + "': " + problem +
                                    "; fix the encode options");
}

class MovieSink final : public FrameSink {
 public:
  static absl::StatusOr<std::unique_ptr<FrameSink>> Create(const std::string& path,
                                                           const EncodeOptions& options);
  absl::Status Write(const Frame& frame) override;
  absl::Status WriteNative(const NativeFrame& frame) override;
  absl::Status Close() override;

 private:
  MovieSink(std::string path, EncodeOptions options)
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
  std::vector<uint16_t> staging_48_;
  int64_t next_pts_ = 0;
  bool closed_ = false;
};

absl::StatusOr<std::unique_ptr<FrameSink>> MovieSink::Create(const std::string& path,
                                                             const EncodeOptions& options) {
  RETURN_IF_ERROR(ValidateOptions(path, options));
  std::unique_ptr<MovieSink> sink(new MovieSink(path, options));
  // The container is named: the path may be a temporary name such as "x.mp4.tmp.123".
  ASSIGN_OR_RETURN(sink->output_, OpenOutput(path, options.container.c_str()));
  RETURN_IF_ERROR(sink->OpenEncoder());
  RETURN_IF_ERROR(sink->OpenStream());
  if (!options.native_frames) RETURN_IF_ERROR(sink->OpenScaler());
  ASSIGN_OR_RETURN(sink->packet_, AllocPacket());
  return std::unique_ptr<FrameSink>(std::move(sink));
}

// FFmpeg's encoder and its private options for each codec of output_format.h.
struct EncoderChoice {
  const char* encoder;
  std::vector<std::pair<std::string, std::string>> options;
};

absl::StatusOr<EncoderChoice> ChooseEncoder(const EncodeOptions& o, const std::string& path) {
  if (o.codec == "h264") {
    // Headers that do not depend on the content, so segments concatenate.
    return EncoderChoice{
        "libx264",
        {{"preset", o.preset}, {"crf", std::to_string(o.crf)}, {"x264-params", "stitchable=1"}}};
  }
  if (o.codec == "h265") {
    // No B-frames and closed GOPs, as for H.264; no per-encode info SEI, so every
    // segment's headers are the same.
    return EncoderChoice{"libx265",
                         {{"preset", o.preset},
                          {"crf", std::to_string(o.crf)},
                          {"x265-params", "bframes=0:open-gop=0:info=0:log-level=error"}}};
  }
  if (o.codec == "prores_422hq") return EncoderChoice{"prores_ks", {{"profile", "hq"}}};
  if (o.codec == "prores_4444") return EncoderChoice{"prores_ks", {{"profile", "4444"}}};
  if (o.codec == "dnxhr_hq") return EncoderChoice{"dnxhd", {{"profile", "dnxhr_hq"}}};
  return absl::InvalidArgumentError("output '" + path + "': codec '" + o.codec +
                                    "' is not a movie codec; give h264, h265, prores_422hq, "
                                    "prores_4444 or dnxhr_hq");
}

absl::Status MovieSink::OpenEncoder() {
  ASSIGN_OR_RETURN(EncoderChoice choice, ChooseEncoder(options_, path_));
  const AVCodec* codec = avcodec_find_encoder_by_name(choice.encoder);
  if (codec == nullptr) {
    return absl::FailedPreconditionError("output '" + path_ + "': this FFmpeg (" +
                                         LibraryVersions() + ") has no " + choice.encoder +
                                         " encoder; install an FFmpeg built with it");
  }
  encoder_.reset(avcodec_alloc_context3(codec));
  if (!encoder_) return absl::ResourceExhaustedError("out of memory allocating an encoder");
  AVCodecContext& e = *encoder_;
  const AVRational fps{options_.fps_num, options_.fps_den};
  e.width = options_.width;
  e.height = options_.height;
  e.pix_fmt = av_get_pix_fmt(options_.pix_fmt.c_str());
  e.sample_aspect_ratio = AVRational{1, 1};
  e.time_base = av_inv_q(fps);
  e.framerate = fps;
  e.max_b_frames = 0;
  e.flags |= AV_CODEC_FLAG_CLOSED_GOP;
  if (output_->oformat->flags & AVFMT_GLOBALHEADER) e.flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  // What ConvertToYuv writes: the matrix libswscale has coefficients for (BT.601
  // otherwise, as the source assumed when it decoded), limited range except for
  // x264/x265 asked for full range.
  const int m = options_.colour.matrix;
  const bool sws_matrix = m == 1 || m == 4 || m == 5 || m == 6 || m == 7 || m == 9;
  e.colorspace = sws_matrix ? static_cast<AVColorSpace>(m) : AVCOL_SPC_SMPTE170M;
  const bool x26x = options_.codec == "h264" || options_.codec == "h265";
  e.color_range =
      x26x && options_.colour.range == AVCOL_RANGE_JPEG ? AVCOL_RANGE_JPEG : AVCOL_RANGE_MPEG;
  if (options_.native_frames && !sws_matrix && m != AVCOL_SPC_UNSPECIFIED) {
    // The frames are the source's YUV, untouched: a matrix libswscale lacks is still
    // theirs. (Unspecified is tagged BT.601, the matrix the RGB path reads them with.)
    e.colorspace = static_cast<AVColorSpace>(m);
  }
  e.color_primaries = static_cast<AVColorPrimaries>(options_.colour.primaries);
  e.color_trc = static_cast<AVColorTransferCharacteristic>(options_.colour.transfer);
  AVDictionary* opts = nullptr;
  std::string described;
  for (const auto& [key, value] : choice.options) {
    av_dict_set(&opts, key.c_str(), value.c_str(), 0);
    described += (described.empty() ? "" : ", ") + key + " " + value;
  }
  const int ret = avcodec_open2(encoder_.get(), codec, &opts);
  av_dict_free(&opts);
  if (ret < 0) {
    return AvError(absl::StatusCode::kInvalidArgument, ret,
                   "output '" + path_ + "': " + choice.encoder + " refused the options (" +
                       described + ", pix_fmt " + options_.pix_fmt + ", " +
                       std::to_string(options_.width) + "x" + std::to_string(options_.height) + ")",
                   "change the format options");
  }
  return absl::OkStatus();
}

absl::Status MovieSink::OpenStream() {
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
    return AvError(WriteErrorCode(ret), ret,
                   "output '" + path_ + "': cannot write the " + options_.container + " header",
                   "check the disk and its free space");
  }
  return absl::OkStatus();
}

absl::Status MovieSink::OpenScaler() {
  float_input_ = sws_isSupportedInput(AV_PIX_FMT_GBRPF32) > 0;
  const AVPixelFormat src = float_input_ ? AV_PIX_FMT_GBRPF32 : AV_PIX_FMT_RGB48;
  const AVPixelFormat dst = encoder_->pix_fmt;
  const int w = options_.width;
  const int h = options_.height;
  sws_.reset(sws_getContext(w, h, src, w, h, dst, kSwsFlags, nullptr, nullptr, nullptr));
  if (!sws_) return absl::InternalError("output '" + path_ + "': cannot set up libswscale");
  // Full-range RGB in; YUV out with the matrix and range tagged on the stream.
  const int full = encoder_->color_range == AVCOL_RANGE_JPEG ? 1 : 0;
  if (sws_setColorspaceDetails(sws_.get(), sws_getCoefficients(SWS_CS_DEFAULT), 1,
                               sws_getCoefficients(encoder_->colorspace), full, 0, 1 << 16,
                               1 << 16) < 0) {
    return absl::InternalError("output '" + path_ + "': libswscale refused the colour matrix");
  }
  ASSIGN_OR_RETURN(yuv_, AllocFrame());
  yuv_->format = dst;
  yuv_->width = w;
  yuv_->height = h;
  yuv_->color_range = encoder_->color_range;
  yuv_->colorspace = encoder_->colorspace;
  yuv_->color_primaries = encoder_->color_primaries;
  yuv_->color_trc = encoder_->color_trc;
  const int ret = av_frame_get_buffer(yuv_.get(), 0);
  if (ret < 0) return AvError(absl::StatusCode::kResourceExhausted, ret, "yuv frame buffer");
  return absl::OkStatus();
}

absl::Status MovieSink::ConvertToYuv(const Frame& frame) {
  // The encoder may still hold a reference to the last frame's buffer.
  int ret = av_frame_make_writable(yuv_.get());
  if (ret < 0) return AvError(absl::StatusCode::kResourceExhausted, ret, Where());
  const size_t n = static_cast<size_t>(frame.width) * frame.height;
  const float* rgb = frame.planes.data();
  const uint8_t* src[4] = {};
  int src_stride[4] = {};
  if (float_input_) {
    // The frame's planes go to libswscale as they are (it clips to [0, 1] as it reads
    // GBRPF32); GBRP wants G, B, R, frames hold R, G, B.
    const size_t from[3] = {1, 2, 0};
    for (size_t p = 0; p < 3; ++p) {
      src[p] = reinterpret_cast<const uint8_t*>(rgb + from[p] * n);
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

absl::Status MovieSink::WriteNative(const NativeFrame& frame) {
  if (closed_) {
    return absl::FailedPreconditionError("output '" + path_ +
                                         "': Write after Close; open a new sink");
  }
  if (frame.width() != options_.width || frame.height() != options_.height ||
      frame.pixel_format() != options_.pix_fmt) {
    return absl::InvalidArgumentError(
        Where() + " (source frame " + std::to_string(frame.index) + "): frame is " +
        std::to_string(frame.width()) + "x" + std::to_string(frame.height()) + " " +
        frame.pixel_format() + ", but the sink encodes " + std::to_string(options_.width) + "x" +
        std::to_string(options_.height) + " " + options_.pix_fmt +
        "; resize it to the sink's size and format (NativeResizer)");
  }
  // A new reference: the encoder may keep the frame (lookahead) after this returns.
  ASSIGN_OR_RETURN(AvFramePtr f, AllocFrame());
  int ret = av_frame_ref(f.get(), frame.impl()->frame.get());
  if (ret < 0) return AvError(absl::StatusCode::kResourceExhausted, ret, Where());
  f->pts = next_pts_;
  f->pict_type = next_pts_ == 0 ? AV_PICTURE_TYPE_I : AV_PICTURE_TYPE_NONE;
  RETURN_IF_ERROR(Encode(f.get()));
  ++next_pts_;
  return absl::OkStatus();
}

absl::Status MovieSink::Write(const Frame& frame) {
  if (closed_) {
    return absl::FailedPreconditionError("output '" + path_ +
                                         "': Write after Close; open a new sink");
  }
  if (options_.native_frames) {
    return absl::FailedPreconditionError(Where() +
                                         ": the sink was opened for native frames; use "
                                         "WriteNative or open it without native_frames");
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

absl::Status MovieSink::Encode(const AVFrame* frame) {
  int ret = avcodec_send_frame(encoder_.get(), frame);
  if (ret < 0) {
    return AvError(absl::StatusCode::kInternal, ret, Where() + ": the encoder refused the frame");
  }
  while (true) {
    ret = avcodec_receive_packet(encoder_.get(), packet_.get());
    if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) return absl::OkStatus();
    if (ret < 0) {
      return AvError(absl::StatusCode::kInternal, ret, Where() + ": the encoder failed");
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

absl::Status MovieSink::Close() {
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

absl::StatusOr<std::unique_ptr<FrameSink>> OpenMovieSink(const std::string& path,
                                                         const EncodeOptions& options) {
  return MovieSink::Create(path, options);
}

absl::StatusOr<std::unique_ptr<FrameSink>> OpenH264Sink(const std::string& path,
                                                        const EncodeOptions& options) {
  EncodeOptions h264 = options;
  h264.codec = "h264";
  h264.pix_fmt = "yuv420p";
  h264.container = "mp4";
  return MovieSink::Create(path, h264);
}

}  // namespace reelfarm::media
