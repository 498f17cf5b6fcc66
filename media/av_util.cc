#include "media/av_util.h"

#include <cerrno>
#include <cmath>
#include <filesystem>
#include <map>
#include <system_error>
#include <utility>

extern "C" {
#include <libavutil/display.h>
#include <libavutil/error.h>
}

namespace reelfarm::media {
namespace {

std::string InputName(const std::string& path) { return "input '" + path + "'"; }

// What the file holds instead of a video stream, e.g. "audio only".
std::string DescribeStreams(const AVFormatContext& format) {
  std::map<std::string, int> counts;
  bool only_audio = format.nb_streams > 0;
  for (unsigned i = 0; i < format.nb_streams; ++i) {
    const AVStream& st = *format.streams[i];
    const AVMediaType type = st.codecpar->codec_type;
    if (type != AVMEDIA_TYPE_AUDIO) only_audio = false;
    const char* name = av_get_media_type_string(type);
    if (type == AVMEDIA_TYPE_VIDEO && (st.disposition & AV_DISPOSITION_ATTACHED_PIC)) {
      name = "cover picture";
    }
    ++counts[name ? name : "unknown"];
  }
  if (counts.empty()) return "the file has no streams";
  if (only_audio) return "audio only";
  std::string text = "streams:";
  for (const auto& [name, count] : counts) {
    text += (text.back() == ':' ? " " : ", ") + std::to_string(count) + " " + name;
  }
  return text;
}

}  // namespace

void AvOutputClose::operator()(AVFormatContext* c) const {
  if (c->pb && !(c->oformat->flags & AVFMT_NOFILE)) avio_closep(&c->pb);
  avformat_free_context(c);
}

std::string AvErrorText(int errnum) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  if (av_strerror(errnum, buf, sizeof(buf)) < 0) return "FFmpeg error " + std::to_string(errnum);
  return buf;
}

absl::Status AvError(absl::StatusCode code, int errnum, const std::string& what,
                     const std::string& remedy) {
  std::string message = what + " (" + AvErrorText(errnum) + ")";
  if (!remedy.empty()) message += "; " + remedy;
  return absl::Status(code, message);
}

absl::StatusCode WriteErrorCode(int errnum) {
  if (errnum == AVERROR(ENOSPC)) return absl::StatusCode::kResourceExhausted;
  if (errnum == AVERROR(EACCES) || errnum == AVERROR(EPERM)) {
    return absl::StatusCode::kPermissionDenied;
  }
  return absl::StatusCode::kUnavailable;  // EROFS, EIO, EDQUOT...: worth a retry
}

absl::StatusOr<AvFramePtr> AllocFrame() {
  AvFramePtr frame(av_frame_alloc());
  if (!frame) return absl::ResourceExhaustedError("out of memory allocating an AVFrame");
  return frame;
}

absl::StatusOr<AvPacketPtr> AllocPacket() {
  AvPacketPtr packet(av_packet_alloc());
  if (!packet) return absl::ResourceExhaustedError("out of memory allocating an AVPacket");
  return packet;
}

AVRational StreamFrameRate(const AVStream& stream) {
  if (stream.avg_frame_rate.num > 0 && stream.avg_frame_rate.den > 0) {
    return stream.avg_frame_rate;
  }
  if (stream.r_frame_rate.num > 0 && stream.r_frame_rate.den > 0) return stream.r_frame_rate;
  return AVRational{0, 1};
}

bool IsImageFormat(const AVFormatContext& format) {
  if (format.iformat == nullptr || format.iformat->name == nullptr) return false;
  const std::string name = format.iformat->name;
  const std::string pipe = "_pipe";
  return name == "image2" || (name.size() > pipe.size() &&
                              name.compare(name.size() - pipe.size(), pipe.size(), pipe) == 0);
}

AVRational GridFrameRate(const AVFormatContext& format, const AVStream& stream) {
  const AVRational guessed = av_guess_frame_rate(const_cast<AVFormatContext*>(&format),
                                                 const_cast<AVStream*>(&stream), nullptr);
  AVRational rate = guessed.num > 0 && guessed.den > 0 ? guessed : StreamFrameRate(stream);
  // A rate that is only the time base (a container without a frame duration, e.g. a
  // Matroska or NUT file whose stream declares none and is too short for FFmpeg to
  // measure one): 1000 or 64000 "fps" is no frame rate. The ffmpeg tool would write
  // hundreds of copies of each frame; the farm refuses the file instead (ReadTimeline).
  const bool declared = stream.avg_frame_rate.num > 0 && stream.avg_frame_rate.den > 0;
  const bool time_base_only = !declared && rate.num > 0 &&
                              av_cmp_q(rate, av_inv_q(stream.time_base)) == 0 &&
                              av_q2d(rate) > kMaxGuessedFrameRate;
  return time_base_only ? AVRational{0, 1} : rate;
}

