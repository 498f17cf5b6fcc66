// The worker's task pipeline: what one lease's work is, from assignment to published
// output. Chunk tasks run decode → model → encode as stages on their own threads with
// bounded queues between them, so the stages overlap; assemble tasks stream-copy the
// segments into the final movie and write the provenance sidecar.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/storage.h"
#include "reelfarm/v1/workers.pb.h"

namespace reelfarm::inference {
class Model;
class Generator;
}
namespace reelfarm::media {
class FrameSink;
struct OutputFormat;
}

namespace reelfarm::worker {

struct PipelineOptions {
  std::vector<std::string> model_path;
  std::string device = "cpu";
  std::string worker_name;
  // Testing aid: sleep this long per frame in the model stage (and per model at the
  // worker's warm-up), to simulate a slow model so that a test can act while a chunk
  // is in flight or before the worker is ready.
  int frame_delay_ms = 0;
};

struct TaskReport {
  bool ok = false;
  std::string error;
  bool retryable = true;
  int64_t frames_done = 0;
  double seconds = 0;
  std::string model_digest;
  // Seconds spent in each stage (decode, infer, encode, publish).
  std::map<std::string, double> stage_seconds;
};

// Runs tasks for one slot. Keeps the models it loaded (a model is used by one thread).
class TaskRunner final {
 public:
  TaskRunner(const common::Storage& storage, PipelineOptions options);
  ~TaskRunner();
  TaskRunner(const TaskRunner&) = delete;
  TaskRunner& operator=(const TaskRunner&) = delete;

  // `progress(frames_done)` is called as frames are written; `cancelled` is polled.
  TaskReport Run(const v1::Assignment& a, const std::function<void(int64_t)>& progress,
                 const std::atomic<bool>& cancelled);

 private:
  TaskReport RunChunk(const v1::Assignment& a, const std::function<void(int64_t)>& progress,
                      const std::atomic<bool>& cancelled);
  TaskReport RunAssemble(const v1::Assignment& a);
  // One take of a generate job: sampler, then the frames to the take's output and its
  // sidecar (take.cc).
  TaskReport RunTake(const v1::Assignment& a, const std::function<void(int64_t)>& progress,
                     const std::atomic<bool>& cancelled);
  // The chunk's sink: a movie segment at `path`, or the image sequence `path` names.
  absl::StatusOr<std::unique_ptr<media::FrameSink>> OpenSink(const v1::Assignment& a,
                                                             const media::OutputFormat& format,
                                                             const std::string& path);
  // Stream-copies the segments (and the input's audio) into `output`, atomically.
  absl::Status AssembleMovie(const v1::Assignment& a, const media::OutputFormat& format,
                             const std::filesystem::path& output);
  // Writes `<output>.json`, the provenance sidecar.
  absl::Status WriteSidecar(const v1::Assignment& a, const std::filesystem::path& output,
                            std::string* model_digest);
  // Adds this worker's software to `prov` and publishes it as `<output>.json`.
  absl::Status PublishSidecar(nlohmann::json prov, const std::filesystem::path& output) const;
  absl::StatusOr<inference::Generator*> GetGenerator(const std::string& name);
  absl::StatusOr<inference::Model*> GetModel(const std::string& name, int scale);

  const common::Storage& storage_;
  const PipelineOptions options_;
  std::map<std::string, std::unique_ptr<inference::Model>> models_;
  std::map<std::string, std::unique_ptr<inference::Generator>> generators_;
};

// Keeps freed frame buffers in the heap for the next frame. An upscaled 1440p frame
// is 44 MB of floats, above glibc's largest automatic mmap threshold (32 MB), so
// otherwise every frame is a fresh mmap: 11,000 page faults and 44 MB zeroed by the
// kernel, then unmapped (about a third of a worker's CPU time at 1440p). Raises the
// mmap and trim thresholds to 512 MB and 1 GB; the price is that the worker's
// resident memory stays at its peak. Call once, early in main.
void KeepFrameBuffersInHeap();

// LibTorch's OpenMP threads spin while they wait for work (libgomp's default policy),
// and on a worker whose decoder and encoder share the cores with the model that spin
// is CPU taken from them: with OMP_WAIT_POLICY=PASSIVE the ESPCN run of
// reelfarm-bench-pipeline spends about 7% less CPU per frame end to end on 2 cores.
// libgomp reads the policy once, as it loads, before main; so when OMP_WAIT_POLICY is
// not set this sets it to PASSIVE and executes the program again (same pid,
// arguments and environment otherwise). An operator who wants spinning sets
// OMP_WAIT_POLICY=ACTIVE. Call first thing in main; returns only if nothing was done
// or the exec failed (then the process goes on as it is).
void RestartWithPassiveOpenMpWaits(char** argv);

}  // namespace reelfarm::worker
