#include "server/admission.h"

#include <fcntl.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/job_defaults.h"
#include "common/model_manifest.h"
#include "media/colour.h"
#include "media/media.h"
#include "media/output_format.h"
#include "scheduler/wedge.h"
#include "server/convert.h"
#include "server/generate_spec.h"
#include "server/notifier.h"

namespace reelfarm::server {
namespace fs = std::filesystem;

namespace {

// Admit() with `needs_media_io` at a point where it would do media I/O.
absl::Status NeedsMediaIo(bool* needs_media_io) {
  *needs_media_io = true;
  return absl::UnavailableError("admission needs media I/O; admit again off the gRPC thread");
}

scheduler::MediaInfo MediaInfoOf(const media::VideoInfo& v) {
  scheduler::MediaInfo mi;
  mi.width = v.width;
  mi.height = v.height;
  mi.frame_count = v.frame_count;
  mi.fps_num = v.fps_num;
  mi.fps_den = v.fps_den;
  mi.codec = v.codec;
  mi.pixel_format = v.pixel_format;
  mi.colour_primaries = v.colour.primaries;
  mi.colour_transfer = v.colour.transfer;
  mi.colour_matrix = v.colour.matrix;
  mi.colour_range = v.colour.range;
  mi.has_audio = v.has_audio;
  mi.first_frame = v.first_frame;
  mi.coded_frames = v.coded_frames;
  mi.held_frames = v.held_frames;
  mi.dropped_frames = v.dropped_frames;
  mi.tail_cut_frames = v.tail_cut_frames;
  mi.rotation = v.rotation;
  return mi;
}

// Probes the input (a movie, or an image sequence when its name has a frame pattern)
// and narrows it to the spec's frame range. Errors name upscale.input and the frames.
// A movie already probed (the same file: ProbeCache) is not read again.
absl::StatusOr<media::VideoInfo> ProbeMedia(const scheduler::UpscaleSpec& u, const fs::path& input,
                                            const common::Storage& storage, ProbeCache& cache,
                                            bool* needs_media_io) {
  const fs::path& root = storage.root();
  // -1: unset (from the start, to the end).
  const int64_t first = u.first_frame;
  const int64_t last = u.last_frame;
  if (first < -1 || last < -1 || (first >= 0 && last >= 0 && last < first)) {
    return absl::InvalidArgumentError(
        absl::StrCat("upscale.first_frame/last_frame ", first, "-", last,
                     " is not a frame range; give 0 <= first_frame <= last_frame"));
  }
  const bool sequence = media::HasFramePattern(u.input);
  if (sequence && needs_media_io != nullptr) return NeedsMediaIo(needs_media_io);
  if (!sequence && !fs::exists(input)) {
    return absl::NotFoundError(absl::StrCat(
        "upscale.input '", u.input, "' not found under the storage root '", root.string(), "'"));
  }
  // Opened beneath the root (no symbolic link out, even one made since Resolve()) and
  // read through /proc/self/fd. Without media I/O, opened so that it cannot block (a
  // FIFO's open waits for a writer), and taken from the cache only if a regular file.
  const int flags = needs_media_io != nullptr ? O_RDONLY | O_NONBLOCK : O_RDONLY;
  absl::StatusOr<common::UniqueFd> fd =
      sequence ? storage.OpenDirBeneath(input.parent_path(), false, "upscale.input")
               : storage.OpenBeneath(input, flags, "upscale.input");
  if (!fd.ok()) return fd.status();
  std::optional<FileIdentity> id;
  std::optional<media::VideoInfo> cached;
  if (!sequence) {
    bool regular = false;
    if (absl::StatusOr<FileIdentity> got = FileIdentity::Of(fd->get(), &regular); got.ok()) {
      id = *got;
      if (regular || needs_media_io == nullptr) {
        cached = cache.Find(*id, /*count_miss=*/needs_media_io == nullptr);
      }
    }
    if (!cached.has_value() && needs_media_io != nullptr) return NeedsMediaIo(needs_media_io);
  }
  absl::StatusOr<media::VideoInfo> info =
      cached.has_value() ? absl::StatusOr<media::VideoInfo>(*cached)
      : sequence
          ? media::ProbeImageSequence(fd->path() + "/" + input.filename().string(), first, last)
          : media::ProbeVideo(fd->path());
  if (info.ok() && id.has_value() && !cached.has_value()) cache.Insert(*id, *info);
  if (!info.ok()) {
    // Named as the job names it, not as /proc/self/fd/N.
    const std::string folder = input.parent_path().lexically_relative(root).string();
    info = common::NameFdPath(info.status(), *fd, sequence ? folder : u.input);
  }
  if (!info.ok()) {
    return absl::Status(info.status().code(),
                        absl::StrCat("upscale.input '", u.input, "': ", info.status().message()));
  }
  if (!sequence && (first >= 0 || last >= 0)) {
    const int64_t begin = std::max<int64_t>(first, 0);
    const int64_t end = last >= 0 ? last + 1 : info->frame_count;
    if (end > info->frame_count || begin >= end) {
      return absl::InvalidArgumentError(absl::StrCat(
          "upscale.first_frame/last_frame ", begin, "-", end - 1, " is outside upscale.input '",
          u.input, "', which has frames 0-", info->frame_count - 1, "; give a range inside it"));
    }
    info->first_frame = begin;
    info->frame_count = end - begin;
  }
  return info;
}

// Every file an upscale job writes (the movie, or each frame of a sequence, whose
// numbers follow the input's, and the sidecar) follows one rule: refused when it
// exists, unless the job says overwrite; a folder never. A sequence's frames are
// checked once the input is known (`mi`); the workers check every file again when
// they publish.
absl::Status CheckUpscaleOutputs(const scheduler::UpscaleSpec& u, const fs::path& output,
                                 const media::OutputFormat& format,
                                 const std::optional<scheduler::MediaInfo>& mi) {
  const char* field = "upscale.output";
  RETURN_IF_ERROR(
      common::CheckOutputFree(output.string() + ".json", field, u.output + ".json", u.overwrite));
  if (!format.image_sequence()) {
    return common::CheckOutputFree(output, field, u.output, u.overwrite);
  }
  if (!mi.has_value()) return absl::OkStatus();
  for (int64_t i = mi->first_frame; i < mi->first_frame + mi->frame_count; ++i) {
    RETURN_IF_ERROR(common::CheckOutputFree(media::FramePath(output.string(), i), field,
                                            media::FramePath(u.output, i), u.overwrite));
  }
  return absl::OkStatus();
}

std::string DenoiserNames(const std::vector<common::ModelManifest>& packages) {
  std::vector<std::string> names;
  for (const auto& m : packages) {
    if (m.kind == "denoiser") names.push_back(m.name);
  }
  return names.empty() ? "(none on the model path)" : absl::StrJoin(names, ", ");
}

}  // namespace

Admission::Admission(const scheduler::Scheduler* sched, const common::Storage* storage,
                     std::vector<std::string> model_path, Limits limits,
                     std::function<void(bool hit)> on_probe_lookup)
    : sched_(sched),
      storage_(storage),
      model_path_(std::move(model_path)),
      limits_(limits),
      probe_cache_(std::make_unique<ProbeCache>(std::move(on_probe_lookup))),
      model_packages_(std::make_unique<common::ModelPackageCache>(model_path_)) {}

absl::StatusOr<scheduler::JobSpec> Admission::FromRequest(const v1::JobSpec& spec) const {
  const auto size = static_cast<int64_t>(spec.ByteSizeLong());
  if (size > limits_.max_spec_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec is ", size, " bytes, over the limit of ", limits_.max_spec_bytes));
  }
  RETURN_IF_ERROR(CheckStrings(spec));
  // The kind is the message's: in the domain spec a generate job is one with a model.
  if (spec.kind_case() == v1::JobSpec::KIND_NOT_SET) {
    return absl::InvalidArgumentError(
        "spec is empty: set spec.upscale (input, output, model, scale) or spec.generate "
        "(model, prompt, seeds, output)");
  }
  if (spec.has_generate() && spec.generate().model().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("generate.model is empty; give one of: ",
                                                   DenoiserNames(*model_packages_->Get())));
  }
  return FromProto(spec);
}

