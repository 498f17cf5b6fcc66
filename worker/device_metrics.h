// DeviceMetrics: scrape-time gauges about the worker's memory and GPU.
//  - reelfarm_worker_resident_memory_bytes: the process's resident set (always).
//  - With a CUDA device, and only when the NVIDIA driver's NVML library
//    (libnvidia-ml.so.1) can be loaded at run time: per GPU, utilisation,
//    encoder/decoder utilisation and memory in use. Without a GPU these families are
//    absent (not zero). NVML is loaded with dlopen, so no build dependency is needed
//    and CPU hosts need no NVIDIA software.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <prometheus/collectable.h>

namespace reelfarm::worker {

class Nvml;

class DeviceMetrics final : public prometheus::Collectable {
 public:
  // `device` is the worker's --device ("cpu", "cuda:0", ...).
  explicit DeviceMetrics(const std::string& device);
  ~DeviceMetrics() override;

  // Whether GPU families are exported (a CUDA device and NVML loaded).
  bool has_gpu_metrics() const { return nvml_ != nullptr; }

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  std::unique_ptr<Nvml> nvml_;
};

}  // namespace reelfarm::worker
