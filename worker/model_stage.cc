#include "worker/model_stage.h"

#include <ATen/ATen.h>

#include <chrono>
#include <deque>
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
                           const std::atomic<bool>& cancelled, double* seconds) {
  const int k = model.temporal_window();
  const int64_t half = k / 2;
  const size_t batch = static_cast<size_t>(std::max(1, model.batch()));
  std::deque<media::Frame> window;  // consecutive decoded frames, by index
  std::vector<at::Tensor> inputs;   // [3k, H, W] per pending target
  std::vector<media::Frame> held;   // k = 1: the frames `inputs` view, kept instead of copied
  std::vector<int64_t> targets;
  held.reserve(batch);

  auto flush = [&]() -> absl::Status {
    if (inputs.empty()) return absl::OkStatus();
    const auto t = Clock::now();
    const int64_t h = inputs[0].size(1), w = inputs[0].size(2), s = model.scale();
    std::vector<media::Frame> done(targets.size());
    for (size_t i = 0; i < targets.size(); ++i) {
      done[i].width = static_cast<int>(w * s);
      done[i].height = static_cast<int>(h * s);
      done[i].index = targets[i];
      done[i].planes.resize(static_cast<size_t>(3 * h * s * w * s));
    }
    absl::Status st;
    if (inputs.size() == 1) {  // straight into the frame: no copy of the output
      at::Tensor into = View(done[0]).unsqueeze(0);
      st = model.UpscaleInto(inputs[0].unsqueeze(0), into);
    } else {
      absl::StatusOr<at::Tensor> y = model.Upscale(at::stack(inputs));
      st = y.status();
      for (size_t i = 0; st.ok() && i < done.size(); ++i) {
        View(done[i]).copy_((*y)[static_cast<int64_t>(i)]);
      }
    }
    if (!st.ok()) {
      return absl::Status(st.code(), absl::StrCat("frame ", targets.front(), ": ", st.message()));
    }
    *seconds += std::chrono::duration<double>(Clock::now() - t).count();
    inputs.clear();
    held.clear();
    targets.clear();
    for (media::Frame& g : done) {
      if (!out.Push(std::move(g))) return absl::OkStatus();
    }
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
    if (k == 1) {
      // The frame leaves the window for `held`, which keeps it until the batch has run
      // (no copy; the window would drop it now anyway).
      while (window.front().index < target) window.pop_front();
      if (window.front().index != target) {
        return absl::InternalError(
            absl::StrCat("frame ", target, " did not come from the decoder"));
      }
      held.push_back(std::move(window.front()));
      window.pop_front();
      inputs.push_back(View(held.back()));
    } else {
      std::vector<at::Tensor> frames;
      for (int64_t j = target - half; j <= target + half; ++j) {
        const int64_t n = std::clamp(j, range.input_first, range.input_last);
        frames.push_back(View(window[static_cast<size_t>(n - window.front().index)]));
      }
      // cat copies, so the window may drop frames before the batch runs.
      inputs.push_back(at::cat(frames, 0));
    }
    targets.push_back(target);
    while (!window.empty() && window.front().index < target + 1 - half) window.pop_front();
    *seconds += std::chrono::duration<double>(Clock::now() - t).count();
    if (inputs.size() == batch) RETURN_IF_ERROR(flush());
  }
  return flush();
}

}  // namespace reelfarm::worker
