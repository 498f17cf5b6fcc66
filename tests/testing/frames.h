// Reading decoded frames in media tests (header-only: test_media links reelfarm_media).
#pragma once

#include <catch2/catch.hpp>

#include <filesystem>
#include <vector>

#include "media/media.h"

namespace reelfarm::testing {

// Frames [begin, end) of `path` through OpenVideoSource, failing the test on any error.
inline std::vector<media::Frame> ReadFrames(const std::filesystem::path& path, int64_t begin,
                                            int64_t end) {
  auto source = media::OpenVideoSource(path.string(), begin, end);
  INFO(source.status().ToString());
  REQUIRE(source.ok());
  std::vector<media::Frame> frames;
  while (true) {
    media::Frame frame;
    auto more = (*source)->Next(&frame);
    INFO(more.status().ToString());
    REQUIRE(more.ok());
    if (!*more) break;
    frames.push_back(std::move(frame));
  }
  return frames;
}

}  // namespace reelfarm::testing
