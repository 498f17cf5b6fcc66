#include "tests/testing/fixtures.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <sstream>

namespace reelfarm::testing {
namespace fs = std::filesystem;

TempDir::TempDir() {
  std::random_device rd;
  path_ = fs::temp_directory_path() /
          ("reelfarm-test-" + std::to_string(getpid()) + "-" + std::to_string(rd()));
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!std::getenv("REELFARM_KEEP_TEST_DIRS")) fs::remove_all(path_, ec);
}

int Run(const std::string& command) {
  int rc = std::system(command.c_str());
  if (rc == -1) return -1;
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
}

std::string Capture(const std::string& command, int* status) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  if (!p) {
    if (status) *status = -1;
    return out;
  }
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int rc = ::pclose(p);
  if (status) *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
  return out;
}

void MakeTestClip(const fs::path& path, int width, int height, int frames, int fps) {
  fs::create_directories(path.parent_path());
  std::ostringstream cmd;
  cmd << "ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i testsrc2=s=" << width << "x"
      << height << ":r=" << fps << " -frames:v " << frames
      << " -c:v libx264 -crf 12 -pix_fmt yuv420p '" << path.string() << "'";
  REQUIRE(Run(cmd.str()) == 0);
}

namespace {
std::vector<std::vector<uint8_t>> DecodeRaw(const fs::path& path, const std::string& vf,
                                            const std::string& pix_fmt, int* width, int* height) {
  int status = 0;
  std::string dims = Capture(
      "ffprobe -v error -select_streams v:0 -show_entries stream=width,height -of "
      "csv=p=0:s=x '" +
          path.string() + "'",
      &status);
  REQUIRE(status == 0);
  int w = 0, h = 0;
  REQUIRE(std::sscanf(dims.c_str(), "%dx%d", &w, &h) == 2);
  std::string cmd = "ffmpeg -nostdin -hide_banner -loglevel error -i '" + path.string() + "'";
  if (!vf.empty()) {
    cmd += " -vf '" + vf + "'";
    // A scale filter changes the size: ask ffprobe-free by parsing "scale=W:H".
    int sw = 0, sh = 0;
    if (std::sscanf(vf.c_str(), "scale=%d:%d", &sw, &sh) == 2) {
      w = sw;
      h = sh;
    }
  }
  cmd += " -f rawvideo -pix_fmt " + pix_fmt + " -";
  std::string raw = Capture(cmd, &status);
  REQUIRE(status == 0);
  const size_t pixels = static_cast<size_t>(w) * h;
  const size_t frame_bytes = pix_fmt == "rgb24" ? pixels * 3 : pixels * 3 / 2;
  REQUIRE(frame_bytes > 0);
  REQUIRE(raw.size() % frame_bytes == 0);
  std::vector<std::vector<uint8_t>> frames;
  for (size_t off = 0; off < raw.size(); off += frame_bytes) {
    frames.emplace_back(raw.begin() + off, raw.begin() + off + frame_bytes);
  }
  if (width) *width = w;
  if (height) *height = h;
  return frames;
}
}  // namespace

std::vector<std::vector<uint8_t>> DecodeRgb(const fs::path& path, const std::string& vf, int* width,
                                            int* height) {
  return DecodeRaw(path, vf, "rgb24", width, height);
}

std::vector<std::vector<uint8_t>> DecodeYuv420(const fs::path& path, const std::string& vf,
                                               int* width, int* height) {
  return DecodeRaw(path, vf, "yuv420p", width, height);
}

double Psnr(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  REQUIRE(a.size() == b.size());
  double se = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    double d = double(a[i]) - double(b[i]);
    se += d * d;
  }
  if (se == 0) return std::numeric_limits<double>::infinity();
  double mse = se / a.size();
  return 10.0 * std::log10(255.0 * 255.0 / mse);
}

fs::path UnpackFetchedPackage(const fs::path& dir, const std::string& file) {
  const fs::path packages = fs::path(REELFARM_SOURCE_DIR) / "models/.packages";
  fs::create_directories(dir);
  REQUIRE(Run("tar xzf '" + (packages / file).string() + "' -C '" + dir.string() + "'") == 0);
  return dir / "package";
}

fs::path ModelFolderWith(const fs::path& dir, const std::string& name) {
  fs::create_directories(dir);
  fs::create_directory_symlink(fs::path(REELFARM_SOURCE_DIR) / "models" / name, dir / name);
  return dir;
}

}  // namespace reelfarm::testing
