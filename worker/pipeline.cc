#include "worker/pipeline.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <malloc.h>
#include <torch/version.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <thread>
#include <type_traits>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/file_identity.h"
#include "common/job_defaults.h"
#include "common/model_manifest.h"
#include "common/thread_name.h"
#include "media/colour.h"
#include "media/media.h"
#include "media/output_format.h"
#include "media/picture.h"
#include "worker/bounded_queue.h"
#include "worker/colour_job.h"
#include "worker/inference/generator.h"
#include "worker/inference/model.h"
#include "worker/model_stage.h"
#include "worker/pictures.h"

#ifndef REELFARM_VERSION
#define REELFARM_VERSION "dev"
#endif

namespace reelfarm::worker {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// The files an image sequence chunk wrote: `pattern`'s frames [begin, end).
std::vector<fs::path> SequenceFiles(const fs::path& pattern, int64_t begin, int64_t end) {
  std::vector<fs::path> files;
  for (int64_t i = begin; i < end; ++i) files.emplace_back(media::FramePath(pattern.string(), i));
  return files;
}

// An image sequence chunk writes its frames into a folder of its own in the parts
// folder, named after its segment.
std::string SequenceChunkFolder(const std::string& segment) {
  return fs::path(segment).replace_extension().string();
}

// The folder of a storage-relative path, "." for one at the root.
std::string RelativeFolder(const std::string& relative) {
  const std::string folder = fs::path(relative).parent_path().string();
  return folder.empty() ? "." : folder;
}

TaskReport Failure(const absl::Status& st, absl::string_view context) {
  TaskReport r;
  r.ok = false;
  r.error = absl::StrCat(context, st.message());
  // Bad input and models that reject it fail the same way on every worker.
  switch (st.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kUnimplemented:
      r.retryable = false;
      break;
    default:
      r.retryable = true;
  }
  return r;
}

// The first error of any stage; the others then stop.
class FirstError {
 public:
  void Set(absl::Status st) {
    absl::MutexLock lock(&mu_);
    if (status_.ok()) status_ = std::move(st);
  }
  absl::Status Get() {
    absl::MutexLock lock(&mu_);
    return status_;
  }

 private:
  absl::Mutex mu_;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
};

// The thumbnail of `check`'s middle frame as `name` in the job's pictures folder; its
// path, or "" (logged) when it could not be made: a picture never fails a task.
std::string MakeThumbnail(const common::Storage& storage, int64_t job_id, const std::string& name,
                          const OutputCheck& check) {
  if (check.middle().width == 0) return "";
  absl::StatusOr<std::string> path = [&]() -> absl::StatusOr<std::string> {
    ASSIGN_OR_RETURN(std::string jpeg, media::EncodeJpeg(check.middle()));
    return WritePicture(storage, job_id, name, jpeg);
  }();
  if (path.ok()) return *path;
  spdlog::warn("job={} thumbnail '{}' not made: {}", job_id, name,
               std::string(path.status().message()));
  return "";
}

// Queue slots between the native path's stages. Its frames are small (a 1440p yuv420p
// frame is 5.5 MB, against 44 MB as float RGB), so two per queue keep the stages
// overlapping at little memory: the worker's peak is then mostly the encoder's.
constexpr size_t kNativeQueueDepth = 2;

// The filter of a chunk that runs on the native path, or none for the RGB path. Native:
// a built-in filter (bicubic, lanczos), a movie in to a movie out, both planar YUV
// (media::IsNativeYuvFormat; the output's pix_fmt may differ, e.g. ProRes'
// yuv422p10le: libswscale converts in the resize step, as ffmpeg's scale filter does),
// upright, not full range, not colour-managed, and a worker whose FrameIo has a native
// source. Learned models, RGB inputs, image sequences and colour-managed jobs take
// the RGB path.
std::optional<media::ResizeFilter> NativeFilter(const v1::Assignment& a,
                                                const inference::Model& model,
                                                const media::OutputFormat& format, bool sequence_in,
                                                const media::ColourPipeline* cm,
                                                const FrameIo& io) {
  const v1::MediaInfo& in = a.input_info();
  if (!io.open_native_movie || cm != nullptr || sequence_in || format.image_sequence() ||
      in.rotation() != 0 || in.colour_range() == 2 /* AVCOL_RANGE_JPEG */ ||
      !media::IsNativeYuvFormat(in.pixel_format()) || !media::IsNativeYuvFormat(format.pix_fmt)) {
    return std::nullopt;
  }
  if (model.digest() == "builtin:bicubic") return media::ResizeFilter::kBicubic;
  if (model.digest() == "builtin:lanczos") return media::ResizeFilter::kLanczos;
  return std::nullopt;
}

// The stages of a native chunk: decode → resize → encode, each on a thread of its own
// (resize on the caller's) with bounded queues between them, so they overlap as the
// RGB path's do. A frame is held as its next stage needs it: as decoded (a reference
// to the decoder's buffer) until resized, as resized until encoded.
struct NativeStages {
  media::NativeFrameSource& source;
  media::NativeResizer& resizer;
  media::FrameSink& sink;
  const std::atomic<bool>& cancelled;
  const std::function<void(int64_t)>& progress;
  OutputCheck& check;  // measures each frame as it is written (on a small copy)
  double decode_s = 0, resize_s = 0, encode_s = 0;
  int64_t written = 0;

