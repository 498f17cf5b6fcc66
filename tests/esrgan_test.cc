// The TF.js importer (reelfarm-models import-tfjs) on UpscalerJS's ESRGAN packages,
// fetched by scripts/fetch-models.sh (the ctest fixture `esrgan_models`): each imported
// model against the package's own samples, ×8 against a plain layer-by-layer reference
// written here apart from the importer, tiling, and the refused packages.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <torch/cuda.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/model_manifest.h"
#include "common/storage.h"
#include "tests/testing/fixtures.h"
#include "worker/inference/model.h"
#include "worker/inference/tfjs/tfjs_import.h"

using namespace reelfarm;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const fs::path kModels = fs::path(REELFARM_SOURCE_DIR) / "models";
const fs::path kPackages = kModels / ".packages";

fs::path Tgz(const std::string& size) {
  return kPackages / ("upscalerjs-esrgan-" + size + "-1.0.0.tgz");
}

// The package unpacked (once per test run) with tar, for its assets and model files.
fs::path Unpacked(const std::string& size) {
  static testing::TempDir dir;
  const fs::path out = dir.path() / size;
  if (!fs::exists(out / "package")) {
    fs::create_directories(out);
    INFO("unpacking " << Tgz(size) << " (scripts/fetch-models.sh fetches it)");
    REQUIRE(testing::Run("tar xzf '" + Tgz(size).string() + "' -C '" + out.string() + "'") == 0);
  }
  return out / "package";
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A PNG decoded by ffmpeg as [1, 3, H, W] float in [0, 1].
at::Tensor DecodePng(const fs::path& png, std::vector<uint8_t>* rgb = nullptr) {
  int w = 0, h = 0;
  auto frames = testing::DecodeRgb(png, "", &w, &h);
  REQUIRE(frames.size() == 1);
  if (rgb) *rgb = frames[0];
  at::Tensor t = at::from_blob(frames[0].data(), {h, w, 3}, at::kByte).clone();
  return t.permute({2, 0, 1}).unsqueeze(0).to(at::kFloat).div(255.0);
}

// [1, 3, H, W] in [0, 1] -> packed RGB24, as a worker writes it.
std::vector<uint8_t> ToRgb(const at::Tensor& y) {
  at::Tensor t =
      y[0].mul(255.0).round().clamp(0, 255).to(at::kByte).permute({1, 2, 0}).contiguous();
  return std::vector<uint8_t>(t.data_ptr<uint8_t>(), t.data_ptr<uint8_t>() + t.numel());
}

// A plain evaluation of a TF.js layers model: each layer by name, recursively from the
// output, in NHWC as TF.js runs it, with the weights read from the shards in manifest
// order. Written apart from the importer (no code generation, other ops).
class ReferenceNet {
 public:
  explicit ReferenceNet(const fs::path& model_json) {
    json j = json::parse(ReadFile(model_json));
    const json& cfg = j["modelTopology"]["model_config"]["config"];
    for (const json& l : cfg["layers"]) layers_[l["name"].get<std::string>()] = l;
    output_ = cfg["output_layers"][0][0].get<std::string>();
    for (const json& group : j["weightsManifest"]) {
      std::string data;
      for (const json& p : group["paths"])
        data += ReadFile(model_json.parent_path() / p.get<std::string>());
      size_t offset = 0;
      for (const json& w : group["weights"]) {
        auto shape = w["shape"].get<std::vector<int64_t>>();
        at::Tensor t = at::empty(shape, at::kFloat);
        REQUIRE(offset + t.numel() * 4 <= data.size());
        std::memcpy(t.data_ptr<float>(), data.data() + offset, t.numel() * 4);
        offset += t.numel() * 4;
        weights_[w["name"].get<std::string>()] = t;
      }
    }
  }
  // x: [1, 3, H, W] in the network's range; returns the same layout.
  at::Tensor Run(const at::Tensor& x) {
    values_.clear();
    values_["__input"] = x.permute({0, 2, 3, 1}).contiguous();
    return Eval(output_).permute({0, 3, 1, 2});
  }

 private:
  at::Tensor Eval(const std::string& name) {
    if (auto it = values_.find(name); it != values_.end()) return it->second;
    const json& l = layers_.at(name);
    const std::string type = l["class_name"];
    const json& c = l["config"];
    std::vector<at::Tensor> in;
    for (const json& n : l["inbound_nodes"].empty() ? json::array() : l["inbound_nodes"][0]) {
      in.push_back(Eval(n[0].get<std::string>()));
    }
    at::Tensor y;
    if (type == "InputLayer") {
      y = values_.at("__input");
    } else if (type == "Conv2D") {
      at::Tensor k = weights_.at(name + "/kernel");  // HWIO
      const int64_t pad = c["padding"] == "same" ? k.size(0) / 2 : 0;
      REQUIRE((c["padding"] == "valid" || k.size(0) % 2 == 1));
      y = at::conv2d(in[0].permute({0, 3, 1, 2}), k.permute({3, 2, 0, 1}),
                     weights_.at(name + "/bias"), 1, pad)
              .permute({0, 2, 3, 1});
      if (c["activation"] == "relu") y = at::relu(y);
      REQUIRE((c["activation"] == "relu" || c["activation"] == "linear"));
    } else if (type == "Activation") {
      REQUIRE(c["activation"] == "relu");
      y = at::relu(in[0]);
    } else if (type == "Concatenate") {
      y = at::cat(in, 3);
    } else if (type == "Add") {
      y = in[0];
      for (size_t i = 1; i < in.size(); ++i) y = y + in[i];
    } else if (type == "MultiplyBeta") {
      y = in[0] * 0.2;
    } else if (type == "UpSampling2D") {
      const int64_t s = c["size"][0];
      at::Tensor nchw = in[0].permute({0, 3, 1, 2});
      y = at::upsample_nearest2d(nchw, {nchw.size(2) * s, nchw.size(3) * s}).permute({0, 2, 3, 1});
    } else if (type.rfind("PixelShuffle", 0) == 0) {
      // tf.depthToSpace(x, b, 'NHWC'): [n, h, w, b*b*c] -> [n, h*b, w*b, c].
      const int64_t b = std::stoi(type.substr(12));
      const at::Tensor& x = in[0];
      const int64_t n = x.size(0), h = x.size(1), w = x.size(2), ch = x.size(3) / (b * b);
      y = x.reshape({n, h, w, b, b, ch}).permute({0, 1, 3, 2, 4, 5}).reshape({n, h * b, w * b, ch});
    } else {
      FAIL("reference: layer type " << type);
    }
    values_[name] = y;
    return y;
  }

  std::map<std::string, json> layers_;
  std::map<std::string, at::Tensor> weights_;
  std::map<std::string, at::Tensor> values_;
  std::string output_;
};

// The package's value range, as its JavaScript (getESRGANModelDefinition) feeds it.
double RangeMax(const std::string& size) { return size == "thick" ? 1.0 : 255.0; }

void CheckPackage(const std::string& size) {
  c10::InferenceMode guard;
  const fs::path pkg = Unpacked(size);
  const std::string name = "esrgan-" + size;
  auto manifest = common::ReadModelManifest(kModels / name);
  INFO(manifest.status().ToString());
  REQUIRE(manifest.ok());
  CHECK(manifest->Scales() == std::vector<int>{2, 3, 4, 8});
  CHECK(manifest->input_max == RangeMax(size));
  const json source = json::parse(manifest->source_json);
  CHECK(source["package"] == "@upscalerjs/" + name);
  CHECK(source["version"] == "1.0.0");
  CHECK(source["license"] == "MIT");
  auto tgz_sha = common::Sha256File(Tgz(size));
  REQUIRE(tgz_sha.ok());
  CHECK(source["sha256"] == *tgz_sha);

  const at::Tensor fixture = DecodePng(pkg / "assets/fixture.png");
  for (int scale : {2, 3, 4}) {
    auto model = inference::LoadModel(name, scale, {kModels.string()}, "cpu");
    INFO(model.status().ToString());
    REQUIRE(model.ok());
    auto y = (*model)->Upscale(fixture);
    REQUIRE(y.ok());
    std::vector<uint8_t> ref;
    DecodePng(pkg / ("assets/samples/" + std::to_string(scale) + "x/result.png"), &ref);
    const double psnr = testing::Psnr(ToRgb(*y), ref);
    INFO(name << " x" << scale << " against the package's sample: " << psnr << " dB");
    CHECK(psnr >= 45.0);
    // Bicubic, for scale: far below (about 34 dB).
    auto bicubic = inference::LoadModel("bicubic", scale, {}, "cpu");
    REQUIRE(bicubic.ok());
    CHECK(testing::Psnr(ToRgb(*(*bicubic)->Upscale(fixture)), ref) < 40.0);
  }
  // x8 has no sample: the reference evaluation of the package's own files. The
  // reference is first checked against the x2 sample.
  const double hi = RangeMax(size);
  for (int scale : {2, 8}) {
    ReferenceNet ref(pkg / ("models/x" + std::to_string(scale) + "/model.json"));
    at::Tensor r = ref.Run(fixture * hi).div(hi).clamp(0, 1);
    REQUIRE(r.sizes() == at::IntArrayRef({1, 3, 128 * scale, 128 * scale}));
    if (scale == 2) {
      std::vector<uint8_t> sample;
      DecodePng(pkg / "assets/samples/2x/result.png", &sample);
      const double psnr = testing::Psnr(ToRgb(r), sample);
      INFO("the reference evaluator against the x2 sample: " << psnr << " dB");
      REQUIRE(psnr >= 45.0);
      continue;
    }
    auto model = inference::LoadModel(name, scale, {kModels.string()}, "cpu");
    REQUIRE(model.ok());
    auto y = (*model)->Upscale(fixture);
    REQUIRE(y.ok());
    const double psnr = testing::Psnr(ToRgb(*y), ToRgb(r));
    INFO(name << " x8 against the reference evaluator: " << psnr << " dB");
    CHECK(psnr >= 60.0);
  }
}

}  // namespace

