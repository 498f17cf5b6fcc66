#include "common/model_manifest.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_identity.h"

namespace reelfarm::common {
namespace fs = std::filesystem;

namespace {

void ReadDenoiserFields(const nlohmann::json& j, ModelManifest* m) {
  m->prediction = j.value("prediction", "velocity");
  m->latent_channels = j.value("latent_channels", 3);
  m->latent_frames = j.value("latent_frames", 0);
  m->latent_scale = j.value("latent_scale", 1);
  m->stride = j.value("stride", m->latent_scale);
  m->max_frames = j.value("max_frames", 240);
  m->decoder = j.value("decoder", "");
  if (j.contains("conditioning")) {
    const nlohmann::json& c = j["conditioning"];
    m->conditioning = c.value("type", "none");
    m->text_encoder = c.value("encoder", "");
    m->tokenizer = c.value("tokenizer", "");
    m->max_tokens = c.value("max_tokens", 16);
    m->class_labels = c.value("labels", std::vector<std::string>{});
  }
  if (j.contains("defaults")) {
    const nlohmann::json& d = j["defaults"];
    m->default_steps = d.value("steps", kDefaultModelSteps);
    m->default_guidance = d.value("guidance_scale", kDefaultModelGuidance);
    m->default_sampler = d.value("sampler", std::string(kDefaultSampler));
  }
}

absl::Status CheckDenoiser(const ModelManifest& m, const fs::path& file) {
  auto bad = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("model manifest '", file.string(), "': ", what));
  };
  if (m.prediction != "velocity")
    return bad("prediction '" + m.prediction + "' must be 'velocity'");
  if (m.latent_channels < 1 || m.latent_frames < 0 || m.latent_scale < 1 || m.stride < 1 ||
      m.stride % m.latent_scale != 0 || m.max_frames < 1) {
    return bad(
        "latent_channels, latent_frames, latent_scale, stride, max_frames must be "
        "positive, with stride a multiple of latent_scale");
  }
  if (m.decoder.empty() && (m.latent_channels != 3 || m.latent_scale != 1)) {
    return bad("without a decoder the latents are the frames: latent_channels 3, latent_scale 1");
  }
  if (m.conditioning != "none" && m.conditioning != "text" && m.conditioning != "class") {
    return bad("conditioning.type '" + m.conditioning + "' must be none, text or class");
  }
  if (m.conditioning == "class" && m.class_labels.empty()) {
    return bad("conditioning.labels is empty; list the class labels");
  }
  std::vector<std::string> files = {m.file};
  if (!m.decoder.empty()) files.push_back(m.decoder);
  if (m.conditioning == "text") {
    if (m.text_encoder.empty() || m.tokenizer.empty()) {
      return bad("text conditioning needs conditioning.encoder and conditioning.tokenizer");
    }
    files.push_back(m.text_encoder);
    files.push_back(m.tokenizer);
  }
  for (const auto& f : files) {
    if (!fs::exists(m.dir / f))
      return absl::NotFoundError(
          absl::StrCat("model manifest '", file.string(), "': file '", f, "' is missing"));
  }
  return absl::OkStatus();
}

void ApplyScale(const ModelScale& s, ModelManifest* m) {
  m->scale = s.scale;
  m->file = s.file;
  m->receptive_field = s.receptive_field;
  m->tile_overlap = s.tile_overlap;
  m->tile_memory_per_pixel = s.tile_memory_per_pixel;
  m->memory_bytes = s.memory_bytes;
}

// `scales`: {"2": {"file": "x2.pt", "receptive_field": 10, "tile_overlap": 40,
// "memory_per_megapixel": bytes, "memory_bytes": bytes}, ...}
void ReadScales(const nlohmann::json& j, ModelManifest* m) {
  for (const auto& [key, v] : j.items()) {
    ModelScale s;
    s.scale = std::stoi(key);
    s.file = v.at("file").get<std::string>();
    s.receptive_field = v.value("receptive_field", 0);
    s.tile_overlap = v.value("tile_overlap", 0);
    const int64_t per_mp = v.value("memory_per_megapixel", int64_t{0});
    s.tile_memory_per_pixel = (per_mp + 999999) / 1000000;
    s.memory_bytes = v.value("memory_bytes", int64_t{0});
    m->scales.push_back(s);
  }
  std::sort(m->scales.begin(), m->scales.end(),
            [](const ModelScale& a, const ModelScale& b) { return a.scale < b.scale; });
  if (!m->scales.empty()) ApplyScale(m->scales.front(), m);
}

