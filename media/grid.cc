// PlaceOnGrid: ffmpeg's constant-frame-rate placement (fftools/ffmpeg.c, FFmpeg 5.1,
// do_video_out with VSYNC_CFR / VSYNC_VSCFR and a frame duration of one slot).
#include "media/grid.h"

#include <algorithm>
#include <cmath>

namespace reelfarm::media {

GridPlacement PlaceOnGrid(const std::vector<double>& times, bool late_start) {
  GridPlacement g;
  int64_t sync = 0;                 // the next slot (ffmpeg's sync_opts)
  int64_t last_nb0[3] = {0, 0, 0};  // repeats of the frame before, for the last three
  int64_t previous = -1;
  for (size_t i = 0; i < times.size(); ++i) {
    // ffmpeg nudges every time away from zero by 2^-17 so that halves do not tie.
    const double t = times[i] + (times[i] > 0 ? 1.0 : -1.0) / (1 << 17);
    double duration = 1;
    double delta0 = t - static_cast<double>(sync);  // how late the frame is
    double delta = delta0 + duration;
    int64_t nb0 = 0;                // repeats of the frame before
    int64_t nb = 1;                 // slots written now
    if (delta0 < 0 && delta > 0) {  // a little early: it takes the next slot
      duration += delta0;
      delta0 = 0;
    }
    if (late_start && g.slot_frame.empty() && delta0 >= 0.5) {
      delta = duration;
      delta0 = 0;
      sync = std::llrint(t);
    }
    if (delta < -1.1) {
      nb = 0;
    } else if (delta > 1.1) {
      nb = std::lrint(static_cast<float>(delta));
      if (delta0 > 1.1) nb0 = std::llrint(static_cast<float>(delta0 - 0.6));
    }
    nb0 = std::min(nb0, nb);
    last_nb0[2] = last_nb0[1];
    last_nb0[1] = last_nb0[0];
    last_nb0[0] = nb0;
    for (int64_t j = 0; j < nb; ++j) {
      g.slot_frame.push_back(j < nb0 && previous >= 0 ? previous : static_cast<int64_t>(i));
    }
    sync += nb;
    previous = static_cast<int64_t>(i);
  }
  if (previous >= 0) {  // the end: the last frame is held as the ones before it were
    const int64_t mid = std::max(std::min(last_nb0[0], last_nb0[1]),
                                 std::min(std::max(last_nb0[0], last_nb0[1]), last_nb0[2]));
    for (int64_t j = 0; j < mid; ++j) g.slot_frame.push_back(previous);
  }
  int64_t shown = 0;
  for (size_t s = 0; s < g.slot_frame.size(); ++s) {
    if (s > 0 && g.slot_frame[s] == g.slot_frame[s - 1]) {
      ++g.held;
    } else {
      ++shown;
    }
  }
  g.dropped = static_cast<int64_t>(times.size()) - shown;
  return g;
}

int64_t CutGrid(GridPlacement* grid, int64_t coded_end) {
  auto& slots = grid->slot_frame;
  const size_t before = slots.size();
  slots.erase(std::lower_bound(slots.begin(), slots.end(), coded_end), slots.end());
  // Cut short, the last frame left is shown once: its repeats stood for frames lost in
  // the cut (e.g. B-frames whose packets came after the damaged one), not for its time.
  if (slots.size() < before) {
    while (slots.size() >= 2 && slots[slots.size() - 1] == slots[slots.size() - 2]) {
      slots.pop_back();
    }
  }
  grid->held = 0;
  int64_t shown = 0;
  for (size_t s = 0; s < slots.size(); ++s) {
    if (s > 0 && slots[s] == slots[s - 1]) {
      ++grid->held;
    } else {
      ++shown;
    }
  }
  grid->dropped = std::max<int64_t>(coded_end, 0) - shown;
  return static_cast<int64_t>(before - slots.size());
}

}  // namespace reelfarm::media
