// npm model packages (a folder or the .tgz `npm pack` makes) -> reelfarm model
// packages (tfjs_import.h).
#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/storage.h"
#include "worker/inference/tfjs/tfjs_import.h"

namespace reelfarm::tfjs {
namespace fs = std::filesystem;
namespace {

using nlohmann::json;

std::string Hex(const unsigned char* d, unsigned n) {
  static const char* kHex = "0123456789abcdef";
  std::string s;
  for (unsigned i = 0; i < n; ++i) {
    s += kHex[d[i] >> 4];
    s += kHex[d[i] & 15];
  }
  return s;
}

std::string Sha256(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  EVP_Digest(data.data(), data.size(), md, &n, EVP_sha256(), nullptr);
  return Hex(md, n);
}

// The files of a package that an import reads, by path inside the package
// ("package.json", "models/x2/model.json", ...).
struct PackageFiles {
  std::map<std::string, std::string> files;
  std::string sha256;  // of the .tgz, or of the files read from a folder
};

bool Wanted(const std::string& rel) {
  return rel == "package.json" || rel.rfind("models/", 0) == 0 || rel.rfind("LICENSE", 0) == 0;
}

struct ArchiveFree {
  void operator()(archive* a) const { archive_read_free(a); }
};

absl::StatusOr<PackageFiles> ReadTgz(const fs::path& tgz) {
  PackageFiles p;
  ASSIGN_OR_RETURN(p.sha256, common::Sha256File(tgz));
  std::unique_ptr<archive, ArchiveFree> a(archive_read_new());
  archive_read_support_filter_all(a.get());
  archive_read_support_format_tar(a.get());
  archive_read_support_format_gnutar(a.get());
  auto bad = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("package '", tgz.string(), "': ", what));
  };
  if (archive_read_open_filename(a.get(), tgz.c_str(), 1 << 16) != ARCHIVE_OK) {
    return bad(absl::StrCat("cannot open as a .tgz: ", archive_error_string(a.get())));
  }
  archive_entry* e = nullptr;
  int r;
  while ((r = archive_read_next_header(a.get(), &e)) == ARCHIVE_OK) {
    if (archive_entry_filetype(e) != AE_IFREG) continue;
    std::string path = archive_entry_pathname(e);
    // npm packs everything under one top folder ("package/").
    const auto slash = path.find('/');
    if (slash == std::string::npos) continue;
    const std::string rel = path.substr(slash + 1);
    if (!Wanted(rel)) continue;
    std::string data;
    char buf[1 << 16];
    la_ssize_t n;
    while ((n = archive_read_data(a.get(), buf, sizeof buf)) > 0) data.append(buf, n);
    if (n < 0) return bad(absl::StrCat("reading '", path, "': ", archive_error_string(a.get())));
    p.files[rel] = std::move(data);
  }
  if (r != ARCHIVE_EOF) {
    return bad(absl::StrCat("corrupt archive: ", archive_error_string(a.get())));
  }
  return p;
}

absl::StatusOr<PackageFiles> ReadFolder(const fs::path& dir) {
  PackageFiles p;
  std::error_code ec;
  std::string listing;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    const std::string rel = fs::relative(it->path(), dir).generic_string();
    if (!Wanted(rel)) continue;
    std::ifstream in(it->path(), std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    if (!in) return absl::UnavailableError(absl::StrCat("cannot read '", it->path().string(), "'"));
    p.files[rel] = s.str();
  }
  if (ec)
    return absl::NotFoundError(
        absl::StrCat("cannot read folder '", dir.string(), "': ", ec.message()));
  for (const auto& [rel, data] : p.files) listing += rel + " " + Sha256(data) + "\n";
  p.sha256 = Sha256(listing);
  return p;
}

absl::StatusOr<std::string> Get(const PackageFiles& p, const std::string& rel) {
  auto it = p.files.find(rel);
  if (it == p.files.end()) return absl::NotFoundError(absl::StrCat("'", rel, "' is missing"));
  return it->second;
}