// The checks that depend on the scale, for `m` as set up for one.
absl::Status CheckScaled(const ModelManifest& m, const fs::path& file) {
  if (m.scale < kMinScale || m.scale > kMaxScale) {
    return absl::InvalidArgumentError(absl::StrCat("model manifest '", file.string(), "': scale ",
                                                   m.scale, " must be ", kMinScale, "..",
                                                   kMaxScale));
  }
  if (m.tile_memory_per_pixel < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model manifest '", file.string(), "': tile_memory_per_pixel ", m.tile_memory_per_pixel,
        " must be >= 0 (bytes of device memory per input pixel)"));
  }
  if (m.tile < 0 || m.tile_overlap < 0 || (m.tile > 0 && 2 * m.tile_overlap >= m.tile)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model manifest '", file.string(), "': tile ", m.tile, " with tile_overlap ",
        m.tile_overlap, " is invalid; give tile 0 (whole frames) or tile > 2 * tile_overlap"));
  }
  if (m.receptive_field < 0 || m.tile_overlap < 4 * m.receptive_field) {
    return absl::InvalidArgumentError(
        absl::StrCat("model manifest '", file.string(), "': scale ", m.scale, ": tile_overlap ",
                     m.tile_overlap, " does not cover receptive_field ", m.receptive_field,
                     "; give tile_overlap >= 4 * receptive_field"));
  }
  if (!fs::exists(m.dir / m.file)) {
    return absl::NotFoundError(
        absl::StrCat("model manifest '", file.string(), "': file '", m.file, "' is missing"));
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<int> ModelManifest::Scales() const {
  if (scales.empty()) return {scale};
  std::vector<int> out;
  for (const auto& s : scales) out.push_back(s.scale);
  return out;
}

absl::StatusOr<ModelManifest> ForScale(const ModelManifest& m, int scale) {
  if (m.scales.empty() && m.scale == scale) return m;
  for (const auto& s : m.scales) {
    if (s.scale != scale) continue;
    ModelManifest out = m;
    ApplyScale(s, &out);
    return out;
  }
  return absl::InvalidArgumentError(absl::StrCat("model '", m.name, "' is made for scale ",
                                                 absl::StrJoin(m.Scales(), ", "), ", not ", scale));
}

absl::StatusOr<ModelManifest> ReadModelManifest(const fs::path& dir) {
  const fs::path file = dir / "model.json";
  std::ifstream in(file);
  if (!in) return absl::NotFoundError(absl::StrCat("no model.json in '", dir.string(), "'"));
  ModelManifest m;
  m.name = dir.filename().string();
  m.dir = dir;
  try {
    nlohmann::json j = nlohmann::json::parse(in);
    m.kind = j.value("kind", "upscaler");
    m.scale = j.value("scale", 0);
    m.file = j.value("file", "model.pt");
    m.channels = j.value("channels", 3);
    if (j.contains("input_range")) {
      m.input_min = j["input_range"].at(0).get<double>();
      m.input_max = j["input_range"].at(1).get<double>();
    }
    m.colour_space = j.value("colour_space", "srgb");
    m.colorspace = j.value("colorspace", "");
    m.range = j.value("range", "");
    m.temporal_window = j.value("temporal_window", 1);
    m.tile = j.value("tile", 0);
    m.tile_overlap = j.value("tile_overlap", 0);
    m.batch = j.value("batch", 1);
    m.fp16 = j.value("fp16", false);
    m.memory_bytes = j.value("memory_bytes", int64_t{0});
    m.tile_memory_per_pixel = j.value("tile_memory_per_pixel", int64_t{0});
    m.channel_order = j.value("channel_order", "rgb");
    m.receptive_field = j.value("receptive_field", 0);
    if (j.contains("source")) m.source_json = j["source"].dump();
    if (j.contains("scales")) ReadScales(j["scales"], &m);
    if (m.kind == "denoiser") ReadDenoiserFields(j, &m);
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("model manifest '", file.string(), "': ", e.what()));
  } catch (const std::logic_error& e) {  // std::stoi of a `scales` key
    return absl::InvalidArgumentError(
        absl::StrCat("model manifest '", file.string(), "': a key of `scales` is not a number"));
  }
  if (m.kind == "denoiser") {
    RETURN_IF_ERROR(CheckDenoiser(m, file));
    return m;
  }
  if (m.kind != "upscaler") {
    return absl::InvalidArgumentError(
        absl::StrCat("model manifest '", file.string(), "': kind '", m.kind,
                     "' is not supported; use 'upscaler' or 'denoiser'"));
  }
  if (m.batch < 1 || m.batch > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("model manifest '", file.string(), "': batch ", m.batch, " must be 1..64"));
  }
  if (m.temporal_window < 1 || m.temporal_window % 2 == 0 || m.temporal_window > 15) {
    return absl::InvalidArgumentError(absl::StrCat("model manifest '", file.string(),
                                                   "': temporal_window ", m.temporal_window,
                                                   " must be odd, 1..15"));
  }
  if (m.channels != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("model manifest '", file.string(), "': channels ", m.channels, " must be 3"));
  }
  if (m.channel_order != "rgb") {
    return absl::InvalidArgumentError(absl::StrCat("model manifest '", file.string(),
                                                   "': channel_order '", m.channel_order,
                                                   "' is not supported; frames are given as rgb"));
  }
  if (!m.range.empty()) {
    std::string r;
    for (char ch : m.range) {
      if (ch != ' ') r += ch;
    }
    const double max = r == "[0,1]" ? 1.0 : r == "[0,255]" ? 255.0 : 0.0;
    if (max == 0.0) {
      return absl::InvalidArgumentError(absl::StrCat("model manifest '", file.string(),
                                                     "': range '", m.range,
                                                     "' is not supported; give \"[0,1]\" or "
                                                     "\"[0,255]\""));
    }
    if (m.input_min != 0.0 || (m.input_max != 1.0 && m.input_max != max)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model manifest '", file.string(), "': range '", m.range,
          "' disagrees with input_range [", m.input_min, ", ", m.input_max, "]; give one of them"));
    }
    m.input_max = max;
  }
  if (m.input_max <= m.input_min) {
    return absl::InvalidArgumentError(
        absl::StrCat("model manifest '", file.string(), "': input_range [", m.input_min, ", ",
                     m.input_max, "] is empty; give [min, max] with min < max"));
  }
  for (int scale : m.Scales()) {
    ASSIGN_OR_RETURN(ModelManifest scaled, ForScale(m, scale));
    RETURN_IF_ERROR(CheckScaled(scaled, file));
  }
  return m;
}

