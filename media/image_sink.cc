// OpenImageSequenceSink: one image file per frame (EXR half/zip, PNG 16-bit, TIFF
// 16-bit, DPX 10-bit), each written to a temporary name and renamed into place.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>

#include "common/storage.h"
#include "media/av_util.h"
#include "media/exr_attributes.h"
#include "media/media.h"
#include "media/output_format.h"

extern "C" {
#include <libavutil/opt.h>
}

namespace reelfarm::media {
namespace {

float Clamp01(float v) { return v >= 0.0f ? (v <= 1.0f ? v : 1.0f) : 0.0f; }  // NaN -> 0

uint16_t Quantize(float v, float max) {
  return static_cast<uint16_t>(std::lround(Clamp01(v) * max));
}

struct ImageCodec {
  const char* encoder;
  AVPixelFormat pix_fmt;
  std::vector<std::pair<const char*, const char*>> options;
};

absl::StatusOr<ImageCodec> ChooseImageCodec(const std::string& codec, const std::string& pattern) {
  if (codec == "exr") {
    return ImageCodec{"exr", AV_PIX_FMT_GBRPF32LE, {{"format", "half"}, {"compression", "zip16"}}};
  }
  if (codec == "png") return ImageCodec{"png", AV_PIX_FMT_RGB48BE, {}};
  if (codec == "tiff") return ImageCodec{"tiff", AV_PIX_FMT_RGB48LE, {}};
  if (codec == "dpx") return ImageCodec{"dpx", AV_PIX_FMT_GBRP10LE, {}};
  return absl::InvalidArgumentError("output '" + pattern + "': codec '" + codec +
                                    "' is not an image codec; give exr, png, tiff or dpx");
}

class ImageSequenceSink final : public FrameSink {
 public:
  static absl::StatusOr<std::unique_ptr<FrameSink>> Create(const std::string& pattern,
                                                           const ImageSequenceOptions& options);
  absl::Status Write(const Frame& frame) override;
  absl::Status Close() override { return absl::OkStatus(); }

 private:
  ImageSequenceSink(std::string pattern, ImageSequenceOptions options)
      : pattern_(std::move(pattern)), options_(std::move(options)) {}
  void Fill(const Frame& frame);
  absl::Status WriteFile(const std::string& path, const AVPacket& packet);