  // The first error of any stage.
  absl::Status Run() {
    FirstError error;
    BoundedQueue<media::NativeFrame> decoded(kNativeQueueDepth), resized(kNativeQueueDepth);
    std::thread decoder([&] {
      common::NameThread("rf-decode");
      while (!cancelled.load()) {
        auto t = Clock::now();
        media::NativeFrame f;
        absl::StatusOr<bool> more = source.Next(&f);
        decode_s += Since(t);
        if (!more.ok()) error.Set(more.status());
        if (!more.ok() || !*more || !decoded.Push(std::move(f))) break;
      }
      decoded.Close();
    });
    std::thread encoder([&] {
      common::NameThread("rf-encode");
      while (auto f = resized.Pop()) {
        auto t = Clock::now();
        absl::Status st = check.AddNative(*f);
        if (st.ok()) st = sink.WriteNative(*f);
        encode_s += Since(t);
        if (!st.ok()) {
          error.Set(st);
          break;
        }
        progress(++written);
      }
      resized.Close();
      decoded.Close();
    });
    while (auto f = decoded.Pop()) {
      if (cancelled.load()) break;
      auto t = Clock::now();
      media::NativeFrame out;
      absl::Status st = resizer.Resize(*f, &out);
      resize_s += Since(t);
      if (!st.ok()) {
        error.Set(st);
        break;
      }
      if (!resized.Push(std::move(out))) break;
    }
    decoded.Close();
    resized.Close();
    decoder.join();
    encoder.join();
    return error.Get();
  }
};

// What identifies the movie a chunk reads: its name in the job and the file's identity
// (device, inode, size, modification and change times), through the descriptor it was
// opened by; a file replaced or written since has another. "" when unknown.
std::string InputIdentity(const std::string& name, int fd) {
  absl::StatusOr<common::FileIdentity> id = common::FileIdentity::Of(fd);
  return id.ok() ? absl::StrCat(name, "|", id->ToString()) : "";
}

}  // namespace

// A chunk's source of a movie, kept open after the chunk at the frame after it, for a
// while (PipelineOptions::keep_source_seconds): the next chunk of the same input that
// starts there goes on decoding (ContinueTo) instead of seeking to the keyframe before it
// and decoding forward again. A 240-frame clip with one keyframe in five chunks decodes
// 720 frames without it. Either path's source: the native one (filters on YUV) or the
// RGB one (learned models); a chunk takes only its own kind. A thread of its own drops
// the source when its time is up.
class KeptSource {
 public:
  explicit KeptSource(double seconds)
      : keep_(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds))) {
  }
  ~KeptSource() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
      wake_.Signal();
    }
    if (reaper_.joinable()) reaper_.join();
  }
  KeptSource(const KeptSource&) = delete;
  KeptSource& operator=(const KeptSource&) = delete;

  void Keep(std::string key, std::unique_ptr<media::NativeFrameSource> source) {
    KeepEither(std::move(key), std::move(source), nullptr);
  }
  void Keep(std::string key, std::unique_ptr<media::FrameSource> source) {
    KeepEither(std::move(key), nullptr, std::move(source));
  }

  // The kept source of kind `Source` (media::NativeFrameSource or media::FrameSource)
  // carried on to [begin, end) when it is of `key` and stands at `begin`; otherwise
  // null, and whatever was kept is dropped.
  template <typename Source>
  std::unique_ptr<Source> Take(const std::string& key, int64_t begin, int64_t end) {
    std::unique_ptr<media::NativeFrameSource> native;
    std::unique_ptr<media::FrameSource> rgb;
    bool same = false;
    {
      absl::MutexLock lock(&mu_);
      native = std::move(native_);
      rgb = std::move(rgb_);
      same = !key.empty() && key == key_;
    }
    std::unique_ptr<Source> source;
    if constexpr (std::is_same_v<Source, media::NativeFrameSource>) {
      source = std::move(native);
    } else {
      source = std::move(rgb);
    }
    if (source && same && source->ContinueTo(begin, end)) return source;
    return nullptr;
  }

 private:
  void KeepEither(std::string key, std::unique_ptr<media::NativeFrameSource> native,
                  std::unique_ptr<media::FrameSource> rgb) {
    if (keep_ <= Clock::duration::zero()) return;
    // Freed after the lock is let go.
    std::unique_ptr<media::NativeFrameSource> old_native;
    std::unique_ptr<media::FrameSource> old_rgb;
    absl::MutexLock lock(&mu_);
    old_native = std::move(native_);
    old_rgb = std::move(rgb_);
    native_ = std::move(native);
    rgb_ = std::move(rgb);
    key_ = std::move(key);
    until_ = Clock::now() + keep_;
    if (!reaper_.joinable()) {
      reaper_ = std::thread([this] {
        common::NameThread("rf-reap");
        Reap();
      });
    }
    wake_.Signal();
  }

  bool HoldsLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return native_ || rgb_; }

  void Reap() {
    absl::MutexLock lock(&mu_);
    while (!stop_) {
      const auto now = Clock::now();
      if (HoldsLocked() && now >= until_) {
        native_.reset();
        rgb_.reset();
        malloc_trim(0);  // as after a chunk: the decoder's memory goes back
        continue;
      }
      if (HoldsLocked()) {
        wake_.WaitWithTimeout(&mu_, absl::FromChrono(until_ - now));
      } else {
        wake_.Wait(&mu_);
      }
    }
  }

  const Clock::duration keep_;
  absl::Mutex mu_;
  absl::CondVar wake_;
  std::unique_ptr<media::NativeFrameSource> native_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<media::FrameSource> rgb_ ABSL_GUARDED_BY(mu_);
  std::string key_ ABSL_GUARDED_BY(mu_);
  Clock::time_point until_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread reaper_;
};

TaskRunner::TaskRunner(const common::Storage& storage, PipelineOptions options)
    : storage_(storage),
      options_(std::move(options)),
      kept_(std::make_unique<KeptSource>(options_.keep_source_seconds)) {}

TaskRunner::~TaskRunner() = default;

absl::StatusOr<inference::Model*> TaskRunner::GetModel(const std::string& name, int scale) {
  const std::string key = absl::StrCat(name, "@", scale);
  auto it = models_.find(key);
  if (it != models_.end()) return it->second.get();
  auto t0 = Clock::now();
  ASSIGN_OR_RETURN(std::unique_ptr<inference::Model> m,
                   inference::LoadModel(name, scale, options_.model_path, options_.device));
  spdlog::info("model loaded model={} scale={} device={} tile={} seconds={:.3f}", name, scale,
               options_.device, m->tile(), Since(t0));
  inference::Model* raw = m.get();
  models_[key] = std::move(m);
  return raw;
}

