// Native frames (media.h): decoded frames kept in their own YUV format, resized with
// libswscale as ffmpeg's scale filter does, and turned into RGB only when asked.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "media/av_util.h"
#include "media/media.h"
#include "media/rgb_convert.h"

extern "C" {
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
}

namespace reelfarm::media {

NativeFrame::NativeFrame() = default;
NativeFrame::NativeFrame(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
NativeFrame::~NativeFrame() = default;
NativeFrame::NativeFrame(NativeFrame&&) noexcept = default;
NativeFrame& NativeFrame::operator=(NativeFrame&&) noexcept = default;

bool NativeFrame::empty() const { return !impl_ || !impl_->frame || !impl_->frame->buf[0]; }

int NativeFrame::width() const { return empty() ? 0 : impl_->frame->width; }

int NativeFrame::height() const { return empty() ? 0 : impl_->frame->height; }

std::string NativeFrame::pixel_format() const {
  if (empty()) return "";
  const char* name = av_get_pix_fmt_name(static_cast<AVPixelFormat>(impl_->frame->format));
  return name ? name : "";
}

int NativeFrame::bit_depth() const {
  if (empty()) return 0;
  const AVPixFmtDescriptor* d =
      av_pix_fmt_desc_get(static_cast<AVPixelFormat>(impl_->frame->format));
  return d ? d->comp[0].depth : 0;
}

NativeFrame::Plane NativeFrame::plane(int p) const {
  Plane out;
  if (empty() || p < 0 || p > 2) return out;
  const AVFrame& f = *impl_->frame;
  const AVPixFmtDescriptor* d = av_pix_fmt_desc_get(static_cast<AVPixelFormat>(f.format));
  if (d == nullptr || p >= d->nb_components) return out;
  const int plane = d->comp[p].plane;
  const int sw = p == 0 ? 0 : d->log2_chroma_w;
  const int sh = p == 0 ? 0 : d->log2_chroma_h;
  out.data = f.data[plane];
  out.linesize = f.linesize[plane];
  out.width = AV_CEIL_RSHIFT(f.width, sw);
  out.height = AV_CEIL_RSHIFT(f.height, sh);
  out.bytes_per_sample = d->comp[p].depth > 8 ? 2 : 1;
  return out;
}

size_t NativeFrame::bytes() const {
  if (empty()) return 0;
  size_t n = 0;
  for (const AVBufferRef* b : impl_->frame->buf) n += b ? b->size : 0;
  return n;
}

bool IsNativeYuvFormat(const std::string& pixel_format) {
  const AVPixelFormat f = av_get_pix_fmt(pixel_format.c_str());
  const AVPixFmtDescriptor* d = av_pix_fmt_desc_get(f);
  if (d == nullptr || pixel_format.rfind("yuvj", 0) == 0) return false;
  constexpr uint64_t kNot = AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL | AV_PIX_FMT_FLAG_BITSTREAM |
                            AV_PIX_FMT_FLAG_FLOAT | AV_PIX_FMT_FLAG_HWACCEL |
                            AV_PIX_FMT_FLAG_ALPHA | AV_PIX_FMT_FLAG_BE | AV_PIX_FMT_FLAG_BAYER;
  if ((d->flags & kNot) != 0 || !(d->flags & AV_PIX_FMT_FLAG_PLANAR) || d->nb_components != 3) {
    return false;
  }
  for (int c = 0; c < 3; ++c) {  // Y, U, V each in a plane of its own (not NV12)
    if (d->comp[c].plane != c || d->comp[c].depth < 8 || d->comp[c].depth > 16) return false;
  }
  return sws_isSupportedInput(f) && sws_isSupportedOutput(f);
}

absl::Status NativeToRgb(const NativeFrame& in, Frame* out) {
  if (in.empty()) return absl::InvalidArgumentError("NativeToRgb: the frame is empty");
  RgbConverter converter;
  RETURN_IF_ERROR(converter.Convert(*in.impl()->frame, "frame " + std::to_string(in.index), out));
  out->index = in.index;
  return absl::OkStatus();
}

absl::Status FrameSink::WriteNative(const NativeFrame& frame) {
  return absl::UnimplementedError("frame " + std::to_string(frame.index) +
                                  ": this sink takes RGB frames only; use Write");
}

struct NativeResizer::State {
  int width = 0;
  int height = 0;
  AVPixelFormat format = AV_PIX_FMT_NONE;
  int flags = 0;
  int threads = 1;
  SwsContextPtr sws;
  // What `sws` was made for.
  int in_width = 0, in_height = 0, in_format = AV_PIX_FMT_NONE;
};

NativeResizer::NativeResizer(std::unique_ptr<State> state) : state_(std::move(state)) {}
NativeResizer::~NativeResizer() = default;

absl::StatusOr<std::unique_ptr<NativeResizer>> NativeResizer::Create(
    int width, int height, const std::string& pixel_format, ResizeFilter filter, int threads) {
  if (width <= 0 || height <= 0 || width > kMaxFrameSide || height > kMaxFrameSide) {
    return absl::InvalidArgumentError("resize to " + std::to_string(width) + "x" +
                                      std::to_string(height) + ": give sides in [1, " +
                                      std::to_string(kMaxFrameSide) + "]");
  }
  if (!IsNativeYuvFormat(pixel_format)) {
    return absl::InvalidArgumentError("resize to pixel format '" + pixel_format +
                                      "': not a planar YUV format the native path writes; "
                                      "use the RGB path");
  }
  auto state = std::make_unique<State>();
  state->width = width;
  state->height = height;
  state->format = av_get_pix_fmt(pixel_format.c_str());
  // The flags the scale filter passes for flags=bicubic / flags=lanczos, nothing else.
  state->flags = filter == ResizeFilter::kBicubic   ? SWS_BICUBIC
                 : filter == ResizeFilter::kLanczos ? SWS_LANCZOS
                                                    : SWS_AREA;
  state->threads = threads;
  return std::unique_ptr<NativeResizer>(new NativeResizer(std::move(state)));
}

absl::Status NativeResizer::Resize(const NativeFrame& in, NativeFrame* out) {
  State& s = *state_;
  if (in.empty()) return absl::InvalidArgumentError("resize: the frame is empty");
  const AVFrame& src = *in.impl()->frame;
  const std::string where = "frame " + std::to_string(in.index);
  if (!s.sws || src.width != s.in_width || src.height != s.in_height || src.format != s.in_format) {
    if (!IsNativeYuvFormat(in.pixel_format())) {
      return absl::FailedPreconditionError(where + ": pixel format '" + in.pixel_format() +
                                           "' is not planar YUV; use the RGB path");
    }
    // As FFmpeg 5.1's vf_scale config_props sets its context up.
    SwsContextPtr sws(sws_alloc_context());
    if (!sws) return absl::ResourceExhaustedError(where + ": out of memory for libswscale");
    SwsContext* c = sws.get();
    av_opt_set_int(c, "srcw", src.width, 0);
    av_opt_set_int(c, "srch", src.height, 0);
    av_opt_set_int(c, "src_format", src.format, 0);
    av_opt_set_int(c, "dstw", s.width, 0);
    av_opt_set_int(c, "dsth", s.height, 0);
    av_opt_set_int(c, "dst_format", s.format, 0);
    av_opt_set_int(c, "sws_flags", s.flags, 0);
    av_opt_set_int(c, "threads", s.threads, 0);
    // MPEG-2 chroma siting (vertically centred) for yuv420p, the filter's convention;
    // FFmpeg 5.1 applies it to yuv420p only.
    if (src.format == AV_PIX_FMT_YUV420P) av_opt_set_int(c, "src_v_chr_pos", 128, 0);
    if (s.format == AV_PIX_FMT_YUV420P) av_opt_set_int(c, "dst_v_chr_pos", 128, 0);
    const int ret = sws_init_context(c, nullptr, nullptr);
    if (ret < 0) {
      return AvError(absl::StatusCode::kInternal, ret, where + ": cannot set up libswscale");
    }
    s.sws = std::move(sws);
    s.in_width = src.width;
    s.in_height = src.height;
    s.in_format = src.format;
  }
  if (src.color_range != AVCOL_RANGE_UNSPECIFIED) {
    // The filter's rule: a tagged input range is the source range; the output keeps the
    // context's (limited for these formats), so limited input is left as it is.
    int *inv_table = nullptr, *table = nullptr;
    int in_full = 0, out_full = 0, brightness = 0, contrast = 0, saturation = 0;
    sws_getColorspaceDetails(s.sws.get(), &inv_table, &in_full, &table, &out_full, &brightness,
                             &contrast, &saturation);
    in_full = src.color_range == AVCOL_RANGE_JPEG;
    sws_setColorspaceDetails(s.sws.get(), inv_table, in_full, table, out_full, brightness, contrast,
                             saturation);
  }
  ASSIGN_OR_RETURN(AvFramePtr dst, AllocFrame());
  dst->format = s.format;
  dst->width = s.width;
  dst->height = s.height;
  int ret = av_frame_get_buffer(dst.get(), 0);
  if (ret < 0) return AvError(absl::StatusCode::kResourceExhausted, ret, where);
  ret = av_frame_copy_props(dst.get(), &src);
  if (ret < 0) return AvError(absl::StatusCode::kResourceExhausted, ret, where);
  ret = sws_scale_frame(s.sws.get(), dst.get(), &src);
  if (ret < 0) return AvError(absl::StatusCode::kInternal, ret, where + ": resize failed");
  auto impl = std::make_unique<NativeFrame::Impl>();
  impl->frame = std::move(dst);
  *out = NativeFrame(std::move(impl));
  out->index = in.index;
  return absl::OkStatus();
}

}  // namespace reelfarm::media
