#include "worker/device_metrics.h"

#include <dlfcn.h>
#include <unistd.h>

#include <fstream>

#include <prometheus/metric_family.h>
#include <spdlog/spdlog.h>

namespace reelfarm::worker {

// The few NVML entry points used, resolved from libnvidia-ml.so.1 (their C ABI is
// stable across drivers). Loaded once; unloaded with nvmlShutdown on destruction.
class Nvml final {
 public:
  struct Utilization {
    unsigned int gpu;
    unsigned int memory;
  };
  struct Memory {
    unsigned long long total;
    unsigned long long free;
    unsigned long long used;
  };
  using Device = void*;

  static std::unique_ptr<Nvml> Load() {
    void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) return nullptr;
    std::unique_ptr<Nvml> n(new Nvml(lib));
    if (!n->Resolve() || n->init_() != 0) return nullptr;
    n->initialised_ = true;
    return n;
  }
  ~Nvml() {
    if (initialised_) shutdown_();
    dlclose(lib_);
  }

  unsigned int Count() const {
    unsigned int n = 0;
    return count_(&n) == 0 ? n : 0;
  }
  bool Handle(unsigned int i, Device* d) const { return handle_(i, d) == 0; }
  bool Util(Device d, Utilization* u) const { return util_(d, u) == 0; }
  bool Encoder(Device d, unsigned int* u) const {
    unsigned int period = 0;
    return enc_(d, u, &period) == 0;
  }
  bool Decoder(Device d, unsigned int* u) const {
    unsigned int period = 0;
    return dec_(d, u, &period) == 0;
  }
  bool Mem(Device d, Memory* m) const { return mem_(d, m) == 0; }

 private:
  explicit Nvml(void* lib) : lib_(lib) {}
  template <typename F>
  bool Sym(const char* name, F* f) {
    *f = reinterpret_cast<F>(dlsym(lib_, name));
    return *f != nullptr;
  }
  bool Resolve() {
    return Sym("nvmlInit_v2", &init_) && Sym("nvmlShutdown", &shutdown_) &&
           Sym("nvmlDeviceGetCount_v2", &count_) &&
           Sym("nvmlDeviceGetHandleByIndex_v2", &handle_) &&
           Sym("nvmlDeviceGetUtilizationRates", &util_) &&
           Sym("nvmlDeviceGetEncoderUtilization", &enc_) &&
           Sym("nvmlDeviceGetDecoderUtilization", &dec_) && Sym("nvmlDeviceGetMemoryInfo", &mem_);
  }

  void* const lib_;
  bool initialised_ = false;
  int (*init_)() = nullptr;
  int (*shutdown_)() = nullptr;
  int (*count_)(unsigned int*) = nullptr;
  int (*handle_)(unsigned int, Device*) = nullptr;
  int (*util_)(Device, Utilization*) = nullptr;
  int (*enc_)(Device, unsigned int*, unsigned int*) = nullptr;
  int (*dec_)(Device, unsigned int*, unsigned int*) = nullptr;
  int (*mem_)(Device, Memory*) = nullptr;
};

DeviceMetrics::DeviceMetrics(const std::string& device) {
  if (device.rfind("cuda", 0) != 0) return;
  nvml_ = Nvml::Load();
  if (nvml_) {
    spdlog::info("NVML loaded: {} GPU(s) reported in /metrics", nvml_->Count());
  } else {
    spdlog::warn("device={} but NVML (libnvidia-ml.so.1) is not loadable; no GPU metrics", device);
  }
}

DeviceMetrics::~DeviceMetrics() = default;

namespace {

prometheus::MetricFamily Gauge(const char* name, const char* help) {
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = prometheus::MetricType::Gauge;
  return f;
}

void Add(prometheus::MetricFamily& f, std::vector<prometheus::ClientMetric::Label> labels,
         double value) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  f.metric.push_back(std::move(m));
}

}  // namespace

std::vector<prometheus::MetricFamily> DeviceMetrics::Collect() const {
  std::vector<prometheus::MetricFamily> out;
  long pages = 0, resident = 0;
  std::ifstream statm("/proc/self/statm");
  if (statm >> pages >> resident) {
    auto rss =
        Gauge("reelfarm_worker_resident_memory_bytes", "Resident memory of the worker process");
    Add(rss, {}, static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)));
    out.push_back(std::move(rss));
  }
  if (!nvml_) return out;
  auto util = Gauge("reelfarm_gpu_utilization_ratio",
                    "Fraction of time the GPU's kernels ran over the last sample period");
  auto enc = Gauge("reelfarm_gpu_encoder_utilization_ratio", "NVENC utilisation (0..1)");
  auto dec = Gauge("reelfarm_gpu_decoder_utilization_ratio", "NVDEC utilisation (0..1)");
  auto used = Gauge("reelfarm_gpu_memory_used_bytes", "GPU memory in use (all processes)");
  auto total = Gauge("reelfarm_gpu_memory_total_bytes", "GPU memory installed");
  const unsigned int n = nvml_->Count();
  for (unsigned int i = 0; i < n; ++i) {
    Nvml::Device d = nullptr;
    if (!nvml_->Handle(i, &d)) continue;
    const std::vector<prometheus::ClientMetric::Label> l = {{"gpu", std::to_string(i)}};
    Nvml::Utilization u{};
    if (nvml_->Util(d, &u)) Add(util, l, u.gpu / 100.0);
    unsigned int e = 0;
    if (nvml_->Encoder(d, &e)) Add(enc, l, e / 100.0);
    if (nvml_->Decoder(d, &e)) Add(dec, l, e / 100.0);
    Nvml::Memory m{};
    if (nvml_->Mem(d, &m)) {
      Add(used, l, static_cast<double>(m.used));
      Add(total, l, static_cast<double>(m.total));
    }
  }
  for (auto* f : {&util, &enc, &dec, &used, &total}) {
    if (!f->metric.empty()) out.push_back(std::move(*f));
  }
  return out;
}

}  // namespace reelfarm::worker