TaskReport TaskRunner::Run(const v1::Assignment& a, const std::function<void(int64_t)>& progress,
                           const std::atomic<bool>& cancelled) {
  auto t0 = Clock::now();
  TaskReport r = a.kind() == v1::TASK_KIND_ASSEMBLE ? RunAssemble(a)
                 : a.kind() == v1::TASK_KIND_TAKE   ? RunTake(a, progress, cancelled)
                                                    : RunChunk(a, progress, cancelled);
  r.seconds = Since(t0);
  return r;
}

TaskReport TaskRunner::RunChunk(const v1::Assignment& a,
                                const std::function<void(int64_t)>& progress,
                                const std::atomic<bool>& cancelled) {
  const v1::UpscaleSpec& up = a.upscale();
  auto model = GetModel(up.model(), up.scale());
  if (!model.ok()) return Failure(model.status(), "");
  auto input = storage_.ResolveJobPath(up.input(), "upscale.input");
  if (!input.ok()) return Failure(input.status(), "");
  auto format = media::ResolveOutputFormat(up.output(), up.format().codec(), up.format().pix_fmt(),
                                           up.format().preset(),
                                           up.has_crf() ? up.crf() : common::kDefaultCrf);
  if (!format.ok()) return Failure(format.status(), "");
  // Movies: a segment under the parts folder, published there when complete. Image
  // sequences: the frames, under their output names, in a folder of the chunk's own
  // there. The job's outputs are published only by the assembly, when every chunk is
  // done: a failed job leaves nothing half-published.
  const bool sequence_out = format->image_sequence();
  const std::string segment_rel = sequence_out ? SequenceChunkFolder(a.segment()) + "/" +
                                                     fs::path(up.output()).filename().string()
                                               : a.segment();
  const char* out_field = "segment";
  auto segment = storage_.Resolve(segment_rel, out_field);
  if (!segment.ok()) return Failure(segment.status(), "");
  // The input and the output folder are opened beneath the root now, at the time of
  // use: a symbolic link swapped in since the submit cannot lead out of the root.
  // FFmpeg then reaches them through /proc/self/fd.
  const bool sequence_in = media::HasFramePattern(up.input());
  auto input_fd = sequence_in
                      ? storage_.OpenDirBeneath(input->parent_path(), false, "upscale.input")
                      : storage_.OpenBeneath(*input, O_RDONLY, "upscale.input");
  if (!input_fd.ok()) return Failure(input_fd.status(), "");
  const std::string input_path =
      sequence_in ? input_fd->path() + "/" + input->filename().string() : input_fd->path();
  auto out_dir = storage_.OpenDirBeneath(segment->parent_path(), true, out_field);
  if (!out_dir.ok()) return Failure(out_dir.status(), "");
  const fs::path out_path = fs::path(out_dir->path()) / segment->filename();
  // Messages name the files as the job does, not as /proc/self/fd/N.
  const std::string input_name = sequence_in ? RelativeFolder(up.input()) : up.input();
  const std::string out_name = RelativeFolder(segment_rel);
  const auto named = [&](const absl::Status& st) {
    return common::NameFdPath(common::NameFdPath(st, *input_fd, input_name), *out_dir, out_name);
  };
  std::error_code ec;
  const fs::path tmp = common::Storage::TempPathFor(out_path);

  // Task ranges count from the job's first frame; sources take frame numbers. Temporal
  // models need context frames beyond the task's own.
  const int64_t first = a.input_info().first_frame();
  ModelStageRange range;
  range.target_begin = first + a.frame_begin();
  range.target_end = first + a.frame_end();
  range.input_first = first;
  range.input_last = first + std::max<int64_t>(a.input_info().frame_count(), a.frame_end()) - 1;
  int64_t decode_begin = 0, decode_end = 0;
  ContextRange(range, (*model)->temporal_window(), &decode_begin, &decode_end);
  // Colour management (colour_job.h): scene-referred float frames keep their values.
  auto colour = SetUpColour(
      up, a.input_info(),
      sequence_in ? media::FramePath(input_path, a.input_info().first_frame()) : input_path,
      options_.model_path, storage_);
  if (!colour.ok()) return Failure(named(colour.status()), "");
  bool report_continued = false;
  const media::ColourPipeline* cm = colour->pipeline.get();
  const std::optional<media::ResizeFilter> native =
      NativeFilter(a, **model, *format, sequence_in, cm, options_.frames);
  std::unique_ptr<media::FrameSource> source;
  std::unique_ptr<media::NativeFrameSource> native_source;
  // The input's identity, to go on with the previous chunk's decoder (KeptSource): a
  // movie's (an image sequence opens a file a frame).
  const std::string input_key = sequence_in ? "" : InputIdentity(up.input(), input_fd->get());
  const auto t_open = Clock::now();
  if (native) {
    native_source = kept_->Take<media::NativeFrameSource>(input_key, decode_begin, decode_end);
    report_continued = native_source != nullptr;
  } else if (!sequence_in) {
    source = kept_->Take<media::FrameSource>(input_key, decode_begin, decode_end);
    report_continued = source != nullptr;
  }
  if (native && !native_source) {
    auto opened = options_.frames.open_native_movie(input_path, decode_begin, decode_end);
    if (!opened.ok()) return Failure(named(opened.status()), "");
    native_source = std::move(*opened);
  } else if (!native && !source) {
    auto opened = sequence_in ? (cm ? options_.frames.open_scene_referred_image_sequence
                                    : options_.frames.open_image_sequence)(input_path, decode_begin,
                                                                           decode_end)
                              : options_.frames.open_movie(input_path, decode_begin, decode_end);
    if (!opened.ok()) return Failure(named(opened.status()), "");
    source = std::move(*opened);
  }
  const double open_source_s = Since(t_open);
  const auto t_sink = Clock::now();
  auto sink =
      OpenSink(a, *format, sequence_out ? out_path.string() : tmp.string(), cm, native.has_value());
  if (!sink.ok()) return Failure(named(sink.status()), "");
  const double open_sink_s = Since(t_sink);

  TaskReport report;
  FirstError error;
  double decode_s = 0, infer_s = 0, encode_s = 0;
  int64_t written = 0;
  OutputCheck check(a.frame_end() - a.frame_begin());
  (*model)->TakeNonFiniteSamples();  // what an earlier task (or the warm-up) left

  if (native) {
    // Filter resizes of YUV movies: the planes themselves, no RGB (NativeStages).
    auto resizer = media::NativeResizer::Create(a.input_info().width() * up.scale(),
                                                a.input_info().height() * up.scale(),
                                                format->pix_fmt, *native, at::get_num_threads());
    if (!resizer.ok()) return Failure(named(resizer.status()), "");
    NativeStages stages{*native_source, **resizer, **sink, cancelled, progress, check};
    error.Set(stages.Run());
    decode_s = stages.decode_s;
    infer_s = stages.resize_s;
    encode_s = stages.encode_s;
    written = stages.written;
  } else {
    BoundedQueue<media::Frame> decoded(4), upscaled(4);
    std::thread decoder([&] {
      common::NameThread("rf-decode");
      while (!cancelled.load()) {
        auto t = Clock::now();
        media::Frame f;
        absl::StatusOr<bool> more = source->Next(&f);
        if (!more.ok()) {
          error.Set(more.status());
          break;
        }
        if (*more && cm) cm->ToModel(&f);
        decode_s += Since(t);
        if (!*more || !decoded.Push(std::move(f))) break;
      }
      decoded.Close();
    });
    std::thread encoder([&] {
      common::NameThread("rf-encode");
      while (auto f = upscaled.Pop()) {
        auto t = Clock::now();
        // QC sees the frames as the model gave them (0..1; colour-managed jobs convert
        // to a scene-referred space after, where 1 is not a clip).
        check.Add(*f);
        if (cm) cm->FromModel(&*f);
        absl::Status st = (*sink)->Write(*f);
        encode_s += Since(t);
        if (!st.ok()) {
          error.Set(st);
          break;
        }
        progress(++written);
      }
      upscaled.Close();
      decoded.Close();
    });
    {
      c10::InferenceMode guard;
      absl::Status st = RunModelStage(**model, range, decoded, upscaled, cancelled, &infer_s);
      if (!st.ok()) error.Set(st);
      decoded.Close();
      upscaled.Close();
    }
    decoder.join();
    encoder.join();
  }

  report.stage_seconds = {{"decode", decode_s}, {"infer", infer_s}, {"encode", encode_s}};
  report.model_digest = (*model)->digest();
  report.frames_done = written;
  report.frame_path = native ? "native" : "rgb";
  absl::Status st = error.Get();
  if (st.ok() && cancelled.load()) st = absl::CancelledError("task cancelled");
  if (st.ok() && written != a.frame_end() - a.frame_begin()) {
    st = absl::InternalError(
        absl::StrCat("wrote ", written, " frames of ", a.frame_end() - a.frame_begin()));
  }
  const auto t_close = Clock::now();
  if (st.ok()) st = (*sink)->Close();
  sink->reset();
  const double close_s = Since(t_close);
  report.continued_decode = report_continued;
  spdlog::info(
      "chunk job={} task={} frames=[{}, {}) path={} decoder={} open_source={:.3f} "
      "open_sink={:.3f} decode={:.3f} {}={:.3f} encode={:.3f} close={:.3f}",
      a.job_id(), a.task_index(), decode_begin, decode_end, report.frame_path,
      report_continued ? "continued" : "opened", open_source_s, open_sink_s, decode_s,
      native ? "resize" : "infer", infer_s, encode_s, close_s);
  // A movie's source is kept for the next chunk when frames follow this one's and it
  // stands at the first of them: a temporal model's source stands past this chunk's
  // context, after frames the next chunk needs, so that one opens its own.
  const bool keep = st.ok() && !input_key.empty() && decode_end == range.target_end &&
                    decode_end < range.input_last + 1;
  if (native) {
    if (keep) kept_->Keep(input_key, std::move(native_source));
    // The encoder's and decoder's memory goes back to the system now: with the heap
    // kept at its peak (KeepFrameBuffersInHeap), each chunk's new encoder would
    // otherwise grow the worker further (595 MiB after 5 chunks against 464 after one,
    // at 1440p). The native path has no float frames whose page faults this would cost.
    native_source.reset();
    malloc_trim(0);
  } else if (keep) {
    kept_->Keep(input_key, std::move(source));
  }
  if (st.ok() && !sequence_out) {
    auto t = Clock::now();
    st = storage_.Publish(tmp, out_path);
    report.stage_seconds["publish"] = Since(t);
  }
  if (st.ok()) {
    // What the assembly checks it joins: these bytes, these frames.
    auto digest = common::Sha256Files(
        sequence_out ? SequenceFiles(out_path, range.target_begin, range.target_end)
                     : std::vector<fs::path>{out_path});
    if (digest.ok()) report.output_digest = "sha256:" + *digest;
    st = digest.status();
  }
  if (!st.ok()) {
    fs::remove(tmp, ec);
    TaskReport failed = Failure(named(st), absl::StrCat("input '", up.input(), "': "));
    failed.frames_done = written;
    failed.stage_seconds = report.stage_seconds;
    return failed;
  }
  check.AddNonFiniteSamples((*model)->TakeNonFiniteSamples());
  report.qc = check.Qc();
  report.thumbnail =
      MakeThumbnail(storage_, a.job_id(), absl::StrFormat("chunk_%06d.jpg", a.task_index()), check);
  if (check.first().width > 0) {
    // The chunk's first and last frames, small, for the assembly's seam check.
    absl::StatusOr<std::string> edges =
        WritePicture(storage_, a.job_id(), ChunkEdgesName(a.task_index()),
                     EncodeChunkEdges(check.first(), check.last()));
    if (!edges.ok()) {
      spdlog::warn("job={} task={} seam frames not kept: {}", a.job_id(), a.task_index(),
                   std::string(edges.status().message()));
    }
  }
  if (const std::string qc_error = QcFailure(up.qc(), report.qc); !qc_error.empty()) {
    report.error = qc_error;
    report.retryable = false;  // the same frames flag again on any worker
    return report;
  }
  report.ok = true;
  return report;
}

