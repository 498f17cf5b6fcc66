// Image-sequence inputs: ProbeImageSequence (frame range, gaps) and
// OpenImageSequenceSource (one file per frame, decoded with the FFmpeg libraries).
#include <fcntl.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/storage.h"
#include "media/av_util.h"
#include "media/media.h"
#include "media/output_format.h"
#include "media/rgb_convert.h"

extern "C" {
#include <libavutil/pixdesc.h>
}

namespace reelfarm::media {
namespace {

namespace fs = std::filesystem;

// The frame numbers of the files in the pattern's folder that match it: the text
// before and after the pattern, digits between (at least the padding's width).
std::set<int64_t> FramesOnDisk(const std::string& pattern) {
  const std::string probe = FramePath(pattern, 0);  // "x.0000.exr"
  const std::string name = fs::path(pattern).filename().string();
  const std::string probe_name = fs::path(probe).filename().string();
  // Split the name around the number: probe_name = prefix + zeros + suffix.
  size_t prefix_len = 0;
  while (prefix_len < name.size() && prefix_len < probe_name.size() &&
         name[prefix_len] == probe_name[prefix_len]) {
    ++prefix_len;
  }
  size_t suffix_len = 0;
  while (suffix_len < name.size() - prefix_len && suffix_len < probe_name.size() - prefix_len &&
         name[name.size() - 1 - suffix_len] == probe_name[probe_name.size() - 1 - suffix_len]) {
    ++suffix_len;
  }
  const std::string prefix = name.substr(0, prefix_len);
  const std::string suffix = name.substr(name.size() - suffix_len);
  const size_t width = probe_name.size() - prefix_len - suffix_len;
  std::set<int64_t> numbers;
  std::error_code ec;
  fs::path folder = fs::path(pattern).parent_path();
  if (folder.empty()) folder = ".";
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    const std::string file = entry.path().filename().string();
    if (file.size() < prefix.size() + suffix.size() + std::max<size_t>(width, 1)) continue;
    if (file.compare(0, prefix.size(), prefix) != 0) continue;
    if (file.compare(file.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    const std::string digits =
        file.substr(prefix.size(), file.size() - prefix.size() - suffix.size());
    if (digits.size() > 18 || digits.size() < width ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return std::isdigit(c); })) {
      continue;
    }
    // Wider than the padding only without leading zeros (####: 10000, not 010000).
    if (digits.size() > width && digits[0] == '0') continue;
    numbers.insert(std::stoll(digits));
  }
  return numbers;
}

// "1003, 1005-1007, ..." for the first missing frames.
std::string DescribeMissing(const std::vector<int64_t>& missing) {
  std::string text;
  int ranges = 0;
  for (size_t i = 0; i < missing.size() && ranges < 10; ++ranges) {
    size_t j = i;
    while (j + 1 < missing.size() && missing[j + 1] == missing[j] + 1) ++j;
    if (!text.empty()) text += ", ";
    text += std::to_string(missing[i]);
    if (j > i) text += "-" + std::to_string(missing[j]);
    i = j + 1;
  }
  if (ranges == 10 && !missing.empty()) text += ", ...";
  return text;
}

class ImageSequenceSource final : public FrameSource {
 public:
  ImageSequenceSource(std::string pattern, int64_t begin, int64_t end, bool keep_float_range)
      : pattern_(std::move(pattern)), next_(begin), end_(end) {
    converter_.KeepFloatRange(keep_float_range);
  }

  absl::StatusOr<bool> Next(Frame* frame) override {
    if (next_ >= end_) return false;
    const int64_t number = next_;
    const std::string path = FramePath(pattern_, number);
    ASSIGN_OR_RETURN(AvFramePtr decoded, DecodeImage(path, number));
    RETURN_IF_ERROR(converter_.Convert(
        *decoded, "input '" + path + "' frame " + std::to_string(number), frame));
    frame->index = number;
    ++next_;
    return true;
  }

  // The single picture in `path`, which is frame `number` of the sequence.
  static absl::StatusOr<AvFramePtr> DecodeImage(const std::string& path, int64_t number) {
    std::error_code ec;
    if (!fs::exists(path, ec)) {
      return absl::FailedPreconditionError("input '" + path + "': frame " + std::to_string(number) +
                                           " of the sequence is missing; render it again");
    }
    // Opened within the sequence's folder: a frame that is a symbolic link leading out
    // of it is refused (links to frames beside it are fine).
    const fs::path p(path);
    absl::StatusOr<common::UniqueFd> fd = common::OpenInFolder(
        p.parent_path().string(), p.filename().string(), O_RDONLY, "input '" + path + "'");
    if (!fd.ok()) return fd.status();
    auto named = [number, &fd, &path](const absl::Status& st) {
      return common::NameFdPath(
          absl::Status(st.code(), "frame " + std::to_string(number) +
                                      " of the sequence: " + std::string(st.message())),
          *fd, path);
    };
    absl::StatusOr<std::unique_ptr<VideoInput>> input = VideoInput::Open(fd->path());
    if (!input.ok()) return named(input.status());
    ASSIGN_OR_RETURN(AvFramePtr decoded, AllocFrame());
    absl::StatusOr<bool> got = (*input)->ReadFrame(decoded.get());
    if (!got.ok()) return named(got.status());
    if (!*got || DecodedWithErrors(*decoded)) {
      return absl::FailedPreconditionError("input '" + path + "': frame " + std::to_string(number) +
                                           " does not decode (truncated or corrupt image); "
                                           "render it again");
    }
    return decoded;
  }

