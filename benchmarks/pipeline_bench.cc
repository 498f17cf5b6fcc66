// Throughput of the worker's chunk pipeline (decode → model → encode on their own
// threads) on a 1280x720 testsrc2 clip, for the built-in bicubic and a small
// ESPCN-style ×2 TorchScript model, against each stage alone, against the script a
// TD would write (Python + python3-torch between two ffmpeg rawvideo pipes) and against
// the ffmpeg one-liner (bicubic scale + the same x264 settings) on the same clip.
// Each stage's CPU is measured alone and inside the pipeline run: stage-alone CPU
// overstates what a stage costs beside the others (caches, codec threads), so the
// bound that e2e is held to is the one measured in the same run.
// Prints one JSON line per model.
// Last, chunks that start mid-GOP (the clip is one GOP): the CPU to decode frames
// [s, s + 48) from a new source (OpenNativeVideoSource, as a worker opens a chunk
// another slot's decoder did not lead up to) against `ffmpeg -threads 1 -ss T -i clip
// -frames:v 48 -f null -` (an accurate seek: the keyframe before, then every frame up
// to T decoded), medians of 3 alternated runs, one JSON line; s = 0 is the chunk with
// nothing before it (ffmpeg's start-up is in its figures), and preroll_ratio compares
// what the frames before a chunk cost each (its figure less the one at s = 0). Usage:
//   reelfarm-bench-pipeline [--frames 240] [--threads N] [--model bicubic|espcn2x]
//                           [--no-python] [--e2e-only] [--chunks-only] [--keep DIR]
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <dirent.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <iterator>
#include <map>
#include <mutex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/storage.h"
#include "media/media.h"
#include "worker/inference/model.h"
#include "worker/pipeline.h"

namespace fs = std::filesystem;
using namespace reelfarm;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kWidth = 1280, kHeight = 720;
constexpr int kRate = 24;  // frames per second of the clip the bench makes

double Seconds(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void Die(const std::string& what) {
  std::cerr << "bench: " << what << "\n";
  std::exit(1);
}

void Check(const absl::Status& st) {
  if (!st.ok()) Die(st.ToString());
}

// ESPCN-style ×2 (Shi et al. 2016, narrowed): 5x5 conv to 16, tanh, 3x3 to 16, tanh,
// 3x3 to 12, pixel_shuffle. Random weights: the work, not the picture, is measured.
void WriteEspcn(const fs::path& dir) {
  fs::create_directories(dir);
  at::manual_seed(1);
  torch::jit::Module m("Espcn");
  m.register_parameter("w1", at::randn({16, 3, 5, 5}) * 0.1, false);
  m.register_parameter("b1", at::zeros({16}), false);
  m.register_parameter("w2", at::randn({16, 16, 3, 3}) * 0.1, false);
  m.register_parameter("b2", at::zeros({16}), false);
  m.register_parameter("w3", at::randn({12, 16, 3, 3}) * 0.1, false);
  m.register_parameter("b3", at::full({12}, 0.5), false);
  m.define(R"(
def forward(self, x):
    h = torch.tanh(torch.conv2d(x, self.w1, self.b1, 1, 2))
    h = torch.tanh(torch.conv2d(h, self.w2, self.b2, 1, 1))
    return torch.pixel_shuffle(torch.conv2d(h, self.w3, self.b3, 1, 1), 2)
)");
  m.save((dir / "model.pt").string());
  std::ofstream(dir / "model.json") << R"({"kind": "upscaler", "scale": 2})"
                                    << "\n";
}

// The TD's script: frames in from one ffmpeg pipe, through torch, out to another.
const char* kPythonScript = R"PY(
import subprocess, sys, time
import numpy as np, torch, torch.nn.functional as F
clip, model, out, frames, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
w, h = 1280, 720
net = None if model == "bicubic" else torch.jit.load(model).eval()
src = subprocess.Popen(["ffmpeg", "-v", "error", "-i", clip, "-frames:v", str(frames),
                        "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], stdout=subprocess.PIPE)
dst = subprocess.Popen(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                        "-s", f"{2*w}x{2*h}", "-r", "24", "-i", "-", "-c:v", "libx264",
                        "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", out],
                       stdin=subprocess.PIPE)
n = 0
with torch.inference_mode():
    while True:
        buf = src.stdout.read(w * h * 3)
        if len(buf) < w * h * 3:
            break
        x = torch.from_numpy(np.frombuffer(buf, np.uint8).reshape(h, w, 3)).permute(2, 0, 1)
        x = x.unsqueeze(0).float().div_(255)
        y = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False) if net is None else net(x)
        y = y.clamp_(0, 1).mul_(255).round_().to(torch.uint8)[0].permute(1, 2, 0).contiguous()
        dst.stdin.write(y.numpy().tobytes())
        n += 1
dst.stdin.close()
dst.wait(); src.wait()
print(n)
)PY";

