#include "scheduler/wedge.h"

#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"

namespace reelfarm::scheduler {
namespace {

template <typename T>
std::vector<T> Axis(const std::vector<T>& list, const T& single) {
  return list.empty() ? std::vector<T>{single} : list;
}

}  // namespace

std::string TakeName(const std::string& job_name, int index) {
  return absl::StrFormat("%s_take%03d", job_name, index + 1);
}

std::string TakeOutput(const std::string& output, const std::string& take_name) {
  if (output.find("{take}") != std::string::npos) {
    return absl::StrReplaceAll(output, {{"{take}", take_name}});
  }
  const size_t slash = output.rfind('/');
  const size_t start = slash == std::string::npos ? 0 : slash + 1;
  const size_t dot = output.find('.', start);
  return output.substr(0, start) + take_name +
         (dot == std::string::npos ? std::string() : output.substr(dot));
}

int64_t WedgeSize(const GenerateSpec& g) {
  if (!g.takes.empty()) return static_cast<int64_t>(g.takes.size());
  auto n = [](size_t size) { return static_cast<int64_t>(std::max<size_t>(size, 1)); };
  return n(g.prompts.size()) * n(g.seeds.size()) * n(g.guidance_scales.size()) *
         n(g.step_counts.size()) * n(g.samplers.size());
}

std::vector<Take> ExpandWedge(const std::string& job_name, const GenerateSpec& g) {
  std::vector<Take> out;
  const int64_t default_seed = g.seeds.empty() ? 0 : g.seeds.front();
  if (!g.takes.empty()) {
    for (const GenerateTake& t : g.takes) {
      Take take;
      take.seed = t.seed.value_or(default_seed);
      take.prompt = t.prompt.value_or(g.prompt);
      take.steps = t.steps.value_or(g.steps);
      take.guidance_scale = t.guidance_scale.value_or(g.guidance_scale);
      take.sampler = t.sampler.value_or(g.sampler);
      out.push_back(take);
    }
    // Varying: the fields some take sets to a value another take does not share.
    auto differs = [&](auto get) {
      for (const Take& t : out) {
        if (get(t) != get(out.front())) return true;
      }
      return false;
    };
    std::vector<std::string> varying;
    if (differs([](const Take& t) { return t.prompt; })) varying.push_back("prompt");
    if (differs([](const Take& t) { return t.seed; })) varying.push_back("seed");
    if (differs([](const Take& t) { return t.guidance_scale; }))
      varying.push_back("guidance_scale");
    if (differs([](const Take& t) { return t.steps; })) varying.push_back("steps");
    if (differs([](const Take& t) { return t.sampler; })) varying.push_back("sampler");
    for (Take& t : out) t.varying = varying;
  } else {
    const auto prompts = Axis(g.prompts, g.prompt);
    const auto seeds = Axis(g.seeds, default_seed);
    const auto guidance = Axis(g.guidance_scales, g.guidance_scale);
    const auto steps = Axis(g.step_counts, g.steps);
    const auto samplers = Axis(g.samplers, g.sampler);
    std::vector<std::string> varying;
    if (prompts.size() > 1) varying.push_back("prompt");
    if (seeds.size() > 1) varying.push_back("seed");
    if (guidance.size() > 1) varying.push_back("guidance_scale");
    if (steps.size() > 1) varying.push_back("steps");
    if (samplers.size() > 1) varying.push_back("sampler");
    for (const auto& p : prompts) {
      for (int64_t seed : seeds) {
        for (double gs : guidance) {
          for (int st : steps) {
            for (const auto& sa : samplers) {
              Take take;
              take.prompt = p;
              take.seed = seed;
              take.guidance_scale = gs;
              take.steps = st;
              take.sampler = sa;
              take.varying = varying;
              out.push_back(take);
            }
          }
        }
      }
    }
  }
  for (size_t i = 0; i < out.size(); ++i) {
    out[i].index = static_cast<int>(i);
    out[i].name = TakeName(job_name, out[i].index);
    out[i].output = TakeOutput(g.output, out[i].name);
  }
  return out;
}

}  // namespace reelfarm::scheduler
