// The model stage of a chunk task: frames from the decode queue through a Model to the
// encode queue, in batches of model.batch(), with temporal_window() / 2 frames of
// context on each side of every frame.
#pragma once

#include <atomic>
#include <cstdint>

#include "common/status.h"
#include "media/media.h"
#include "worker/bounded_queue.h"

namespace reelfarm::inference {
class Model;
}

namespace reelfarm::worker {

struct ModelStageRange {
  int64_t target_begin = 0;  // frames to upscale: [target_begin, target_end)
  int64_t target_end = 0;
  int64_t input_first = 0;  // frames the input has: [input_first, input_last]
  int64_t input_last = 0;
};

// The frames a chunk must decode for `range` with a model of temporal window `k`:
// its own plus k / 2 on each side, within the input.
inline void ContextRange(const ModelStageRange& range, int k, int64_t* begin, int64_t* end) {
  const int64_t half = k / 2;
  *begin = std::max(range.input_first, range.target_begin - half);
  *end = std::min(range.input_last + 1, range.target_end + half);
}

// Pops the frames of ContextRange (in order) from `in` and pushes one upscaled frame per
// target frame to `out`, in order. A window that reaches past the input's ends repeats
// its first or last frame, so a chunk's frames do not depend on where chunks are cut.
// Returns the model's error (prefixed with the frame number); OK when `in` ran dry or
// `out` was closed early (the caller finds the missing frames) or `cancelled` is set.
// The caller holds c10::InferenceMode. `seconds` accumulates the time spent.
absl::Status RunModelStage(inference::Model& model, const ModelStageRange& range,
                           BoundedQueue<media::Frame>& in, BoundedQueue<media::Frame>& out,
                           const std::atomic<bool>& cancelled, double* seconds);

}  // namespace reelfarm::worker
