// reelfarm-gpu-check: model-only throughput of every upscaler package on a model path,
// at every scale, in fp32 and (on CUDA) fp16, with the fp16 output's PSNR against
// fp32. Built with the inference core alone (scripts/gpu-check.sh). Without CUDA it
// runs on the CPU at a small size and says so. Prints one JSON line per model and scale.
//   reelfarm-gpu-check MODEL_DIR [--device cuda:0|cpu] [--size WxH] [--runs N] [--threads N]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/cuda.h>
#include <torch/script.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "common/model_manifest.h"

#ifdef REELFARM_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

using namespace reelfarm;

namespace {

void Sync(const c10::Device& d) {
#ifdef REELFARM_WITH_CUDA
  if (d.is_cuda()) c10::cuda::device_synchronize();
#else
  (void)d;
#endif
}

// Seconds per forward call (after one warm-up call) and the last output, on the CPU.
std::pair<double, at::Tensor> Time(torch::jit::Module& m, const at::Tensor& x, int runs,
                                   const c10::Device& d) {
  at::Tensor y = m.forward({x}).toTensor();
  Sync(d);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < runs; ++i) y = m.forward({x}).toTensor();
  Sync(d);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return {s / runs, y.to(at::kCPU).to(at::kFloat)};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: reelfarm-gpu-check MODEL_DIR [--device D] [--size WxH] [--runs N]\n";
    return 2;
  }
  const std::string dir = argv[1];
  std::string device = torch::cuda::is_available() ? "cuda:0" : "cpu";
  int width = 0, height = 0, runs = 0, threads = 2;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--device" && i + 1 < argc)
      device = argv[++i];
    else if (a == "--size" && i + 1 < argc)
      std::sscanf(argv[++i], "%dx%d", &width, &height);
    else if (a == "--runs" && i + 1 < argc)
      runs = std::atoi(argv[++i]);
    else if (a == "--threads" && i + 1 < argc)
      threads = std::atoi(argv[++i]);
    else {
      std::cerr << "reelfarm-gpu-check: unknown argument '" << a << "'\n";
      return 2;
    }
  }
  const c10::Device dev(device);
  if (dev.is_cuda() && !torch::cuda::is_available()) {
    std::cerr << "reelfarm-gpu-check: " << device << " asked for, but this LibTorch has no CUDA\n";
    return 1;
  }
  const bool cuda = dev.is_cuda();
  if (width == 0) {
    width = cuda ? 1920 : 64;
    height = cuda ? 1080 : 36;
  }
  if (runs == 0) runs = cuda ? 10 : 1;
  at::set_num_threads(threads);
  if (!cuda) {
    std::cout << "# no CUDA: model-only figures on the CPU at " << width << "x" << height << " ("
              << threads << " threads), fp32 only; 1080p and fp16 need a CUDA LibTorch"
              << std::endl;
  }
  c10::InferenceMode guard;
  std::vector<std::string> errors;
  int failures = 0;
  for (const auto& package : common::FindModelPackages({dir}, &errors)) {
    if (package.kind != "upscaler") continue;
    for (int scale : package.Scales()) {
      auto m = common::ForScale(package, scale);
      if (!m.ok()) continue;
      nlohmann::json line = {{"model", m->name},
                             {"scale", scale},
                             {"device", device},
                             {"size", std::to_string(width) + "x" + std::to_string(height)}};
      try {
        torch::jit::Module module = torch::jit::load((m->dir / m->file).string(), dev);
        module.eval();
        if (!cuda) {
          // As the worker runs it on the CPU (model.cc): frozen, oneDNN convolutions.
          try {
            module = torch::jit::optimize_for_inference(module);
          } catch (const c10::Error&) {
          }
        }
        const double range = m->input_max - m->input_min;
        at::Tensor x = (at::rand({1, 3, height, width}) * range + m->input_min).to(dev);
        auto [s32, y32] = Time(module, x, runs, dev);
        line["fp32_fps"] = 1.0 / s32;
        if (cuda) {
          module.to(at::kHalf);
          auto [s16, y16] = Time(module, x.to(at::kHalf), runs, dev);
          const double mse = ((y16 - y32) / range).pow(2).mean().item<double>();
          line["fp16_fps"] = 1.0 / s16;
          line["fp16_psnr_db_vs_fp32"] = mse > 0 ? 10 * std::log10(1.0 / mse) : 999.0;
        }
      } catch (const c10::Error& e) {
        line["error"] = e.what_without_backtrace();
        ++failures;
      }
      std::cout << line.dump() << std::endl;
    }
  }
  for (const auto& e : errors) std::cerr << "reelfarm-gpu-check: skipped: " << e << "\n";
  return failures == 0 ? 0 : 1;
}
