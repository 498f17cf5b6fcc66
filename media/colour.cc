#include "media/colour.h"

#include <OpenColorIO/OpenColorIO.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "common/storage.h"

#ifndef REELFARM_OCIO_CONFIG_INSTALLED
#define REELFARM_OCIO_CONFIG_INSTALLED ""
#endif
#ifndef REELFARM_OCIO_CONFIG_SOURCE
#define REELFARM_OCIO_CONFIG_SOURCE ""
#endif

namespace OCIO = OCIO_NAMESPACE;

namespace reelfarm::media {
namespace fs = std::filesystem;

std::string ShippedOcioConfigPath() {
  if (const char* env = std::getenv("REELFARM_OCIO_SHIPPED"); env != nullptr && *env != '\0') {
    return env;
  }
  std::error_code ec;
  const std::string installed = REELFARM_OCIO_CONFIG_INSTALLED;
  if (!installed.empty() && fs::exists(installed, ec)) return installed;
  return REELFARM_OCIO_CONFIG_SOURCE;
}

std::string ResolveOcioConfigPath(const std::string& explicit_path) {
  if (!explicit_path.empty()) return explicit_path;
  if (const char* env = std::getenv("OCIO"); env != nullptr && *env != '\0') return env;
  return ShippedOcioConfigPath();
}

int EditDistance(const std::string& a, const std::string& b) {
  std::vector<int> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = static_cast<int>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = static_cast<int>(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      const bool same = std::tolower(static_cast<unsigned char>(a[i - 1])) ==
                        std::tolower(static_cast<unsigned char>(b[j - 1]));
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (same ? 0 : 1)});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

struct ColourProcessor::Impl {
  OCIO::ConstCPUProcessorRcPtr cpu;
  std::string description;
};

ColourProcessor::ColourProcessor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ColourProcessor::~ColourProcessor() = default;

void ColourProcessor::Apply(float* planes, int width, int height) const {
  const size_t n = static_cast<size_t>(width) * static_cast<size_t>(height);
  if (n == 0) return;
  // Frames are planar (all R, then G, then B): OCIO reads them in place.
  OCIO::PlanarImageDesc desc(planes, planes + n, planes + 2 * n, nullptr, width, height);
  impl_->cpu->apply(desc);
}

const std::string& ColourProcessor::description() const { return impl_->description; }

struct ColourConfig::Impl {
  OCIO::ConstConfigRcPtr config;
  std::string path;
  std::string sha256;
  mutable absl::Mutex mu;
  mutable std::map<std::pair<std::string, std::string>, std::shared_ptr<const ColourProcessor>>
      cache ABSL_GUARDED_BY(mu);

  // A processor for `transform`, optimised losslessly: no optimisation that changes
  // values, whatever the config (round trips must hold 1e-4 at 16.0). On the shipped
  // config OCIO's default level measured the same.
  absl::StatusOr<std::shared_ptr<const ColourProcessor>> Make(
      const OCIO::ConstTransformRcPtr& transform, const std::string& description) const {
    try {
      OCIO::ConstProcessorRcPtr p = config->getProcessor(transform);
      auto impl = std::make_unique<ColourProcessor::Impl>();
      impl->cpu = p->getOptimizedCPUProcessor(OCIO::BIT_DEPTH_F32, OCIO::BIT_DEPTH_F32,
                                              OCIO::OPTIMIZATION_LOSSLESS);
      impl->description = description;
      return std::shared_ptr<const ColourProcessor>(
          std::make_shared<ColourProcessor>(std::move(impl)));
    } catch (const OCIO::Exception& e) {
      return absl::FailedPreconditionError(
          absl::StrCat("OCIO config '", path, "': cannot make ", description, ": ", e.what()));
    }
  }