struct StageFps {
  double decode = 0, infer = 0, encode = 0;
  // CPU time (all threads of the process) per frame, in milliseconds.
  double decode_cpu_ms = 0, infer_cpu_ms = 0, encode_cpu_ms = 0;
};

// User + system CPU seconds so far of the whole process (RUSAGE_SELF), or of its
// children that were waited for (RUSAGE_CHILDREN).
double CpuSeconds(int who = RUSAGE_SELF) {
  rusage u{};
  getrusage(who, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// CPU seconds of the calling thread.
double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

// The CPU of the process's threads by name, sampled every 50 ms (and on demand): codec
// threads (libavcodec's, x264's) are the codecs' own, started inside the open calls, so
// they are found by the name they inherit from the thread that opened the codec.
class ThreadCpuMonitor {
 public:
  ThreadCpuMonitor() : thread_([this] { Loop(); }) {}
  ~ThreadCpuMonitor() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    thread_.join();
  }
  // CPU seconds of every thread named `name` now or when last seen (ended ones too).
  double Seconds(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    SampleLocked();
    double total = 0;
    for (const auto& [tid, t] : seen_) {
      if (t.first == name) total += t.second;
    }
    return total;
  }
  // Forget every thread seen so far (between runs).
  void Reset() {
    std::lock_guard<std::mutex> lock(mu_);
    seen_.clear();
  }

 private:
  void Loop() {
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stop_) return;
        SampleLocked();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  void SampleLocked() {
    static const double kTick = static_cast<double>(sysconf(_SC_CLK_TCK));
    DIR* dir = opendir("/proc/self/task");
    if (dir == nullptr) return;
    while (dirent* e = readdir(dir)) {
      if (e->d_name[0] == '.') continue;
      std::ifstream in(std::string("/proc/self/task/") + e->d_name + "/stat");
      std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      const size_t open = stat.find('('), close = stat.rfind(')');
      if (open == std::string::npos || close == std::string::npos) continue;
      // After the name: state (field 3) ... utime (14), stime (15).
      std::istringstream rest(stat.substr(close + 2));
      std::string field;
      double utime = 0, stime = 0;
      for (int i = 3; i <= 15 && rest >> field; ++i) {
        if (i == 14) utime = std::atof(field.c_str());
        if (i == 15) stime = std::atof(field.c_str());
      }
      auto& t = seen_[std::atol(e->d_name)];
      t.first = stat.substr(open + 1, close - open - 1);
      t.second = std::max(t.second, (utime + stime) / kTick);
    }
    closedir(dir);
  }

  std::mutex mu_;
  bool stop_ = false;
  std::map<long, std::pair<std::string, double>> seen_;  // tid → (name, CPU seconds)
  std::thread thread_;
};

// The CPU that the pipeline's decode and encode stages spend in one run: their own
// threads' (thread CPU clock around each call), their codecs' threads', and the
// encoder's flush in Close (nothing else runs then: the pipeline has joined its stages).
struct StageCpuInRun {
  double decode_thread = 0, encode_thread = 0, encode_close = 0, encode_codec_threads = 0;
};
StageCpuInRun g_stage_cpu;
ThreadCpuMonitor* g_monitor = nullptr;
constexpr const char* kDecodeThreads = "rf-bench-decode";
constexpr const char* kEncodeThreads = "rf-bench-encode";

// Runs `open` with the calling thread named `name`, so that the threads the codec
// starts inherit it; the thread's own name is put back after.
template <typename F>
auto OpenNamed(const char* name, F&& open) {
  char old[16] = {};
  pthread_getname_np(pthread_self(), old, sizeof(old));
  pthread_setname_np(pthread_self(), name);
  auto opened = open();
  pthread_setname_np(pthread_self(), old);
  return opened;
}

class TimedSource final : public media::FrameSource {
 public:
  explicit TimedSource(std::unique_ptr<media::FrameSource> inner) : inner_(std::move(inner)) {}
  absl::StatusOr<bool> Next(media::Frame* frame) override {
    const double c0 = ThreadCpuSeconds();
    auto more = inner_->Next(frame);
    g_stage_cpu.decode_thread += ThreadCpuSeconds() - c0;
    return more;
  }

 private:
  std::unique_ptr<media::FrameSource> inner_;
};

class TimedSink final : public media::FrameSink {
 public:
  explicit TimedSink(std::unique_ptr<media::FrameSink> inner) : inner_(std::move(inner)) {}
  absl::Status Write(const media::Frame& frame) override {
    const double c0 = ThreadCpuSeconds();
    absl::Status st = inner_->Write(frame);
    g_stage_cpu.encode_thread += ThreadCpuSeconds() - c0;
    return st;
  }
  absl::Status Close() override {
    // x264's threads as they are before the flush; the flush itself as process CPU.
    g_stage_cpu.encode_codec_threads = g_monitor->Seconds(kEncodeThreads);
    const double c0 = CpuSeconds();
    absl::Status st = inner_->Close();
    g_stage_cpu.encode_close += CpuSeconds() - c0;
    return st;
  }

 private:
  std::unique_ptr<media::FrameSink> inner_;
};

// The ffmpeg one-liner on the same clip: bicubic ×2 and the pipeline's x264 settings.
struct OneLiner {
  double seconds = 0, cpu_seconds = 0;
};
OneLiner RunFfmpegOneLiner(const fs::path& clip, const fs::path& out) {
  const std::string cmd =
      "ffmpeg -nostdin -v error -y -i '" + clip.string() +
      "' -vf scale=" + std::to_string(2 * kWidth) + ":" + std::to_string(2 * kHeight) +
      ":flags=bicubic -c:v libx264 -crf 18 -preset veryfast '" + out.string() + "'";
  const double cpu0 = CpuSeconds(RUSAGE_CHILDREN);
  const auto t0 = Clock::now();
  if (std::system(cmd.c_str()) != 0) Die("the ffmpeg one-liner failed: " + cmd);
  OneLiner r;
  r.seconds = Seconds(t0);
  r.cpu_seconds = CpuSeconds(RUSAGE_CHILDREN) - cpu0;
  return r;
}

// Each stage alone: decode all frames; run the model and encode over the first
// kSample decoded frames, cycled to the same count (keeps memory near 1.3 GB; 24
// distinct pictures keep x264 from coding repeats for free).
constexpr size_t kSample = 24;
StageFps StagesAlone(const std::string& clip, inference::Model& model, int frames) {
  StageFps fps;
  std::vector<media::Frame> sample;
  auto t0 = Clock::now();
  double c0 = CpuSeconds();
  {
    auto source = media::OpenVideoSource(clip, 0, frames);
    Check(source.status());
    for (int i = 0; i < frames; ++i) {
      media::Frame f;
      auto more = (*source)->Next(&f);
      Check(more.status());
      if (sample.size() < kSample) sample.push_back(std::move(f));
    }
  }
  fps.decode = frames / Seconds(t0);
  fps.decode_cpu_ms = (CpuSeconds() - c0) * 1e3 / frames;

  std::vector<media::Frame> upscaled;
  t0 = Clock::now();
  c0 = CpuSeconds();
  {
    c10::InferenceMode guard;
    for (int i = 0; i < frames; ++i) {
      media::Frame& f = sample[i % sample.size()];
      const at::Tensor x = at::from_blob(f.planes.data(), {1, 3, f.height, f.width}, at::kFloat);
      media::Frame g;  // as the pipeline's model stage does: straight into a new frame
      g.width = f.width * model.scale();
      g.height = f.height * model.scale();
      g.planes.resize(3 * static_cast<size_t>(g.width) * g.height);
      at::Tensor out = at::from_blob(g.planes.data(), {1, 3, g.height, g.width}, at::kFloat);
      Check(model.UpscaleInto(x, out));
      if (upscaled.size() < sample.size()) upscaled.push_back(std::move(g));
    }
  }
  fps.infer = frames / Seconds(t0);
  fps.infer_cpu_ms = (CpuSeconds() - c0) * 1e3 / frames;

  const fs::path tmp = fs::temp_directory_path() / "reelfarm-bench-encode.mov";
  media::EncodeOptions enc;
  enc.width = 2 * kWidth;
  enc.height = 2 * kHeight;
  enc.container = "mov";
  t0 = Clock::now();
  c0 = CpuSeconds();
  {
    auto sink = media::OpenMovieSink(tmp.string(), enc);
    Check(sink.status());
    for (int i = 0; i < frames; ++i) Check((*sink)->Write(upscaled[i % upscaled.size()]));
    Check((*sink)->Close());
  }
  fps.encode = frames / Seconds(t0);
  fps.encode_cpu_ms = (CpuSeconds() - c0) * 1e3 / frames;
  fs::remove(tmp);
  return fps;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void ChunkDecodeAgainstFfmpeg(const fs::path& clip, int frames) {
  constexpr int kChunk = 48;
  nlohmann::json line = {{"bench", "chunk_decode_mid_gop"}, {"frames", kChunk}};
  for (int start = 0; start + kChunk <= frames; start += kChunk) {
    std::vector<double> ours, theirs;
    for (int run = 0; run < 3; ++run) {
      double cpu0 = CpuSeconds(RUSAGE_SELF);
      auto source = media::OpenNativeVideoSource(clip.string(), start, start + kChunk);
      Check(source.status());
      media::NativeFrame frame;
      int n = 0;
      for (;;) {
        auto more = (*source)->Next(&frame);
        Check(more.status());
        if (!*more) break;
        ++n;
      }
      if (n != kChunk) Die("the chunk read " + std::to_string(n) + " frames");
      source->reset();
      ours.push_back(CpuSeconds(RUSAGE_SELF) - cpu0);
      char ss[32];
      std::snprintf(ss, sizeof ss, "%.6f", start / static_cast<double>(kRate));
      const std::string cmd = "ffmpeg -nostdin -v error -threads 1 -ss " + std::string(ss) +
                              " -i '" + clip.string() + "' -frames:v " + std::to_string(kChunk) +
                              " -f null -";
      cpu0 = CpuSeconds(RUSAGE_CHILDREN);
      if (std::system(cmd.c_str()) != 0) Die("ffmpeg -ss failed");
      theirs.push_back(CpuSeconds(RUSAGE_CHILDREN) - cpu0);
    }
    line["cpu_seconds"][std::to_string(start)] = {{"reelfarm", Median(ours)},
                                                  {"ffmpeg_ss", Median(theirs)},
                                                  {"ratio", Median(ours) / Median(theirs)}};
    // What the frames before the chunk cost, over the chunk with nothing before it.
    // Null where ffmpeg's own preroll is lost in its noise (a start only a few frames
    // past the keyframe, or a short clip): no ratio to give.
    if (start > 0) {
      const auto& at0 = line["cpu_seconds"]["0"];
      const double their_preroll = Median(theirs) - at0["ffmpeg_ss"].get<double>();
      line["preroll_ratio"][std::to_string(start)] =
          their_preroll > 0.01
              ? nlohmann::json((Median(ours) - at0["reelfarm"].get<double>()) / their_preroll)
              : nlohmann::json(nullptr);
    }
  }
  std::cout << line.dump() << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
  worker::RestartWithPassiveOpenMpWaits(argv);  // as the worker runs
  int frames = 240;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  bool python = true;
  bool stages = true;  // --e2e-only: the pipeline alone (for profiling it)
  bool chunks = true;  // the mid-GOP chunk decode against ffmpeg -ss (--chunks-only: it alone)
  std::string keep;
  std::vector<std::string> models = {"bicubic", "espcn2x"};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--frames" && i + 1 < argc)
      frames = std::atoi(argv[++i]);
    else if (a == "--threads" && i + 1 < argc)
      threads = std::atoi(argv[++i]);
    else if (a == "--no-python")
      python = false;
    else if (a == "--e2e-only")
      stages = python = chunks = false;
    else if (a == "--chunks-only")
      models.clear();
    else if (a == "--model" && i + 1 < argc)
      models = {argv[++i]};
    else if (a == "--keep" && i + 1 < argc)
      keep = argv[++i];
    else
      Die("unknown argument '" + a + "'; see the header of pipeline_bench.cc");
  }
  worker::KeepFrameBuffersInHeap();
  at::set_num_threads(threads);
  media::SetLibraryLogging(false);
  const fs::path work =
      keep.empty() ? fs::temp_directory_path() / "reelfarm-bench" : fs::path(keep);
  fs::remove_all(work);
  fs::create_directories(work / "storage/plates");
  const fs::path clip = work / "storage/plates/bench.mp4";
  const std::string make =
      "ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=s=1280x720:r=" + std::to_string(kRate) +
      " -frames:v " + std::to_string(frames) + " -c:v libx264 -crf 18 -pix_fmt yuv420p '" +
      clip.string() + "'";
  if (std::system(make.c_str()) != 0) Die("ffmpeg could not make the clip");
  WriteEspcn(work / "models/espcn2x");
  const fs::path script = work / "td_baseline.py";
  std::ofstream(script) << kPythonScript;

  auto storage = common::Storage::Open(work / "storage");
  Check(storage.status());
  worker::PipelineOptions popts;
  popts.model_path = {(work / "models").string()};
  // The pipeline's own sources and sinks, measured (see StageCpuInRun).
  ThreadCpuMonitor monitor;
  g_monitor = &monitor;
  popts.frames.open_movie = [](const std::string& path, int64_t begin,
                               int64_t end) -> absl::StatusOr<std::unique_ptr<media::FrameSource>> {
    auto source =
        OpenNamed(kDecodeThreads, [&] { return media::OpenVideoSource(path, begin, end); });
    if (!source.ok()) return source.status();
    return std::make_unique<TimedSource>(std::move(*source));
  };
  popts.frames.open_movie_sink =
      [](const std::string& path,
         const media::EncodeOptions& o) -> absl::StatusOr<std::unique_ptr<media::FrameSink>> {
    auto sink = OpenNamed(kEncodeThreads, [&] { return media::OpenMovieSink(path, o); });
    if (!sink.ok()) return sink.status();
    return std::make_unique<TimedSink>(std::move(*sink));
  };
  worker::TaskRunner runner(**storage, popts);
  // The one-liner once per run, on the same clip, before the models (none with
  // --chunks-only, which compares against ffmpeg -ss alone).
  const OneLiner ffmpeg =
      models.empty() ? OneLiner{} : RunFfmpegOneLiner(clip, work / "oneliner.mp4");

  for (const std::string& model_name : models) {
    v1::Assignment a;
    a.set_job_id(1);
    a.set_kind(v1::TASK_KIND_CHUNK);
    a.set_frame_begin(0);
    a.set_frame_end(frames);
    a.set_segment("parts/" + model_name + ".mov");
    v1::UpscaleSpec* up = a.mutable_upscale();
    up->set_input("plates/bench.mp4");
    up->set_output("renders/" + model_name + ".mp4");
    up->set_model(model_name);
    up->set_scale(2);
    up->set_crf(18);
    v1::MediaInfo* in = a.mutable_input_info();
    in->set_width(kWidth);
    in->set_height(kHeight);
    in->set_frame_count(frames);
    in->set_fps_num(24);
    in->set_fps_den(1);
    std::atomic<bool> cancelled{false};
    g_stage_cpu = StageCpuInRun{};
    monitor.Reset();
    const double cpu0 = CpuSeconds();
    const worker::TaskReport r = runner.Run(
        a, [](int64_t) {}, cancelled);
    const double e2e_cpu_ms = (CpuSeconds() - cpu0) * 1e3 / frames;
    if (!r.ok) Die(model_name + ": " + r.error);
    const double e2e = frames / r.seconds;
    // Each stage's CPU inside this run, per frame. The model stage runs on the runner's
    // thread with LibTorch's pool: it is the rest of the process's CPU (with the
    // runner's own opening, publishing and digest, which are small).
    const double decode_in_ms =
        (g_stage_cpu.decode_thread + monitor.Seconds(kDecodeThreads)) * 1e3 / frames;
    const double encode_in_ms =
        (g_stage_cpu.encode_thread + g_stage_cpu.encode_codec_threads + g_stage_cpu.encode_close) *
        1e3 / frames;
    const double model_in_ms = std::max(0.0, e2e_cpu_ms - decode_in_ms - encode_in_ms);

    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    nlohmann::json line = {
        {"model", model_name},
        {"frames", frames},
        {"size", "1280x720 -> 2560x1440"},
        {"threads", threads},
        {"cores", cores},
        {"e2e_fps", e2e},
        {"e2e_cpu_ms_per_frame", e2e_cpu_ms},
        {"stage_busy_seconds_in_e2e", r.stage_seconds},
        {"stage_cpu_ms_per_frame_in_e2e",
         {{"decode", decode_in_ms}, {"model_and_rest", model_in_ms}, {"encode", encode_in_ms}}},
    };
    // Bounds from the same run: e2e cannot beat the cores' CPU spent at this run's cost
    // per frame, and the slowest stage's in-run CPU says which stage holds the rest up.
    const double slowest_in_ms = std::max({decode_in_ms, model_in_ms, encode_in_ms});
    const double cpu_bound_in_e2e = cores * 1e3 / e2e_cpu_ms;
    line["cpu_bound_fps_in_e2e"] = cpu_bound_in_e2e;
    line["e2e_over_cpu_bound_in_e2e"] = e2e / cpu_bound_in_e2e;
    line["slowest_stage_in_e2e"] = slowest_in_ms == decode_in_ms   ? "decode"
                                   : slowest_in_ms == encode_in_ms ? "encode"
                                                                   : "model_and_rest";
    line["slowest_stage_cpu_fps_in_e2e"] = 1e3 / slowest_in_ms;
    line["e2e_over_slowest_stage_cpu_in_e2e"] = e2e * slowest_in_ms / 1e3;
    line["ffmpeg_oneliner"] = {
        {"command",
         "ffmpeg -i clip -vf scale=2560:1440:flags=bicubic -c:v libx264 -crf 18 "
         "-preset veryfast out.mp4"},
        {"fps", frames / ffmpeg.seconds},
        {"cpu_ms_per_frame", ffmpeg.cpu_seconds * 1e3 / frames}};
    line["e2e_over_ffmpeg_oneliner"] = e2e / (frames / ffmpeg.seconds);
    if (stages) {
      auto model = inference::LoadModel(model_name, 2, popts.model_path, "cpu");
      Check(model.status());
      const StageFps alone = StagesAlone(clip.string(), **model, frames);
      const double slowest = std::min({alone.decode, alone.infer, alone.encode});
      // What the machine's cores allow when the stages share them: every stage's CPU
      // time per frame (alone) spent on all cores at once, and how near e2e comes.
      const double cpu_bound =
          cores * 1e3 / (alone.decode_cpu_ms + alone.infer_cpu_ms + alone.encode_cpu_ms);
      line["stage_fps_alone"] = {
          {"decode", alone.decode}, {"infer", alone.infer}, {"encode", alone.encode}};
      line["stage_cpu_ms_per_frame_alone"] = {{"decode", alone.decode_cpu_ms},
                                              {"infer", alone.infer_cpu_ms},
                                              {"encode", alone.encode_cpu_ms}};
      line["e2e_over_slowest_stage"] = e2e / slowest;
      line["cpu_bound_fps"] = cpu_bound;
      line["e2e_over_cpu_bound"] = e2e / cpu_bound;
    }
    if (python) {
      const std::string model_arg =
          model_name == "bicubic" ? "bicubic" : (work / "models/espcn2x/model.pt").string();
      const std::string cmd = "/usr/bin/python3 '" + script.string() + "' '" + clip.string() +
                              "' '" + model_arg + "' '" + (work / "td.mp4").string() + "' " +
                              std::to_string(frames) + " " + std::to_string(threads) +
                              " > /dev/null";
      const auto t0 = Clock::now();
      const int rc = std::system(cmd.c_str());
      const double secs = Seconds(t0);
      if (rc != 0) {
        line["python_error"] =
            "the Python baseline failed (is python3-torch installed? "
            "bash scripts/setup-bench-deps.sh)";
      } else {
        line["python_fps"] = frames / secs;
        line["ours_over_python"] = e2e / (frames / secs);
      }
    }
    std::cout << line.dump() << std::endl;
  }
  if (chunks) ChunkDecodeAgainstFfmpeg(clip, frames);
  if (keep.empty()) fs::remove_all(work);
  return 0;
}
