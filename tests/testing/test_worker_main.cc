// reelfarm-test-worker: reelfarm-worker with a slow model, for tests that must act while
// a chunk is in flight or before the worker is ready. --frame-delay-ms N sleeps N ms
// per frame a chunk decodes, and after each model's warm-up run; every other flag is
// the worker's.
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "media/media.h"
#include "worker/pipeline.h"
#include "worker/worker_main.h"

namespace reelfarm::testing {
namespace {

class SlowSource final : public media::FrameSource {
 public:
  SlowSource(std::unique_ptr<media::FrameSource> source, std::chrono::milliseconds delay)
      : source_(std::move(source)), delay_(delay) {}
  absl::StatusOr<bool> Next(media::Frame* frame) override {
    absl::StatusOr<bool> more = source_->Next(frame);
    if (more.ok() && *more) std::this_thread::sleep_for(delay_);
    return more;
  }

 private:
  const std::unique_ptr<media::FrameSource> source_;
  const std::chrono::milliseconds delay_;
};

worker::FrameIo::SourceFactory Slow(worker::FrameIo::SourceFactory open,
                                    std::chrono::milliseconds delay) {
  return [open = std::move(open), delay](
             const std::string& path, int64_t begin,
             int64_t end) -> absl::StatusOr<std::unique_ptr<media::FrameSource>> {
    ASSIGN_OR_RETURN(std::unique_ptr<media::FrameSource> source, open(path, begin, end));
    return std::make_unique<SlowSource>(std::move(source), delay);
  };
}

}  // namespace
}  // namespace reelfarm::testing

int main(int argc, char** argv) {
  using namespace reelfarm;
  // Before the flags are taken out: the restart executes this binary with `argv` again.
  worker::RestartWithPassiveOpenMpWaits(argv);
  CLI::App app{"reelfarm-test-worker: reelfarm-worker with a slow model"};
  app.set_help_flag();  // --help is the worker's
  app.allow_extras();
  int delay_ms = 0;
  app.add_option("--frame-delay-ms", delay_ms, "sleep per frame to simulate a slow model")
      ->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);

  worker::WorkerHooks hooks;
  if (delay_ms > 0) {
    const std::chrono::milliseconds delay(delay_ms);
    hooks.frames.open_movie = testing::Slow(hooks.frames.open_movie, delay);
    hooks.frames.open_image_sequence = testing::Slow(hooks.frames.open_image_sequence, delay);
    // Slowed frames come from the sources above: the RGB path.
    hooks.frames.open_native_movie = nullptr;
    hooks.after_warm_up = [delay](const std::string&) { std::this_thread::sleep_for(delay); };
  }
  std::vector<std::string> rest = app.remaining();
  std::vector<char*> args = {argv[0]};
  for (std::string& arg : rest) args.push_back(arg.data());
  args.push_back(nullptr);
  return worker::RunWorkerMain(static_cast<int>(args.size()) - 1, args.data(), hooks);
}
