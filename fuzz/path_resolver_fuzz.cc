// The storage path resolver on arbitrary relative paths, against a small root that
// holds folders, a file, a link inside and links leading out (made once per process).
// Whatever it accepts must lie beneath the root, lexically and, once opened, really.
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/storage.h"

namespace fs = std::filesystem;

namespace {

const reelfarm::common::Storage& Root() {
  static const reelfarm::common::Storage* storage = [] {
    const fs::path dir =
        fs::temp_directory_path() / ("reelfarm-fuzz-root-" + std::to_string(getpid()));
    fs::create_directories(dir / "root/a/b");
    fs::create_directories(dir / "outside");
    std::ofstream(dir / "root/a/f.mp4") << "x";
    std::ofstream(dir / "outside/secret") << "x";
    std::error_code ec;
    fs::create_directory_symlink("b", dir / "root/a/in", ec);
    fs::create_directory_symlink(dir / "outside", dir / "root/a/out", ec);
    fs::create_directory_symlink("../../outside", dir / "root/a/up", ec);
    fs::create_symlink("/etc/passwd", dir / "root/passwd", ec);
    auto s = reelfarm::common::Storage::Open(dir / "root");
    if (!s.ok()) std::abort();
    return s->release();
  }();
  return *storage;
}

bool Beneath(const fs::path& p, const fs::path& root) {
  const fs::path rel = p.lexically_normal().lexically_relative(root);
  return !rel.empty() && *rel.begin() != "..";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& storage = Root();
  const std::string input(reinterpret_cast<const char*>(data), size);
  auto resolved = storage.Resolve(input, "fuzz");
  if (resolved.ok() && !Beneath(*resolved, storage.root())) std::abort();
  // Opening checks every component again, whether Resolve() accepted the path or not.
  for (const std::string& rel : {input, resolved.ok() ? resolved->string() : input}) {
    if (rel.empty() || rel.find('\0') != std::string::npos) continue;
    auto fd = storage.OpenBeneath(rel, O_RDONLY, "fuzz");
    if (!fd.ok()) continue;
    std::error_code ec;
    const fs::path real = fs::read_symlink(fd->path(), ec);
    if (!ec && real != storage.root() && !Beneath(real, storage.root())) std::abort();
  }
  return 0;
}
