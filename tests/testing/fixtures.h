// Helpers shared by the tests: temporary folders, running commands, making clips
// with ffmpeg's testsrc2, and reading decoded frames back for comparison.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace reelfarm::testing {

// A fresh folder under the system temp dir, removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Runs a shell command; returns its exit status (0 on success). Output goes to the
// test log.
int Run(const std::string& command);

// Runs a shell command and returns its stdout; `status` gets the exit status.
std::string Capture(const std::string& command, int* status = nullptr);

// The fetched model package `models/.packages/<file>` (scripts/fetch-models.sh) unpacked
// into `dir`; returns the package's own folder (`<dir>/package`: assets, samples).
std::filesystem::path UnpackFetchedPackage(const std::filesystem::path& dir,
                                           const std::string& file);

// A model folder `dir` that holds only the imported model `models/<name>` (a link), for a
// worker's --model-path, so that the workers warm nothing else. Returns `dir`.
std::filesystem::path ModelFolderWith(const std::filesystem::path& dir, const std::string& name);

// Makes an H.264 MP4 of ffmpeg's testsrc2 pattern: `frames` frames of `width`x`height`
// at `fps`. Fails the test if ffmpeg fails.
void MakeTestClip(const std::filesystem::path& path, int width, int height, int frames,
                  int fps = 24);

// Decodes every frame of `path` with the ffmpeg tool (optionally through a -vf filter)
// as packed RGB24. Returns the frames; `width`/`height` receive the frame size.
std::vector<std::vector<uint8_t>> DecodeRgb(const std::filesystem::path& path,
                                            const std::string& vf, int* width, int* height);

// Same, as planar YUV 4:2:0 (Y, then U, then V; even sizes only): the domain the
// movies are coded in, where PSNR is measured the way ffmpeg's psnr filter does.
std::vector<std::vector<uint8_t>> DecodeYuv420(const std::filesystem::path& path,
                                               const std::string& vf, int* width, int* height);

// PSNR in dB between two frames of equal size in bytes (infinity if identical).
double Psnr(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b);

}  // namespace reelfarm::testing
