// ReadTimeline: a movie's video stream on the constant-rate grid (DESIGN.md "Time"),
// computed from the packets without decoding.
#include <algorithm>
#include <string>
#include <vector>

#include "media/av_util.h"
#include "media/grid.h"

extern "C" {
#include <libavutil/mathematics.h>
}

namespace reelfarm::media {

absl::StatusOr<Timeline> ReadTimeline(VideoInput& input) {
  const AVFormatContext& format = input.format();
  const AVStream& stream = input.stream();
  const std::string name = "input '" + input.path() + "'";
  Timeline timeline;
  timeline.rate = GridFrameRate(format, stream);
  if (timeline.rate.num <= 0 || timeline.rate.den <= 0) {
    return absl::FailedPreconditionError(
        name +
        ": its video stream declares no frame rate (and has too few frames to measure "
        "one), so its frames cannot be put on a constant-rate grid; give a file whose "
        "video has a frame rate (or rewrite it with ffmpeg -r RATE)");
  }
  ASSIGN_OR_RETURN(std::vector<VideoInput::PacketTimes> packets, input.ReadRemainingPacketTimes());
  // Frames before an edit list's start decode only as references; the decoder drops them.
  packets.erase(std::remove_if(packets.begin(), packets.end(),
                               [](const VideoInput::PacketTimes& p) {
                                 return (p.flags & AV_PKT_FLAG_DISCARD) != 0;
                               }),
                packets.end());
  if (packets.empty()) {
    return absl::FailedPreconditionError(
        name + ": its video stream has no frames; give a file with video");
  }
  const bool all_pts = std::all_of(packets.begin(), packets.end(),
                                   [](const auto& p) { return p.pts != AV_NOPTS_VALUE; });
  const bool all_dts = std::all_of(packets.begin(), packets.end(),
                                   [](const auto& p) { return p.dts != AV_NOPTS_VALUE; });
  // The grid starts where the file starts (its earliest stream, audio included), as the
  // ffmpeg tool shifts every stream by the file's start time: video that starts after
  // its audio fills the slots before it with its first frame, and stays in sync.
  const AVRational tb = stream.time_base;
  const int64_t start = format.start_time != AV_NOPTS_VALUE ? format.start_time : 0;
  const int64_t offset = av_rescale_q(-start, AV_TIME_BASE_Q, tb);
  const double slots_per_tick = static_cast<double>(tb.num) * timeline.rate.num /
                                (static_cast<double>(tb.den) * timeline.rate.den);
  std::vector<double> times;
  times.reserve(packets.size());
  if (all_pts) {
    for (const auto& p : packets) timeline.keys.push_back(p.pts);
    std::sort(timeline.keys.begin(), timeline.keys.end());
    timeline.keys.erase(std::unique(timeline.keys.begin(), timeline.keys.end()),
                        timeline.keys.end());
    for (int64_t pts : timeline.keys) {
      times.push_back(static_cast<double>(pts + offset) * slots_per_tick);
    }
  } else {
    // No presentation times (e.g. MPEG-4 Part 2 with B-frames in AVI): the decoder gives
    // the frames in presentation order, and the k-th takes the k-th packet's time.
    timeline.by_count = true;
    for (size_t k = 0; k < packets.size(); ++k) {
      timeline.keys.push_back(static_cast<int64_t>(k));
      times.push_back(all_dts ? static_cast<double>(packets[k].dts + offset) * slots_per_tick
                              : static_cast<double>(k));
    }
  }
  timeline.grid = PlaceOnGrid(times, format.nb_streams == 1);
  if (timeline.grid.slot_frame.empty()) {
    return absl::FailedPreconditionError(
        name + ": none of its " + std::to_string(times.size()) +
        " video frames has a time on the grid (its timestamps are unusable); rewrite it "
        "with ffmpeg first");
  }
  return timeline;
}

}  // namespace reelfarm::media
