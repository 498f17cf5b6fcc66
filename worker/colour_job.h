// A task's colour management (README "Colour management"): from the job's colour
// spaces, the model package's declared space and the input's own tags to the
// media::ColourPipeline its frames go through, and the sidecar's record of it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/status.h"
#include "common/storage.h"
#include "media/colour.h"
#include "reelfarm/v1/jobs.pb.h"

namespace reelfarm::worker {

struct ColourJob {
  // Null: not colour-managed (the frames go to the model as decoded, as before).
  std::unique_ptr<media::ColourPipeline> pipeline;
  std::string reason;                   // why not colour-managed
  std::string input_from, output_from;  // where the input and output spaces came from
  std::string model_range;              // the package's `range`
};

// `input_file`: a file of the input (a sequence's first frame), read for its EXR
// chromaticities when the job names no input space. The job's `ocio_config` is a path
// beneath the storage root, or an absolute one the server set (its --ocio-config). A job that names
// no colour space, or a model whose package declares none (the built-in resamplers), is not
// colour-managed. INVALID_ARGUMENT for names not in the config (nearest names listed);
// FAILED_PRECONDITION for a config that does not load.
absl::StatusOr<ColourJob> SetUpColour(const v1::UpscaleSpec& up, const v1::MediaInfo& in,
                                      const std::string& input_file,
                                      const std::vector<std::string>& model_path,
                                      const common::Storage& storage);

// The sidecar's "colour" object: config path and SHA-256, input, model and output
// spaces, the shaper and the transforms applied; or {"managed": false, "note":
// "not colour-managed", "reason": ...}.
nlohmann::json ColourProvenance(const ColourJob& colour);

}  // namespace reelfarm::worker
