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
#include "media/media.h"
#include "reelfarm/v1/workers.pb.h"

namespace reelfarm::inference {
class Model;
class Generator;
}  // namespace reelfarm::inference
namespace reelfarm::media {
struct OutputFormat;
class ColourPipeline;
}  // namespace reelfarm::media

namespace reelfarm::worker {

class KeptSource;  // pipeline.cc

// Where a task's frames come from and go: FFmpeg's sources and sinks (media/)
// by default. A test injects its own (a slow source, a sink that fails); each opens
// what the media function of the same shape opens.
struct FrameIo {
  using SourceFactory = std::function<absl::StatusOr<std::unique_ptr<media::FrameSource>>(
      const std::string& path, int64_t begin, int64_t end)>;
  SourceFactory open_movie = media::OpenVideoSource;
  // The native path: a built-in filter (bicubic, lanczos) from a YUV movie to a YUV
  // movie resizes the decoded planes themselves (media::NativeResizer), no RGB. Null:
  // every chunk takes the RGB path.
  std::function<absl::StatusOr<std::unique_ptr<media::NativeFrameSource>>(
      const std::string& path, int64_t begin, int64_t end)>
      open_native_movie = media::OpenNativeVideoSource;
  SourceFactory open_image_sequence = media::OpenImageSequenceSource;
  // Colour-managed jobs: float images keep values above 1.0 (colour_job.h).
  SourceFactory open_scene_referred_image_sequence = media::OpenSceneReferredImageSequenceSource;
  std::function<absl::StatusOr<std::unique_ptr<media::FrameSink>>(const std::string& path,
                                                                  const media::EncodeOptions&)>
      open_movie_sink = media::OpenMovieSink;
  std::function<absl::StatusOr<std::unique_ptr<media::FrameSink>>(
      const std::string& pattern, const media::ImageSequenceOptions&)>
      open_image_sequence_sink = media::OpenImageSequenceSink;
};

struct PipelineOptions {
  std::vector<std::string> model_path;
  std::string device = "cpu";
  std::string worker_name;
  FrameIo frames;
  // How long a chunk's movie decoder (native or RGB path) stays open after the chunk, at
  // the frame after it, for the next chunk of the same input to go on from
  // (TaskReport::continued_decode).
  // With one worker the next chunk's lease comes within milliseconds; the bound keeps an
  // idle worker from holding a decoder and its reference frames. 0: never kept.
  double keep_source_seconds = 5.0;
};

struct TaskReport {
  bool ok = false;
  std::string error;
  bool retryable = true;
  int64_t frames_done = 0;
  double seconds = 0;
  std::string model_digest;
  std::string output_digest;  // CHUNK: "sha256:HEX" of what it wrote (see workers.proto)
  v1::TaskQc qc;              // what it measured of its output (worker/pictures.h)
  std::string thumbnail;      // pictures it made, storage-relative (see workers.proto)
  std::string preview;
  // CHUNK: how its frames went: "native" (a filter resized the decoded YUV planes as they
  // are) or "rgb" (planar float RGB through the model).
  std::string frame_path;
  // Seconds spent in each stage (decode, infer, encode, publish).
  std::map<std::string, double> stage_seconds;
  // CHUNK: its decoder went on from the previous chunk's on this slot (the one before it
  // in the same input, kept open: KeptSource), no seek and no frames decoded twice.
  bool continued_decode = false;
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
  // `colour` (null: not colour-managed) sets the EXR chromaticities or movie colour tags.
  // `native`: a movie sink for native frames (media::EncodeOptions::native_frames).
  absl::StatusOr<std::unique_ptr<media::FrameSink>> OpenSink(
      const v1::Assignment& a, const media::OutputFormat& format, const std::string& path,
      const media::ColourPipeline* colour = nullptr, bool native = false);
  // The sidecar's "colour" record of an upscale job (worker/colour_job.h).
  nlohmann::json UpscaleColourProvenance(const v1::Assignment& a) const;
  // What a task publishes, staged in the job's scratch first; `dirs` keeps open the
  // folders the /proc/self/fd paths in `files` go through.
  struct Publication {
    std::filesystem::path final_dir;  // the output's folder, opened beneath the root
    std::filesystem::path staging;    // the job's staging folder, likewise
    std::vector<common::Storage::StagedFile> files;
    std::vector<common::UniqueFd> dirs;
  };
  // Stream-copies the segments (and the input's audio), checked against the digests
  // their chunks reported, into the staged movie.
  absl::Status StageMovie(const v1::Assignment& a, const media::OutputFormat& format,
                          const std::filesystem::path& output, Publication* pub);
  // The image sequence the chunks wrote, each chunk's frames checked likewise.
  absl::Status StageSequence(const v1::Assignment& a, const std::filesystem::path& output,
                             Publication* pub);
  // ASSEMBLE: the difference across each seam between chunks (the last frame of one, the
  // first of the next, as each chunk kept them small: ChunkEdgesName), judged against the
  // medians the chunks reported (worker/pictures.h); unmeasured (logged) on trouble.
  v1::TaskQc MeasureSeams(const v1::Assignment& a) const;
  // `<output>.json`, the provenance sidecar of an upscale job.
  absl::Status StageUpscaleSidecar(const v1::Assignment& a, const std::string& name,
                                   Publication* pub, TaskReport* report);
  // Adds this worker's software to `prov` and stages it as `<output_name>.json`.
  absl::Status StageSidecar(nlohmann::json prov, const std::string& output_name,
                            Publication* pub) const;
  // The job's staging folder (in its scratch), opened beneath the root; `sub` a folder
  // in it ("" for itself).
  absl::StatusOr<common::UniqueFd> OpenStaging(int64_t job_id, const std::string& sub) const;
  absl::StatusOr<inference::Generator*> GetGenerator(const std::string& name);
  absl::StatusOr<inference::Model*> GetModel(const std::string& name, int scale);

  const common::Storage& storage_;
  const PipelineOptions options_;
  std::map<std::string, std::unique_ptr<inference::Model>> models_;
  std::map<std::string, std::unique_ptr<inference::Generator>> generators_;
  // The last native chunk's source, open at the frame after that chunk, for a while.
  std::unique_ptr<KeptSource> kept_;
};

// Keeps freed frame buffers in the heap for the next frame. An upscaled 1440p frame
// is 44 MB of floats, above glibc's largest automatic mmap threshold (32 MB), so
// otherwise every frame is a fresh mmap: 11,000 page faults and 44 MB zeroed by the
// kernel, then unmapped (about a third of a worker's CPU time at 1440p). Raises the
// mmap and trim thresholds to 512 MB and 1 GB; the price is that the worker's
// resident memory stays at its peak. The native path's frames (5.5 MB at 1440p
// yuv420p) are below glibc's own thresholds and reuse the heap either way; its peak
// is set by its queue depths (kNativeQueueDepth). Call once, early in main.
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
