// OpenVideoSource: frames [begin, end) of a movie's constant-rate grid as planar float
// RGB (DESIGN.md "Time": a coded frame is repeated in the slots it is held over, and a
// dropped one is skipped); OpenNativeVideoSource: the same frames as decoded.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "media/av_util.h"
#include "media/media.h"
#include "media/rgb_convert.h"

extern "C" {
#include <libavutil/mathematics.h>
#include <libavutil/pixdesc.h>
}

namespace reelfarm::media {
namespace {

class VideoSource final : public FrameSource {
 public:
  static absl::StatusOr<std::unique_ptr<VideoSource>> Create(const std::string& path, int64_t begin,
                                                             int64_t end);
  absl::StatusOr<bool> Next(Frame* frame) override;
  // The next frame as decoded (a new reference to the decoder's frame).
  absl::StatusOr<bool> NextNative(NativeFrame* frame);
  bool ContinueTo(int64_t begin, int64_t end) override;
  int rotation() const { return input_->rotation(); }
  const std::string& path() const { return path_; }

 private:
  static constexpr int64_t kSkip = -1;  // not a frame of the timeline, or restarted

  VideoSource(std::string path, int64_t begin, int64_t end)
      : path_(std::move(path)), begin_(begin), end_(end), next_(begin) {}
  absl::Status Open();
  // Positions the input at or before the coded frame that slot begin_ shows.
  absl::Status Start();
  // Reopens the input at its start; frames are then found by decoding forward.
  absl::Status Restart() { return Open(); }
  // The timeline's coded frame that `decoded` is, or kSkip.
  absl::StatusOr<int64_t> CodedFrameOf(const AVFrame& decoded);
  // Index of the last key <= `pts`, or -1.
  int64_t KeyAtOrBefore(int64_t pts) const;
  int64_t slot_count() const { return static_cast<int64_t>(timeline_.grid.slot_frame.size()); }
  absl::Status PastEnd() const;
  // Decodes up to the coded frame that slot next_ shows, into shown_. False at the end
  // of the range.
  absl::StatusOr<bool> Advance();
  absl::StatusOr<bool> Decode();  // Advance's work, within the range

