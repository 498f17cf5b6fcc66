// Throughput of the imported ESRGAN models (scripts/fetch-models.sh) at 640x360 input:
// the model alone (UpscaleInto over decoded frames), end to end through the worker's
// chunk pipeline (decode -> model -> encode on their threads), and the script a TD
// would write (/usr/bin/python3 + python3-torch running the same TorchScript file
// between two ffmpeg rawvideo pipes), in one run, LibTorch at --threads (default 2).
// Prints one JSON line per model and scale. Usage:
//   reelfarm-bench-esrgan [--frames 8] [--threads 2] [--models esrgan-slim,esrgan-medium]
//                         [--scales 2,4] [--model-dir models] [--no-python]
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
#include "worker/inference/model.h"
#include "worker/media/media.h"
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
import subprocess, sys
import numpy as np, torch
clip, model, out, frames, threads, scale, hi = sys.argv[1:8]
frames, threads, scale, hi = int(frames), int(threads), int(scale), float(hi)
torch.set_num_threads(threads)
w, h = 640, 360
net = torch.jit.load(model).eval()
src = subprocess.Popen(["ffmpeg", "-v", "error", "-i", clip, "-frames:v", str(frames),
                        "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], stdout=subprocess.PIPE)
dst = subprocess.Popen(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                        "-s", f"{scale*w}x{scale*h}", "-r", "24", "-i", "-", "-c:v", "libx264",
                        "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", out],
                       stdin=subprocess.PIPE)
with torch.inference_mode():
    while True:
        buf = src.stdout.read(w * h * 3)
        if len(buf) < w * h * 3:
            break
        x = torch.from_numpy(np.frombuffer(buf, np.uint8).reshape(h, w, 3)).permute(2, 0, 1)
        x = x.unsqueeze(0).float().mul_(hi / 255.0)
        y = net(x).mul_(255.0 / hi).clamp_(0, 255).round_().to(torch.uint8)
        dst.stdin.write(y[0].permute(1, 2, 0).contiguous().numpy().tobytes())
dst.stdin.close()
dst.wait(); src.wait()
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
  const auto t0 = Clock::now();
  for (media::Frame& f : decoded) {
    const at::Tensor x = at::from_blob(f.planes.data(), {1, 3, f.height, f.width}, at::kFloat);
    media::Frame g;
    g.width = f.width * model.scale();
    g.height = f.height * model.scale();
    g.planes.resize(3 * static_cast<size_t>(g.width) * g.height);
    at::Tensor out = at::from_blob(g.planes.data(), {1, 3, g.height, g.width}, at::kFloat);
    Check(model.UpscaleInto(x, out));
  }
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
    if (a == "--frames" && i + 1 < argc) frames = std::atoi(argv[++i]);
    else if (a == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (a == "--models" && i + 1 < argc) models = Split(argv[++i]);
    else if (a == "--scales" && i + 1 < argc) scales = Split(argv[++i]);
    else if (a == "--model-dir" && i + 1 < argc) model_dir = argv[++i];
    else if (a == "--no-python") python = false;
    else Die("unknown argument '" + a + "'; see the header of esrgan_bench.cc");
  }
  worker::KeepFrameBuffersInHeap();
  at::set_num_threads(threads);
  media::SetLibraryLogging(false);
  const fs::path models_abs = fs::absolute(model_dir);
  const fs::path work = fs::temp_directory_path() / "reelfarm-bench-esrgan";
  fs::remove_all(work);
  fs::create_directories(work / "storage/plates");
  const fs::path clip = work / "storage/plates/bench.mp4";
  const std::string make = "ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=s=640x360:r=24 "
                           "-frames:v " + std::to_string(frames) +
                           " -c:v libx264 -crf 18 -pix_fmt yuv420p '" + clip.string() + "'";
  if (std::system(make.c_str()) != 0) Die("ffmpeg could not make the clip");
  const fs::path script = work / "td_baseline.py";
  std::ofstream(script) << kPythonScript;

  auto storage = common::Storage::Open(work / "storage");
  Check(storage.status());
  worker::PipelineOptions popts;
  popts.model_path = {models_abs.string()};
  worker::TaskRunner runner(*storage, popts);

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
      const worker::TaskReport r = runner.Run(a, [](int64_t) {}, cancelled);
      if (!r.ok) Die(name + ": " + r.error);
      const double e2e = frames / r.seconds;
      nlohmann::json line = {
          {"model", name},
          {"scale", scale},
          {"frames", frames},
          {"size", "640x360 -> " + std::to_string(kWidth * scale) + "x" +
                       std::to_string(kHeight * scale)},
          {"threads", threads},
          {"tile", (*model)->tile()},
          {"model_only_fps", model_fps},
          {"e2e_fps", e2e},
          {"e2e_over_model_only", e2e / model_fps},
          {"stage_busy_seconds_in_e2e", r.stage_seconds},
      };
      if (python) {
        const std::string cmd =
            "/usr/bin/python3 '" + script.string() + "' '" + clip.string() + "' '" +
            (manifest->dir / manifest->file).string() + "' '" + (work / "td.mp4").string() +
            "' " + std::to_string(frames) + " " + std::to_string(threads) + " " + scale_text +
            " " + std::to_string(manifest->input_max) + " > /dev/null";
        const auto t0 = Clock::now();
        const int rc = std::system(cmd.c_str());
        const double secs = Seconds(t0);
        if (rc != 0) {
          line["python_error"] = "the Python baseline failed (is python3-torch installed? "
                                 "bash scripts/setup-bench-deps.sh)";
        } else {
          line["python_fps"] = frames / secs;
          line["e2e_over_python"] = e2e / (frames / secs);
        }
      }
      std::cout << line.dump() << std::endl;
    }
  }
  fs::remove_all(work);
  return 0;
}
