// ProbeVideo and LibraryVersions.
#include <limits>
#include <string>

#include "worker/media/av_util.h"
#include "worker/media/media.h"

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
  info.fps_num = timeline.rate.num;
  info.fps_den = timeline.rate.den;
  info.codec = avcodec_get_name(par.codec_id);
  const char* pix_fmt = av_get_pix_fmt_name(
      static_cast<AVPixelFormat>(par.format != AV_PIX_FMT_NONE ? par.format : frame->format));
  info.pixel_format = pix_fmt ? pix_fmt : "unknown";
  // The stream's tags, else the first frame's (some demuxers leave them to the codec).
  info.colour.primaries = par.color_primaries != AVCOL_PRI_UNSPECIFIED ? par.color_primaries
                                                                       : frame->color_primaries;
  info.colour.transfer = par.color_trc != AVCOL_TRC_UNSPECIFIED ? par.color_trc
                                                                 : frame->color_trc;
  info.colour.matrix = par.color_space != AVCOL_SPC_UNSPECIFIED ? par.color_space
                                                                 : frame->colorspace;
  info.colour.range = par.color_range != AVCOL_RANGE_UNSPECIFIED ? par.color_range
                                                                  : frame->color_range;
  info.has_audio = input->has_audio();
  info.timecode = input->timecode();
  info.frame_count = static_cast<int64_t>(timeline.grid.slot_frame.size());
  info.coded_frames = static_cast<int64_t>(timeline.keys.size());
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