absl::StatusOr<inference::Generator*> TaskRunner::GetGenerator(const std::string& name) {
  auto it = generators_.find(name);
  if (it != generators_.end()) return it->second.get();
  for (const auto& m : common::FindModelPackages(options_.model_path)) {
    if (m.name != name) continue;
    auto t0 = Clock::now();
    ASSIGN_OR_RETURN(std::unique_ptr<inference::Generator> g,
                     inference::Generator::Load(m, options_.device));
    spdlog::info("model loaded model={} kind=denoiser device={} seconds={:.3f}", name,
                 options_.device, Since(t0));
    inference::Generator* raw = g.get();
    generators_[name] = std::move(g);
    return raw;
  }
  return absl::NotFoundError(absl::StrCat("model '", name, "' not found on the model path"));
}

// The first frame of `path` (a movie or an image sequence) as planar RGB.
static absl::StatusOr<media::Frame> ReadInitFrame(const FrameIo& io, const std::string& path,
                                                  const std::string& spec) {
  absl::StatusOr<std::unique_ptr<media::FrameSource>> source;
  if (media::HasFramePattern(spec)) {
    ASSIGN_OR_RETURN(media::VideoInfo info, media::ProbeImageSequence(path));
    source = io.open_image_sequence(path, info.first_frame, info.first_frame + 1);
  } else {
    source = io.open_movie(path, 0, 1);
  }
  if (!source.ok()) return source.status();
  media::Frame f;
  ASSIGN_OR_RETURN(bool got, (*source)->Next(&f));
  if (!got)
    return absl::FailedPreconditionError(absl::StrCat("generate.init '", spec, "' has no frame"));
  return f;
}

