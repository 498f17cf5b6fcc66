// Submit-time checks of a generate spec against its model package and the server's
// limits. Every error names the field, the value and the allowed values.
#pragma once

#include <vector>

#include "common/model_manifest.h"
#include "common/storage.h"
#include "scheduler/job.h"

namespace reelfarm::server {

struct GenerateLimits {
  int max_steps = 200;
  int max_width = 8192;
  int max_height = 8192;
  int64_t max_frames = 1'000'000;
};

// Fills the model's defaults into `g` (steps, guidance scale, sampler, size, frames,
// fps, strength; 0 or "" takes the default) and checks it. Returns what the worker will
// make, as the MediaInfo of the job (width, height, frames, fps), and the model's
// memory estimate. Called by Admission::Admit (admission.h).
absl::StatusOr<scheduler::MediaInfo> PrepareGenerate(
    scheduler::GenerateSpec* g, const std::vector<common::ModelManifest>& packages,
    const GenerateLimits& limits, const common::Storage& storage, int64_t* memory_bytes);

// ALREADY_EXISTS when a take's output is there and `overwrite` is not set; paths
// outside the storage root are refused (PERMISSION_DENIED).
absl::Status CheckTakeOutputs(const scheduler::JobSpec& spec, const common::Storage& storage);

}  // namespace reelfarm::server
