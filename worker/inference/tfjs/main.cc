// reelfarm-models: model package tools.
//   reelfarm-models import-tfjs PACKAGE_DIR_OR_TGZ --name NAME --out DIR
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "absl/strings/str_join.h"
#include "worker/inference/tfjs/tfjs_import.h"

int main(int argc, char** argv) {
  CLI::App app{"reelfarm-models: model package tools"};
  app.require_subcommand(1);
  auto* imp = app.add_subcommand(
      "import-tfjs",
      "import a TF.js layers model package (an npm .tgz or its folder) as a reelfarm model "
      "package <out>/<name>: one TorchScript file per models/x<N>/ scale, and model.json");
  std::string source, name, out = "models", range;
  reelfarm::tfjs::ImportOptions options;
  imp->add_option("package", source, "the package folder or the .tgz from `npm pack`")->required();
  imp->add_option("--name", name, "model name (the folder written under --out)")->required();
  imp->add_option("--out", out, "model folder to write into")->capture_default_str();
  imp->add_option("--input-range", range,
                  "value range LO,HI of the network's input and output (default: UpscalerJS's, "
                  "0,255 for RDN and 0,1 for RRDN models)");
  imp->add_flag("--replace", options.replace, "replace an existing <out>/<name>");
  CLI11_PARSE(app, argc, argv);
  if (!range.empty() &&
      std::sscanf(range.c_str(), "%lf,%lf", &options.input_min, &options.input_max) != 2) {
    std::fprintf(stderr, "reelfarm-models: --input-range '%s' is not LO,HI (e.g. 0,255)\n",
                 range.c_str());
    return 2;
  }
  auto r = reelfarm::tfjs::ImportPackage(source, name, out, options);
  if (!r.ok()) {
    std::fprintf(stderr, "reelfarm-models: import-tfjs: %s\n",
                 std::string(r.status().message()).c_str());
    return 1;
  }
  std::printf("imported %s %s (%s, sha256 %s) as %s: scales %s\n", r->package.c_str(),
              r->version.c_str(), r->license.c_str(), r->sha256.c_str(), r->dir.c_str(),
              absl::StrJoin(r->scales, ", ").c_str());
  return 0;
}
