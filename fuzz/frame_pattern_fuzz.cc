// Image-sequence patterns (`####`, `%04d`) and output-format resolution on arbitrary
// paths. Checks what callers rely on: a path with a pattern gets the frame number
// written in full, and resolving a format answers a status, never crashes.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "media/output_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace reelfarm::media;
  const std::string path(reinterpret_cast<const char*>(data), size);
  const bool has = HasFramePattern(path);
  for (int64_t n : {int64_t{0}, int64_t{7}, int64_t{1001}, int64_t{123456789}, INT64_MAX}) {
    const std::string p = FramePath(path, n);
    if (!has && p != path) std::abort();
    if (has && p.find(std::to_string(n)) == std::string::npos) std::abort();
  }
  (void)ResolveOutputFormat(path, "", "", "", 18);
  (void)ResolveOutputFormat(path, path, path, path, static_cast<int>(size) - 5);
  return 0;
}