absl::Status Admission::CheckStrings(const v1::JobSpec& spec) const {
  // Names, paths and tags are printed by reelctl, the logs and the monitor: a control
  // character (a newline, a terminal escape) in one is refused, not stored. Free text
  // (prompts) may hold newlines and tabs.
  const auto check = [&](const std::string& field, const std::string& value, bool text = false) {
    if (value.size() > limits_.max_string_length) {
      return absl::InvalidArgumentError(absl::StrCat(field, " is ", value.size(),
                                                     " characters, over the limit of ",
                                                     limits_.max_string_length));
    }
    if (value.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(field, " holds a NUL character"));
    }
    for (size_t i = 0; i < value.size(); ++i) {
      const auto c = static_cast<unsigned char>(value[i]);
      const bool c1 = c == 0xc2 && i + 1 < value.size() &&
                      static_cast<unsigned char>(value[i + 1]) >= 0x80 &&
                      static_cast<unsigned char>(value[i + 1]) <= 0x9f;  // U+0080..U+009F
      const bool allowed = text && (c == '\n' || c == '\t');
      if (((c < 0x20 || c == 0x7f) && !allowed) || c1) {
        return absl::InvalidArgumentError(absl::StrCat(
            field, " holds a control character (byte 0x", absl::Hex(c1 ? 0xc2 : c), " at offset ",
            i, "); give printable text, without newlines or terminal escapes"));
      }
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(check("name", spec.name()));
  RETURN_IF_ERROR(check("project", spec.project()));
  RETURN_IF_ERROR(check("request_id", spec.request_id()));
  if (spec.requirements_size() > limits_.max_requirements) {
    return absl::InvalidArgumentError(absl::StrCat("requirements has ", spec.requirements_size(),
                                                   " tags, over the limit of ",
                                                   limits_.max_requirements));
  }
  for (const auto& [key, value] : spec.requirements()) {
    RETURN_IF_ERROR(check("requirements key", key));
    RETURN_IF_ERROR(check(absl::StrCat("requirements['", key.substr(0, 64), "']"), value));
  }
  if (spec.webhooks_size() > kMaxWebhooks) {
    return absl::InvalidArgumentError(absl::StrCat("webhooks has ", spec.webhooks_size(),
                                                   " URLs, over the limit of ", kMaxWebhooks));
  }
  for (int i = 0; i < spec.webhooks_size(); ++i) {
    const std::string field = absl::StrCat("webhooks[", i, "]");
    RETURN_IF_ERROR(check(field, spec.webhooks(i)));
    RETURN_IF_ERROR(CheckWebhookUrl(spec.webhooks(i), field));
  }
  if (spec.depends_on_size() > limits_.max_depends_on) {
    return absl::InvalidArgumentError(absl::StrCat("depends_on has ", spec.depends_on_size(),
                                                   " jobs, over the limit of ",
                                                   limits_.max_depends_on));
  }
  if (spec.has_upscale()) {
    const v1::UpscaleSpec& u = spec.upscale();
    RETURN_IF_ERROR(check("upscale.input", u.input()));
    RETURN_IF_ERROR(check("upscale.output", u.output()));
    RETURN_IF_ERROR(check("upscale.model", u.model()));
    RETURN_IF_ERROR(check("upscale.format.codec", u.format().codec()));
    RETURN_IF_ERROR(check("upscale.format.preset", u.format().preset()));
    RETURN_IF_ERROR(check("upscale.format.pix_fmt", u.format().pix_fmt()));
    RETURN_IF_ERROR(check("upscale.colorspace_in", u.colorspace_in()));
    RETURN_IF_ERROR(check("upscale.colorspace_out", u.colorspace_out()));
    RETURN_IF_ERROR(check("upscale.ocio_config", u.ocio_config()));
  }
  if (spec.has_generate()) {
    const v1::GenerateSpec& g = spec.generate();
    RETURN_IF_ERROR(check("generate.model", g.model()));
    RETURN_IF_ERROR(check("generate.prompt", g.prompt(), true));
    RETURN_IF_ERROR(check("generate.negative_prompt", g.negative_prompt(), true));
    RETURN_IF_ERROR(check("generate.sampler", g.sampler()));
    RETURN_IF_ERROR(check("generate.output", g.output()));
    RETURN_IF_ERROR(check("generate.init", g.init()));
    RETURN_IF_ERROR(check("generate.format.codec", g.format().codec()));
    RETURN_IF_ERROR(check("generate.format.preset", g.format().preset()));
    RETURN_IF_ERROR(check("generate.format.pix_fmt", g.format().pix_fmt()));
    for (int i = 0; i < g.prompts_size(); ++i) {
      RETURN_IF_ERROR(check(absl::StrCat("generate.prompts[", i, "]"), g.prompts(i), true));
    }
    for (int i = 0; i < g.samplers_size(); ++i) {
      RETURN_IF_ERROR(check(absl::StrCat("generate.samplers[", i, "]"), g.samplers(i)));
    }
    for (int i = 0; i < g.takes_size(); ++i) {
      RETURN_IF_ERROR(
          check(absl::StrCat("generate.takes[", i, "].prompt"), g.takes(i).prompt(), true));
      RETURN_IF_ERROR(check(absl::StrCat("generate.takes[", i, "].sampler"), g.takes(i).sampler()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<AdmittedJob> Admission::Admit(scheduler::JobSpec spec, Stage stage,
                                             bool* needs_media_io) const {
  if (spec.priority < common::kMinPriority || spec.priority > common::kMaxPriority) {
    return absl::InvalidArgumentError(absl::StrCat("priority is ", spec.priority, "; give ",
                                                   common::kMinPriority, "..",
                                                   common::kMaxPriority));
  }
  if (spec.max_attempts < common::kMinMaxAttempts || spec.max_attempts > common::kMaxMaxAttempts) {
    return absl::InvalidArgumentError(absl::StrCat("max_attempts is ", spec.max_attempts, "; give ",
                                                   common::kMinMaxAttempts, "..",
                                                   common::kMaxMaxAttempts));
  }
  for (const auto& [key, value] : spec.requirements) {
    if (key.empty()) {
      return absl::InvalidArgumentError(
          "requirements: a tag name is empty; give tags such as gpu=h100");
    }
  }
  AdmittedJob out;
  if (spec.is_generate() && needs_media_io != nullptr) return NeedsMediaIo(needs_media_io);
  if (spec.is_generate()) {
    GenerateLimits gl;
    gl.max_steps = limits_.max_generate_steps;
    gl.max_width = limits_.max_width;
    gl.max_height = limits_.max_height;
    gl.max_frames = limits_.max_frames;
    int64_t memory_bytes = 0;
    ASSIGN_OR_RETURN(
        scheduler::MediaInfo info,
        PrepareGenerate(&spec.generate, *model_packages_->Get(), gl, *storage_, &memory_bytes));
    spec.memory_bytes = memory_bytes;
    // Before the outputs: a wedge's size is a product, and each take has outputs.
    RETURN_IF_ERROR(CheckTaskCount(spec, info));
    RETURN_IF_ERROR(CheckTakeOutputs(spec, *storage_));
    out.input = info;
  } else {
    RETURN_IF_ERROR(AdmitUpscale(spec, stage, &out.input, needs_media_io));
  }
  out.spec = std::move(spec);
  return out;
}

namespace {

// Colour management (README "Colour management"): the job's OCIO config loads and has
// the colour spaces it names. A config the job names is a path beneath the storage
// root; with none, the server's --ocio-config ($OCIO) is written into the spec so every
// worker uses the same file (none either: each worker's shipped config).
absl::Status AdmitColour(scheduler::UpscaleSpec& u, const common::Storage& storage) {
  if (u.colorspace_in.empty() && u.colorspace_out.empty()) return absl::OkStatus();
  const char* env = std::getenv("OCIO");  // set by --ocio-config
  const std::string server_config = env != nullptr ? env : "";
  std::string config_path;
  if (!u.ocio_config.empty() && u.ocio_config != server_config) {
    ASSIGN_OR_RETURN(fs::path p, storage.ResolveJobPath(u.ocio_config, "upscale.ocio_config"));
    config_path = p.string();
  } else if (!server_config.empty()) {
    u.ocio_config = config_path = server_config;
  }
  auto config = media::ColourConfig::Load(config_path);
  if (!config.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("upscale.ocio_config: ", config.status().message()));
  }
  for (const auto& [field, name] :
       {std::pair<const char*, const std::string&>{"upscale.colorspace_in", u.colorspace_in},
        {"upscale.colorspace_out", u.colorspace_out}}) {
    if (name.empty()) continue;
    auto canonical = (*config)->CanonicalName(name);
    if (!canonical.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": ", canonical.status().message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Admission::AdmitUpscale(scheduler::JobSpec& spec, Stage stage,
                                     std::optional<scheduler::MediaInfo>* input,
                                     bool* needs_media_io) const {
  scheduler::UpscaleSpec& u = spec.upscale;
  if (u.chunk_frames < 1) {
    return absl::InvalidArgumentError(absl::StrCat("upscale.chunk_frames is ", u.chunk_frames,
                                                   "; give 1 or more frames per chunk"));
  }
  if (u.crf < common::kMinCrf || u.crf > common::kMaxCrf) {
    return absl::InvalidArgumentError(absl::StrCat("upscale.crf is ", u.crf, "; give ",
                                                   common::kMinCrf, "..", common::kMaxCrf, " (",
                                                   common::kDefaultCrf, " is visually lossless)"));
  }
  if (u.qc.empty()) u.qc = "warn";
  if (u.qc != "warn" && u.qc != "fail") {
    return absl::InvalidArgumentError(
        absl::StrCat("upscale.qc is '", u.qc,
                     "'; give warn (QC flags are shown) or fail (a flagged chunk fails)"));
  }
  // Model: a built-in, a package on the server's model path, or one a worker has.
  const std::vector<std::string>& builtins = common::BuiltinModels();
  std::vector<std::string> known = builtins;
  const std::shared_ptr<const std::vector<common::ModelManifest>> packages_now =
      model_packages_->Get();
  const std::vector<common::ModelManifest>& packages = *packages_now;
  for (const auto& m : packages) known.push_back(m.name);
  for (const auto& m : sched_->KnownModels()) known.push_back(m);
  std::sort(known.begin(), known.end());
  known.erase(std::unique(known.begin(), known.end()), known.end());
  if (u.model.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("upscale.model is empty; give one of: ", absl::StrJoin(known, ", ")));
  }
  if (stage == Stage::kSubmit && std::find(known.begin(), known.end(), u.model) == known.end()) {
    return absl::NotFoundError(absl::StrCat(
        "upscale.model '", u.model, "' not found; known models: ", absl::StrJoin(known, ", ")));
  }
  // Scale: the model's (a package's `scales`, the built-ins' BuiltinScales); a model
  // only workers have is checked by them, within the manifest's range.
  std::vector<int> scales;
  for (int s = common::kMinScale; s <= common::kMaxScale; ++s) scales.push_back(s);
  if (std::find(builtins.begin(), builtins.end(), u.model) != builtins.end()) {
    scales = common::BuiltinScales();
  }
  for (const auto& m : packages) {
    if (m.name != u.model) continue;
    if (m.kind != "upscaler") {
      return absl::InvalidArgumentError(
          absl::StrCat("upscale.model '", m.name, "' is a ", m.kind,
                       " model, not an upscaler; give an upscaler (such as bicubic) or use it in a "
                       "generate job"));
    }
    scales = m.Scales();
    if (auto scaled = common::ForScale(m, u.scale); scaled.ok()) {
      spec.memory_bytes = scaled->memory_bytes;
    }
  }
  if (std::find(scales.begin(), scales.end(), u.scale) == scales.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("upscale.scale is ", u.scale, " but model '", u.model, "' is made for scale ",
                     absl::StrJoin(scales, ", "), "; give one of those or another model"));
  }
  const bool colour = !u.colorspace_in.empty() || !u.colorspace_out.empty();
  if (colour && needs_media_io != nullptr) return NeedsMediaIo(needs_media_io);
  RETURN_IF_ERROR(AdmitColour(u, *storage_));
  // Paths.
  ASSIGN_OR_RETURN(fs::path in_path, storage_->ResolveJobPath(u.input, "upscale.input"));
  ASSIGN_OR_RETURN(fs::path out_path, storage_->ResolveJobPath(u.output, "upscale.output"));
  ASSIGN_OR_RETURN(const media::OutputFormat format,
                   media::ResolveOutputFormat(u.output, u.codec, u.pix_fmt, u.preset, u.crf));
  if (in_path.lexically_normal() == out_path.lexically_normal()) {
    return absl::InvalidArgumentError(
        absl::StrCat("upscale.output '", u.output, "' is the input; give another path"));
  }
  if (!spec.depends_on.empty() && !media::HasFramePattern(u.input) && !fs::exists(in_path)) {
    // The output of a job this one depends on is probed when that job succeeds: the
    // job is admitted again then (ActivateWaitingJobs), and this check passes.
    for (int64_t dep : spec.depends_on) {
      auto d = sched_->GetJob(dep);
      if (!d.ok() || d->job.state == scheduler::JobState::kSucceeded) continue;
      bool made_by_dep = !d->job.spec.is_generate() && d->job.spec.upscale.output == u.input;
      if (d->job.spec.is_generate()) {
        for (const auto& take : scheduler::ExpandWedge(d->job.spec.name, d->job.spec.generate)) {
          made_by_dep |= take.output == u.input;
        }
      }
      if (made_by_dep) {
        return CheckUpscaleOutputs(u, out_path, format, std::nullopt);
      }
    }
  }
  ASSIGN_OR_RETURN(scheduler::MediaInfo mi, ProbeInput(u, in_path, needs_media_io));
  RETURN_IF_ERROR(CheckTaskCount(spec, mi));
  RETURN_IF_ERROR(CheckUpscaleOutputs(u, out_path, format, mi));
  *input = mi;
  return absl::OkStatus();
}

absl::StatusOr<scheduler::MediaInfo> Admission::ProbeInput(const scheduler::UpscaleSpec& u,
                                                           const fs::path& input,
                                                           bool* needs_media_io) const {
  ASSIGN_OR_RETURN(media::VideoInfo info,
                   ProbeMedia(u, input, *storage_, *probe_cache_, needs_media_io));
  if (info.width > limits_.max_width || info.height > limits_.max_height) {
    return absl::FailedPreconditionError(
        absl::StrCat("upscale.input '", u.input, "' is ", info.width, "x", info.height,
                     ", over the limit of ", limits_.max_width, "x", limits_.max_height));
  }
  if (info.frame_count > limits_.max_frames) {
    return absl::FailedPreconditionError(
        absl::StrCat("upscale.input '", u.input, "' has ", info.frame_count,
                     " frames, over the limit of ", limits_.max_frames));
  }
  if (info.frame_count < 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("upscale.input '", u.input, "' has no frames"));
  }
  return MediaInfoOf(info);
}

// The one check of --max-tasks-per-job: a generate job makes one task per take, an
// upscale job one per chunk and the assembly.
absl::Status Admission::CheckTaskCount(const scheduler::JobSpec& spec,
                                       const scheduler::MediaInfo& input) const {
  const int64_t limit = limits_.max_tasks_per_job;
  if (spec.is_generate()) {
    const int64_t takes = scheduler::WedgeSize(spec.generate);
    if (takes <= limit) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat("generate: the wedge (prompts x seeds x guidance_scales x step_counts x "
                     "samplers, or takes) makes ",
                     takes, " takes, over the limit of ", limit, " tasks per job; give at most ",
                     limit, " takes or split the wedge into several jobs"));
  }
  const int64_t chunk = spec.upscale.chunk_frames;
  const int64_t tasks = (input.frame_count + chunk - 1) / chunk + 1;
  if (tasks <= limit) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "upscale.chunk_frames ", chunk, " makes ", tasks, " tasks of ", input.frame_count,
      " frames, over the limit of ", limit, " tasks per job; give a larger chunk_frames"));
}

}  // namespace reelfarm::server
