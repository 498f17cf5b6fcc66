#include "server/generate_spec.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/job_defaults.h"
#include "media/media.h"
#include "media/output_format.h"
#include "scheduler/wedge.h"

namespace reelfarm::server {
namespace fs = std::filesystem;

namespace {

absl::Status Invalid(const std::string& field, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("generate.", field, " ", what));
}

absl::Status CheckSampler(const std::string& field, const std::string& sampler) {
  const auto& known = common::kSamplers;
  if (std::find(known.begin(), known.end(), sampler) != known.end()) return absl::OkStatus();
  return Invalid(
      field,
      absl::StrCat("'", sampler, "' is not a sampler; give one of: ", absl::StrJoin(known, ", ")));
}

absl::Status CheckSteps(const std::string& field, int steps, int max_steps) {
  if (steps >= 1 && steps <= max_steps) return absl::OkStatus();
  return Invalid(field, absl::StrCat("is ", steps, "; give 1..", max_steps,
                                     " (the server's --max-generate-steps)"));
}

absl::Status CheckGuidance(const std::string& field, double g) {
  if (g >= 0 && g <= common::kMaxGuidanceScale) return absl::OkStatus();
  return Invalid(
      field, absl::StrCat("is ", g, "; give 0..", common::kMaxGuidanceScale, " (1: no guidance)"));
}

absl::Status CheckPrompt(const std::string& field, const std::string& prompt,
                         const common::ModelManifest& m) {
  if (prompt.empty()) return absl::OkStatus();
  if (m.conditioning == "none") {
    return Invalid(field, absl::StrCat("'", prompt, "' is given but model '", m.name,
                                       "' has no text conditioning (conditioning: none); "
                                       "leave it empty or give a model with text conditioning"));
  }
  if (m.conditioning == "class" &&
      std::find(m.class_labels.begin(), m.class_labels.end(), prompt) == m.class_labels.end()) {
    return Invalid(field, absl::StrCat("'", prompt, "' is not a class label of model '", m.name,
                                       "' (it has no text conditioning); give one of: ",
                                       absl::StrJoin(m.class_labels, ", ")));
  }
  return absl::OkStatus();
}

absl::Status CheckSize(const std::string& field, int value, int max,
                       const common::ModelManifest& m) {
  if (value < 1 || value > max) {
    return Invalid(field, absl::StrCat("is ", value, "; give 1..", max));
  }
  if (value % m.stride != 0) {
    const int lower = std::max(m.stride, value / m.stride * m.stride);
    return Invalid(field,
                   absl::StrCat("is ", value, ", not a multiple of model '", m.name, "''s stride ",
                                m.stride, "; give a multiple of ", m.stride, " such as ", lower));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<scheduler::MediaInfo> PrepareGenerate(
    scheduler::GenerateSpec* g, const std::vector<common::ModelManifest>& packages,
    const GenerateLimits& limits, const common::Storage& storage, int64_t* memory_bytes) {
  std::vector<std::string> denoisers;
  const common::ModelManifest* model = nullptr;
  for (const auto& m : packages) {
    if (m.kind != "denoiser") continue;
    denoisers.push_back(m.name);
    if (m.name == g->model) model = &m;
  }
  const std::string known =
      denoisers.empty() ? "(none on the model path)" : absl::StrJoin(denoisers, ", ");
  if (g->model.empty()) return Invalid("model", absl::StrCat("is empty; give one of: ", known));
  if (!model) {
    return absl::NotFoundError(absl::StrCat("generate.model '", g->model,
                                            "' is not a denoiser model package; known: ", known));
  }
  const common::ModelManifest& m = *model;
  *memory_bytes = m.memory_bytes;

  // Defaults.
  // Floats where the API has floats, so that an admitted spec reads the same as one
  // that came back from a worker.
  if (g->steps == 0) g->steps = m.default_steps;
  if (g->guidance_scale == 0) g->guidance_scale = static_cast<float>(m.default_guidance);
  if (g->sampler.empty()) g->sampler = m.default_sampler;
  const int size = std::max(common::kDefaultGenerateSize / m.stride, 1) * m.stride;
  if (g->width == 0) g->width = size;
  if (g->height == 0) g->height = size;
  if (g->frames == 0) g->frames = std::min(common::kDefaultGenerateFrames, m.max_frames);
  if (g->fps == 0) g->fps = common::kDefaultFps;
  if (!g->init.empty() && g->strength == 0) g->strength = common::kDefaultStrength;

  // Wedge values.
  RETURN_IF_ERROR(CheckSampler("sampler", g->sampler));
  for (const auto& s : g->samplers) RETURN_IF_ERROR(CheckSampler("samplers", s));
  RETURN_IF_ERROR(CheckSteps("steps", g->steps, limits.max_steps));
  for (int s : g->step_counts) RETURN_IF_ERROR(CheckSteps("step_counts", s, limits.max_steps));
  RETURN_IF_ERROR(CheckGuidance("guidance_scale", g->guidance_scale));
  for (double s : g->guidance_scales) RETURN_IF_ERROR(CheckGuidance("guidance_scales", s));
  RETURN_IF_ERROR(CheckPrompt("prompt", g->prompt, m));
  for (const auto& p : g->prompts) RETURN_IF_ERROR(CheckPrompt("prompts", p, m));
  if (!g->negative_prompt.empty() && m.conditioning != "text") {
    return Invalid("negative_prompt", absl::StrCat("is given but model '", m.name,
                                                   "' has no text conditioning; leave it empty"));
  }
  if (!g->takes.empty()) {
    if (!g->prompts.empty() || g->seeds.size() > 1 || !g->guidance_scales.empty() ||
        !g->step_counts.empty() || !g->samplers.empty()) {
      return Invalid("takes",
                     "is an explicit list; leave the wedge axes (prompts, seeds, "
                     "guidance_scales, step_counts, samplers) empty or single");
    }
    for (const auto& t : g->takes) {
      if (t.sampler) RETURN_IF_ERROR(CheckSampler("takes.sampler", *t.sampler));
      if (t.steps) RETURN_IF_ERROR(CheckSteps("takes.steps", *t.steps, limits.max_steps));
      if (t.guidance_scale)
        RETURN_IF_ERROR(CheckGuidance("takes.guidance_scale", *t.guidance_scale));
      if (t.prompt) RETURN_IF_ERROR(CheckPrompt("takes.prompt", *t.prompt, m));
    }
  }

  // Size and length.
  RETURN_IF_ERROR(CheckSize("width", g->width, limits.max_width, m));
  RETURN_IF_ERROR(CheckSize("height", g->height, limits.max_height, m));
  const int64_t max_frames = std::min<int64_t>(m.max_frames, limits.max_frames);
  if (g->frames < 1 || g->frames > max_frames) {
    return Invalid("frames", absl::StrCat("is ", g->frames, "; give 1..", max_frames,
                                          " (the limit of model '", m.name, "')"));
  }
  if (g->fps < 1 || g->fps > common::kMaxFps)
    return Invalid("fps", absl::StrCat("is ", g->fps, "; give 1..", common::kMaxFps));

  // Image-to-video.
  if (!g->init.empty()) {
    ASSIGN_OR_RETURN(fs::path init, storage.ResolveJobPath(g->init, "generate.init"));
    if (!media::HasFramePattern(g->init) && !fs::exists(init)) {
      return absl::NotFoundError(
          absl::StrCat("generate.init '", g->init, "' not found under the storage root"));
    }
    if (m.latent_channels != 3) {
      return Invalid("init",
                     absl::StrCat("is set, but model '", m.name, "' has ", m.latent_channels,
                                  "-channel latents; an init image needs a model whose "
                                  "latents are RGB (latent_channels 3)"));
    }
    if (!(g->strength > 0 && g->strength <= 1)) {
      return Invalid("strength", absl::StrCat("is ", g->strength, "; give 0 < strength <= 1"));
    }
  }

  // Output.
  if (g->output.empty()) {
    return Invalid("output",
                   "is empty; give a movie (gen/sh010.mov) or an image sequence "
                   "(gen/sh010.####.png)");
  }
  RETURN_IF_ERROR(storage.ResolveJobPath(g->output, "generate.output").status());
  if (g->crf < common::kMinCrf || g->crf > common::kMaxCrf) {
    return Invalid("crf",
                   absl::StrCat("is ", g->crf, "; give ", common::kMinCrf, "..", common::kMaxCrf));
  }
  RETURN_IF_ERROR(
      media::ResolveOutputFormat(g->output, g->codec, g->pix_fmt, g->preset, g->crf).status());

  scheduler::MediaInfo info;
  info.width = g->width;
  info.height = g->height;
  info.frame_count = g->frames;
  info.fps_num = g->fps;
  info.fps_den = 1;
  info.codec = "generated";
  info.colour_primaries = info.colour_transfer = info.colour_matrix = 1;  // BT.709
  return info;
}

absl::Status CheckTakeOutputs(const scheduler::JobSpec& spec, const common::Storage& storage) {
  const scheduler::GenerateSpec& g = spec.generate;
  // Every file a take writes (each frame of a sequence, and the sidecar) follows one
  // rule: refused when it exists, unless the job says overwrite; a folder never.
  for (const auto& take : scheduler::ExpandWedge(spec.name, g)) {
    ASSIGN_OR_RETURN(fs::path out, storage.ResolveJobPath(take.output, "generate.output"));
    const std::string field = absl::StrCat("generate.output (take ", take.name, ")");
    RETURN_IF_ERROR(
        common::CheckOutputFree(out.string() + ".json", field, take.output + ".json", g.overwrite));
    if (!media::HasFramePattern(take.output)) {
      RETURN_IF_ERROR(common::CheckOutputFree(out, field, take.output, g.overwrite));
      continue;
    }
    for (int64_t i = 0; i < g.frames; ++i) {
      RETURN_IF_ERROR(common::CheckOutputFree(media::FramePath(out.string(), i), field,
                                              media::FramePath(take.output, i), g.overwrite));
    }
  }
  return absl::OkStatus();
}

}  // namespace reelfarm::server
