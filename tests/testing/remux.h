// Fixtures the ffmpeg tool cannot make: a movie remuxed with the FFmpeg API (stream
// copy of its video), with a display matrix (a phone clip filmed on its side) or with
// the frame rate left out of the container.
#pragma once

#include <filesystem>

namespace reelfarm::testing {

// Copies the video of `in` to `out` (container from its extension) with a display
// matrix of `degrees` (av_display_rotation_set), as a phone writes one. Debian 12's MP4
// muxer (FFmpeg 5.1) stores the matrix mirrored, so read the rotation back from the
// file (ProbedClockwiseRotation), as every player does, rather than assume it.
void RemuxRotated(const std::filesystem::path& in, const std::filesystem::path& out, int degrees);

// The clockwise rotation (0, 90, 180, 270) that ffprobe reads from the display matrix of
// the first video stream of `path` (ffprobe reports it counter-clockwise).
int ProbedClockwiseRotation(const std::filesystem::path& path);

// Copies the first two video frames of `in` (an intra-only codec) to `out` (Matroska or
// NUT) at 0 and 0.37 s, in a 1/1000 s time base, with no frame rate or frame duration
// declared: a file whose only "rate" is its time base.
void RemuxWithoutFrameRate(const std::filesystem::path& in, const std::filesystem::path& out);

}  // namespace reelfarm::testing
