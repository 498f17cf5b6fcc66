// The constant-rate grid of DESIGN.md "Time", without FFmpeg types: where each coded
// frame of a movie lands when it is written at a constant frame rate.
#pragma once

#include <cstdint>
#include <vector>

namespace reelfarm::media {

struct GridPlacement {
  // For each grid slot (output frame) in order, the coded frame shown there (an index
  // into the times given to PlaceOnGrid). Never decreasing.
  std::vector<int64_t> slot_frame;
  int64_t held = 0;     // slots that repeat the frame of the slot before
  int64_t dropped = 0;  // coded frames that no slot shows
};

// Places coded frames on the grid the way the ffmpeg tool (5.1, fftools/ffmpeg.c
// do_video_out) does for a constant-frame-rate output with its default settings, so
// that the frame count and the frame in each slot are ffmpeg's: a frame is held until
// the next one's time has come, a frame more than about two slots behind the grid is
// dropped, and after the last frame the hold of the last three is continued (their
// median). `times`: each coded frame's presentation time in slots from the grid's
// origin, in presentation order. `late_start`: the grid may start at the first frame
// when it is half a slot or more after the origin (ffmpeg does so for inputs with one
// stream); otherwise the first frame fills the slots before it.
GridPlacement PlaceOnGrid(const std::vector<double>& times, bool late_start);

// Ends `grid` before its first slot that shows coded frame `coded_end` or a later one
// (a truncated file's frames from the first damaged one on) and, when that removed any
// slot, also the repeats of the last frame left (they stood for frames lost in the
// cut); recounts held and dropped over the coded frames [0, coded_end). Returns the
// number of slots removed.
int64_t CutGrid(GridPlacement* grid, int64_t coded_end);

}  // namespace reelfarm::media