  absl::StatusOr<std::shared_ptr<const ColourProcessor>> Cached(
      const std::string& key_a, const std::string& key_b,
      const std::function<OCIO::ConstTransformRcPtr()>& transform,
      const std::string& description) const {
    const auto key = std::make_pair(key_a, key_b);
    {
      absl::MutexLock lock(&mu);
      if (auto it = cache.find(key); it != cache.end()) return it->second;
    }
    OCIO::ConstTransformRcPtr t;
    try {
      t = transform();
    } catch (const OCIO::Exception& e) {
      return absl::FailedPreconditionError(
          absl::StrCat("OCIO config '", path, "': cannot make ", description, ": ", e.what()));
    }
    ASSIGN_OR_RETURN(auto p, Make(t, description));
    absl::MutexLock lock(&mu);
    return cache.emplace(key, p).first->second;
  }
};

ColourConfig::ColourConfig(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ColourConfig::~ColourConfig() = default;

absl::StatusOr<std::shared_ptr<const ColourConfig>> ColourConfig::Load(const std::string& path) {
  const std::string resolved = ResolveOcioConfigPath(path);
  std::error_code ec;
  if (resolved.empty() || !fs::exists(resolved, ec)) {
    return absl::NotFoundError(
        absl::StrCat("OCIO config '", resolved,
                     "' does not exist; give a config file (job field ocio_config, the server's "
                     "--ocio-config, or $OCIO)"));
  }
  auto impl = std::make_unique<Impl>();
  impl->path = fs::absolute(resolved, ec).lexically_normal().string();
  try {
    impl->config = OCIO::Config::CreateFromFile(impl->path.c_str());
    impl->config->validate();
  } catch (const OCIO::Exception& e) {
    return absl::FailedPreconditionError(
        absl::StrCat("OCIO config '", impl->path, "' does not load: ", e.what()));
  }
  ASSIGN_OR_RETURN(impl->sha256, common::Sha256File(impl->path));
  return std::shared_ptr<const ColourConfig>(new ColourConfig(std::move(impl)));
}

const std::string& ColourConfig::path() const { return impl_->path; }
const std::string& ColourConfig::sha256() const { return impl_->sha256; }

std::vector<std::string> ColourConfig::ColourSpaceNames() const {
  std::vector<std::string> names;
  const auto& c = *impl_->config;
  const int n = c.getNumColorSpaces(OCIO::SEARCH_REFERENCE_SPACE_ALL, OCIO::COLORSPACE_ALL);
  for (int i = 0; i < n; ++i) {
    names.emplace_back(
        c.getColorSpaceNameByIndex(OCIO::SEARCH_REFERENCE_SPACE_ALL, OCIO::COLORSPACE_ALL, i));
  }
  return names;
}

absl::StatusOr<std::string> ColourConfig::CanonicalName(const std::string& name) const {
  const auto& c = *impl_->config;
  if (!name.empty()) {
    // getColorSpace knows names, aliases and roles, case-insensitively.
    if (OCIO::ConstColorSpaceRcPtr cs = c.getColorSpace(name.c_str())) return cs->getName();
  }
  // Nearest names (and aliases, shown as the name they stand for) by edit distance.
  std::vector<std::pair<int, std::string>> scored;
  std::vector<std::string> names = ColourSpaceNames();
  for (const std::string& n : names) {
    int best = EditDistance(name, n);
    OCIO::ConstColorSpaceRcPtr cs = c.getColorSpace(n.c_str());
    for (size_t i = 0; cs && i < cs->getNumAliases(); ++i) {
      best = std::min(best, EditDistance(name, cs->getAlias(i)));
    }
    scored.emplace_back(best, n);
  }
  std::stable_sort(scored.begin(), scored.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> nearest;
  for (size_t i = 0; i < scored.size() && i < 3; ++i) {
    nearest.push_back("'" + scored[i].second + "'");
  }
  return absl::InvalidArgumentError(
      absl::StrCat("colour space '", name, "' is not in OCIO config '", impl_->path,
                   "'; nearest: ", absl::StrJoin(nearest, ", "), " (it has ", names.size(),
                   " colour spaces: ", absl::StrJoin(names, ", "), ")"));
}

bool ColourConfig::IsSceneReferred(const std::string& name) const {
  OCIO::ConstColorSpaceRcPtr cs = impl_->config->getColorSpace(name.c_str());
  if (!cs) return false;
  const std::string encoding = cs->getEncoding();
  return encoding == "scene-linear" || encoding == "log";
}

absl::StatusOr<std::shared_ptr<const ColourProcessor>> ColourConfig::Processor(
    const std::string& src, const std::string& dst) const {
  ASSIGN_OR_RETURN(const std::string s, CanonicalName(src));
  ASSIGN_OR_RETURN(const std::string d, CanonicalName(dst));
  return impl_->Cached(
      s, d,
      [&]() -> OCIO::ConstTransformRcPtr {
        OCIO::ColorSpaceTransformRcPtr t = OCIO::ColorSpaceTransform::Create();
        t->setSrc(s.c_str());
        t->setDst(d.c_str());
        return t;
      },
      absl::StrCat("'", s, "' -> '", d, "'"));
}

namespace {

// in -> ACEScct -> [kShaperLow, kShaperHigh] onto [0, 1] (`inverse`: back).
OCIO::ConstTransformRcPtr ShaperTransform(const std::string& space, bool inverse) {
  OCIO::GroupTransformRcPtr g = OCIO::GroupTransform::Create();
  OCIO::ColorSpaceTransformRcPtr cst = OCIO::ColorSpaceTransform::Create();
  cst->setSrc(space.c_str());
  cst->setDst(kShaperSpace);
  g->appendTransform(cst);
  double m44[16], offset4[4];
  const double old_min[4] = {kShaperLow, kShaperLow, kShaperLow, 0.0};
  const double old_max[4] = {kShaperHigh, kShaperHigh, kShaperHigh, 1.0};
  const double new_min[4] = {0.0, 0.0, 0.0, 0.0};
  const double new_max[4] = {1.0, 1.0, 1.0, 1.0};
  OCIO::MatrixTransform::Fit(m44, offset4, old_min, old_max, new_min, new_max);
  OCIO::MatrixTransformRcPtr fit = OCIO::MatrixTransform::Create();
  fit->setMatrix(m44);
  fit->setOffset(offset4);
  g->appendTransform(fit);
  if (inverse) g->setDirection(OCIO::TRANSFORM_DIR_INVERSE);
  return g;
}

std::string ShaperStep() {
  return absl::StrFormat("%s [%.7f, %.7f] -> [0, 1]", kShaperSpace, kShaperLow, kShaperHigh);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ColourPipeline>> ColourPipeline::Create(
    std::shared_ptr<const ColourConfig> config, const std::string& in, const std::string& model,
    const std::string& out) {
  std::unique_ptr<ColourPipeline> p(new ColourPipeline());
  ASSIGN_OR_RETURN(p->in_, config->CanonicalName(in));
  ASSIGN_OR_RETURN(p->model_, config->CanonicalName(model));
  ASSIGN_OR_RETURN(p->out_, config->CanonicalName(out));
  p->shaper_ = config->IsSceneReferred(p->in_);
  if (p->shaper_) {
    auto shaper = config->CanonicalName(kShaperSpace);
    if (!shaper.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("OCIO config '", config->path(), "' has no colour space '", kShaperSpace,
                       "', which the log shaper for scene-referred input '", p->in_,
                       "' goes through; use a config that has it (the shipped one does)"));
    }
    ASSIGN_OR_RETURN(p->to_model_,
                     config->impl_->Cached(
                         p->in_, "shaper+", [&] { return ShaperTransform(p->in_, false); },
                         absl::StrCat("'", p->in_, "' -> ", ShaperStep())));
    ASSIGN_OR_RETURN(p->from_model_,
                     config->impl_->Cached(
                         "shaper-", p->out_, [&] { return ShaperTransform(p->out_, true); },
                         absl::StrCat(ShaperStep(), " inverted -> '", p->out_, "'")));
  } else {
    ASSIGN_OR_RETURN(p->to_model_, config->Processor(p->in_, p->model_));
    ASSIGN_OR_RETURN(p->from_model_, config->Processor(p->model_, p->out_));
  }
  p->config_ = std::move(config);
  return p;
}

namespace {

// Frames are never NaN (media.h); a conversion of an out-of-domain value may give one.
void ZeroNaNs(Frame* frame) {
  for (float& v : frame->planes) {
    if (v != v) v = 0.0f;
  }
}

}  // namespace

void ColourPipeline::ToModel(Frame* frame) const {
  to_model_->Apply(frame);
  ZeroNaNs(frame);
}

void ColourPipeline::FromModel(Frame* frame) const {
  from_model_->Apply(frame);
  ZeroNaNs(frame);
}

std::vector<std::string> ColourPipeline::Steps() const {
  return {to_model_->description(), "model", from_model_->description()};
}

namespace {

constexpr Chromaticities kAp0{0.7347f, 0.2653f, 0.0f, 1.0f, 0.0001f, -0.0770f, 0.32168f, 0.33767f};
constexpr Chromaticities kAp1{0.713f, 0.293f, 0.165f, 0.830f, 0.128f, 0.044f, 0.32168f, 0.33767f};
constexpr Chromaticities kRec709{0.64f, 0.33f, 0.30f, 0.60f, 0.15f, 0.06f, 0.3127f, 0.3290f};
constexpr Chromaticities kRec2020{0.708f, 0.292f, 0.170f, 0.797f, 0.131f, 0.046f, 0.3127f, 0.3290f};

bool Near(const Chromaticities& a, const Chromaticities& b) {
  const float x[8] = {a.red_x,  a.red_y,  a.green_x, a.green_y,
                      a.blue_x, a.blue_y, a.white_x, a.white_y};
  const float y[8] = {b.red_x,  b.red_y,  b.green_x, b.green_y,
                      b.blue_x, b.blue_y, b.white_x, b.white_y};
  for (int i = 0; i < 8; ++i) {
    if (std::fabs(x[i] - y[i]) > 1e-3f) return false;
  }
  return true;
}

// FFmpeg's AVCOL_* code points (ISO/IEC 23091-4), kept here so colour.h needs no libav.
constexpr int kPrimariesBt709 = 1, kPrimariesBt2020 = 9;
constexpr int kTransferBt709 = 1, kTransferLinear = 8, kTransferSrgb = 13, kTransferBt2020 = 14;
constexpr int kMatrixBt709 = 1, kMatrixBt2020 = 9;

}  // namespace

std::optional<Chromaticities> ChromaticitiesOf(const std::string& space) {
  if (space == "ACES2065-1") return kAp0;
  if (space == "ACEScg" || space == "ACEScct") return kAp1;
  if (space == "Linear Rec.709 (sRGB)" || space == "sRGB - Texture" || space == "Rec.709 video") {
    return kRec709;
  }
  if (space == "BT.2020 video") return kRec2020;
  return std::nullopt;
}

std::optional<ColourInfo> VideoTagsOf(const std::string& space) {
  ColourInfo c;
  c.range = 0;
  if (space == "Rec.709 video") {
    c.primaries = kPrimariesBt709, c.transfer = kTransferBt709, c.matrix = kMatrixBt709;
  } else if (space == "sRGB - Texture") {
    c.primaries = kPrimariesBt709, c.transfer = kTransferSrgb, c.matrix = kMatrixBt709;
  } else if (space == "BT.2020 video") {
    c.primaries = kPrimariesBt2020, c.transfer = kTransferBt2020, c.matrix = kMatrixBt2020;
  } else if (space == "Linear Rec.709 (sRGB)") {
    c.primaries = kPrimariesBt709, c.transfer = kTransferLinear, c.matrix = kMatrixBt709;
  } else {
    return std::nullopt;
  }
  return c;
}

DefaultColourSpace DefaultInputColourSpace(const std::string& codec, bool image_sequence,
                                           const ColourInfo& tags,
                                           const std::optional<Chromaticities>& exr) {
  if (codec == "exr") {
    if (!exr) {
      return {"Linear Rec.709 (sRGB)",
              "EXR without chromaticities (OpenEXR's default: Rec.709 primaries)"};
    }
    if (Near(*exr, kAp0)) return {"ACES2065-1", "EXR chromaticities: ACES AP0"};
    if (Near(*exr, kAp1)) return {"ACEScg", "EXR chromaticities: ACES AP1"};
    if (Near(*exr, kRec709)) return {"Linear Rec.709 (sRGB)", "EXR chromaticities: Rec.709"};
    return {"Linear Rec.709 (sRGB)",
            "EXR chromaticities of no known space: the README's default for EXR"};
  }
  if (tags.primaries == kPrimariesBt2020) return {"BT.2020 video", "colour tags: BT.2020"};
  if (tags.transfer == kTransferSrgb) return {"sRGB - Texture", "colour tags: sRGB transfer"};
  if (tags.primaries == kPrimariesBt709 || tags.transfer == kTransferBt709) {
    return {"Rec.709 video", "colour tags: BT.709"};
  }
  if (image_sequence) return {"sRGB - Texture", "no colour tags: the README's default for images"};
  return {"Rec.709 video", "no colour tags: the README's default for movies"};
}

}  // namespace reelfarm::media
