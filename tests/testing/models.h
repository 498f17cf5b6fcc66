// TorchScript model packages made by the tests (no downloads): written with
// torch::jit::Module::define and saved beside a model.json.
#pragma once

#include <filesystem>
#include <string>

namespace reelfarm::testing {

// A ×2 upscaler: 1×1 conv to 12 channels + pixel_shuffle, weights set so the result is
// nearest-neighbour ×2. Written to `<dir>/<name>/` with its manifest.
void WriteNearestX2Model(const std::filesystem::path& dir, const std::string& name);

// A broken "×2 upscaler" that returns its input unchanged (wrong shape).
void WriteIdentityModel(const std::filesystem::path& dir, const std::string& name);

// A ×2 nearest-neighbour upscaler that fails a TorchScript assert (a LibTorch
// error at run time) for frames wider than 32 pixels, with a message containing
// "frame too wide for this test model". Small frames (a worker's warm-up) pass.
void WriteFailsOnWideFramesModel(const std::filesystem::path& dir, const std::string& name);

}  // namespace reelfarm::testing