  const std::string path_;
  int64_t begin_;
  int64_t end_;
  int64_t next_;         // slot of the next frame to return
  bool failed_ = false;  // a frame failed: where the decoder stands is not known
  Timeline timeline_;
  std::unique_ptr<VideoInput> input_;
  AvFramePtr decoded_;
  AvFramePtr shown_;          // the decoded frame of coded frame shown_frame_
  int64_t shown_frame_ = -1;  // -1: none yet
  bool ended_ = false;        // the decoder has no more frames
  RgbConverter converter_;
  PlaneBuffer rotated_;      // scratch for RotateFrame
  int64_t seek_frame_ = -1;  // the coded frame the last seek aimed at
  bool check_seek_ = false;  // the next decoded frame is the first after a seek
  int64_t decoded_since_open_ = 0;
};

absl::StatusOr<std::unique_ptr<VideoSource>> VideoSource::Create(const std::string& path,
                                                                 int64_t begin, int64_t end) {
  if (begin < 0 || end < begin) {
    return absl::InvalidArgumentError("input '" + path + "': frame range [" +
                                      std::to_string(begin) + ", " + std::to_string(end) +
                                      ") is invalid; give 0 <= begin <= end");
  }
  std::unique_ptr<VideoSource> source(new VideoSource(path, begin, end));
  {
    ASSIGN_OR_RETURN(std::unique_ptr<VideoInput> packets, VideoInput::Open(path));
    ASSIGN_OR_RETURN(source->timeline_, ReadTimeline(*packets));
  }
  RETURN_IF_ERROR(source->Open());
  RETURN_IF_ERROR(source->Start());
  return source;
}

absl::Status VideoSource::Open() {
  ASSIGN_OR_RETURN(input_, VideoInput::Open(path_));
  // The frames before the next one to show are not shown: of those, only what later
  // frames refer to is decoded (a chunk that starts mid-GOP decodes from the keyframe
  // before it). Frames counted in decode order are all decoded.
  if (!timeline_.by_count && next_ < slot_count()) {
    input_->SkipUnreferencedBefore(timeline_.keys[timeline_.grid.slot_frame[next_]]);
  }
  if (!decoded_) {
    ASSIGN_OR_RETURN(decoded_, AllocFrame());
    ASSIGN_OR_RETURN(shown_, AllocFrame());
  }
  check_seek_ = false;
  ended_ = false;
  decoded_since_open_ = 0;
  return absl::OkStatus();
}

absl::Status VideoSource::Start() {
  // Without presentation times a frame is known only by counting from the start.
  if (timeline_.by_count || begin_ >= end_ || begin_ >= slot_count()) return absl::OkStatus();
  const int64_t coded = timeline_.grid.slot_frame[begin_];
  if (coded == 0) return absl::OkStatus();
  if (input_->SeekBackward(timeline_.keys[coded])) {
    seek_frame_ = coded;
    check_seek_ = true;
    return absl::OkStatus();
  }
  return Restart();  // the demuxer cannot seek: a failed seek may have moved it
}

int64_t VideoSource::KeyAtOrBefore(int64_t pts) const {
  const auto& keys = timeline_.keys;
  const auto it = std::upper_bound(keys.begin(), keys.end(), pts);
  return it == keys.begin() ? -1 : static_cast<int64_t>(it - keys.begin()) - 1;
}

absl::StatusOr<int64_t> VideoSource::CodedFrameOf(const AVFrame& decoded) {
  const int64_t counted = decoded_since_open_++;
  if (timeline_.by_count) return counted;
  const int64_t pts = decoded.pts != AV_NOPTS_VALUE ? decoded.pts : decoded.best_effort_timestamp;
  const int64_t coded = pts == AV_NOPTS_VALUE ? -1 : KeyAtOrBefore(pts);
  if (check_seek_) {
    check_seek_ = false;
    // The seek did not land on a keyframe at or before the frame wanted: the first packet
    // read is no keyframe or a later one, or the first frame out of the decoder is later.
    // Decode from the start instead.
    const int64_t key_pts = input_->first_packet_pts();
    const bool key_late = !input_->first_packet_key() ||
                          (key_pts != AV_NOPTS_VALUE && key_pts > timeline_.keys[seek_frame_]);
    if (key_late || coded < 0 || coded > seek_frame_) {
      RETURN_IF_ERROR(Restart());
      return kSkip;
    }
  }
  return coded < 0 ? kSkip : coded;
}

bool VideoSource::ContinueTo(int64_t begin, int64_t end) {
  if (failed_ || begin != next_ || end < begin) return false;
  // The decoder stands after the frame slot begin - 1 shows (held in shown_), where a
  // new source of [begin, end) would have decoded to from the keyframe before it.
  begin_ = begin;
  end_ = end;
  return true;
}

absl::StatusOr<bool> VideoSource::Next(Frame* frame) {
  ASSIGN_OR_RETURN(bool more, Advance());
  if (!more) return false;
  RETURN_IF_ERROR(
      converter_.Convert(*shown_, "input '" + path_ + "' frame " + std::to_string(next_), frame));
  RotateFrame(input_->rotation(), frame, &rotated_);
  frame->index = next_++;
  return true;
}

absl::StatusOr<bool> VideoSource::NextNative(NativeFrame* frame) {
  ASSIGN_OR_RETURN(bool more, Advance());
  if (!more) return false;
  // A held frame is shown again by another reference to the same buffer.
  ASSIGN_OR_RETURN(AvFramePtr ref, AllocFrame());
  const int ret = av_frame_ref(ref.get(), shown_.get());
  if (ret < 0) {
    return AvError(absl::StatusCode::kResourceExhausted, ret,
                   "input '" + path_ + "' frame " + std::to_string(next_));
  }
  auto impl = std::make_unique<NativeFrame::Impl>();
  impl->frame = std::move(ref);
  *frame = NativeFrame(std::move(impl));
  frame->index = next_++;
  return true;
}

absl::StatusOr<bool> VideoSource::Advance() {
  if (next_ >= end_) return false;
  failed_ = true;  // until the frame is found
  ASSIGN_OR_RETURN(bool found, Decode());
  failed_ = false;
  return found;
}

absl::StatusOr<bool> VideoSource::Decode() {
  if (next_ >= slot_count()) return PastEnd();
  const int64_t wanted = timeline_.grid.slot_frame[next_];
  while (shown_frame_ < wanted && !ended_) {
    ASSIGN_OR_RETURN(bool decoded, input_->ReadFrame(decoded_.get()));
    if (!decoded && check_seek_) {  // the seek landed where nothing decodes
      RETURN_IF_ERROR(Restart());
      continue;
    }
    if (!decoded) {
      // Fewer frames decode than the packets promised (a cut tail): the last one is held.
      ended_ = true;
      break;
    }
    ASSIGN_OR_RETURN(int64_t coded, CodedFrameOf(*decoded_));
    if (coded == kSkip || coded < wanted) continue;  // before the range, or dropped
    if (DecodedWithErrors(*decoded_)) {
      return absl::FailedPreconditionError(
          "input '" + path_ + "': frame " + std::to_string(next_) +
          " is damaged (the decoder had to conceal errors); give an intact file");
    }
    av_frame_unref(shown_.get());
    av_frame_move_ref(shown_.get(), decoded_.get());
    // A coded frame that did not decode is stood in for by the next one that did.
    shown_frame_ = coded;
  }
  if (shown_frame_ < 0) return PastEnd();
  return true;
}

absl::Status VideoSource::PastEnd() const {
  std::string ends = slot_count() > 0 ? "the video has " + std::to_string(slot_count()) +
                                            " frames on its constant-rate grid"
                                      : "no frame decoded";
  if (next_ < slot_count()) ends = "no frame decoded from there on";
  return absl::FailedPreconditionError(
      "input '" + path_ + "': frame " + std::to_string(next_) + " is missing: " + ends +
      " (frames [" + std::to_string(begin_) + ", " + std::to_string(end_) +
      ") were asked for); ask only for frames the file has (ProbeVideo's frame_count)");
}

class NativeVideoSource final : public NativeFrameSource {
 public:
  explicit NativeVideoSource(std::unique_ptr<VideoSource> source) : source_(std::move(source)) {}
  absl::StatusOr<bool> Next(NativeFrame* frame) override {
    ASSIGN_OR_RETURN(bool more, source_->NextNative(frame));
    if (more && !IsNativeYuvFormat(frame->pixel_format())) {
      failed_ = true;
      return absl::FailedPreconditionError(
          "input '" + source_->path() + "' frame " + std::to_string(frame->index) +
          ": pixel format '" + frame->pixel_format() + "' is not planar YUV; use the RGB path");
    }
    return more;
  }
  bool ContinueTo(int64_t begin, int64_t end) override {
    return !failed_ && source_->ContinueTo(begin, end);
  }

 private:
  std::unique_ptr<VideoSource> source_;
  bool failed_ = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<FrameSource>> OpenVideoSource(const std::string& path, int64_t begin,
                                                             int64_t end) {
  ASSIGN_OR_RETURN(std::unique_ptr<VideoSource> source, VideoSource::Create(path, begin, end));
  return std::unique_ptr<FrameSource>(std::move(source));
}

absl::StatusOr<std::unique_ptr<NativeFrameSource>> OpenNativeVideoSource(const std::string& path,
                                                                         int64_t begin,
                                                                         int64_t end) {
  ASSIGN_OR_RETURN(std::unique_ptr<VideoSource> source, VideoSource::Create(path, begin, end));
  if (source->rotation() != 0) {
    return absl::FailedPreconditionError("input '" + path + "': rotated by " +
                                         std::to_string(source->rotation()) +
                                         " degrees; upright frames are made on the RGB path only");
  }
  return std::unique_ptr<NativeFrameSource>(std::make_unique<NativeVideoSource>(std::move(source)));
}

}  // namespace reelfarm::media