absl::StatusOr<AvOutputPtr> OpenOutput(const std::string& path, const char* format_name) {
  AVFormatContext* raw = nullptr;
  int ret = avformat_alloc_output_context2(&raw, nullptr, format_name, path.c_str());
  if (ret < 0 || raw == nullptr) {
    return AvError(absl::StatusCode::kInternal, ret,
                   "output '" + path + "': cannot set up the " + format_name + " muxer");
  }
  AvOutputPtr output(raw);
  if (!(output->oformat->flags & AVFMT_NOFILE)) {
    ret = avio_open(&output->pb, ("file:" + path).c_str(), AVIO_FLAG_WRITE);
    if (ret < 0) {
      return AvError(WriteErrorCode(ret), ret, "output '" + path + "': cannot open for writing",
                     "check that its folder exists and is writable");
    }
  }
  return output;
}

absl::StatusOr<AvInputPtr> OpenInput(const std::string& path) {
  std::error_code ec;
  const auto file_status = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(file_status)) {
    return absl::NotFoundError(InputName(path) +
                               ": no such file; give the path of an existing video file");
  }
  if (std::filesystem::is_directory(file_status)) {
    return absl::FailedPreconditionError(InputName(path) + ": is a directory; give a video file");
  }
  AVDictionary* options = nullptr;
  av_dict_set(&options, "protocol_whitelist", "file", 0);
  AVFormatContext* raw = nullptr;
  // "file:" keeps a ':' in the path from being read as a protocol name.
  int ret = avformat_open_input(&raw, ("file:" + path).c_str(), nullptr, &options);
  av_dict_free(&options);
  if (ret < 0) {
    const absl::StatusCode code = ret == AVERROR(EACCES) ? absl::StatusCode::kPermissionDenied
                                                         : absl::StatusCode::kFailedPrecondition;
    return AvError(code, ret, InputName(path) + ": not a readable media file",
                   "give a complete, uncorrupted video file");
  }
  AvInputPtr format(raw);
  // Finding the stream information decodes a few frames: those decoders get the same
  // frame-size limit as ours, so a crafted header cannot make them allocate a bomb.
  std::vector<AVDictionary*> stream_options(format->nb_streams, nullptr);
  for (AVDictionary*& d : stream_options) {
    av_dict_set_int(&d, "max_pixels", int64_t{kMaxFrameSide} * kMaxFrameSide, 0);
  }
  ret = avformat_find_stream_info(format.get(),
                                  stream_options.empty() ? nullptr : stream_options.data());
  for (AVDictionary*& d : stream_options) av_dict_free(&d);
  if (ret < 0) {
    return AvError(absl::StatusCode::kFailedPrecondition, ret,
                   InputName(path) + ": cannot read its stream information",
                   "the file is truncated or corrupt; give a complete video file");
  }
  return format;
}