// The sampler request of an assigned take: the resolved take (wedge.h) and the spec's
// shared values. The init image, read from storage, is the caller's to add.
static inference::GenerateRequest ToGenerateRequest(const v1::GenerateSpec& g,
                                                    const v1::GenerateTake& take) {
  inference::GenerateRequest req;
  req.prompt = take.prompt();
  req.negative_prompt = g.negative_prompt();
  req.sampler = take.sampler();
  req.seed = take.seed();
  req.steps = take.steps();
  req.guidance_scale = take.guidance_scale();
  req.width = g.width();
  req.height = g.height();
  req.frames = g.frames();
  return req;
}

TaskReport TaskRunner::RunTake(const v1::Assignment& a,
                               const std::function<void(int64_t)>& progress,
                               const std::atomic<bool>& cancelled) {
  const v1::GenerateSpec& g = a.generate();
  const v1::GenerateTake& take = a.take();
  const std::string context = absl::StrCat("take ", a.take_name(), ": ");
  auto generator = GetGenerator(g.model());
  if (!generator.ok()) return Failure(generator.status(), context);
  auto format =
      media::ResolveOutputFormat(a.take_output(), g.format().codec(), g.format().pix_fmt(),
                                 g.format().preset(), g.has_crf() ? g.crf() : common::kDefaultCrf);
  if (!format.ok()) return Failure(format.status(), context);
  auto output = storage_.ResolveJobPath(a.take_output(), "generate.output");
  if (!output.ok()) return Failure(output.status(), context);
  // The take is written in the job's staging folder and published when complete, all of
  // it or nothing, never over a file that is not the job's unless it says overwrite.
  auto staging = OpenStaging(a.job_id(), absl::StrCat("take_", a.task_index()));
  if (!staging.ok()) return Failure(staging.status(), context);
  auto out_dir = storage_.OpenDirBeneath(output->parent_path(), true, "generate.output");
  if (!out_dir.ok()) return Failure(out_dir.status(), context);
  const fs::path staged = fs::path(staging->path()) / output->filename();
  const fs::path final_path = fs::path(out_dir->path()) / output->filename();

  // Every file of the take, staged and final. All published already: an earlier
  // attempt did it and could not report.
  std::vector<common::Storage::StagedFile> files;
  if (format->image_sequence()) {
    for (int64_t i = 0; i < g.frames(); ++i) {
      const std::string name = media::FramePath(output->filename().string(), i);
      files.push_back({fs::path(staging->path()) / name, fs::path(out_dir->path()) / name});
    }
  } else {
    files.push_back({staged, final_path});
  }
  const bool published = std::all_of(files.begin(), files.end(), [](const auto& f) {
    return common::Storage::IsPublished(f.first, f.second);
  });
  TaskReport report;
  report.model_digest = (*generator)->digest();
  absl::Status st;
  if (!published) {
    inference::GenerateRequest req = ToGenerateRequest(g, take);
    if (!g.init().empty()) {
      auto init_path = storage_.ResolveJobPath(g.init(), "generate.init");
      if (!init_path.ok()) return Failure(init_path.status(), context);
      auto init = ReadInitFrame(options_.frames, init_path->string(), g.init());
      if (!init.ok()) return Failure(init.status(), context);
      req.init_rgb.assign(init->planes.begin(), init->planes.end());
      req.init_width = init->width;
      req.init_height = init->height;
      req.strength = g.strength();
    }

    auto t0 = Clock::now();
    absl::StatusOr<inference::GeneratedClip> clip;
    {
      c10::InferenceMode guard;
      clip = (*generator)
                 ->Generate(
                     req, [&] { return cancelled.load(); }, nullptr);
    }
    report.stage_seconds["infer"] = Since(t0);
    report.model_digest = (*generator)->digest();
    if (!clip.ok()) return Failure(clip.status(), context);

    // The frames: an image sequence to its names in the staging folder, a movie to a
    // temporary name there, renamed when complete.
    std::error_code ec;
    const fs::path tmp = common::Storage::TempPathFor(staged);
    absl::StatusOr<std::unique_ptr<media::FrameSink>> sink;
    if (format->image_sequence()) {
      media::ImageSequenceOptions o;
      o.width = clip->width;
      o.height = clip->height;
      o.codec = format->codec;
      o.storage = &storage_;
      sink = options_.frames.open_image_sequence_sink(staged.string(), o);
    } else {
      media::EncodeOptions enc;
      enc.width = clip->width;
      enc.height = clip->height;
      enc.fps_num = g.fps();
      enc.fps_den = 1;
      enc.codec = format->codec;
      enc.pix_fmt = format->pix_fmt;
      enc.container = format->container;
      enc.crf = format->crf;
      enc.preset = format->preset;
      enc.colour.primaries = enc.colour.transfer = enc.colour.matrix = 1;  // BT.709
      sink = options_.frames.open_movie_sink(tmp.string(), enc);
    }
    if (!sink.ok()) return Failure(sink.status(), context);
    t0 = Clock::now();
    OutputCheck check(static_cast<int64_t>(clip->frames.size()));
    std::vector<media::Frame> preview;
    for (size_t i = 0; i < clip->frames.size() && st.ok(); ++i) {
      if (cancelled.load()) st = absl::CancelledError("task cancelled");
      media::Frame f;
      f.width = clip->width;
      f.height = clip->height;
      f.index = static_cast<int64_t>(i);
      f.planes.assign(clip->frames[i].begin(), clip->frames[i].end());
      clip->frames[i] = {};
      check.Add(f);
      preview.push_back(media::ShrinkFrame(f, kPreviewWidth));
      if (st.ok()) st = (*sink)->Write(f);
      if (st.ok()) progress(++report.frames_done);
    }
    if (st.ok()) st = (*sink)->Close();
    sink->reset();
    if (st.ok() && !format->image_sequence()) st = storage_.Publish(tmp, staged);
    report.stage_seconds["encode"] = Since(t0);
    if (!st.ok()) {
      fs::remove(tmp, ec);
      return Failure(common::NameFdPath(st, *out_dir, RelativeFolder(a.take_output())), context);
    }
    report.qc = check.Qc();
    report.thumbnail = MakeThumbnail(storage_, a.job_id(),
                                     absl::StrFormat("take_%04d.jpg", a.task_index()), check);
    absl::StatusOr<std::string> webp = media::EncodeAnimatedWebp(preview, g.fps());
    if (webp.ok()) {
      webp = WritePicture(storage_, a.job_id(), absl::StrFormat("take_%04d.webp", a.task_index()),
                          *webp);
    }
    if (webp.ok()) {
      report.preview = *webp;
    } else {
      spdlog::warn("job={} take {} preview not made: {}", a.job_id(), a.task_index(),
                   std::string(webp.status().message()));
    }
  }
  // Provenance: the server's record of the job and take, the model and this worker.
  nlohmann::json prov = nlohmann::json::parse(a.provenance_json(), nullptr, false);
  if (prov.is_discarded()) prov = nlohmann::json::object();
  prov["model"] = {{"name", g.model()}, {"digest", report.model_digest}};
  prov["output"] = a.take_output();
  prov["worker"] = options_.worker_name;
  prov["device"] = options_.device;
  prov["threads"] = at::get_num_threads();
  prov["seconds"] = report.stage_seconds;
  // The frames and the sidecar are published together: all of them, or nothing.
  Publication pub;
  pub.final_dir = fs::path(out_dir->path());
  pub.staging = fs::path(staging->path());
  pub.files = std::move(files);
  st = StageSidecar(std::move(prov), output->filename().string(), &pub);
  if (st.ok()) st = storage_.PublishStaged(pub.files, g.overwrite());
  if (!st.ok()) {
    return Failure(common::NameFdPath(st, *out_dir, RelativeFolder(a.take_output())), context);
  }
  report.ok = true;
  return report;
}

