// ConcatSegments: stream copy of movie segments into one MP4/MOV with continuous
// timestamps, plus the input's audio when asked.
#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "media/av_util.h"
#include "media/media.h"

extern "C" {
#include <libavutil/mathematics.h>
}

namespace reelfarm::media {
namespace {

std::string SegmentName(size_t i, const std::string& path) {
  return "segment " + std::to_string(i) + " '" + path + "'";
}

// The segment's video stream (its only one, when made by OpenH264Sink).
absl::StatusOr<AVStream*> VideoStreamOf(AVFormatContext* input, size_t i, const std::string& path) {
  const int index = av_find_best_stream(input, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  if (index < 0) {
    return absl::InvalidArgumentError(SegmentName(i, path) +
                                      ": no video stream; give segments made by the worker");
  }
  return input->streams[index];
}

std::string Describe(const AVCodecParameters& par) {
  return std::to_string(par.width) + "x" + std::to_string(par.height) + " " +
         avcodec_get_name(par.codec_id);
}

// Every segment has the first one's codec, size and codec headers (SPS/PPS): the
// output has one set of headers, so different ones would decode wrongly.
absl::Status CheckSegments(const std::vector<std::string>& segments) {
  AvCodecParametersPtr first;
  for (size_t i = 0; i < segments.size(); ++i) {
    ASSIGN_OR_RETURN(AvInputPtr input, OpenInput(segments[i]));
    ASSIGN_OR_RETURN(AVStream * stream, VideoStreamOf(input.get(), i, segments[i]));
    const AVCodecParameters& par = *stream->codecpar;
    if (i == 0) {
      first.reset(avcodec_parameters_alloc());
      if (!first || avcodec_parameters_copy(first.get(), &par) < 0) {
        return absl::ResourceExhaustedError("out of memory copying codec parameters");
      }
      continue;
    }
    const std::string odd = SegmentName(i, segments[i]) + " is " + Describe(par) + " but " +
                            SegmentName(0, segments[0]) + " is " + Describe(*first);
    if (par.codec_id != first->codec_id || par.width != first->width ||
        par.height != first->height) {
      return absl::InvalidArgumentError(odd +
                                        "; all segments must be encoded with the same options");
    }
    if (par.extradata_size != first->extradata_size ||
        !std::equal(par.extradata, par.extradata + par.extradata_size, first->extradata)) {
      return absl::InvalidArgumentError(
          odd +
          ", with different codec headers (SPS/PPS); encode all segments with the "
          "same options");
    }
  }
  return absl::OkStatus();
}

class Concatenator {
 public:
  Concatenator(std::string output_path, std::string container)
      : output_path_(std::move(output_path)), container_(std::move(container)) {}
  // Opens the output with a stream like `first`'s (and one like `audio`'s, when not
  // null) and writes the header.
  absl::Status Start(const AVStream& first, const AVStream* audio, const std::string& timecode);
  // Appends every video packet of segment `i`, shifted to follow the previous ones.
  absl::Status Append(size_t i, const std::string& path);
  // Copies the audio packets of `audio` in `input` that start before the video's end.
  absl::Status AppendAudio(AVFormatContext* input, const AVStream& audio);
  absl::Status Finish();

 private:
  std::string output_path_;
  std::string container_;
  AvOutputPtr output_;
  AVStream* stream_ = nullptr;        // owned by output_
  AVStream* audio_stream_ = nullptr;  // owned by output_; null without audio
  AVRational frame_rate_{0, 1};
  int64_t offset_ = 0;  // end of the segments so far, in stream_'s time base
};

absl::Status Concatenator::Start(const AVStream& first, const AVStream* audio,
                                 const std::string& timecode) {
  ASSIGN_OR_RETURN(output_, OpenOutput(output_path_, container_.c_str()));
  stream_ = avformat_new_stream(output_.get(), nullptr);
  if (stream_ == nullptr) return absl::ResourceExhaustedError("out of memory adding a stream");
  int ret = avcodec_parameters_copy(stream_->codecpar, first.codecpar);
  if (ret < 0) {
    return AvError(absl::StatusCode::kInternal, ret,
                   "output '" + output_path_ + "': cannot copy codec parameters");
  }
  // Keep the segment's tag when this container knows it (ProRes's tag says its
  // profile: apch HQ, ap4h 4444); otherwise the muxer picks its own.
  const unsigned tag = first.codecpar->codec_tag;
  if (output_->oformat->codec_tag == nullptr ||
      av_codec_get_id(output_->oformat->codec_tag, tag) != first.codecpar->codec_id) {
    stream_->codecpar->codec_tag = 0;
  }
  stream_->time_base = first.time_base;
  frame_rate_ = StreamFrameRate(first);
  stream_->avg_frame_rate = frame_rate_;
  stream_->r_frame_rate = frame_rate_;
  // The MOV/MP4 muxer writes a timecode track for it.
  if (!timecode.empty()) av_dict_set(&stream_->metadata, "timecode", timecode.c_str(), 0);
  if (audio != nullptr) {
    audio_stream_ = avformat_new_stream(output_.get(), nullptr);
    if (audio_stream_ == nullptr) return absl::ResourceExhaustedError("out of memory");
    ret = avcodec_parameters_copy(audio_stream_->codecpar, audio->codecpar);
    if (ret < 0) {
      return AvError(absl::StatusCode::kInternal, ret,
                     "output '" + output_path_ + "': cannot copy audio codec parameters");
    }
    audio_stream_->codecpar->codec_tag = 0;
    audio_stream_->time_base = audio->time_base;
  }
  AVDictionary* opts = nullptr;
  av_dict_set(&opts, "movflags", "+faststart", 0);  // the result is for playback
  ret = avformat_write_header(output_.get(), &opts);
  av_dict_free(&opts);
  if (ret < 0) {
    return AvError(absl::StatusCode::kUnavailable, ret,
                   "output '" + output_path_ + "': cannot write the " + container_ + " header",
                   "check the disk and its free space (and that the " + container_ +
                       " container takes the input's audio codec)");
  }
  return absl::OkStatus();
}

absl::Status Concatenator::Append(size_t i, const std::string& path) {
  ASSIGN_OR_RETURN(AvInputPtr input, OpenInput(path));
  ASSIGN_OR_RETURN(AVStream * in, VideoStreamOf(input.get(), i, path));
  ASSIGN_OR_RETURN(AvPacketPtr packet, AllocPacket());
  const int64_t start = in->start_time != AV_NOPTS_VALUE ? in->start_time : 0;
  const int64_t frame_duration =
      frame_rate_.num > 0 ? av_rescale_q(1, av_inv_q(frame_rate_), stream_->time_base) : 0;
  int64_t end = offset_;
  while (true) {
    int ret = av_read_frame(input.get(), packet.get());
    if (ret == AVERROR_EOF) break;
    if (ret < 0) {
      return AvError(absl::StatusCode::kFailedPrecondition, ret,
                     SegmentName(i, path) + ": cannot read a packet",
                     "the segment is truncated or damaged; encode it again");
    }
    if (packet->stream_index != in->index) {
      av_packet_unref(packet.get());
      continue;
    }
    if (packet->pts == AV_NOPTS_VALUE) {
      return absl::InvalidArgumentError(SegmentName(i, path) +
                                        ": a packet has no timestamp; give segments made "
                                        "by the worker");
    }
    packet->pts -= start;
    if (packet->dts != AV_NOPTS_VALUE) packet->dts -= start;
    av_packet_rescale_ts(packet.get(), in->time_base, stream_->time_base);
    if (packet->duration <= 0) packet->duration = frame_duration;
    packet->pts += offset_;
    if (packet->dts != AV_NOPTS_VALUE) packet->dts += offset_;
    end = std::max(end, packet->pts + packet->duration);
    packet->stream_index = stream_->index;
    packet->pos = -1;
    ret = av_interleaved_write_frame(output_.get(), packet.get());
    if (ret < 0) {
      return AvError(
          absl::StatusCode::kUnavailable, ret,
          "output '" + output_path_ + "': cannot write a packet of " + SegmentName(i, path),
          "check the disk and its free space");
    }
  }
  offset_ = end;
  return absl::OkStatus();
}

absl::Status Concatenator::AppendAudio(AVFormatContext* input, const AVStream& audio) {
  ASSIGN_OR_RETURN(AvPacketPtr packet, AllocPacket());
  // The video's grid starts at the file's start (its earliest stream, DESIGN.md "Time"),
  // so audio keeps its offset from there: audio that starts before the video stays in
  // sync with the held first frame.
  const int64_t start = input->start_time != AV_NOPTS_VALUE
                            ? av_rescale_q(input->start_time, AV_TIME_BASE_Q, audio.time_base)
                            : (audio.start_time != AV_NOPTS_VALUE ? audio.start_time : 0);
  const int64_t video_end = av_rescale_q(offset_, stream_->time_base, audio_stream_->time_base);
  while (true) {
    int ret = av_read_frame(input, packet.get());
    if (ret == AVERROR_EOF) break;
    if (ret < 0) {
      return AvError(absl::StatusCode::kFailedPrecondition, ret,
                     "audio of the input: cannot read a packet",
                     "the input is truncated or damaged");
    }
    if (packet->stream_index != audio.index || packet->pts == AV_NOPTS_VALUE) {
      av_packet_unref(packet.get());
      continue;
    }
    packet->pts -= start;
    if (packet->dts != AV_NOPTS_VALUE) packet->dts -= start;
    av_packet_rescale_ts(packet.get(), audio.time_base, audio_stream_->time_base);
    if (packet->pts >= video_end) {
      av_packet_unref(packet.get());
      continue;
    }
    packet->stream_index = audio_stream_->index;
    packet->pos = -1;
    ret = av_interleaved_write_frame(output_.get(), packet.get());
    if (ret < 0) {
      return AvError(absl::StatusCode::kUnavailable, ret,
                     "output '" + output_path_ + "': cannot write an audio packet",
                     "check the disk and its free space");
    }
  }
  return absl::OkStatus();
}

absl::Status Concatenator::Finish() {
  int ret = av_write_trailer(output_.get());
  if (ret < 0) {
    return AvError(absl::StatusCode::kUnavailable, ret,
                   "output '" + output_path_ + "': cannot write the trailer",
                   "check the disk and its free space");
  }
  ret = avio_closep(&output_->pb);
  if (ret < 0) {
    return AvError(absl::StatusCode::kUnavailable, ret,
                   "output '" + output_path_ + "': cannot close the file",
                   "check the disk and its free space");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ConcatSegments(const std::vector<std::string>& segments,
                            const std::string& output_path, const std::string& container,
                            const std::string& audio_from, const std::string& timecode) {
  if (segments.empty()) {
    return absl::InvalidArgumentError("concat into '" + output_path +
                                      "': no segments given; give at least one");
  }
  RETURN_IF_ERROR(CheckSegments(segments));
  Concatenator concat(output_path, container);
  AvInputPtr audio_input;
  const AVStream* audio = nullptr;
  if (!audio_from.empty()) {
    ASSIGN_OR_RETURN(audio_input, OpenInput(audio_from));
    const int index =
        av_find_best_stream(audio_input.get(), AVMEDIA_TYPE_AUDIO, -1, -1, nullptr, 0);
    if (index >= 0) audio = audio_input->streams[index];
  }
  {
    ASSIGN_OR_RETURN(AvInputPtr first, OpenInput(segments[0]));
    ASSIGN_OR_RETURN(AVStream * stream, VideoStreamOf(first.get(), 0, segments[0]));
    RETURN_IF_ERROR(concat.Start(*stream, audio, timecode));
  }
  for (size_t i = 0; i < segments.size(); ++i) {
    RETURN_IF_ERROR(concat.Append(i, segments[i]));
  }
  if (audio != nullptr) {
    absl::Status st = concat.AppendAudio(audio_input.get(), *audio);
    if (!st.ok()) {
      return absl::Status(st.code(), "input '" + audio_from + "': " + std::string(st.message()));
    }
  }
  return concat.Finish();
}

}  // namespace reelfarm::media
