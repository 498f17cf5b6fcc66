#include "media/picture.h"

extern "C" {
#include <libavformat/avio.h>
#include <libavutil/opt.h>
}

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "media/av_util.h"

namespace reelfarm::media {
namespace {

uint8_t To8Bit(float v) {
  if (!(v > 0)) return 0;  // NaN and negatives
  if (v >= 1) return 255;
  return static_cast<uint8_t>(std::lround(v * 255.0f));
}

// `frame` converted to `format` (same size) by libswscale from 8-bit RGB.
absl::StatusOr<AvFramePtr> ToAvFrame(const Frame& frame, AVPixelFormat format) {
  const int w = frame.width, h = frame.height;
  const size_t n = static_cast<size_t>(w) * h;
  if (n == 0 || frame.planes.size() < 3 * n) {
    return absl::InvalidArgumentError(absl::StrCat("picture: empty frame ", w, "x", h));
  }
  std::vector<uint8_t> rgb(3 * n);
  for (size_t i = 0; i < n; ++i) {
    for (size_t c = 0; c < 3; ++c) rgb[3 * i + c] = To8Bit(frame.planes[c * n + i]);
  }
  ASSIGN_OR_RETURN(AvFramePtr out, AllocFrame());
  out->width = w;
  out->height = h;
  out->format = format;
  if (int ret = av_frame_get_buffer(out.get(), 0); ret < 0) {
    return AvError(absl::StatusCode::kResourceExhausted, ret, "picture: no frame buffer");
  }
  // JPEG's full-range YUV: libswscale converts to the plain format with full range set
  // (its J formats are deprecated); the layout is the same.
  const bool full_range = format == AV_PIX_FMT_YUVJ444P;
  SwsContextPtr sws(sws_getContext(w, h, AV_PIX_FMT_RGB24, w, h,
                                   full_range ? AV_PIX_FMT_YUV444P : format, SWS_BILINEAR, nullptr,
                                   nullptr, nullptr));
  if (!sws) return absl::InternalError("picture: libswscale refused the conversion");
  if (full_range) {
    const int* bt601 = sws_getCoefficients(SWS_CS_ITU601);
    sws_setColorspaceDetails(sws.get(), bt601, 1, bt601, 1, 0, 1 << 16, 1 << 16);
  }
  const uint8_t* src[1] = {rgb.data()};
  const int stride[1] = {3 * w};
  sws_scale(sws.get(), src, stride, 0, h, out->data, out->linesize);
  return out;
}

// `qscale` > 0: a fixed quantiser (mjpeg's quality), set before the encoder opens.
absl::StatusOr<AvCodecContextPtr> OpenEncoder(const char* name, int w, int h, AVPixelFormat format,
                                              int fps, AVDictionary** options, int qscale = 0) {
  const AVCodec* codec = avcodec_find_encoder_by_name(name);
  if (codec == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("picture: FFmpeg has no ", name, " encoder; install one built with it"));
  }
  AvCodecContextPtr enc(avcodec_alloc_context3(codec));
  if (!enc) return absl::ResourceExhaustedError("picture: no encoder context");
  enc->width = w;
  enc->height = h;
  enc->pix_fmt = format;
  enc->time_base = AVRational{1, std::max(1, fps)};
  enc->framerate = AVRational{std::max(1, fps), 1};
  if (qscale > 0) {
    enc->flags |= AV_CODEC_FLAG_QSCALE;
    enc->global_quality = FF_QP2LAMBDA * qscale;
  }
  if (int ret = avcodec_open2(enc.get(), codec, options); ret < 0) {
    return AvError(absl::StatusCode::kInternal, ret,
                   absl::StrCat("picture: the ", name, " encoder refused its options"));
  }
  return enc;
}

}  // namespace

Frame ShrinkFrame(const Frame& in, int max_width) {
  if (in.width <= max_width || in.width <= 0 || in.height <= 0) return in;
  Frame out;
  out.index = in.index;
  out.width = std::max(2, max_width / 2 * 2);
  const double aspect = static_cast<double>(in.height) / in.width;
  out.height = std::max(2, static_cast<int>(std::lround(out.width * aspect / 2)) * 2);
  const size_t in_plane = static_cast<size_t>(in.width) * in.height;
  const size_t out_plane = static_cast<size_t>(out.width) * out.height;
  out.planes.resize(3 * out_plane);
  for (int y = 0; y < out.height; ++y) {
    const int y0 = static_cast<int>(static_cast<int64_t>(y) * in.height / out.height);
    const int y1 =
        std::max(y0 + 1, static_cast<int>(static_cast<int64_t>(y + 1) * in.height / out.height));
    for (int x = 0; x < out.width; ++x) {
      const int x0 = static_cast<int>(static_cast<int64_t>(x) * in.width / out.width);
      const int x1 =
          std::max(x0 + 1, static_cast<int>(static_cast<int64_t>(x + 1) * in.width / out.width));
      for (size_t c = 0; c < 3; ++c) {
        double sum = 0;
        for (int sy = y0; sy < y1; ++sy) {
          const float* row = in.planes.data() + c * in_plane + static_cast<size_t>(sy) * in.width;
          for (int sx = x0; sx < x1; ++sx) {
            if (std::isfinite(row[sx])) sum += row[sx];
          }
        }
        out.planes[c * out_plane + static_cast<size_t>(y) * out.width + x] =
            static_cast<float>(sum / ((y1 - y0) * (x1 - x0)));
      }
    }
  }
  return out;
}

