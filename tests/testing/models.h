// TorchScript model packages made by the tests (no downloads): written with
// torch::jit::Module::define and saved beside a model.json.
#pragma once

#include <filesystem>
#include <string>

namespace reelfarm::testing {

// A ×2 upscaler: 1×1 conv to 12 channels + pixel_shuffle, weights set so the result is
// nearest-neighbour ×2. Written to `<dir>/<name>/` with its manifest.
void WriteNearestX2Model(const std::filesystem::path& dir, const std::string& name);

// A ×2 upscaler with a receptive field: two 3×3 convs (3→8→12, ReLU between) +
// pixel_shuffle, seeded random weights; each output pixel depends on input pixels up to
// 2 away. `manifest_extra` is spliced into model.json (e.g. "\"tile\": 32, ...").
void WriteConvX2Model(const std::filesystem::path& dir, const std::string& name,
                      const std::string& manifest_extra = "");

// A temporal ×2 upscaler, temporal_window 3: a 1×1 conv over the 9 channels of three
// frames (weights 0.25, 0.5, 0.25 per colour) to 12 channels + pixel_shuffle, i.e. a
// nearest ×2 of the weighted mean of the previous, current and next frame.
void WriteTemporalX2Model(const std::filesystem::path& dir, const std::string& name);

// A broken "×2 upscaler" that returns its input unchanged (wrong shape).
void WriteIdentityModel(const std::filesystem::path& dir, const std::string& name);

// A ×2 "upscaler" whose output leaves [0, 1]: nearest ×2 of 4x - 2, with NaN, +inf
// and -inf at pixels (0, 0), (0, 1) and (0, 2) of the red plane.
void WriteUnboundedModel(const std::filesystem::path& dir, const std::string& name);

// A ×2 nearest-neighbour upscaler that fails a TorchScript assert (a LibTorch
// error at run time) for frames wider than 32 pixels, with a message containing
// "frame too wide for this test model". Small frames (a worker's warm-up) pass.
// `manifest_extra` as for WriteConvX2Model.
void WriteFailsOnWideFramesModel(const std::filesystem::path& dir, const std::string& name,
                                 const std::string& manifest_extra = "");

}  // namespace reelfarm::testing

namespace reelfarm::testing {

// A denoiser package (kind "denoiser", models/README.md) with small random weights:
// latents are the frames (no decoder, stride `stride`). `conditioning` is "text" (a
// word vocabulary and an embedding text encoder), "class" (labels "cat", "dog") or
// "none". `nan` makes the denoiser return NaN.
void WriteFixtureDenoiser(const std::filesystem::path& dir, const std::string& name,
                          const std::string& conditioning = "text", int stride = 8,
                          int max_frames = 32, bool nan = false);

}  // namespace reelfarm::testing
