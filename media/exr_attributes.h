// Internal to media/ (and its tests): OpenEXR header attributes that FFmpeg's EXR codec
// neither reads nor writes, with the OpenEXR library.
#pragma once

#include <optional>
#include <string>

#include "common/status.h"
#include "media/media.h"

namespace reelfarm::media {

// The `chromaticities` attribute of the EXR file at `path`; nullopt when it has none
// (OpenEXR then means Rec.709 primaries, D65). FAILED_PRECONDITION naming the file
// when OpenEXR cannot read its header.
absl::StatusOr<std::optional<Chromaticities>> ReadExrChromaticities(const std::string& path);

// The EXR image `exr` (a whole file's bytes) with `c` as its `chromaticities`
// attribute: the header re-written by OpenEXR, the pixels copied without re-compressing.
// `context` ("output 'x.0001.exr'") starts the error messages.
absl::StatusOr<std::string> WithExrChromaticities(const std::string& exr, const Chromaticities& c,
                                                  const std::string& context);

}  // namespace reelfarm::media