absl::StatusOr<std::string> EncodeJpeg(const Frame& frame, int quality) {
  ASSIGN_OR_RETURN(AvFramePtr picture, ToAvFrame(frame, AV_PIX_FMT_YUVJ444P));
  // mjpeg's quality is a fixed quantiser: qscale 2 (best) .. 31, from quality 100 .. 0.
  const int q = std::clamp(2 + (100 - quality) * 29 / 100, 2, 31);
  ASSIGN_OR_RETURN(AvCodecContextPtr enc, OpenEncoder("mjpeg", frame.width, frame.height,
                                                      AV_PIX_FMT_YUVJ444P, 1, nullptr, q));
  picture->quality = FF_QP2LAMBDA * q;
  picture->pts = 0;
  ASSIGN_OR_RETURN(AvPacketPtr packet, AllocPacket());
  int ret = avcodec_send_frame(enc.get(), picture.get());
  if (ret >= 0) ret = avcodec_send_frame(enc.get(), nullptr);
  if (ret >= 0) ret = avcodec_receive_packet(enc.get(), packet.get());
  if (ret < 0) return AvError(absl::StatusCode::kInternal, ret, "picture: JPEG not encoded");
  return std::string(reinterpret_cast<const char*>(packet->data),
                     static_cast<size_t>(packet->size));
}

absl::StatusOr<std::string> EncodeAnimatedWebp(const std::vector<Frame>& frames, int fps,
                                               int quality) {
  if (frames.empty()) return absl::InvalidArgumentError("picture: no frames for a preview");
  const int w = frames[0].width, h = frames[0].height;
  AVDictionary* options = nullptr;
  av_dict_set_int(&options, "quality", quality, 0);
  auto opened = OpenEncoder("libwebp_anim", w, h, AV_PIX_FMT_YUV420P, fps, &options);
  av_dict_free(&options);
  if (!opened.ok()) return opened.status();
  AvCodecContextPtr enc = std::move(*opened);

  AVFormatContext* raw = nullptr;
  int ret = avformat_alloc_output_context2(&raw, nullptr, "webp", nullptr);
  if (ret < 0) return AvError(absl::StatusCode::kFailedPrecondition, ret, "picture: no webp muxer");
  AvOutputPtr out(raw);
  AVStream* stream = avformat_new_stream(out.get(), nullptr);
  if (stream == nullptr) return absl::ResourceExhaustedError("picture: no stream");
  stream->time_base = enc->time_base;
  avcodec_parameters_from_context(stream->codecpar, enc.get());
  if ((ret = avio_open_dyn_buf(&out->pb)) < 0) {
    return AvError(absl::StatusCode::kResourceExhausted, ret, "picture: no buffer");
  }
  AVDictionary* mux = nullptr;
  av_dict_set(&mux, "loop", "0", 0);  // forever
  ret = avformat_write_header(out.get(), &mux);
  av_dict_free(&mux);
  AvPacketPtr packet(av_packet_alloc());
  if (!packet) ret = AVERROR(ENOMEM);
  const auto drain = [&]() -> int {
    int r = 0;
    while ((r = avcodec_receive_packet(enc.get(), packet.get())) >= 0) {
      av_packet_rescale_ts(packet.get(), enc->time_base, stream->time_base);
      packet->stream_index = stream->index;
      if ((r = av_interleaved_write_frame(out.get(), packet.get())) < 0) return r;
    }
    return r == AVERROR(EAGAIN) || r == AVERROR_EOF ? 0 : r;
  };
  absl::Status converted;
  for (size_t i = 0; ret >= 0 && converted.ok() && i < frames.size(); ++i) {
    absl::StatusOr<AvFramePtr> picture = ToAvFrame(frames[i], AV_PIX_FMT_YUV420P);
    converted = picture.status();
    if (!converted.ok()) break;
    (*picture)->pts = static_cast<int64_t>(i);
    ret = avcodec_send_frame(enc.get(), picture->get());
    if (ret >= 0) ret = drain();
  }
  if (ret >= 0 && converted.ok()) ret = avcodec_send_frame(enc.get(), nullptr);
  if (ret >= 0 && converted.ok()) ret = drain();
  if (ret >= 0 && converted.ok()) ret = av_write_trailer(out.get());
  uint8_t* bytes = nullptr;
  const int size = avio_close_dyn_buf(out->pb, &bytes);
  out->pb = nullptr;
  std::string result(reinterpret_cast<const char*>(bytes), static_cast<size_t>(std::max(0, size)));
  av_free(bytes);
  if (!converted.ok()) return converted;
  if (ret < 0) return AvError(absl::StatusCode::kInternal, ret, "picture: preview not encoded");
  return result;
}

}  // namespace reelfarm::media