  const std::string pattern_;
  const ImageSequenceOptions options_;
  // Writes and publishes each file: options_.storage, or the local file system's.
  std::unique_ptr<common::Storage> own_storage_;
  const common::Storage* storage_ = nullptr;
  ImageCodec codec_;
  AvCodecContextPtr encoder_;
  AvFramePtr picture_;
  AvPacketPtr packet_;
};

absl::StatusOr<std::unique_ptr<FrameSink>> ImageSequenceSink::Create(
    const std::string& pattern, const ImageSequenceOptions& options) {
  if (!HasFramePattern(pattern)) {
    return absl::InvalidArgumentError("output '" + pattern +
                                      "': no frame-number pattern (#### or %04d) in the name");
  }
  if (options.width <= 0 || options.height <= 0) {
    return absl::InvalidArgumentError("output '" + pattern + "': size " +
                                      std::to_string(options.width) + "x" +
                                      std::to_string(options.height) + " is not positive");
  }
  std::unique_ptr<ImageSequenceSink> sink(new ImageSequenceSink(pattern, options));
  sink->storage_ = options.storage;
  if (sink->storage_ == nullptr) {
    const std::filesystem::path folder = std::filesystem::path(pattern).parent_path();
    ASSIGN_OR_RETURN(sink->own_storage_, common::Storage::Open(folder.empty() ? "." : folder));
    sink->storage_ = sink->own_storage_.get();
  }
  ASSIGN_OR_RETURN(sink->codec_, ChooseImageCodec(options.codec, pattern));
  const AVCodec* codec = avcodec_find_encoder_by_name(sink->codec_.encoder);
  if (codec == nullptr) {
    return absl::FailedPreconditionError("output '" + pattern + "': this FFmpeg has no " +
                                         sink->codec_.encoder + " encoder");
  }
  sink->encoder_.reset(avcodec_alloc_context3(codec));
  if (!sink->encoder_) return absl::ResourceExhaustedError("out of memory allocating an encoder");
  AVCodecContext& e = *sink->encoder_;
  e.width = options.width;
  e.height = options.height;
  e.pix_fmt = sink->codec_.pix_fmt;
  e.time_base = AVRational{1, 25};
  e.color_range = AVCOL_RANGE_JPEG;
  AVDictionary* opts = nullptr;
  for (const auto& [key, value] : sink->codec_.options) av_dict_set(&opts, key, value, 0);
  int ret = avcodec_open2(sink->encoder_.get(), codec, &opts);
  av_dict_free(&opts);
  if (ret < 0) {
    return AvError(
        absl::StatusCode::kInvalidArgument, ret,
        "output '" + pattern + "': the " + sink->codec_.encoder + " encoder refused the options");
  }
  ASSIGN_OR_RETURN(sink->picture_, AllocFrame());
  sink->picture_->format = e.pix_fmt;
  sink->picture_->width = e.width;
  sink->picture_->height = e.height;
  ret = av_frame_get_buffer(sink->picture_.get(), 0);
  if (ret < 0) return AvError(absl::StatusCode::kResourceExhausted, ret, "image frame buffer");
  ASSIGN_OR_RETURN(sink->packet_, AllocPacket());
  return std::unique_ptr<FrameSink>(std::move(sink));
}

// Planar float RGB to the codec's layout, exactly (no libswscale): EXR keeps the
// floats, the integer formats round to their bit depth.
void ImageSequenceSink::Fill(const Frame& frame) {
  const size_t w = static_cast<size_t>(frame.width);
  const size_t h = static_cast<size_t>(frame.height);
  const size_t n = w * h;
  const float* rgb = frame.planes.data();
  AVFrame& p = *picture_;
  const size_t from_gbr[3] = {1, 2, 0};  // G, B, R planes from R, G, B
  for (size_t y = 0; y < h; ++y) {
    switch (codec_.pix_fmt) {
      case AV_PIX_FMT_GBRPF32LE:
        for (size_t c = 0; c < 3; ++c) {
          std::memcpy(p.data[c] + y * p.linesize[c], rgb + from_gbr[c] * n + y * w,
                      w * sizeof(float));
        }
        break;
      case AV_PIX_FMT_GBRP10LE:
        for (size_t c = 0; c < 3; ++c) {
          auto* row = reinterpret_cast<uint16_t*>(p.data[c] + y * p.linesize[c]);
          const float* in = rgb + from_gbr[c] * n + y * w;
          for (size_t x = 0; x < w; ++x) row[x] = Quantize(in[x], 1023.0f);
        }
        break;
      default: {  // RGB48, packed; big-endian for PNG
        const bool big = codec_.pix_fmt == AV_PIX_FMT_RGB48BE;
        uint8_t* row = p.data[0] + y * p.linesize[0];
        for (size_t x = 0; x < w; ++x) {
          for (size_t c = 0; c < 3; ++c) {
            const uint16_t v = Quantize(rgb[c * n + y * w + x], 65535.0f);
            uint8_t* out = row + 6 * x + 2 * c;
            out[big ? 0 : 1] = static_cast<uint8_t>(v >> 8);
            out[big ? 1 : 0] = static_cast<uint8_t>(v & 0xff);
          }
        }
      }
    }
  }
}

absl::Status ImageSequenceSink::WriteFile(const std::string& path, const AVPacket& packet) {
  const std::filesystem::path final_path(path);
  const std::filesystem::path tmp = common::Storage::TempPathFor(final_path);
  absl::string_view bytes(reinterpret_cast<const char*>(packet.data), packet.size);
  std::string tagged;
  if (options_.chromaticities && codec_.pix_fmt == AV_PIX_FMT_GBRPF32LE) {  // exr
    ASSIGN_OR_RETURN(tagged, WithExrChromaticities(std::string(bytes), *options_.chromaticities,
                                                   "output '" + path + "'"));
    bytes = tagged;
  }
  absl::Status st = storage_->WriteFile(tmp, bytes, path);
  if (st.ok()) st = storage_->Publish(tmp, final_path);
  if (!st.ok()) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
  }
  return st;
}

absl::Status ImageSequenceSink::Write(const Frame& frame) {
  const int64_t number = options_.first_number + frame.index;
  const std::string path = FramePath(pattern_, number);
  if (frame.width != options_.width || frame.height != options_.height ||
      frame.planes.size() != 3 * static_cast<size_t>(frame.width) * frame.height) {
    return absl::InvalidArgumentError(
        "output '" + path + "': frame is " + std::to_string(frame.width) + "x" +
        std::to_string(frame.height) + " but the sink writes " + std::to_string(options_.width) +
        "x" + std::to_string(options_.height));
  }
  int ret = av_frame_make_writable(picture_.get());
  if (ret < 0) return AvError(absl::StatusCode::kResourceExhausted, ret, "output '" + path + "'");
  Fill(frame);
  picture_->pts = frame.index;
  ret = avcodec_send_frame(encoder_.get(), picture_.get());
  if (ret < 0) {
    return AvError(absl::StatusCode::kInternal, ret,
                   "output '" + path + "': the " + codec_.encoder + " encoder refused the frame");
  }
  ret = avcodec_receive_packet(encoder_.get(), packet_.get());
  if (ret < 0) {
    return AvError(absl::StatusCode::kInternal, ret,
                   "output '" + path + "': the " + codec_.encoder + " encoder gave no image");
  }
  absl::Status st = WriteFile(path, *packet_);
  av_packet_unref(packet_.get());
  return st;
}

}  // namespace

absl::StatusOr<std::unique_ptr<FrameSink>> OpenImageSequenceSink(
    const std::string& pattern, const ImageSequenceOptions& options) {
  return ImageSequenceSink::Create(pattern, options);
}

}  // namespace reelfarm::media
