// Model packages: a folder `<name>/` holding `model.json` and TorchScript file(s).
// Both the server (to validate specs) and the worker (to load models) read manifests.
// The manifest format is documented in models/README.md.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/job_defaults.h"
#include "common/status.h"

namespace reelfarm::common {

// One scale of a package that has several (`scales` in model.json): its file and the
// figures that depend on the scale.
struct ModelScale {
  int scale = 0;
  std::string file;
  int receptive_field = 0;
  int tile_overlap = 0;
  int64_t tile_memory_per_pixel = 0;
  int64_t memory_bytes = 0;
};

struct ModelManifest {
  std::string name;  // the folder's name
  std::string kind;  // "upscaler" or "denoiser"
  int scale = 0;     // upscale factor the network was made for
  std::string file = "model.pt";
  int channels = 3;
  double input_min = 0.0;  // value range the network expects ...
  double input_max = 1.0;  // ... and returns
  std::string colour_space = "srgb";
  // The OCIO colour space of the network's values (`colorspace`, e.g. "sRGB - Texture"
  // for the ESRGAN family): a job that names its colour spaces has its frames converted
  // to it and back (media/colour.h). Empty: not colour-managed, frames go in as decoded.
  std::string colorspace;
  // `range` as written ("[0,1]" or "[0,255]"); it sets input_min/input_max. Empty when
  // the manifest has none.
  std::string range;
  int temporal_window = 1;   // frames in per frame out
  int tile = 0;              // tile size in input pixels (0: whole frames)
  int tile_overlap = 0;      // input pixels shared by neighbouring tiles
  int batch = 1;             // frames per forward call
  bool fp16 = false;         // may run in half precision on CUDA
  int64_t memory_bytes = 0;  // estimate for placement
  // Device memory one input pixel takes in a forward call (activations included). With
  // tile 0, the tile is chosen from the device's free memory when the model loads.
  int64_t tile_memory_per_pixel = 0;
  std::filesystem::path dir;          // where it was found
  std::string channel_order = "rgb";  // of the network's input and output channels
  // Farthest input pixel (input pixels) that reaches an output pixel; tile_overlap must
  // be at least 4x this for tiles to give the untiled result (tiling.h).
  int receptive_field = 0;
  // Packages with several scales (`scales` in model.json), in increasing order; the
  // fields above then hold the smallest one's figures (ForScale picks another).
  std::vector<ModelScale> scales;
  std::string source_json;  // `source` (where an imported package came from), as JSON

  // The scales the package can run: `scales`, or the one `scale`.
  std::vector<int> Scales() const;

  // kind "denoiser" (generation; models/README.md has the contract):
  std::string prediction = "velocity";  // what forward() returns: flow-matching velocity
  int latent_channels = 3;
  int latent_frames = 0;                  // fixed latent clip length (0: one latent per frame)
  int latent_scale = 1;                   // output pixels per latent pixel
  int stride = 1;                         // width and height must be multiples of this
  int max_frames = 240;                   // most frames a take may ask for
  std::string decoder;                    // TorchScript latents -> frames ("" : latents are RGB)
  std::string conditioning = "none";      // "none", "text" or "class"
  std::string text_encoder;               // text: TorchScript tokens -> embedding
  std::string tokenizer;                  // text: vocabulary file, one token a line
  int max_tokens = 16;                    // text: prompt length in tokens
  std::vector<std::string> class_labels;  // class: the prompts it knows
  int default_steps = kDefaultModelSteps;
  double default_guidance = kDefaultModelGuidance;
  std::string default_sampler{kDefaultSampler};
};

// Reads `<dir>/model.json`. INVALID_ARGUMENT naming the file and field when malformed.
absl::StatusOr<ModelManifest> ReadModelManifest(const std::filesystem::path& dir);

// `m` set up for `scale` (file, overlap, memory of that scale). INVALID_ARGUMENT naming
// the scales it has when it has not this one.
absl::StatusOr<ModelManifest> ForScale(const ModelManifest& m, int scale);

// Every valid package directly under each folder of `search_path` (first one wins on
// a name clash). Invalid packages are skipped; their errors go to `errors`.
std::vector<ModelManifest> FindModelPackages(const std::vector<std::string>& search_path,
                                             std::vector<std::string>* errors = nullptr);

// FindModelPackages of one search path, read again only when something it read may
// have changed: each folder of the path, the names in it, each of those and its
// model.json (inode, size, modification and change times; a stat each) are compared
// with what they were. Reading the packages parses every manifest (about 80 us a
// package here), and the server admits every submit against them. As git does with
// "racily clean" files, nothing is kept while any of those times is under
// `racy_seconds` old: a file changed twice within one tick of the file system's clock,
// the same size both times, would otherwise look unchanged. Thread-safe.
class ModelPackageCache {
 public:
  explicit ModelPackageCache(std::vector<std::string> search_path, int racy_seconds = 2)
      : search_path_(std::move(search_path)), racy_seconds_(racy_seconds) {}
  std::shared_ptr<const std::vector<ModelManifest>> Get() const;

 private:
  // What the packages were read from, as stat sees it; `*newest` the latest of the
  // times in it (seconds since the epoch).
  std::string Signature(int64_t* newest) const;

  const std::vector<std::string> search_path_;
  const int racy_seconds_;
  mutable absl::Mutex mu_;
  mutable std::string signature_ ABSL_GUARDED_BY(mu_);
  mutable std::shared_ptr<const std::vector<ModelManifest>> packages_ ABSL_GUARDED_BY(mu_);
};

// Built-in resamplers every worker has, and the scales they run.
const std::vector<std::string>& BuiltinModels();
const std::vector<int>& BuiltinScales();

}  // namespace reelfarm::common
