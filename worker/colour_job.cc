#include "worker/colour_job.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/model_manifest.h"
#include "media/exr_attributes.h"
#include "media/output_format.h"

namespace reelfarm::worker {

absl::StatusOr<ColourJob> SetUpColour(const v1::UpscaleSpec& up, const v1::MediaInfo& in,
                                      const std::string& input_file,
                                      const std::vector<std::string>& model_path,
                                      const common::Storage& storage) {
  ColourJob job;
  if (up.colorspace_in().empty() && up.colorspace_out().empty()) {
    job.reason = "the job names no colour space (--colorspace-in / --colorspace-out)";
    return job;
  }
  std::string model_space;
  for (const auto& m : common::FindModelPackages(model_path)) {
    if (m.name != up.model()) continue;
    model_space = m.colorspace;
    job.model_range = m.range;
  }
  if (model_space.empty()) {
    job.reason = absl::StrCat("model '", up.model(), "' declares no colour space (model.json ",
                              "`colorspace`); run as it is");
    return job;
  }
  std::string config_path = up.ocio_config();
  if (!config_path.empty() && config_path[0] != '/') {
    ASSIGN_OR_RETURN(std::filesystem::path p,
                     storage.ResolveJobPath(config_path, "upscale.ocio_config"));
    config_path = p.string();
  }
  ASSIGN_OR_RETURN(std::shared_ptr<const media::ColourConfig> config,
                   media::ColourConfig::Load(config_path));
  std::string in_space = up.colorspace_in();
  job.input_from = "job";
  if (in_space.empty()) {
    std::optional<media::Chromaticities> exr;
    if (in.codec() == "exr") {
      ASSIGN_OR_RETURN(exr, media::ReadExrChromaticities(input_file));
    }
    media::ColourInfo tags;
    tags.primaries = in.colour_primaries();
    tags.transfer = in.colour_transfer();
    tags.matrix = in.colour_matrix();
    tags.range = in.colour_range();
    media::DefaultColourSpace d =
        media::DefaultInputColourSpace(in.codec(), media::HasFramePattern(up.input()), tags, exr);
    in_space = d.name;
    job.input_from = d.reason;
  }
  std::string out_space = up.colorspace_out();
  job.output_from = "job";
  if (out_space.empty()) {
    out_space = in_space;
    job.output_from = "the input's";
  }
  ASSIGN_OR_RETURN(job.pipeline,
                   media::ColourPipeline::Create(config, in_space, model_space, out_space));
  return job;
}

nlohmann::json ColourProvenance(const ColourJob& colour) {
  if (!colour.pipeline) {
    return {{"managed", false}, {"note", "not colour-managed"}, {"reason", colour.reason}};
  }
  const media::ColourPipeline& p = *colour.pipeline;
  nlohmann::json j = {{"managed", true},
                      {"config", p.config().path()},
                      {"config_sha256", p.config().sha256()},
                      {"input", {{"space", p.input_space()}, {"from", colour.input_from}}},
                      {"model", {{"space", p.model_space()}, {"range", colour.model_range}}},
                      {"output", {{"space", p.output_space()}, {"from", colour.output_from}}},
                      {"transforms", p.Steps()},
                      {"shaper", nullptr}};
  if (p.shaper()) {
    j["shaper"] = {{"space", media::kShaperSpace},
                   {"low", media::kShaperLow},
                   {"high", media::kShaperHigh},
                   {"maps_to", {0.0, 1.0}}};
  }
  return j;
}

}  // namespace reelfarm::worker
