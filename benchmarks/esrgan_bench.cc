// Throughput of the imported ESRGAN models (scripts/fetch-models.sh) at 640x360 input:
// the model alone (UpscaleInto over decoded frames), end to end through the worker's
// chunk pipeline (decode -> model -> encode on their threads), and the script a TD
// would write (/usr/bin/python3 + python3-torch running the same TorchScript file
// between two ffmpeg rawvideo pipes; as saved, and frozen with optimize_for_inference
// as the worker runs it), in one run, LibTorch at --threads (default 2).
// Each is measured warm: the model alone after one call, the pipeline after a one-frame
// task, Python from its third frame. Prints one JSON line per model and scale. Usage:
//   reelfarm-bench-esrgan [--frames 8] [--threads 2] [--models esrgan-slim,esrgan-medium]
//                         [--scales 2,4] [--model-dir models] [--no-python]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/model_manifest.h"
#include "common/storage.h"
#include "media/media.h"
#include "worker/inference/model.h"
#include "worker/pipeline.h"

namespace fs = std::filesystem;
using namespace reelfarm;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kWidth = 640, kHeight = 360;

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

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string part; std::getline(in, part, ',');) out.push_back(part);
  return out;
}

// The TD's script: the model's TorchScript file between two ffmpeg pipes, with the
// package's value range (model.json's input_range) applied as the worker does.
const char* kPythonScript = R"PY(
import subprocess, sys, time
import numpy as np, torch
clip, model, out, frames, threads, scale, hi, optimize = sys.argv[1:9]
frames, threads, scale, hi = int(frames), int(threads), int(scale), float(hi)
torch.set_num_threads(threads)
w, h = 640, 360
net = torch.jit.load(model).eval()
if optimize == "1":  # what the worker does: frozen, oneDNN convolutions
    net = torch.jit.optimize_for_inference(net)
src = subprocess.Popen(["ffmpeg", "-v", "error", "-i", clip, "-frames:v", str(frames),
                        "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], stdout=subprocess.PIPE)
dst = subprocess.Popen(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                        "-s", f"{scale*w}x{scale*h}", "-r", "24", "-i", "-", "-c:v", "libx264",
                        "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", out],
                       stdin=subprocess.PIPE)
n, t0 = 0, None
with torch.inference_mode():
    while True:
        buf = src.stdout.read(w * h * 3)
        if len(buf) < w * h * 3:
            break
        n += 1
        if n == 3:  # TorchScript's profiling executor optimises on the first two calls
            t0 = time.time()
        x = torch.from_numpy(np.frombuffer(buf, np.uint8).reshape(h, w, 3)).permute(2, 0, 1)
        x = x.unsqueeze(0).float().mul_(hi / 255.0)
        y = net(x).mul_(255.0 / hi).clamp_(0, 255).round_().to(torch.uint8)
        dst.stdin.write(y[0].permute(1, 2, 0).contiguous().numpy().tobytes())
dst.stdin.close()
dst.wait(); src.wait()
print((n - 2) / (time.time() - t0))
)PY";

// The model alone over the decoded frames, as the pipeline's model stage calls it.
double ModelOnlyFps(const std::string& clip, inference::Model& model, int frames) {
  std::vector<media::Frame> decoded;
  auto source = media::OpenVideoSource(clip, 0, frames);
  Check(source.status());
  for (int i = 0; i < frames; ++i) {
    media::Frame f;
    auto more = (*source)->Next(&f);
    Check(more.status());
    decoded.push_back(std::move(f));
  }
  c10::InferenceMode guard;
  auto run = [&](media::Frame& f) {
    const at::Tensor x = at::from_blob(f.planes.data(), {1, 3, f.height, f.width}, at::kFloat);
    media::Frame g;
    g.width = f.width * model.scale();
    g.height = f.height * model.scale();
    g.planes.resize(3 * static_cast<size_t>(g.width) * g.height);
    at::Tensor out = at::from_blob(g.planes.data(), {1, 3, g.height, g.width}, at::kFloat);
    Check(model.UpscaleInto(x, out));
  };
  run(decoded[0]);  // warm-up: the first call prepares the kernels
  const auto t0 = Clock::now();
  for (media::Frame& f : decoded) run(f);
  return frames / Seconds(t0);
}

}  // namespace

