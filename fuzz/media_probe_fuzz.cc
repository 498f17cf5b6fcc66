// The media probe (libavformat through our adapter) on arbitrary bytes, then the first
// frames decoded: an error status for anything malformed, and no frame over the size
// limit is ever allocated (the decoders run with max_pixels).
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "media/media.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool quiet = (reelfarm::media::SetLibraryLogging(false), true);
  (void)quiet;
  const int fd = memfd_create("fuzz-media", MFD_CLOEXEC);
  if (fd < 0) return 0;
  if (write(fd, data, size) != static_cast<ssize_t>(size)) {
    close(fd);
    return 0;
  }
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  auto info = reelfarm::media::ProbeVideo(path);
  if (info.ok()) {
    if (info->width > reelfarm::media::kMaxFrameSide ||
        info->height > reelfarm::media::kMaxFrameSide) {
      std::abort();  // the probe lets nothing over the limit through
    }
    auto source = reelfarm::media::OpenVideoSource(path, 0, 3);
    if (source.ok()) {
      reelfarm::media::Frame frame;
      for (int i = 0; i < 3; ++i) {
        auto more = (*source)->Next(&frame);
        if (!more.ok() || !*more) break;
      }
    }
  }
  close(fd);
  return 0;
}