TaskReport TaskRunner::RunAssemble(const v1::Assignment& a) {
  const v1::UpscaleSpec& up = a.upscale();
  auto format = media::ResolveOutputFormat(up.output(), up.format().codec(), up.format().pix_fmt(),
                                           up.format().preset(),
                                           up.has_crf() ? up.crf() : common::kDefaultCrf);
  if (!format.ok()) return Failure(format.status(), "");
  auto output = storage_.ResolveJobPath(up.output(), "upscale.output");
  if (!output.ok()) return Failure(output.status(), "");
  const std::string context = absl::StrCat("assemble '", up.output(), "': ");
  TaskReport report;
  auto t = Clock::now();
  // Everything the job publishes (the movie or the frames, and the sidecar) is staged
  // first and then published at once: all of it, or nothing.
  Publication pub;
  auto dir = storage_.OpenDirBeneath(output->parent_path(), true, "upscale.output");
  if (!dir.ok()) return Failure(dir.status(), "");
  auto staging = OpenStaging(a.job_id(), "");
  if (!staging.ok()) return Failure(staging.status(), "");
  pub.final_dir = fs::path(dir->path());
  pub.staging = fs::path(staging->path());
  absl::Status st = format->image_sequence() ? StageSequence(a, *output, &pub)
                                             : StageMovie(a, *format, *output, &pub);
  if (st.ok()) {
    // Seam flicker, before anything is published: a job that says qc: fail publishes
    // nothing flagged.
    report.qc = MeasureSeams(a);
    if (const std::string qc_error = QcFailure(up.qc(), report.qc); !qc_error.empty()) {
      report.error = absl::StrCat(context, qc_error);
      report.retryable = false;
      return report;
    }
  }
  if (st.ok()) st = StageUpscaleSidecar(a, output->filename().string(), &pub, &report);
  if (st.ok()) st = storage_.PublishStaged(pub.files, up.overwrite());
  st = common::NameFdPath(st, *dir, RelativeFolder(up.output()));
  if (!st.ok()) return Failure(st, context);
  report.stage_seconds["assemble"] = Since(t);
  // The job's scratch (segments, staged files) is removed by the server once the job
  // has succeeded: until then a retry of this task finds what it published.
  report.ok = true;
  return report;
}

