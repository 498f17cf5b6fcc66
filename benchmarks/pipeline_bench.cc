// Throughput of the worker's chunk pipeline (decode → model → encode on their own
// threads) on a 1280x720 testsrc2 clip, for the built-in bicubic and a small
// ESPCN-style ×2 TorchScript model, against each stage alone and against the script a
// TD would write (Python + python3-torch between two ffmpeg rawvideo pipes).
// Prints one JSON line per model. Usage:
//   reelfarm-bench-pipeline [--frames 240] [--threads N] [--model bicubic|espcn2x]
//                           [--no-python] [--e2e-only] [--keep DIR]
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

#include <sys/resource.h>

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

// User + system CPU seconds of the whole process so far.
double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
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

}  // namespace

int main(int argc, char** argv) {
  worker::RestartWithPassiveOpenMpWaits(argv);  // as the worker runs
  int frames = 240;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  bool python = true;
  bool stages = true;  // --e2e-only: the pipeline alone (for profiling it)
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
      stages = python = false;
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
      "ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=s=1280x720:r=24 "
      "-frames:v " +
      std::to_string(frames) + " -c:v libx264 -crf 18 -pix_fmt yuv420p '" + clip.string() + "'";
  if (std::system(make.c_str()) != 0) Die("ffmpeg could not make the clip");
  WriteEspcn(work / "models/espcn2x");
  const fs::path script = work / "td_baseline.py";
  std::ofstream(script) << kPythonScript;

  auto storage = common::Storage::Open(work / "storage");
  Check(storage.status());
  worker::PipelineOptions popts;
  popts.model_path = {(work / "models").string()};
  worker::TaskRunner runner(**storage, popts);

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
    const double cpu0 = CpuSeconds();
    const worker::TaskReport r = runner.Run(
        a, [](int64_t) {}, cancelled);
    const double e2e_cpu_ms = (CpuSeconds() - cpu0) * 1e3 / frames;
    if (!r.ok) Die(model_name + ": " + r.error);
    const double e2e = frames / r.seconds;

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
    };
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
  if (keep.empty()) fs::remove_all(work);
  return 0;
}