int main(int argc, char** argv) {
  worker::RestartWithPassiveOpenMpWaits(argv);  // as the worker runs
  int frames = 8, threads = 2;
  bool python = true;
  std::vector<std::string> models = {"esrgan-slim", "esrgan-medium"};
  std::vector<std::string> scales = {"2", "4"};
  std::string model_dir = "models";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--frames" && i + 1 < argc)
      frames = std::atoi(argv[++i]);
    else if (a == "--threads" && i + 1 < argc)
      threads = std::atoi(argv[++i]);
    else if (a == "--models" && i + 1 < argc)
      models = Split(argv[++i]);
    else if (a == "--scales" && i + 1 < argc)
      scales = Split(argv[++i]);
    else if (a == "--model-dir" && i + 1 < argc)
      model_dir = argv[++i];
    else if (a == "--no-python")
      python = false;
    else
      Die("unknown argument '" + a + "'; see the header of esrgan_bench.cc");
  }
  worker::KeepFrameBuffersInHeap();
  at::set_num_threads(threads);
  media::SetLibraryLogging(false);
  const fs::path models_abs = fs::absolute(model_dir);
  const fs::path work = fs::temp_directory_path() / "reelfarm-bench-esrgan";
  fs::remove_all(work);
  fs::create_directories(work / "storage/plates");
  const fs::path clip = work / "storage/plates/bench.mp4";
  const std::string make =
      "ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=s=640x360:r=24 "
      "-frames:v " +
      std::to_string(frames) + " -c:v libx264 -crf 18 -pix_fmt yuv420p '" + clip.string() + "'";
  if (std::system(make.c_str()) != 0) Die("ffmpeg could not make the clip");
  const fs::path script = work / "td_baseline.py";
  std::ofstream(script) << kPythonScript;

  auto storage = common::Storage::Open(work / "storage");
  Check(storage.status());
  worker::PipelineOptions popts;
  popts.model_path = {models_abs.string()};
  worker::TaskRunner runner(**storage, popts);

  for (const std::string& name : models) {
    auto package = common::ReadModelManifest(models_abs / name);
    if (!package.ok()) Die(package.status().ToString() + " (bash scripts/fetch-models.sh)");
    for (const std::string& scale_text : scales) {
      const int scale = std::stoi(scale_text);
      auto manifest = common::ForScale(*package, scale);
      Check(manifest.status());
      auto model = inference::LoadModel(name, scale, popts.model_path, "cpu");
      Check(model.status());
      const double model_fps = ModelOnlyFps(clip.string(), **model, frames);

      v1::Assignment a;
      a.set_job_id(1);
      a.set_kind(v1::TASK_KIND_CHUNK);
      a.set_frame_begin(0);
      a.set_frame_end(frames);
      a.set_segment("parts/" + name + scale_text + ".mov");
      v1::UpscaleSpec* up = a.mutable_upscale();
      up->set_input("plates/bench.mp4");
      up->set_output("renders/" + name + scale_text + ".mp4");
      up->set_model(name);
      up->set_scale(scale);
      up->set_crf(18);
      v1::MediaInfo* in = a.mutable_input_info();
      in->set_width(kWidth);
      in->set_height(kHeight);
      in->set_frame_count(frames);
      in->set_fps_num(24);
      in->set_fps_den(1);
      std::atomic<bool> cancelled{false};
      // A one-frame task first: the worker keeps its model loaded and warm between tasks.
      v1::Assignment warm = a;
      warm.set_frame_end(1);
      warm.set_segment("parts/warm.mov");
      if (!runner
               .Run(
                   warm, [](int64_t) {}, cancelled)
               .ok)
        Die(name + ": warm-up task failed");
      const worker::TaskReport r = runner.Run(
          a, [](int64_t) {}, cancelled);
      if (!r.ok) Die(name + ": " + r.error);
      const double e2e = frames / r.seconds;
      nlohmann::json line = {
          {"model", name},
          {"scale", scale},
          {"frames", frames},
          {"size",
           "640x360 -> " + std::to_string(kWidth * scale) + "x" + std::to_string(kHeight * scale)},
          {"threads", threads},
          {"tile", (*model)->tile()},
          {"model_only_fps", model_fps},
          {"e2e_fps", e2e},
          {"e2e_over_model_only", e2e / model_fps},
          {"stage_busy_seconds_in_e2e", r.stage_seconds},
      };
      if (python) {
        // The script as a TD writes it (the module as saved), and with the one extra
        // line that freezes it for inference as the worker does.
        for (const bool optimize : {false, true}) {
          const std::string key = optimize ? "python_optimized" : "python";
          const std::string cmd = "/usr/bin/python3 '" + script.string() + "' '" + clip.string() +
                                  "' '" + (manifest->dir / manifest->file).string() + "' '" +
                                  (work / "td.mp4").string() + "' " + std::to_string(frames) + " " +
                                  std::to_string(threads) + " " + scale_text + " " +
                                  std::to_string(manifest->input_max) + " " +
                                  (optimize ? "1" : "0") + " 2>/dev/null";
          FILE* p = popen(cmd.c_str(), "r");
          double steady = 0;
          const bool read = p && std::fscanf(p, "%lf", &steady) == 1;
          const int rc = p ? pclose(p) : -1;
          if (rc != 0 || !read) {
            line[key + "_error"] =
                "the Python baseline failed (is python3-torch installed? "
                "bash scripts/setup-bench-deps.sh)";
            continue;
          }
          // From its third frame on (the first two pay for TorchScript's optimisation).
          line[key + "_fps"] = steady;
          line["e2e_over_" + key] = e2e / steady;
        }
      }
      std::cout << line.dump() << std::endl;
    }
  }
  fs::remove_all(work);
  return 0;
}
