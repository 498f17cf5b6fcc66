// ProbeVideo and LibraryVersions.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "media/av_util.h"
#include "media/media.h"

extern "C" {
#include <libavutil/avutil.h>
#include <libavutil/log.h>
#include <libavutil/pixdesc.h>
#include <libavutil/timecode.h>
}

namespace reelfarm::media {
namespace {

std::string VersionText(unsigned version) {
  return std::to_string(AV_VERSION_MAJOR(version)) + "." +
         std::to_string(AV_VERSION_MINOR(version)) + "." +
         std::to_string(AV_VERSION_MICRO(version));
}

// Decodes `input` from where it stands to its end and marks each coded frame of
// `timeline` that comes out: kIntact, or kDamaged when the decoder concealed errors in
// it. A frame that does not decode (or one after a packet that does not) stays kUnseen.
enum FrameState : uint8_t { kUnseen, kIntact, kDamaged };
absl::StatusOr<std::vector<FrameState>> DecodeToEnd(VideoInput& input, const Timeline& timeline,
                                                    int64_t* first_key) {
  ASSIGN_OR_RETURN(AvFramePtr frame, AllocFrame());
  const auto& keys = timeline.keys;
  std::vector<FrameState> states(keys.size(), kUnseen);
  *first_key = -1;
  int64_t counted = 0;
  while (true) {
    const absl::StatusOr<bool> decoded = input.ReadFrame(frame.get());
    if (!decoded.ok() || !*decoded) break;  // the frames not out yet stay unseen
    int64_t coded = counted++;
    if (!timeline.by_count) {
      const int64_t pts = frame->pts != AV_NOPTS_VALUE ? frame->pts : frame->best_effort_timestamp;
      if (pts == AV_NOPTS_VALUE) continue;
      coded =
          static_cast<int64_t>(std::upper_bound(keys.begin(), keys.end(), pts) - keys.begin()) - 1;
    }
    if (coded < 0 || coded >= static_cast<int64_t>(keys.size())) continue;
    const bool intact = !DecodedWithErrors(*frame);
    if (states[coded] != kIntact) states[coded] = intact ? kIntact : kDamaged;
    if (intact && frame->key_frame && *first_key < 0) *first_key = coded;
  }
  return states;
}

// The number of coded frames, in presentation order, that decode intact before the
// first one that does not: all of them for a complete file, fewer for one cut in its
// last GOP (the packet cut in half decodes with concealed errors, and the frames whose
// packets are gone were never counted). Decodes from a keyframe before the end:
// further back each time no intact keyframe comes out, from the start at last. A file
// whose packets have no presentation times is not checked (its frames are known only
// by counting from the start, and decoding all of it at submit costs too much).
absl::StatusOr<int64_t> IntactCodedFrames(const std::string& path, const Timeline& timeline) {
  const int64_t n = static_cast<int64_t>(timeline.keys.size());
  if (timeline.by_count) return n;
  int64_t back = 1;
  while (true) {
    const int64_t target = std::max<int64_t>(n - back, 0);
    ASSIGN_OR_RETURN(std::unique_ptr<VideoInput> input, VideoInput::Open(path));
    bool from_start = target == 0;
    if (!from_start && !input->SeekBackward(timeline.keys[target])) {
      ASSIGN_OR_RETURN(input, VideoInput::Open(path));  // a failed seek may have moved it
      from_start = true;
    }
    int64_t first_key = -1;
    ASSIGN_OR_RETURN(std::vector<FrameState> states, DecodeToEnd(*input, timeline, &first_key));
    if (first_key >= 0 || from_start) {
      int64_t end = from_start ? 0 : first_key;
      while (end < n && states[end] == kIntact) ++end;
      return end;
    }
    back = back * 4 + 8;
  }
}

// Whether the container shows every video packet there in full: an MP4/MOV file whose
// sample table lists as many samples as the demuxer reads, each read at its listed size
// and none flagged corrupt. A file cut short reads fewer or shorter ones (or none, its
// moov atom gone), and is checked by decoding; so is every other container (MPEG-TS
// gives a cut packet as it is).
absl::StatusOr<bool> SamplesComplete(const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<VideoInput> input, VideoInput::Open(path));
  const AVInputFormat* format = input->format().iformat;
  if (format == nullptr || std::strcmp(format->name, "mov,mp4,m4a,3gp,3g2,mj2") != 0) {
    return false;
  }
  ASSIGN_OR_RETURN(const std::vector<VideoInput::PacketTimes> packets,
                   input->ReadRemainingPacketTimes());
  // The stream's index is the sample table (its entries in the order the demuxer reads
  // them); the function takes a non-const stream and only reads it.
  AVStream* stream = const_cast<AVStream*>(&input->stream());
  const int listed = avformat_index_get_entries_count(stream);
  if (listed <= 0 || static_cast<size_t>(listed) != packets.size()) return false;
  for (int i = 0; i < listed; ++i) {
    const AVIndexEntry* e = avformat_index_get_entry(stream, i);
    const VideoInput::PacketTimes& p = packets[static_cast<size_t>(i)];
    if (e == nullptr || e->size != p.size || (p.flags & AV_PKT_FLAG_CORRUPT) != 0) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<VideoInfo> ProbeVideo(const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<VideoInput> input, VideoInput::Open(path));
  if (IsImageFormat(input->format())) {
    return absl::FailedPreconditionError(
        "input '" + path + "' is a single " + avcodec_get_name(input->stream().codecpar->codec_id) +
        " image, not a movie; give a movie, or give the images as a sequence with a frame "
        "pattern (e.g. 'plate.####.png')");
  }
  // Decoding the first frame finds a corrupt or truncated stream now rather than in
  // the middle of a job.
  ASSIGN_OR_RETURN(AvFramePtr frame, AllocFrame());
  ASSIGN_OR_RETURN(bool decoded, input->ReadFrame(frame.get()));
  if (!decoded) {
    return absl::FailedPreconditionError(
        "input '" + path +
        "': no video frame decodes (the file is truncated or its video stream is corrupt); "
        "give a complete video file");
  }
  if (DecodedWithErrors(*frame)) {
    return absl::FailedPreconditionError(
        "input '" + path +
        "': its first video frame is damaged (the decoder had to conceal errors); give an "
        "intact video file");
  }
  const AVStream& stream = input->stream();
  const AVCodecParameters& par = *stream.codecpar;
  Timeline timeline;
  {
    ASSIGN_OR_RETURN(std::unique_ptr<VideoInput> packets, VideoInput::Open(path));
    ASSIGN_OR_RETURN(timeline, ReadTimeline(*packets));
  }
  VideoInfo info;
  info.width = par.width > 0 ? par.width : frame->width;
  info.height = par.height > 0 ? par.height : frame->height;
  // Frames are delivered upright (the display matrix applied, as the ffmpeg tool does).
  info.rotation = input->rotation();
  if (info.rotation == 90 || info.rotation == 270) std::swap(info.width, info.height);
  info.fps_num = timeline.rate.num;
  info.fps_den = timeline.rate.den;
  info.codec = avcodec_get_name(par.codec_id);
  const char* pix_fmt = av_get_pix_fmt_name(
      static_cast<AVPixelFormat>(par.format != AV_PIX_FMT_NONE ? par.format : frame->format));
  info.pixel_format = pix_fmt ? pix_fmt : "unknown";
  // The stream's tags, else the first frame's (some demuxers leave them to the codec).
  info.colour.primaries =
      par.color_primaries != AVCOL_PRI_UNSPECIFIED ? par.color_primaries : frame->color_primaries;
  info.colour.transfer = par.color_trc != AVCOL_TRC_UNSPECIFIED ? par.color_trc : frame->color_trc;
  info.colour.matrix =
      par.color_space != AVCOL_SPC_UNSPECIFIED ? par.color_space : frame->colorspace;
  info.colour.range =
      par.color_range != AVCOL_RANGE_UNSPECIFIED ? par.color_range : frame->color_range;
  info.has_audio = input->has_audio();
  info.timecode = input->timecode();
  // A truncated file (its last GOP ends mid-way): the grid ends before the first frame
  // that does not decode intact, so no worker is asked for it. An MP4/MOV whose samples
  // are all there in full was not cut: its last GOP is not decoded to find out (for a
  // clip of one GOP, a decode of every frame on the submit's path).
  ASSIGN_OR_RETURN(const bool complete, SamplesComplete(path));
  int64_t intact = static_cast<int64_t>(timeline.keys.size());
  if (!complete) {
    ASSIGN_OR_RETURN(intact, IntactCodedFrames(path, timeline));
  }
  info.tail_cut_frames = CutGrid(&timeline.grid, intact);
  if (timeline.grid.slot_frame.empty()) {
    return absl::FailedPreconditionError(
        "input '" + path +
        "': none of its video frames decodes intact (the file is truncated or its video "
        "stream is corrupt); give a complete video file");
  }
  info.frame_count = static_cast<int64_t>(timeline.grid.slot_frame.size());
  info.coded_frames = intact;
  info.held_frames = timeline.grid.held;
  info.dropped_frames = timeline.grid.dropped;
  return info;
}

absl::StatusOr<std::string> ReadTimecode(const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<VideoInput> input, VideoInput::Open(path));
  return input->timecode();
}

absl::StatusOr<std::string> TimecodeAfter(const std::string& start, int fps_num, int fps_den,
                                          int64_t frames) {
  AVTimecode tc;
  const AVRational rate{fps_num, fps_den};
  if (fps_num <= 0 || fps_den <= 0 ||
      av_timecode_init_from_string(&tc, rate, start.c_str(), nullptr) < 0) {
    return absl::InvalidArgumentError("timecode '" + start + "' is not a timecode at " +
                                      std::to_string(fps_num) + "/" + std::to_string(fps_den) +
                                      " fps; give HH:MM:SS:FF (HH:MM:SS;FF for drop frame)");
  }
  if (frames < 0 || frames > std::numeric_limits<int>::max() - tc.start) {
    return absl::InvalidArgumentError("timecode offset " + std::to_string(frames) +
                                      " is out of range");
  }
  char buf[AV_TIMECODE_STR_SIZE];
  return std::string(av_timecode_make_string(&tc, buf, static_cast<int>(frames)));
}

std::string LibraryVersions() {
  return std::string("FFmpeg ") + av_version_info() + " lavc " + VersionText(avcodec_version()) +
         " lavf " + VersionText(avformat_version()) + " sws " + VersionText(swscale_version());
}

}  // namespace reelfarm::media

namespace reelfarm::media {

void SetLibraryLogging(bool verbose) { av_log_set_level(verbose ? AV_LOG_INFO : AV_LOG_ERROR); }

}  // namespace reelfarm::media