absl::StatusOr<std::unique_ptr<VideoInput>> VideoInput::Open(const std::string& path) {
  ASSIGN_OR_RETURN(AvInputPtr format, OpenInput(path));
  const int index = av_find_best_stream(format.get(), AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  if (index < 0 || (format->streams[index]->disposition & AV_DISPOSITION_ATTACHED_PIC)) {
    return absl::FailedPreconditionError(InputName(path) + ": no video stream (" +
                                         DescribeStreams(*format) + "); give a file with video");
  }
  AVStream* stream = format->streams[index];
  // Refused before the decoder allocates anything for it.
  const int w = stream->codecpar->width, h = stream->codecpar->height;
  if (w > kMaxFrameSide || h > kMaxFrameSide) {
    return absl::FailedPreconditionError(
        InputName(path) + ": frame size " + std::to_string(w) + "x" + std::to_string(h) +
        " is over the limit of " + std::to_string(kMaxFrameSide) + "x" +
        std::to_string(kMaxFrameSide) + "; give a smaller input (or crop it)");
  }
  const AVCodecID codec_id = stream->codecpar->codec_id;
  const AVCodec* codec = avcodec_find_decoder(codec_id);
  if (codec == nullptr) {
    return absl::FailedPreconditionError(
        InputName(path) + ": this FFmpeg has no decoder for its video codec '" +
        avcodec_get_name(codec_id) + "'; transcode it to H.264 or ProRes first");
  }
  AvCodecContextPtr decoder(avcodec_alloc_context3(codec));
  if (!decoder) return absl::ResourceExhaustedError("out of memory allocating a decoder");
  int ret = avcodec_parameters_to_context(decoder.get(), stream->codecpar);
  if (ret < 0) {
    return AvError(absl::StatusCode::kInternal, ret,
                   InputName(path) + ": cannot copy the stream's codec parameters");
  }
  decoder->pkt_timebase = stream->time_base;
  // A stream that grows past the limit mid-way is refused by the decoder itself.
  decoder->max_pixels = int64_t{kMaxFrameSide} * kMaxFrameSide;
  // Slice threads only: with frame threads a frame's decode_error_flags race its
  // output, so damage would go unreported now and then (seen with h264).
  decoder->thread_count = 0;
  decoder->thread_type = FF_THREAD_SLICE;
  ret = avcodec_open2(decoder.get(), codec, nullptr);
  if (ret < 0) {
    return AvError(
        absl::StatusCode::kFailedPrecondition, ret,
        InputName(path) + ": cannot open the " + codec->name + " decoder for its video stream",
        "its codec parameters are unsupported or corrupt; transcode it first");
  }
  bool has_audio = false;
  for (unsigned i = 0; i < format->nb_streams; ++i) {
    if (format->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_AUDIO) has_audio = true;
    if (static_cast<int>(i) != index) format->streams[i]->discard = AVDISCARD_ALL;
  }
  ASSIGN_OR_RETURN(AvPacketPtr packet, AllocPacket());
  std::unique_ptr<VideoInput> input(
      new VideoInput(path, std::move(format), stream, std::move(decoder), std::move(packet)));
  input->has_audio_ = has_audio;
  input->timecode_ = FindTimecode(*input->format_, *stream);
  input->rotation_ = DisplayRotation(*stream);
  return input;
}

std::string FindTimecode(const AVFormatContext& format, const AVStream& video) {
  auto get = [](const AVDictionary* dict) -> std::string {
    const AVDictionaryEntry* e = av_dict_get(dict, "timecode", nullptr, 0);
    return e != nullptr && e->value != nullptr ? e->value : "";
  };
  std::string tc = get(video.metadata);
  // MOV/MP4 keep it on the timecode (tmcd) track, MXF and others on the file.
  for (unsigned i = 0; tc.empty() && i < format.nb_streams; ++i) {
    if (format.streams[i]->codecpar->codec_type == AVMEDIA_TYPE_DATA) {
      tc = get(format.streams[i]->metadata);
    }
  }
  if (tc.empty()) tc = get(format.metadata);
  return tc;
}

VideoInput::VideoInput(std::string path, AvInputPtr format, AVStream* stream,
                       AvCodecContextPtr decoder, AvPacketPtr packet)
    : path_(std::move(path)),
      format_(std::move(format)),
      stream_(stream),
      decoder_(std::move(decoder)),
      packet_(std::move(packet)) {}

absl::StatusOr<bool> VideoInput::ReadFrame(AVFrame* frame) {
  av_frame_unref(frame);
  while (true) {
    const int ret = avcodec_receive_frame(decoder_.get(), frame);
    if (ret >= 0) {
      ++frames_decoded_;
      return true;
    }
    if (ret == AVERROR_EOF) return false;
    if (ret != AVERROR(EAGAIN)) {
      return AvError(absl::StatusCode::kFailedPrecondition, ret,
                     InputName(path_) + ": a video frame does not decode",
                     "the video stream is corrupt; give an intact file");
    }
    if (draining_) {
      return absl::InternalError(InputName(path_) +
                                 ": the decoder asked for input after the end of the stream");
    }
    RETURN_IF_ERROR(FeedDecoder());
  }
}

absl::Status VideoInput::FeedDecoder() {
  while (true) {
    int ret = av_read_frame(format_.get(), packet_.get());
    if (ret == AVERROR_EOF) {
      draining_ = true;
      ret = avcodec_send_packet(decoder_.get(), nullptr);
      if (ret < 0 && ret != AVERROR_EOF) {
        return AvError(absl::StatusCode::kInternal, ret,
                       InputName(path_) + ": cannot flush the decoder");
      }
      return absl::OkStatus();
    }
    if (ret < 0) {
      return AvError(
          absl::StatusCode::kFailedPrecondition, ret,
          InputName(path_) + ": cannot read video packet " + std::to_string(packets_read_),
          "the file is truncated or damaged; give a complete file");
    }
    if (packet_->stream_index != stream_->index) {
      av_packet_unref(packet_.get());
      continue;
    }
    if (!any_packet_) {
      any_packet_ = true;
      first_packet_pts_ = packet_->pts;
      first_packet_key_ = (packet_->flags & AV_PKT_FLAG_KEY) != 0;
    }
    const int64_t number = packets_read_++;
    // Read by the decoder for this packet (it holds at most one not yet decoded, and
    // slice threads decode it before the next is sent).
    decoder_->skip_frame = skip_before_ != AV_NOPTS_VALUE && packet_->pts != AV_NOPTS_VALUE &&
                                   packet_->pts < skip_before_
                               ? AVDISCARD_NONREF
                               : AVDISCARD_DEFAULT;
    ret = avcodec_send_packet(decoder_.get(), packet_.get());
    av_packet_unref(packet_.get());
    if (ret < 0) {
      return AvError(
          absl::StatusCode::kFailedPrecondition, ret,
          InputName(path_) + ": video packet " + std::to_string(number) + " does not decode",
          "the video stream is corrupt; give an intact file");
    }
    return absl::OkStatus();
  }
}

absl::StatusOr<std::vector<VideoInput::PacketTimes>> VideoInput::ReadRemainingPacketTimes() {
  std::vector<PacketTimes> times;
  while (true) {
    const int ret = av_read_frame(format_.get(), packet_.get());
    if (ret == AVERROR_EOF) return times;
    if (ret < 0) {
      return AvError(
          absl::StatusCode::kFailedPrecondition, ret,
          InputName(path_) + ": cannot read video packet " + std::to_string(packets_read_),
          "the file is truncated or damaged; give a complete file");
    }
    if (packet_->stream_index == stream_->index) {
      times.push_back({packet_->pts, packet_->dts, packet_->flags, packet_->size});
      ++packets_read_;
    }
    av_packet_unref(packet_.get());
  }
}

bool VideoInput::SeekBackward(int64_t timestamp) {
  if (av_seek_frame(format_.get(), stream_->index, timestamp, AVSEEK_FLAG_BACKWARD) < 0) {
    return false;
  }
  avcodec_flush_buffers(decoder_.get());
  draining_ = false;
  any_packet_ = false;
  first_packet_pts_ = AV_NOPTS_VALUE;
  first_packet_key_ = false;
  return true;
}

int DisplayRotation(const AVStream& stream) {
  size_t size = 0;
  const uint8_t* matrix = av_stream_get_side_data(&stream, AV_PKT_DATA_DISPLAYMATRIX, &size);
  if (matrix == nullptr || size < 9 * sizeof(int32_t)) return 0;
  // av_display_rotation_get is counter-clockwise; fftools' get_rotation negates it.
  const double degrees = -av_display_rotation_get(reinterpret_cast<const int32_t*>(matrix));
  if (std::isnan(degrees)) return 0;
  const long quarter = std::lround(degrees / 90.0);
  return static_cast<int>(((quarter % 4) + 4) % 4) * 90;
}

void RotateFrame(int degrees, Frame* frame, PlaneBuffer* scratch) {
  if (degrees == 0) return;
  const int w = frame->width;
  const int h = frame->height;
  const bool turn = degrees != 180;
  const int ow = turn ? h : w;
  const int oh = turn ? w : h;
  const size_t n = static_cast<size_t>(w) * h;
  scratch->resize(frame->planes.size());
  for (size_t c = 0; c < 3; ++c) {
    const float* in = frame->planes.data() + c * n;
    float* out = scratch->data() + c * n;
    for (int y = 0; y < oh; ++y) {
      float* row = out + static_cast<size_t>(y) * ow;
      for (int x = 0; x < ow; ++x) {
        // The input pixel that output (x, y) shows.
        int sx = x;
        int sy = y;
        if (degrees == 90) {  // transpose=clock
          sx = y;
          sy = h - 1 - x;
        } else if (degrees == 180) {
          sx = w - 1 - x;
          sy = h - 1 - y;
        } else {  // 270: transpose=cclock
          sx = w - 1 - y;
          sy = x;
        }
        row[x] = in[static_cast<size_t>(sy) * w + sx];
      }
    }
  }
  frame->planes.swap(*scratch);
  frame->width = ow;
  frame->height = oh;
}

}  // namespace reelfarm::media
