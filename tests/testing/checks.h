// Checks shared by the integration tests: job specs and what a user checks of an
// upscaled clip.
#pragma once

#include <filesystem>
#include <string>

#include "reelfarm/v1/jobs.pb.h"

namespace reelfarm::testing {

v1::JobSpec UpscaleSpec(const std::string& input, const std::string& output, int chunk,
                        const std::string& model = "bicubic", int scale = 2);

// Size (640x360), frame count, 24 fps, decodable to the end, and every frame close to
// an independent upscale of its own source frame (`reference_filter` on the source),
// closer than to the neighbouring source frames (nothing lost, doubled or reordered
// at chunk seams).
void CheckUpscaledClip(const std::filesystem::path& source, const std::filesystem::path& output,
                       int frames, const std::string& reference_filter, double min_psnr);

}  // namespace reelfarm::testing
