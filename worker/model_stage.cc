#include "worker/model_stage.h"

#include <ATen/ATen.h>

#include <chrono>
#include <deque>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "worker/inference/model.h"

namespace reelfarm::worker {
namespace {

using Clock = std::chrono::steady_clock;

// One frame's planes as a [3, H, W] tensor (no copy: the frame outlives its use).
at::Tensor View(media::Frame& f) {
  return at::from_blob(f.planes.data(), {3, f.height, f.width}, at::kFloat);
}

}  // namespace

absl::Status RunModelStage(inference::Model& model, const ModelStageRange& range,
                           BoundedQueue<media::Frame>& in, BoundedQueue<media::Frame>& out,
                           const std::atomic<bool>& cancelled, int frame_delay_ms,
                           double* seconds) {
  const int k = model.temporal_window();
  const int64_t half = k / 2;
  const size_t batch = static_cast<size_t>(std::max(1, model.batch()));
  std::deque<media::Frame> window;  // consecutive decoded frames, by index
  std::vector<at::Tensor> inputs;   // [3k, H, W] per pending target
  std::vector<int64_t> targets;

  auto flush = [&]() -> absl::Status {
    if (inputs.empty()) return absl::OkStatus();
    const auto t = Clock::now();
    absl::StatusOr<at::Tensor> y = model.Upscale(at::stack(inputs));
    if (!y.ok()) {
      return absl::Status(y.status().code(),
                          absl::StrCat("frame ", targets.front(), ": ", y.status().message()));
    }
    at::Tensor result = y->contiguous();
    std::vector<media::Frame> done(targets.size());
    for (size_t i = 0; i < targets.size(); ++i) {
      at::Tensor one = result[static_cast<int64_t>(i)];
      media::Frame& g = done[i];
      g.width = static_cast<int>(one.size(2));
      g.height = static_cast<int>(one.size(1));
      g.index = targets[i];
      g.planes.assign(one.data_ptr<float>(), one.data_ptr<float>() + one.numel());
    }
    if (frame_delay_ms > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(frame_delay_ms * done.size()));
    }
    *seconds += std::chrono::duration<double>(Clock::now() - t).count();
    for (media::Frame& g : done) {
      if (!out.Push(std::move(g))) return absl::OkStatus();
    }
    inputs.clear();
    targets.clear();
    return absl::OkStatus();
  };

  for (int64_t target = range.target_begin; target < range.target_end; ++target) {
    if (cancelled.load()) return absl::OkStatus();
    const int64_t need = std::min(range.input_last, target + half);
    while (window.empty() || window.back().index < need) {
      std::optional<media::Frame> f = in.Pop();
      if (!f) return flush();  // the decoder stopped; its error says why
      window.push_back(std::move(*f));
    }
    const auto t = Clock::now();
    std::vector<at::Tensor> frames;
    for (int64_t j = target - half; j <= target + half; ++j) {
      const int64_t n = std::clamp(j, range.input_first, range.input_last);
      frames.push_back(View(window[static_cast<size_t>(n - window.front().index)]));
    }
    // cat copies, so the window may drop frames before the batch runs.
    inputs.push_back(k == 1 ? frames[0].clone() : at::cat(frames, 0));
    targets.push_back(target);
    while (!window.empty() && window.front().index < target + 1 - half) window.pop_front();
    *seconds += std::chrono::duration<double>(Clock::now() - t).count();
    if (inputs.size() == batch) RETURN_IF_ERROR(flush());
  }
  return flush();
}

}  // namespace reelfarm::worker
