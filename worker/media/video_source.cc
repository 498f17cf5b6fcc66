// OpenVideoSource: frames [begin, end) of a movie as planar float RGB.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "worker/media/av_util.h"
#include "worker/media/media.h"
#include "worker/media/rgb_convert.h"

extern "C" {
#include <libavutil/mathematics.h>
#include <libavutil/pixdesc.h>
}

namespace reelfarm::media {
namespace {

class VideoSource final : public FrameSource {
 public:
  static absl::StatusOr<std::unique_ptr<FrameSource>> Create(const std::string& path, int64_t begin,
                                                             int64_t end);
  absl::StatusOr<bool> Next(Frame* frame) override;

 private:
  static constexpr int64_t kRestarted = -1;

  VideoSource(std::string path, int64_t begin, int64_t end)
      : path_(std::move(path)), begin_(begin), end_(end), next_(begin) {}
  absl::Status Open();
  // Positions the input at or before frame begin_.
  absl::Status Start();
  // Reopens the input at frame 0; frames are then found by decoding forward.
  absl::Status Restart();
  // Index of the frame just decoded, or kRestarted when the input was reopened and
  // the frame is to be dropped.
  absl::StatusOr<int64_t> IndexOf(const AVFrame& decoded);
  int64_t TimestampIndex(int64_t timestamp) const;
  absl::Status PastEnd() const;
  absl::Status Gap(int64_t index) const;

  const std::string path_;
  const int64_t begin_;
  const int64_t end_;
  int64_t next_;  // index of the next frame to return
  std::unique_ptr<VideoInput> input_;
  AvFramePtr decoded_;
  RgbConverter converter_;
  AVRational fps_{0, 1};
  AVRational time_base_{0, 1};
  int64_t start_pts_ = 0;
  bool seeked_ = false;      // input_ was positioned by a seek, not opened at frame 0
  bool check_seek_ = false;  // the next decoded frame is the first after the seek
  bool counting_ = false;    // indexes come from counting frames, not timestamps
  int64_t decoded_since_open_ = 0;
  int64_t last_index_ = -1;  // highest index decoded so far, for messages
};

absl::StatusOr<std::unique_ptr<FrameSource>> VideoSource::Create(const std::string& path,
                                                                 int64_t begin, int64_t end) {
  if (begin < 0 || end < begin) {
    return absl::InvalidArgumentError("input '" + path + "': frame range [" +
                                      std::to_string(begin) + ", " + std::to_string(end) +
                                      ") is invalid; give 0 <= begin <= end");
  }
  std::unique_ptr<VideoSource> source(new VideoSource(path, begin, end));
  RETURN_IF_ERROR(source->Open());
  RETURN_IF_ERROR(source->Start());
  return std::unique_ptr<FrameSource>(std::move(source));
}

absl::Status VideoSource::Open() {
  ASSIGN_OR_RETURN(input_, VideoInput::Open(path_));
  if (!decoded_) {
    ASSIGN_OR_RETURN(decoded_, AllocFrame());
  }
  const AVStream& stream = input_->stream();
  fps_ = StreamFrameRate(stream);
  time_base_ = stream.time_base;
  start_pts_ = stream.start_time != AV_NOPTS_VALUE ? stream.start_time : 0;
  seeked_ = false;
  check_seek_ = false;
  decoded_since_open_ = 0;
  return absl::OkStatus();
}

absl::Status VideoSource::Start() {
  if (begin_ == 0 || fps_.num <= 0 || time_base_.num <= 0) return absl::OkStatus();
  const int64_t target = start_pts_ + av_rescale_q(begin_, av_inv_q(fps_), time_base_);
  if (input_->SeekBackward(target)) {
    seeked_ = true;
    check_seek_ = true;
    return absl::OkStatus();
  }
  return Restart();  // the demuxer cannot seek: a failed seek may have moved it
}

absl::Status VideoSource::Restart() { return Open(); }

int64_t VideoSource::TimestampIndex(int64_t timestamp) const {
  return av_rescale_rnd(timestamp - start_pts_, int64_t{time_base_.num} * fps_.num,
                        int64_t{time_base_.den} * fps_.den, AV_ROUND_NEAR_INF);
}

absl::StatusOr<int64_t> VideoSource::IndexOf(const AVFrame& decoded) {
  const int64_t counted = decoded_since_open_++;
  const int64_t timestamp = decoded.best_effort_timestamp;
  if (!counting_ && (timestamp == AV_NOPTS_VALUE || fps_.num <= 0)) {
    counting_ = true;
    if (seeked_) {  // without timestamps a seek cannot tell where it landed
      RETURN_IF_ERROR(Restart());
      return kRestarted;
    }
  }
  if (counting_) return counted;
  const int64_t index = TimestampIndex(timestamp);
  if (check_seek_) {
    check_seek_ = false;
    // The seek did not land on a keyframe at or before `begin_`: the first packet read
    // is no keyframe or a later one, or the first frame out of the decoder is later.
    // Decode from frame 0 instead.
    const int64_t key_pts = input_->first_packet_pts();
    const bool key_late = !input_->first_packet_key() ||
                          (key_pts != AV_NOPTS_VALUE && TimestampIndex(key_pts) > begin_);
    if (key_late || index > begin_) {
      RETURN_IF_ERROR(Restart());
      return kRestarted;
    }
  }
  return index;
}

absl::StatusOr<bool> VideoSource::Next(Frame* frame) {
  while (next_ < end_) {
    ASSIGN_OR_RETURN(bool decoded, input_->ReadFrame(decoded_.get()));
    if (!decoded && check_seek_) {  // the seek landed where nothing decodes
      RETURN_IF_ERROR(Restart());
      continue;
    }
    if (!decoded) return PastEnd();
    ASSIGN_OR_RETURN(int64_t index, IndexOf(*decoded_));
    if (index == kRestarted) continue;
    if (index > last_index_) last_index_ = index;
    if (index < next_) continue;  // before the range, or a repeated timestamp
    if (index > next_) return Gap(index);
    if (DecodedWithErrors(*decoded_)) {
      return absl::FailedPreconditionError(
          "input '" + path_ + "': frame " + std::to_string(index) +
          " is damaged (the decoder had to conceal errors); give an intact file");
    }
    RETURN_IF_ERROR(converter_.Convert(
        *decoded_, "input '" + path_ + "' frame " + std::to_string(index), frame));
    frame->index = next_++;
    return true;
  }
  return false;
}

absl::Status VideoSource::PastEnd() const {
  std::string ends = last_index_ >= 0 ? "the video ends after frame " + std::to_string(last_index_)
                                      : "no frame decoded";
  return absl::FailedPreconditionError(
      "input '" + path_ + "': frame " + std::to_string(next_) + " is missing: " + ends +
      " (frames [" + std::to_string(begin_) + ", " + std::to_string(end_) +
      ") were asked for); ask only for frames the file has (ProbeVideo's frame_count)");
}

absl::Status VideoSource::Gap(int64_t index) const {
  return absl::FailedPreconditionError(
      "input '" + path_ + "': frame " + std::to_string(next_) +
      " is missing: the next decoded frame has timestamp of frame " + std::to_string(index) +
      "; the file has a variable frame rate or dropped frames; convert it to a constant "
      "frame rate first");
}

}  // namespace

absl::StatusOr<std::unique_ptr<FrameSource>> OpenVideoSource(const std::string& path, int64_t begin,
                                                             int64_t end) {
  return VideoSource::Create(path, begin, end);
}

}  // namespace reelfarm::media