// The value range UpscalerJS feeds a model: its JavaScript (getESRGANModelDefinition)
// gives [0, 255] for RDN and [0, 1] for RRDN; RRDNs are the ones with custom layers.
std::pair<double, double> UpscalerJsRange(const std::string& model_json) {
  const bool rrdn = model_json.find("\"MultiplyBeta\"") != std::string::npos ||
                    model_json.find("\"PixelShuffle") != std::string::npos;
  return rrdn ? std::make_pair(0.0, 1.0) : std::make_pair(0.0, 255.0);
}

std::string TempSuffix() {
  std::random_device rd;
  return absl::StrCat(".tmp-", getpid(), "-", rd() % 1000000);
}

}  // namespace

absl::StatusOr<ImportReport> ImportPackage(const fs::path& source, const std::string& name,
                                           const fs::path& out_dir, const ImportOptions& options) {
  if (name.empty() || name.find('/') != std::string::npos || name[0] == '.') {
    return absl::InvalidArgumentError(
        absl::StrCat("--name '", name, "' is not a folder name; give e.g. esrgan-slim"));
  }
  std::error_code ec;
  if (!fs::exists(source, ec)) {
    return absl::NotFoundError(absl::StrCat("package '", source.string(), "' does not exist"));
  }
  const fs::path dest = out_dir / name;
  if (fs::exists(dest, ec) && !options.replace) {
    return absl::AlreadyExistsError(
        absl::StrCat("'", dest.string(), "' exists; remove it or pass --replace"));
  }
  absl::StatusOr<PackageFiles> files =
      fs::is_directory(source) ? ReadFolder(source) : ReadTgz(source);
  if (!files.ok()) return files.status();
  auto where = [&](const std::string& what) {
    return absl::StrCat("package '", source.string(), "': ", what);
  };

  ImportReport report;
  report.sha256 = files->sha256;
  if (auto pj = Get(*files, "package.json"); pj.ok()) {
    json j = json::parse(*pj, nullptr, false);
    if (j.is_object()) {
      report.package = j.value("name", "");
      report.version = j.value("version", "");
      report.license =
          j.contains("license") && j["license"].is_string() ? j["license"].get<std::string>() : "";
    }
  }
  // Every scale, built and checked before anything is written.
  std::map<int, ImportedNetwork> nets;
  std::pair<double, double> range{options.input_min, options.input_max};
  for (const auto& [rel, text] : files->files) {
    const std::string prefix = "models/x";
    if (rel.rfind(prefix, 0) != 0 || rel.size() < prefix.size() + 12 ||
        rel.compare(rel.size() - 11, 11, "/model.json") != 0) {
      continue;
    }
    const std::string folder = rel.substr(0, rel.size() - 10);  // "models/x2/"
    const std::string digits = folder.substr(prefix.size(), folder.size() - prefix.size() - 1);
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const int scale = std::stoi(digits);
    absl::StatusOr<ImportedNetwork> net =
        BuildNetwork(text, [&](const std::string& p) { return Get(*files, folder + p); });
    if (!net.ok()) {
      return absl::Status(net.status().code(),
                          where(absl::StrCat(rel, ": ", net.status().message())));
    }
    if (net->scale != scale) {
      return absl::InvalidArgumentError(
          where(absl::StrCat(rel, ": the network upscales by ", net->scale, ", not by ", scale,
                             " as its folder says")));
    }
    if (net->input_channels != 3) {
      return absl::InvalidArgumentError(where(absl::StrCat(
          rel, ": the network takes ", net->input_channels, " channels; an RGB upscaler takes 3")));
    }
    if (options.input_min == options.input_max) range = UpscalerJsRange(text);
    nets.emplace(scale, std::move(*net));
  }
  if (nets.empty()) {
    return absl::InvalidArgumentError(
        where("has no models/x<N>/model.json; is it a TF.js model package?"));
  }

  // Write beside, then rename into place.
  fs::create_directories(out_dir, ec);
  if (ec)
    return absl::UnavailableError(
        absl::StrCat("cannot create '", out_dir.string(), "': ", ec.message()));
  const fs::path tmp = out_dir / ("." + name + TempSuffix());
  fs::create_directory(tmp, ec);
  if (ec)
    return absl::UnavailableError(
        absl::StrCat("cannot create '", tmp.string(), "': ", ec.message()));
  auto fail = [&](const absl::Status& st) {
    std::error_code ignored;
    fs::remove_all(tmp, ignored);
    return st;
  };
  json manifest = {{"kind", "upscaler"},
                   {"scale", nets.begin()->first},
                   {"channels", 3},
                   {"channel_order", "rgb"},
                   {"input_range", {range.first, range.second}},
                   {"colour_space", "srgb"},
                   // UpscalerJS trains on sRGB images (README "Colour management").
                   {"colorspace", "sRGB - Texture"},
                   {"tile", 0}};
  if (range.first == 0.0 && (range.second == 1.0 || range.second == 255.0)) {
    manifest["range"] = range.second == 1.0 ? "[0,1]" : "[0,255]";
  }
  json scales = json::object();
  for (auto& [scale, net] : nets) {
    const std::string file = absl::StrCat("x", scale, ".pt");
    try {
      net.module.save((tmp / file).string());
    } catch (const c10::Error& e) {
      return fail(absl::UnavailableError(absl::StrCat("cannot write '", (tmp / file).string(),
                                                      "': ", e.what_without_backtrace())));
    }
    ASSIGN_OR_RETURN(std::string sha, common::Sha256File(tmp / file));
    // Convolution workspace (oneDNN's reordered copies) can double the live
    // activations: the estimate for placement and tile choice is twice the liveness.
    const int64_t per_pixel = 2 * net.activation_bytes_per_pixel;
    const int overlap = 4 * net.receptive_field;
    const int64_t min_tile = 2 * overlap + 16;
    scales[std::to_string(scale)] = {
        {"file", file},
        {"sha256", sha},
        {"receptive_field", net.receptive_field},
        {"tile_overlap", overlap},
        {"memory_per_megapixel", per_pixel * 1000000},
        {"memory_bytes", net.parameter_bytes + per_pixel * min_tile * min_tile},
        {"parameters", net.parameter_bytes / 4},
        {"layers", net.layers}};
    report.scales.push_back(scale);
  }
  manifest["scales"] = scales;
  manifest["source"] = {{"format", "tfjs-layers"},
                        {"package", report.package},
                        {"version", report.version},
                        {"license", report.license},
                        {"sha256", report.sha256},
                        {"sha256_of", fs::is_directory(source) ? "folder" : "tgz"},
                        {"imported_by", "reelfarm-models " REELFARM_VERSION}};
  {
    std::ofstream out(tmp / "model.json");
    out << manifest.dump(2) << "\n";
    if (!out)
      return fail(absl::UnavailableError(
          absl::StrCat("cannot write '", (tmp / "model.json").string(), "'")));
  }
  if (auto lic = Get(*files, "LICENSE"); lic.ok()) {
    std::ofstream out(tmp / "LICENSE");
    out << *lic;
  }
  fs::path old;
  if (fs::exists(dest, ec)) {
    old = out_dir / ("." + name + ".old" + TempSuffix());
    fs::rename(dest, old, ec);
    if (ec)
      return fail(absl::UnavailableError(
          absl::StrCat("cannot move '", dest.string(), "' aside: ", ec.message())));
  }
  fs::rename(tmp, dest, ec);
  if (ec)
    return fail(absl::UnavailableError(
        absl::StrCat("cannot rename into '", dest.string(), "': ", ec.message())));
  if (!old.empty()) fs::remove_all(old, ec);
  report.dir = dest;
  return report;
}

}  // namespace reelfarm::tfjs