 private:
  const std::string pattern_;
  int64_t next_;
  const int64_t end_;
  RgbConverter converter_;
};

}  // namespace

absl::StatusOr<VideoInfo> ProbeImageSequence(const std::string& pattern, int64_t first,
                                             int64_t last) {
  if (!HasFramePattern(pattern)) {
    return absl::InvalidArgumentError("input '" + pattern +
                                      "': no frame-number pattern (#### or %04d) in the name");
  }
  const std::set<int64_t> on_disk = FramesOnDisk(pattern);
  if (on_disk.empty()) {
    return absl::NotFoundError("input '" + pattern + "': no frame of the sequence exists (e.g. '" +
                               FramePath(pattern, first >= 0 ? first : 1001) +
                               "'); check the path and the padding");
  }
  if (first < 0) first = *on_disk.begin();
  if (last < 0) last = *on_disk.rbegin();
  if (last < first) {
    return absl::InvalidArgumentError("input '" + pattern + "': frame range " +
                                      std::to_string(first) + "-" + std::to_string(last) +
                                      " is empty; give first <= last");
  }
  std::vector<int64_t> missing;
  for (int64_t n = first; n <= last && missing.size() < 100000; ++n) {
    if (on_disk.count(n) == 0) missing.push_back(n);
  }
  if (!missing.empty()) {
    return absl::FailedPreconditionError("input '" + pattern +
                                         "': " + std::to_string(missing.size()) + " of frames " +
                                         std::to_string(first) + "-" + std::to_string(last) +
                                         " missing: " + DescribeMissing(missing) +
                                         "; render them, or give a frame range without gaps");
  }
  const std::string path = FramePath(pattern, first);
  {
    ASSIGN_OR_RETURN(std::unique_ptr<VideoInput> movie, VideoInput::Open(path));
    if (!IsImageFormat(movie->format())) {
      return absl::FailedPreconditionError("input '" + pattern + "': '" + path + "' is a movie (" +
                                           movie->format().iformat->name +
                                           "), not an image; give the movie's own path as the "
                                           "input, without a frame pattern");
    }
  }
  ASSIGN_OR_RETURN(AvFramePtr frame, ImageSequenceSource::DecodeImage(path, first));
  VideoInfo info;
  info.width = frame->width;
  info.height = frame->height;
  info.first_frame = first;
  info.frame_count = last - first + 1;
  info.fps_num = 24;
  info.fps_den = 1;
  ASSIGN_OR_RETURN(std::unique_ptr<VideoInput> input, VideoInput::Open(path));
  info.codec = avcodec_get_name(input->stream().codecpar->codec_id);
  const char* pix_fmt = av_get_pix_fmt_name(static_cast<AVPixelFormat>(frame->format));
  info.pixel_format = pix_fmt ? pix_fmt : "unknown";
  info.colour.primaries = frame->color_primaries;
  info.colour.transfer = frame->color_trc;
  info.colour.matrix = frame->colorspace;
  info.colour.range = frame->color_range;
  return info;
}

namespace {

absl::StatusOr<std::unique_ptr<FrameSource>> OpenSequence(const std::string& pattern, int64_t begin,
                                                          int64_t end, bool keep_float_range) {
  if (!HasFramePattern(pattern)) {
    return absl::InvalidArgumentError("input '" + pattern +
                                      "': no frame-number pattern (#### or %04d) in the name");
  }
  if (end < begin) {
    return absl::InvalidArgumentError("input '" + pattern + "': frame range [" +
                                      std::to_string(begin) + ", " + std::to_string(end) +
                                      ") is invalid; give begin <= end");
  }
  return std::unique_ptr<FrameSource>(
      new ImageSequenceSource(pattern, begin, end, keep_float_range));
}

}  // namespace

absl::StatusOr<std::unique_ptr<FrameSource>> OpenImageSequenceSource(const std::string& pattern,
                                                                     int64_t begin, int64_t end) {
  return OpenSequence(pattern, begin, end, false);
}

absl::StatusOr<std::unique_ptr<FrameSource>> OpenSceneReferredImageSequenceSource(
    const std::string& pattern, int64_t begin, int64_t end) {
  return OpenSequence(pattern, begin, end, true);
}

}  // namespace reelfarm::media