v1::TaskQc TaskRunner::MeasureSeams(const v1::Assignment& a) const {
  if (a.segments_size() < 2 || a.segment_median_differences_size() != a.segments_size()) return {};
  // Each chunk kept its first and last frames (small, as its median was measured): the
  // seams are measured without decoding a segment.
  std::vector<double> differences;
  media::Frame last_before;
  for (int i = 0; i < a.segments_size(); ++i) {
    media::Frame first, last;
    absl::Status st = [&]() -> absl::Status {
      ASSIGN_OR_RETURN(std::string bytes, ReadPicture(storage_, a.job_id(), ChunkEdgesName(i)));
      return DecodeChunkEdges(bytes, &first, &last);
    }();
    if (!st.ok()) {
      spdlog::warn("job={} seams not measured: chunk {}: {}", a.job_id(), i,
                   std::string(st.message()));
      return {};
    }
    if (i > 0) differences.push_back(media::MeanAbsoluteDifference(last_before, first));
    last_before = std::move(last);
  }
  return SeamQc(differences,
                {a.segment_median_differences().begin(), a.segment_median_differences().end()});
}

absl::StatusOr<std::unique_ptr<media::FrameSink>> TaskRunner::OpenSink(
    const v1::Assignment& a, const media::OutputFormat& format, const std::string& path,
    const media::ColourPipeline* colour, bool native) {
  const v1::UpscaleSpec& up = a.upscale();
  const v1::MediaInfo& in = a.input_info();
  if (format.image_sequence()) {
    media::ImageSequenceOptions o;
    o.width = in.width() * up.scale();
    o.height = in.height() * up.scale();
    o.codec = format.codec;
    o.first_number = 0;  // frames carry their input's number as index
    o.storage = &storage_;
    if (colour) o.chromaticities = media::ChromaticitiesOf(colour->output_space());
    return options_.frames.open_image_sequence_sink(path, o);
  }
  media::EncodeOptions enc;
  enc.width = in.width() * up.scale();
  enc.height = in.height() * up.scale();
  enc.fps_num = in.fps_num();
  enc.fps_den = in.fps_den();
  enc.codec = format.codec;
  enc.pix_fmt = format.pix_fmt;
  enc.container = "mov";  // segments; assembly writes the job's container
  enc.crf = format.crf;
  enc.preset = format.preset;
  enc.colour.primaries = in.colour_primaries();
  enc.colour.transfer = in.colour_transfer();
  enc.colour.matrix = in.colour_matrix();
  enc.colour.range = in.colour_range();
  if (colour) {
    // The output space's tags; the range stays the encoder's (full for h264/h265 RGB).
    if (auto tags = media::VideoTagsOf(colour->output_space())) {
      enc.colour.primaries = tags->primaries;
      enc.colour.transfer = tags->transfer;
      enc.colour.matrix = tags->matrix;
    }
  }
  enc.native_frames = native;
  enc.first_index = in.first_frame() + a.frame_begin();
  return options_.frames.open_movie_sink(path, enc);
}

absl::StatusOr<common::UniqueFd> TaskRunner::OpenStaging(int64_t job_id,
                                                         const std::string& sub) const {
  std::string dir = common::Storage::JobStagingDir(job_id);
  if (!sub.empty()) dir += "/" + sub;
  return storage_.OpenDirBeneath(dir, true, "staging");
}

// Checks a chunk's output against the digest its accepted result reported: a segment
// changed since (by another job, a person, a zombie) is never joined.
static absl::Status CheckChunkOutput(const v1::Assignment& a, int i,
                                     const std::vector<fs::path>& files) {
  if (i >= a.segment_digests_size() || a.segment_digests(i).empty()) return absl::OkStatus();
  auto digest = common::Sha256Files(files);
  if (digest.status().code() == absl::StatusCode::kNotFound) {
    return absl::UnavailableError(
        absl::StrCat("chunk ", i + 1, "'s output '", a.segments(i), "' is missing a file"));
  }
  if (!digest.ok()) return digest.status();
  if ("sha256:" + *digest != a.segment_digests(i)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "chunk ", i + 1, "'s output '", a.segments(i),
        "' is not what the chunk published (its SHA-256 differs): it was changed since; "
        "submit the job again"));
  }
  return absl::OkStatus();
}

absl::Status TaskRunner::StageSequence(const v1::Assignment& a, const fs::path& output,
                                       Publication* pub) {
  const std::string pattern = output.filename().string();
  // Chunks cover the job's frames in order: chunk i's count is segment_frames(i).
  int64_t number = a.input_info().first_frame();
  for (int i = 0; i < a.segments_size(); ++i) {
    const int64_t count = i < a.segment_frames_size() ? a.segment_frames(i) : 0;
    ASSIGN_OR_RETURN(fs::path folder,
                     storage_.Resolve(SequenceChunkFolder(a.segments(i)), "segment"));
    auto fd = storage_.OpenDirBeneath(folder, false, "segment");
    if (fd.status().code() == absl::StatusCode::kNotFound) {
      return absl::UnavailableError(
          absl::StrCat("chunk ", i + 1, "'s frames '", a.segments(i), "' are missing"));
    }
    if (!fd.ok()) return fd.status();
    const std::vector<fs::path> staged =
        SequenceFiles(fs::path(fd->path()) / pattern, number, number + count);
    RETURN_IF_ERROR(CheckChunkOutput(a, i, staged));
    for (int64_t k = 0; k < count; ++k) {
      pub->files.push_back({staged[k], pub->final_dir / media::FramePath(pattern, number + k)});
    }
    number += count;
    pub->dirs.push_back(std::move(*fd));
  }
  return absl::OkStatus();
}