TEST_CASE("TF depth_to_space order differs from pixel_shuffle and the importer follows TF",
          "[unit][esrgan]") {
  const int64_t b = 2, c = 3, h = 2, w = 3;
  at::Tensor x = at::arange(b * b * c * h * w, at::kFloat).reshape({1, b * b * c, h, w});
  at::Tensor y = tfjs::DepthToSpaceNchw(x, b);
  REQUIRE(y.sizes() == at::IntArrayRef({1, c, h * b, w * b}));
  // TF: output (h*b + i, w*b + j, ch) = input (h, w, (i*b + j)*C + ch).
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t i = 0; i < b; ++i)
      for (int64_t j = 0; j < b; ++j)
        for (int64_t yy = 0; yy < h; ++yy)
          for (int64_t xx = 0; xx < w; ++xx)
            REQUIRE(y[0][ch][yy * b + i][xx * b + j].item<float>() ==
                    x[0][(i * b + j) * c + ch][yy][xx].item<float>());
  CHECK_FALSE(at::equal(y, at::pixel_shuffle(x, b)));

  // A one-layer model with PixelShuffle2x, imported: the same order.
  json model = {{"format", "layers-model"},
                {"modelTopology",
                 {{"model_config",
                   {{"class_name", "Functional"},
                    {"config",
                     {{"layers",
                       {{{"class_name", "InputLayer"},
                         {"name", "in"},
                         {"config", {{"batch_input_shape", {nullptr, nullptr, nullptr, 12}}}},
                         {"inbound_nodes", json::array()}},
                        {{"class_name", "PixelShuffle2x"},
                         {"name", "ps"},
                         {"config", json::object()},
                         {"inbound_nodes", {{{"in", 0, 0, json::object()}}}}}}},
                      {"input_layers", {{"in", 0, 0}}},
                      {"output_layers", {{"ps", 0, 0}}}}}}}}},
                {"weightsManifest", json::array()}};
  auto net =
      tfjs::BuildNetwork(model.dump(), [](const std::string&) -> absl::StatusOr<std::string> {
        return absl::NotFoundError("no shards");
      });
  INFO(net.status().ToString());
  REQUIRE(net.ok());
  CHECK(net->scale == 2);
  c10::InferenceMode guard;
  at::Tensor in = at::rand({1, 12, 5, 7});
  at::Tensor out = net->module.forward({in}).toTensor();
  CHECK(at::equal(out, tfjs::DepthToSpaceNchw(in, 2)));
}