std::vector<ModelManifest> FindModelPackages(const std::vector<std::string>& search_path,
                                             std::vector<std::string>* errors) {
  std::vector<ModelManifest> out;
  std::set<std::string> seen;
  for (const std::string& root : search_path) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(root, ec)) {
      if (!entry.is_directory() || !fs::exists(entry.path() / "model.json")) continue;
      auto m = ReadModelManifest(entry.path());
      if (!m.ok()) {
        if (errors) errors->push_back(std::string(m.status().message()));
        continue;
      }
      if (seen.insert(m->name).second) out.push_back(std::move(*m));
    }
  }
  return out;
}

namespace {

void AppendStat(int dirfd, const char* name, std::string* out, int64_t* newest) {
  struct stat st {};
  if (::fstatat(dirfd, name, &st, 0) != 0) {
    absl::StrAppend(out, name, ":-;");
    return;
  }
  *newest = std::max<int64_t>({*newest, st.st_mtim.tv_sec, st.st_ctim.tv_sec});
  absl::StrAppend(out, name, ":", FileIdentity::FromStat(st).ToString(), ";");
}

}  // namespace

std::string ModelPackageCache::Signature(int64_t* newest) const {
  std::string out;
  *newest = 0;
  for (const std::string& root : search_path_) {
    absl::StrAppend(&out, "|");
    AppendStat(AT_FDCWD, root.c_str(), &out, newest);
    DIR* dir = ::opendir(root.c_str());
    if (dir == nullptr) continue;
    // Each folder (its own times change when a file in it is added or removed) and its
    // manifest (changed in place or replaced).
    std::vector<std::string> names;
    while (const dirent* e = ::readdir(dir)) {
      if (e->d_name[0] == '.' && (e->d_name[1] == 0 || (e->d_name[1] == '.' && !e->d_name[2]))) {
        continue;
      }
      names.emplace_back(e->d_name);
    }
    std::sort(names.begin(), names.end());
    const int fd = ::dirfd(dir);
    for (const std::string& name : names) {
      AppendStat(fd, name.c_str(), &out, newest);
      AppendStat(fd, (name + "/model.json").c_str(), &out, newest);
    }
    ::closedir(dir);
  }
  return out;
}

std::shared_ptr<const std::vector<ModelManifest>> ModelPackageCache::Get() const {
  int64_t newest = 0;
  std::string signature = Signature(&newest);
  struct timespec now {};
  ::clock_gettime(CLOCK_REALTIME, &now);
  // Racily clean: changed too recently for the times to tell a later change apart.
  if (newest + racy_seconds_ > now.tv_sec) signature.clear();
  {
    absl::MutexLock lock(&mu_);
    if (packages_ && !signature.empty() && signature == signature_) return packages_;
  }
  // Read outside the lock; what was stat'ed before the read can only be older than
  // what was read, so a change during it is read again next time.
  auto packages =
      std::make_shared<const std::vector<ModelManifest>>(FindModelPackages(search_path_));
  absl::MutexLock lock(&mu_);
  signature_ = std::move(signature);
  packages_ = packages;
  return packages;
}

const std::vector<int>& BuiltinScales() {
  static const std::vector<int> kScales = {2, 3, 4};
  return kScales;
}

const std::vector<std::string>& BuiltinModels() {
  static const std::vector<std::string> kBuiltins = {"bicubic", "lanczos"};
  return kBuiltins;
}

}  // namespace reelfarm::common