absl::Status TaskRunner::StageMovie(const v1::Assignment& a, const media::OutputFormat& format,
                                    const fs::path& output, Publication* pub) {
  const v1::UpscaleSpec& up = a.upscale();
  const fs::path final_path = pub->final_dir / output.filename();
  const fs::path staged = pub->staging / output.filename();
  pub->files.push_back({staged, final_path});
  if (common::Storage::IsPublished(staged, final_path)) {
    return absl::OkStatus();  // by an earlier attempt that did not report
  }
  // Every file is opened beneath the root at the time of use (see RunChunk).
  std::vector<common::UniqueFd> open_files;
  std::vector<std::string> segments;
  for (int i = 0; i < a.segments_size(); ++i) {
    const std::string& s = a.segments(i);
    ASSIGN_OR_RETURN(fs::path p, storage_.Resolve(s, "segment"));
    auto fd = storage_.OpenBeneath(p, O_RDONLY, "segment");
    if (fd.status().code() == absl::StatusCode::kNotFound) {
      // The chunk said it published it; the shared storage lost it. Worth a retry.
      return absl::UnavailableError(absl::StrCat("segment '", s, "' is missing"));
    }
    if (!fd.ok()) return fd.status();
    RETURN_IF_ERROR(CheckChunkOutput(a, i, {fs::path(fd->path())}));
    segments.push_back(fd->path());
    open_files.push_back(std::move(*fd));
  }
  const v1::MediaInfo& info = a.input_info();
  std::string audio, timecode;
  bool input_open = false;
  if (!media::HasFramePattern(up.input())) {
    ASSIGN_OR_RETURN(fs::path input, storage_.ResolveJobPath(up.input(), "upscale.input"));
    ASSIGN_OR_RETURN(common::UniqueFd fd, storage_.OpenBeneath(input, O_RDONLY, "upscale.input"));
    if (info.has_audio()) audio = fd.path();
    // The output starts at the timecode of its first frame in the input.
    absl::StatusOr<std::string> start = media::ReadTimecode(fd.path());
    if (!start.ok()) return common::NameFdPath(start.status(), fd, up.input());
    if (!start->empty()) {
      auto shifted =
          media::TimecodeAfter(*start, info.fps_num(), info.fps_den(), info.first_frame());
      if (shifted.ok()) {
        timecode = *shifted;
      } else {
        spdlog::warn("job {}: timecode not carried: {}", a.job_id(),
                     std::string(shifted.status().message()));
      }
    }
    open_files.push_back(std::move(fd));
    input_open = true;
  }
  std::error_code ec;
  const fs::path tmp = common::Storage::TempPathFor(staged);
  absl::Status st =
      media::ConcatSegments(segments, tmp.string(), format.container, audio, timecode);
  if (st.ok()) st = storage_.Publish(tmp, staged);
  if (!st.ok()) fs::remove(tmp, ec);
  for (size_t i = 0; i < open_files.size() && i < static_cast<size_t>(a.segments_size()); ++i) {
    st = common::NameFdPath(st, open_files[i], a.segments(static_cast<int>(i)));
  }
  if (input_open) st = common::NameFdPath(st, open_files.back(), up.input());
  return st;
}

nlohmann::json TaskRunner::UpscaleColourProvenance(const v1::Assignment& a) const {
  const v1::UpscaleSpec& up = a.upscale();
  // What the chunks did, set up again from the same spec, package and input.
  std::string first_file;
  if (auto input = storage_.ResolveJobPath(up.input(), "upscale.input"); input.ok()) {
    first_file = media::HasFramePattern(up.input())
                     ? media::FramePath(input->string(), a.input_info().first_frame())
                     : input->string();
  }
  auto colour = SetUpColour(up, a.input_info(), first_file, options_.model_path, storage_);
  if (!colour.ok()) return {{"error", std::string(colour.status().message())}};
  return ColourProvenance(*colour);
}

absl::Status TaskRunner::StageUpscaleSidecar(const v1::Assignment& a, const std::string& name,
                                             Publication* pub, TaskReport* report) {
  const v1::UpscaleSpec& up = a.upscale();
  // Provenance: what the server knows of the job, plus this worker's software.
  nlohmann::json prov = nlohmann::json::parse(a.provenance_json(), nullptr, false);
  if (prov.is_discarded()) prov = nlohmann::json::object();
  std::string digest;
  if (prov.contains("chunks") && !prov["chunks"].empty()) {
    digest = prov["chunks"][0].value("model_digest", "");
  }
  prov["model"] = {{"name", up.model()}, {"scale", up.scale()}, {"digest", digest}};
  // Where an imported model came from (package, version, licence, SHA-256).
  for (const auto& m : common::FindModelPackages(options_.model_path)) {
    if (m.name != up.model() || m.source_json.empty()) continue;
    prov["model"]["source"] = nlohmann::json::parse(m.source_json, nullptr, false);
  }
  prov["output"] = up.output();
  prov["colour"] = UpscaleColourProvenance(a);
  prov["assembled_by"] = options_.worker_name;
  prov["assembled_unix_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count();
  report->model_digest = digest;
  return StageSidecar(std::move(prov), name, pub);
}

absl::Status TaskRunner::StageSidecar(nlohmann::json prov, const std::string& output_name,
                                      Publication* pub) const {
  const std::string name = output_name + ".json";
  const fs::path staged = pub->staging / name;
  const fs::path sidecar = pub->final_dir / name;
  pub->files.push_back({staged, sidecar});
  if (common::Storage::IsPublished(staged, sidecar)) return absl::OkStatus();
  prov["software"] = {{"reelfarm", REELFARM_VERSION},
                      {"ffmpeg", media::LibraryVersions()},
                      {"libtorch", TORCH_VERSION}};
  const fs::path tmp = common::Storage::TempPathFor(staged);
  absl::Status st = storage_.WriteFile(tmp, prov.dump(2) + "\n", name);
  if (st.ok()) st = storage_.Publish(tmp, staged);
  std::error_code ec;
  if (!st.ok()) fs::remove(tmp, ec);
  return st;
}

void RestartWithPassiveOpenMpWaits(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  if (setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0) return;
  execv("/proc/self/exe", argv);
  // exec failed (no /proc?): keep running with the policy libgomp already has.
}

void KeepFrameBuffersInHeap() {
  mallopt(M_MMAP_THRESHOLD, 512 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

}  // namespace reelfarm::worker