TEST_CASE("esrgan-slim imported reproduces the package samples and the x8 reference",
          "[integration][esrgan]") {
  CheckPackage("slim");
}

TEST_CASE("esrgan-medium imported reproduces the package samples and the x8 reference",
          "[integration][esrgan]") {
  CheckPackage("medium");
}

TEST_CASE("esrgan-thick imported reproduces the package samples and the x8 reference",
          "[integration][esrgan][slow]") {
  CheckPackage("thick");
}

namespace {

// `dir` copied to a fresh folder under `tmp`.
fs::path CopyOf(const fs::path& dir, const fs::path& tmp) {
  const fs::path out = tmp / dir.filename();
  fs::copy(dir, out, fs::copy_options::recursive);
  return out;
}

void EditJson(const fs::path& file, const std::function<void(json&)>& edit) {
  json j = json::parse(ReadFile(file));
  edit(j);
  std::ofstream(file) << j.dump();
}

json& LayerNamed(json& model, const std::string& name) {
  for (json& l : model["modelTopology"]["model_config"]["config"]["layers"]) {
    if (l["name"] == name) return l;
  }
  FAIL("no layer " << name);
  throw;
}

json& WeightNamed(json& model, const std::string& name) {
  for (json& w : model["weightsManifest"][0]["weights"]) {
    if (w["name"] == name) return w;
  }
  FAIL("no weight " << name);
  throw;
}

std::vector<std::string> Listing(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("bad TF.js packages are refused naming the layer and nothing is written",
          "[integration][esrgan]") {
  const fs::path slim = Unpacked("slim");
  struct Case {
    std::string what;
    std::function<void(const fs::path& pkg)> edit;
    std::vector<std::string> expect;
  };
  const std::vector<Case> cases = {
      {"unknown layer",
       [](const fs::path& p) {
         EditJson(p / "models/x2/model.json",
                  [](json& m) { LayerNamed(m, "F_1_1_Relu")["class_name"] = "PReLU"; });
       },
       {"layer 'F_1_1_Relu' (PReLU)", "layer type 'PReLU' is not supported"}},
      {"weight shape mismatch",
       [](const fs::path& p) {
         EditJson(p / "models/x2/model.json", [](json& m) {
           WeightNamed(m, "F_0/kernel")["shape"] = {3, 3, 64, 32};
         });
       },
       {"layer 'F_0' (Conv2D)", "weight 'F_0/kernel' has shape [3, 3, 64, 32]",
        "needs [3, 3, 64, 64]"}},
      {"short shard",
       [](const fs::path& p) {
         const fs::path shard = p / "models/x2/group1-shard1of1.bin";
         fs::resize_file(shard, fs::file_size(shard) - 8);
       },
       // The manifest's last weight is UPN3/bias (weights are listed by name).
       {"layer 'UPN3' (Conv2D)", "weight 'UPN3/bias'", "shorter than the manifest says"}},
      {"float16 weights",
       [](const fs::path& p) {
         EditJson(p / "models/x2/model.json",
                  [](json& m) { WeightNamed(m, "SR/kernel")["dtype"] = "float16"; });
       },
       {"layer 'SR' (Conv2D)", "weight 'SR/kernel' has dtype float16", "only float32"}},
      {"cycle",
       [](const fs::path& p) {
         EditJson(p / "models/x2/model.json", [](json& m) {
           LayerNamed(m, "F_0")["inbound_nodes"] = {{{"LRL_1", 0, 0, json::object()}}};
         });
       },
       {"(Conv2D): is part of a cycle", "F_0 -> ", "LRL_1"}},
      {"two outputs",
       [](const fs::path& p) {
         EditJson(p / "models/x2/model.json", [](json& m) {
           m["modelTopology"]["model_config"]["config"]["output_layers"].push_back({"UPN1", 0, 0});
         });
       },
       {"2 outputs", "'SR' (Conv2D)", "'UPN1' (Conv2D)"}},
  };
  for (const Case& c : cases) {
    SECTION(c.what) {
      testing::TempDir tmp;
      const fs::path pkg = CopyOf(slim, tmp.path());
      c.edit(pkg);
      const fs::path out = tmp.path() / "models";
      fs::create_directories(out);
      std::ofstream(out / "keep.txt") << "x";
      const auto before = Listing(out);
      auto r = tfjs::ImportPackage(pkg, "bad", out);
      INFO(r.status().ToString());
      REQUIRE(r.status().code() == absl::StatusCode::kInvalidArgument);
      for (const auto& e : c.expect)
        CHECK_THAT(std::string(r.status().message()), Catch::Contains(e));
      CHECK(Listing(out) == before);
      // The tool says the same and fails; a folder it would create is not made.
      int status = 0;
      const std::string said =
          testing::Capture(std::string(REELFARM_MODELS_BIN) + " import-tfjs '" + pkg.string() +
                               "' --name bad --out '" + (tmp.path() / "new").string() + "' 2>&1",
                           &status);
      CHECK(status != 0);
      CHECK_THAT(said, Catch::Contains(c.expect[0]));
      CHECK_FALSE(fs::exists(tmp.path() / "new"));
    }
  }
}

TEST_CASE("the importer reads a package folder as well as its .tgz, and keeps what exists",
          "[integration][esrgan]") {
  testing::TempDir tmp;
  auto r = tfjs::ImportPackage(Unpacked("slim"), "slim-from-folder", tmp.path());
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  CHECK(r->scales == std::vector<int>{2, 3, 4, 8});
  CHECK(r->package == "@upscalerjs/esrgan-slim");
  // Same networks as the .tgz gave (scripts/fetch-models.sh): same results.
  c10::InferenceMode guard;
  at::Tensor x = DecodePng(Unpacked("slim") / "assets/fixture.png");
  auto a = inference::LoadModel("slim-from-folder", 3, {tmp.path().string()}, "cpu");
  auto b = inference::LoadModel("esrgan-slim", 3, {kModels.string()}, "cpu");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(at::equal(*(*a)->Upscale(x), *(*b)->Upscale(x)));
  auto again = tfjs::ImportPackage(Unpacked("slim"), "slim-from-folder", tmp.path());
  CHECK(again.status().code() == absl::StatusCode::kAlreadyExists);
  tfjs::ImportOptions replace;
  replace.replace = true;
  CHECK(tfjs::ImportPackage(Tgz("slim"), "slim-from-folder", tmp.path(), replace).ok());
}

namespace {

// Tiles of the smallest size the manifest allows (2 * overlap + 16) against whole
// frames, on a frame one tile and a bit wide (and as tall, unless `thin`), at `scales`
// (all the model's when empty).
void CheckTiling(const std::string& size, bool thin, std::vector<int> scales = {}) {
  c10::InferenceMode guard;
  const std::string name = "esrgan-" + size;
  auto m = common::ReadModelManifest(kModels / name);
  REQUIRE(m.ok());
  testing::TempDir tmp;
  const fs::path copy = CopyOf(kModels / name, tmp.path());
  int tile = 0;
  for (const auto& s : m->scales) tile = std::max(tile, 2 * s.tile_overlap + 16);
  EditJson(copy / "model.json", [&](json& j) { j["tile"] = tile; });
  const at::Tensor fixture = DecodePng(Unpacked(size) / "assets/fixture.png");
  const int64_t w = tile + 12, h = thin ? 16 : tile + 12;
  const int64_t reps = (w + 127) / 128;
  at::Tensor x = fixture.repeat({1, 1, reps, reps}).slice(2, 0, h).slice(3, 0, w).contiguous();
  if (scales.empty()) scales = m->Scales();
  for (int scale : scales) {
    auto whole = inference::LoadModel(name, scale, {kModels.string()}, "cpu");
    auto tiled = inference::LoadModel(name, scale, {tmp.path().string()}, "cpu");
    REQUIRE(whole.ok());
    REQUIRE(tiled.ok());
    REQUIRE(((*whole)->tile() == 0 || (*whole)->tile() >= w));
    CHECK((*tiled)->tile() == tile);
    auto a = (*whole)->Upscale(x);
    auto b = (*tiled)->Upscale(x);
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    const float diff = (*a - *b).abs().max().item<float>();
    INFO(name << " x" << scale << " tile " << tile << ": largest difference " << diff * 255
              << "/255");
    CHECK(diff <= 1.0f / 255);
  }
}

}  // namespace

TEST_CASE("esrgan-slim tiled with the manifest's overlap equals untiled", "[integration][esrgan]") {
  CheckTiling("slim", false);
}

TEST_CASE("esrgan-medium tiled with the manifest's overlap equals untiled",
          "[integration][esrgan]") {
  CheckTiling("medium", false);
}

TEST_CASE("esrgan-thick tiled with the manifest's overlap equals untiled",
          "[integration][esrgan][slow]") {
  // Its receptive field reaches 154 input pixels (153 3x3 convolutions in a row), so
  // tiles are 1248 pixels: one thin frame at x2 keeps this to about a minute on CPU.
  CheckTiling("thick", true, {2});
}

TEST_CASE("CUDA: esrgan-slim on cuda:0 reproduces the package's x2 sample", "[gpu][esrgan]") {
  if (!torch::cuda::is_available()) {
    WARN("no CUDA device: skipped");
    return;
  }
  c10::InferenceMode guard;
  const fs::path pkg = Unpacked("slim");
  auto model = inference::LoadModel("esrgan-slim", 2, {kModels.string()}, "cuda:0");
  INFO(model.status().ToString());
  REQUIRE(model.ok());
  auto y = (*model)->Upscale(DecodePng(pkg / "assets/fixture.png"));
  REQUIRE(y.ok());
  std::vector<uint8_t> ref;
  DecodePng(pkg / "assets/samples/2x/result.png", &ref);
  CHECK(testing::Psnr(ToRgb(*y), ref) >= 45.0);
}

TEST_CASE(
    "a package with several scales: ForScale picks each, the overlap must cover the receptive "
    "field",
    "[unit][esrgan]") {
  testing::TempDir tmp;
  const fs::path dir = tmp.path() / "multi";
  fs::create_directories(dir);
  std::ofstream(dir / "x2.pt") << "x";
  std::ofstream(dir / "x8.pt") << "x";
  json j = {{"kind", "upscaler"},
            {"input_range", {0, 255}},
            {"scales",
             {{"8",
               {{"file", "x8.pt"},
                {"receptive_field", 10},
                {"tile_overlap", 40},
                {"memory_per_megapixel", 2500000000},
                {"memory_bytes", 900}}},
              {"2",
               {{"file", "x2.pt"},
                {"receptive_field", 10},
                {"tile_overlap", 40},
                {"memory_per_megapixel", 1000000},
                {"memory_bytes", 100}}}}},
            {"source", {{"package", "@upscalerjs/esrgan-slim"}}}};
  std::ofstream(dir / "model.json") << j.dump();
  auto m = common::ReadModelManifest(dir);
  INFO(m.status().ToString());
  REQUIRE(m.ok());
  CHECK(m->Scales() == std::vector<int>{2, 8});
  CHECK(m->scale == 2);
  CHECK(m->input_max == 255.0);
  auto x8 = common::ForScale(*m, 8);
  REQUIRE(x8.ok());
  CHECK(x8->file == "x8.pt");
  CHECK(x8->tile_memory_per_pixel == 2500);
  CHECK(x8->memory_bytes == 900);
  CHECK(json::parse(x8->source_json)["package"] == "@upscalerjs/esrgan-slim");
  auto x3 = common::ForScale(*m, 3);
  CHECK(x3.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(x3.status().message()), Catch::Contains("made for scale 2, 8, not 3"));
  // Loading for a scale it has not: the same message.
  auto load = inference::LoadModel("multi", 4, {tmp.path().string()}, "cpu");
  CHECK_THAT(load.status().ToString(), Catch::Contains("made for scale 2, 8, not 4"));

  j["scales"]["8"]["tile_overlap"] = 39;
  std::ofstream(dir / "model.json") << j.dump();
  auto bad = common::ReadModelManifest(dir);
  CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(bad.status().message()),
             Catch::Contains("tile_overlap 39 does not cover receptive_field 10"));
}
