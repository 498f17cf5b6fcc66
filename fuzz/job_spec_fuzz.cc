// The job-file parser (YAML/JSON, ${VAR}, --set) on arbitrary text: it answers with
// jobs or an error status, never throws or crashes. The first line, when it starts
// with "--set ", is taken as a --set assignment, so that path is fuzzed too.
#include <cstdint>
#include <string>

#include "cli/job_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> sets;
  if (text.rfind("--set ", 0) == 0) {
    const size_t nl = text.find('\n');
    sets.push_back(text.substr(6, nl == std::string::npos ? std::string::npos : nl - 6));
    text = nl == std::string::npos ? "" : text.substr(nl + 1);
  }
  const auto getenv = [](const std::string& name) -> const char* {
    return name == "SHOT" ? "sh010" : nullptr;
  };
  auto jobs = reelfarm::cli::ParseJobText(text, "fuzz.yaml", sets, getenv);
  if (jobs.ok()) {
    for (const auto& j : *jobs) (void)j.spec.ByteSizeLong();
  }
  return 0;
}
