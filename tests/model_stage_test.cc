// The worker's model stage on its own: frames through a queue, a Model, and out again,
// one at a time or in batches, against the model run on each frame directly.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <optional>
#include <thread>
#include <vector>

#include "tests/testing/fixtures.h"
#include "tests/testing/models.h"
#include "worker/inference/model.h"
#include "worker/model_stage.h"

using namespace reelfarm;

namespace {

std::vector<media::Frame> RandomFrames(int n, int width, int height) {
  std::vector<media::Frame> frames(n);
  for (int i = 0; i < n; ++i) {
    at::Tensor t = at::rand({3, height, width});
    frames[i].width = width;
    frames[i].height = height;
    frames[i].index = i;
    frames[i].planes.assign(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
  }
  return frames;
}

at::Tensor AsTensor(const media::Frame& f) {
  return at::from_blob(const_cast<float*>(f.planes.data()), {3, f.height, f.width}, at::kFloat)
      .clone();
}

// Every frame through RunModelStage for targets [0, n); the frames it pushed.
std::vector<media::Frame> RunStage(inference::Model& model,
                                   const std::vector<media::Frame>& frames) {
  worker::BoundedQueue<media::Frame> in(frames.size() + 1), out(frames.size() + 1);
  for (const auto& f : frames) REQUIRE(in.Push(f));
  in.Close();
  worker::ModelStageRange range;
  range.target_begin = 0;
  range.target_end = static_cast<int64_t>(frames.size());
  range.input_first = 0;
  range.input_last = static_cast<int64_t>(frames.size()) - 1;
  std::atomic<bool> cancelled{false};
  double seconds = 0;
  const absl::Status st = worker::RunModelStage(model, range, in, out, cancelled, &seconds);
  INFO(st.ToString());
  REQUIRE(st.ok());
  out.Close();
  std::vector<media::Frame> result;
  while (auto f = out.Pop()) result.push_back(std::move(*f));
  return result;
}

}  // namespace

TEST_CASE("the model stage gives each frame the model's result, one at a time or batched",
          "[unit][worker]") {
  c10::InferenceMode guard;
  testing::TempDir dir;
  testing::WriteConvX2Model(dir.path(), "conv1");
  testing::WriteConvX2Model(dir.path(), "conv3", "\"batch\": 3");    // same weights
  const std::vector<media::Frame> frames = RandomFrames(7, 20, 12);  // batches 3, 3, 1
  for (const char* name : {"bicubic", "conv1", "conv3"}) {
    INFO(name);
    auto model = inference::LoadModel(name, 2, {dir.path().string()}, "cpu");
    REQUIRE(model.ok());
    CHECK((*model)->batch() == (std::strcmp(name, "conv3") == 0 ? 3 : 1));
    const std::vector<media::Frame> out = RunStage(**model, frames);
    REQUIRE(out.size() == frames.size());
    for (size_t i = 0; i < out.size(); ++i) {
      INFO("frame " << i);
      CHECK(out[i].index == static_cast<int64_t>(i));
      CHECK(out[i].width == 40);
      CHECK(out[i].height == 24);
      REQUIRE(out[i].planes.size() == 3u * 40 * 24);
      auto want = (*model)->Upscale(AsTensor(frames[i]).unsqueeze(0));
      REQUIRE(want.ok());
      const float diff = (AsTensor(out[i]) - (*want)[0]).abs().max().item<float>();
      CHECK(diff < 1e-5f);
    }
  }
}

TEST_CASE("a bounded queue blocks a full Push and an empty Pop, and Close wakes both",
          "[unit][queue]") {
  using namespace std::chrono_literals;
  worker::BoundedQueue<int> q(1);
  REQUIRE(q.Push(1));
  std::atomic<int> pushed{0};  // 0 while blocked, 1 pushed, -1 refused
  std::thread producer([&] { pushed = q.Push(2) ? 1 : -1; });
  std::this_thread::sleep_for(200ms);
  CHECK(pushed.load() == 0);  // full: waits for room
  CHECK(q.Pop() == std::optional<int>(1));
  producer.join();
  CHECK(pushed.load() == 1);
  CHECK(q.Pop() == std::optional<int>(2));

  // Empty: a Pop waits until Close, then fails; so does a Push blocked on a full queue.
  std::atomic<bool> popped{false};
  std::optional<int> got = 7;
  std::thread consumer([&] {
    got = q.Pop();
    popped = true;
  });
  std::this_thread::sleep_for(200ms);
  CHECK_FALSE(popped.load());
  q.Close();
  consumer.join();
  CHECK_FALSE(got.has_value());
  CHECK_FALSE(q.Push(3));

  // What was queued before Close is still drained, then Pop fails.
  worker::BoundedQueue<int> full(1);
  REQUIRE(full.Push(4));
  std::atomic<int> refused{0};
  std::thread blocked([&] { refused = full.Push(5) ? 1 : -1; });
  std::this_thread::sleep_for(200ms);
  CHECK(refused.load() == 0);
  full.Close();
  blocked.join();
  CHECK(refused.load() == -1);
  CHECK(full.Pop() == std::optional<int>(4));
  CHECK_FALSE(full.Pop().has_value());
}
