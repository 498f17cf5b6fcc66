#include "media/output_format.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace reelfarm::media {
namespace {

struct CodecRule {
  const char* codec;
  std::vector<std::string> pix_fmts;  // the first is the default
  bool x26x;                          // takes crf and preset
};

const std::vector<CodecRule>& Rules() {
  static const std::vector<CodecRule> kRules = {
      {"h264", {"yuv420p", "yuv422p", "yuv444p"}, true},
      {"h265", {"yuv420p", "yuv420p10le", "yuv422p10le", "yuv444p10le"}, true},
      {"prores_422hq", {"yuv422p10le"}, false},
      {"prores_4444", {"yuv444p10le"}, false},
      {"dnxhr_hq", {"yuv422p"}, false},
      // Image codecs write RGB at the bit depth their deliverables use.
      {"exr", {"gbrpf32le"}, false},  // stored as half float, zip compressed
      {"png", {"rgb48be"}, false},
      {"tiff", {"rgb48le"}, false},
      {"dpx", {"gbrp10le"}, false},
  };
  return kRules;
}

const std::vector<std::string>& Presets() {
  static const std::vector<std::string> kPresets = {"ultrafast", "superfast", "veryfast",
                                                    "faster",    "fast",      "medium",
                                                    "slow",      "slower",    "veryslow"};
  return kPresets;
}

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// The lower-case extension of `path` with its dot, e.g. ".mov"; "" when none.
std::string Extension(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  const size_t dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  return absl::AsciiStrToLower(path.substr(dot));
}

// Widest padding a pattern may ask for (`####...`, `%0Nd`); wider is no pattern.
constexpr int kMaxPatternWidth = 32;

// Position and length of the frame-number pattern in `path`, and its digit width
// (0: no padding). False when there is none.
bool FindPattern(const std::string& path, size_t* pos, size_t* len, int* width) {
  const size_t hash = path.find('#');
  if (hash != std::string::npos) {
    size_t end = hash;
    while (end < path.size() && path[end] == '#') ++end;
    if (end - hash <= static_cast<size_t>(kMaxPatternWidth)) {
      *pos = hash;
      *len = end - hash;
      *width = static_cast<int>(end - hash);
      return true;
    }
  }
  for (size_t i = path.find('%'); i != std::string::npos; i = path.find('%', i + 1)) {
    size_t j = i + 1;
    int w = 0;
    while (j < path.size() && std::isdigit(static_cast<unsigned char>(path[j]))) {
      // Capped as it is read: a long run of digits must not overflow (fuzz/corpus).
      w = std::min(w * 10 + (path[j] - '0'), kMaxPatternWidth + 1);
      ++j;
    }
    if (j < path.size() && path[j] == 'd' && w <= kMaxPatternWidth) {
      *pos = i;
      *len = j + 1 - i;
      *width = w;
      return true;
    }
  }
  return false;
}

}  // namespace

bool HasFramePattern(const std::string& path) {
  size_t pos, len;
  int width;
  return FindPattern(path, &pos, &len, &width);
}

std::string FramePath(const std::string& pattern, int64_t number) {
  size_t pos, len;
  int width;
  if (!FindPattern(pattern, &pos, &len, &width)) return pattern;
  char digits[48];
  std::snprintf(digits, sizeof(digits), "%0*lld", width, static_cast<long long>(number));
  return pattern.substr(0, pos) + digits + pattern.substr(pos + len);
}

absl::StatusOr<OutputFormat> ResolveOutputFormat(const std::string& output,
                                                 const std::string& codec,
                                                 const std::string& pix_fmt,
                                                 const std::string& preset, int crf) {
  const std::string ext = Extension(output);
  OutputFormat f;
  std::vector<std::string> allowed;  // codecs the extension takes; the first is default
  if (ext == ".mp4") {
    f.container = "mp4";
    allowed = {"h264", "h265"};
  } else if (ext == ".mov") {
    f.container = "mov";
    allowed = {"prores_422hq", "prores_4444", "dnxhr_hq", "h264", "h265"};
  } else if (ext == ".exr") {
    allowed = {"exr"};
  } else if (ext == ".png") {
    allowed = {"png"};
  } else if (ext == ".tif" || ext == ".tiff") {
    allowed = {"tiff"};
  } else if (ext == ".dpx") {
    allowed = {"dpx"};
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("upscale.output '", output, "': extension '", ext,
                     "' is not an output format; give one of .mp4, .mov (movies) or .exr, .png, "
                     ".tif, .tiff, .dpx (image sequences with a #### frame pattern)"));
  }
  if (f.image_sequence() && !HasFramePattern(output)) {
    return absl::InvalidArgumentError(
        absl::StrCat("upscale.output '", output,
                     "': an image sequence needs a frame-number pattern in its name; give e.g. "
                     "'renders/sh010.####",
                     ext, "' or 'renders/sh010.%04d", ext, "'"));
  }
  if (!f.image_sequence() && HasFramePattern(output)) {
    return absl::InvalidArgumentError(
        absl::StrCat("upscale.output '", output, "': a movie (", ext,
                     ") takes no frame-number pattern; remove it, or give an image extension"));
  }
  f.codec = codec.empty() ? allowed.front() : codec;
  if (!Contains(allowed, f.codec)) {
    return absl::InvalidArgumentError(absl::StrCat("upscale.format.codec is '", codec,
                                                   "' but upscale.output '", output, "' is ", ext,
                                                   ", which takes: ", absl::StrJoin(allowed, ", "),
                                                   "; change the codec or the output's extension"));
  }
  const CodecRule* rule = nullptr;
  for (const CodecRule& r : Rules()) {
    if (f.codec == r.codec) rule = &r;
  }
  f.pix_fmt = pix_fmt.empty() ? rule->pix_fmts.front() : pix_fmt;
  if (!Contains(rule->pix_fmts, f.pix_fmt)) {
    return absl::InvalidArgumentError(
        absl::StrCat("upscale.format.pix_fmt is '", pix_fmt, "', which codec ", f.codec,
                     " does not write here; give one of: ", absl::StrJoin(rule->pix_fmts, ", "),
                     " (or leave it empty)"));
  }
  if (rule->x26x) {
    f.preset = preset.empty() ? "veryfast" : preset;
    if (!Contains(Presets(), f.preset)) {
      return absl::InvalidArgumentError(
          absl::StrCat("upscale.format.preset is '", preset,
                       "'; give one of: ", absl::StrJoin(Presets(), ", ")));
    }
    if (crf < 0 || crf > 51) {
      return absl::InvalidArgumentError(
          absl::StrCat("upscale.crf is ", crf, "; give 0..51 (18 is visually lossless)"));
    }
  } else if (!preset.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("upscale.format.preset is '", preset, "' but codec ", f.codec,
                     " has no presets; leave it empty (presets are for h264 and h265)"));
  }
  f.crf = crf;
  return f;
}

}  // namespace reelfarm::media
