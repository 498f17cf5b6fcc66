// Colour management with OpenColorIO 2 (README "Colour management"): configs, colour
// space names, cached CPU processors, and the conversion of a task's frames from the
// job's input space to a model's space and back to the job's output space, through a
// reversible log shaper for scene-referred input.
//
// OCIO's exceptions never leave this file: every failure is an absl::Status naming the
// config file and the colour space.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "media/media.h"

namespace reelfarm::media {

// The config the project ships (media/ocio/reelfarm.ocio): $REELFARM_OCIO_SHIPPED when
// set, else the installed copy, else the source tree's (paths fixed at compile time).
std::string ShippedOcioConfigPath();

// The config to use: `explicit_path` when not empty, else $OCIO when set, else the
// shipped one.
std::string ResolveOcioConfigPath(const std::string& explicit_path);

class ColourProcessor;

// A loaded config. Thread-safe: processors are cached under a mutex and applied
// concurrently (OCIO's CPU processors are immutable).
class ColourConfig final {
 public:
  // Loads the config ResolveOcioConfigPath(path) names. FAILED_PRECONDITION naming the
  // file and OCIO's error (which names the line of a YAML error); NOT_FOUND when the
  // file does not exist.
  static absl::StatusOr<std::shared_ptr<const ColourConfig>> Load(const std::string& path = "");
  ~ColourConfig();
  ColourConfig(const ColourConfig&) = delete;
  ColourConfig& operator=(const ColourConfig&) = delete;

  const std::string& path() const;    // absolute
  const std::string& sha256() const;  // of the file, hex
  std::vector<std::string> ColourSpaceNames() const;

  // The config's own name for `name` (a name, an alias or a role, any case).
  // INVALID_ARGUMENT listing the nearest names of the config (edit distance) when it
  // has no such colour space.
  absl::StatusOr<std::string> CanonicalName(const std::string& name) const;
  // True for colour spaces whose encoding is scene-linear or log (scene-referred: values
  // above 1.0 are light, not overshoot).
  bool IsSceneReferred(const std::string& name) const;

  // The optimised CPU processor from `src` to `dst`, made once per pair and cached.
  absl::StatusOr<std::shared_ptr<const ColourProcessor>> Processor(const std::string& src,
                                                                   const std::string& dst) const;

  struct Impl;

 private:
  friend class ColourPipeline;  // makes its shaper processors through impl_'s cache
  explicit ColourConfig(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Applies one conversion to planar float RGB frames, in place.
class ColourProcessor final {
 public:
  struct Impl;
  explicit ColourProcessor(std::unique_ptr<Impl> impl);
  ~ColourProcessor();
  ColourProcessor(const ColourProcessor&) = delete;
  ColourProcessor& operator=(const ColourProcessor&) = delete;

  // `planes`: R, G, B planes of `width * height` floats each, converted in place.
  void Apply(float* planes, int width, int height) const;
  void Apply(Frame* frame) const { Apply(frame->planes.data(), frame->width, frame->height); }
  // "ACEScg -> ACEScct" style description, for provenance.
  const std::string& description() const;

 private:
  std::unique_ptr<Impl> impl_;
};

// The log shaper that carries scene-referred values through a model whose values are
// bounded to [0, 1]: input -> `ACEScct`, then ACEScct values [kShaperLow, kShaperHigh]
// mapped linearly onto [0, 1]. kShaperLow is ACEScct's code for linear 0, kShaperHigh
// its code for linear 64.0 (log2(64) + 9.72) / 17.52: linear values in [0, 64] reach
// the model in [0, 1] (mid grey 0.18 at 0.413, 1.0 at 0.585, 16.0 at 0.862), and
// come back exactly.
inline constexpr const char* kShaperSpace = "ACEScct";
inline constexpr double kShaperLow = 0.0729055341958355;
inline constexpr double kShaperHigh = 15.72 / 17.52;

// A task's conversions: input space -> model space before the model, model space ->
// output space after it. Thread-safe (ToModel and FromModel may run on different threads).
class ColourPipeline final {
 public:
  // `in`, `model` and `out` are names in `config`. A scene-referred input (ACEScg,
  // ACEScct, linear Rec.709, ...) goes to the model through the log shaper above
  // (`shaper` true) instead of straight to `model`, which would clip its highlights.
  static absl::StatusOr<std::unique_ptr<ColourPipeline>> Create(
      std::shared_ptr<const ColourConfig> config, const std::string& in, const std::string& model,
      const std::string& out);

  void ToModel(Frame* frame) const;
  void FromModel(Frame* frame) const;

  const ColourConfig& config() const { return *config_; }
  const std::string& input_space() const { return in_; }
  const std::string& model_space() const { return model_; }
  const std::string& output_space() const { return out_; }
  bool shaper() const { return shaper_; }
  // The transforms applied, in order ("ACEScg -> ACEScct", "ACEScct [0.0729, 0.8973]
  // -> [0, 1]", "model", ...).
  std::vector<std::string> Steps() const;

 private:
  ColourPipeline() = default;
  std::shared_ptr<const ColourConfig> config_;
  std::string in_, model_, out_;
  bool shaper_ = false;
  std::shared_ptr<const ColourProcessor> to_model_, from_model_;
};

// The primaries and white point of `space`, by the shipped config's names (a config
// naming its spaces alike works too): ACES2065-1 AP0; ACEScg and ACEScct AP1 (ACES
// white); Linear Rec.709 (sRGB), sRGB - Texture and Rec.709 video Rec.709 (D65);
// BT.2020 video BT.2020. nullopt for other names.
std::optional<Chromaticities> ChromaticitiesOf(const std::string& space);

// FFmpeg colour tags for a movie whose frames are in `space` (Rec.709 video: BT.709
// primaries, transfer and matrix; sRGB - Texture: BT.709 with the IEC 61966-2-1
// transfer; BT.2020 video: BT.2020 primaries and matrix, BT.2020 10-bit transfer;
// Linear Rec.709 (sRGB): BT.709 with a linear transfer); nullopt for other names.
// `range` is left unspecified (0): the encoder's choice.
std::optional<ColourInfo> VideoTagsOf(const std::string& space);

// The input's colour space when the job names none, from what the file says (README
// "Colour management"): an EXR's chromaticities (AP0: ACES2065-1, AP1: ACEScg,
// Rec.709 or none, OpenEXR's default: Linear Rec.709 (sRGB)); a movie's or image's
// colour tags (BT.2020 primaries: BT.2020 video; sRGB transfer: sRGB - Texture;
// BT.709: Rec.709 video); else sRGB - Texture for images and Rec.709 video for movies.
struct DefaultColourSpace {
  std::string name;
  std::string reason;  // where it came from, for the sidecar
};
DefaultColourSpace DefaultInputColourSpace(const std::string& codec, bool image_sequence,
                                           const ColourInfo& tags,
                                           const std::optional<Chromaticities>& exr);

// Levenshtein distance, case-insensitive (for the nearest-names messages).
int EditDistance(const std::string& a, const std::string& b);

}  // namespace reelfarm::media
