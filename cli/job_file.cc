#include "cli/job_file.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <google/protobuf/util/json_util.h>
#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace reelfarm::cli {
namespace {

using nlohmann::json;

// Limits on a job file, so that a hostile or broken one (a "billion laughs" of nested
// aliases, a huge or deeply nested document) is refused instead of eating the memory.
constexpr size_t kMaxJobFileBytes = 4 << 20;
constexpr int64_t kMaxJobFileValues = 100000;       // after expanding aliases
constexpr int64_t kMaxJobFileTextBytes = 16 << 20;  // of all scalars, after expanding aliases
constexpr int kMaxJobFileDepth = 32;

// Counts the values ToJson makes; throws YAML::Exception past the limits.
struct JsonBudget {
  int64_t values = 0;
  int64_t text_bytes = 0;
  void Take(const YAML::Node& node, int depth) {
    if (node.IsScalar()) text_bytes += static_cast<int64_t>(node.Scalar().size());
    if (++values > kMaxJobFileValues || text_bytes > kMaxJobFileTextBytes) {
      throw YAML::Exception(
          node.Mark(),
          absl::StrCat("more than ", kMaxJobFileValues, " values or ", kMaxJobFileTextBytes >> 20,
                       " MiB of text once its aliases (*name) are expanded; a job "
                       "file that large is refused: split it, or use fewer "
                       "nested aliases"));
    }
    if (depth > kMaxJobFileDepth) {
      throw YAML::Exception(node.Mark(), absl::StrCat("nested more than ", kMaxJobFileDepth,
                                                      " levels deep; a job spec needs a few"));
    }
  }
};

// A YAML node as JSON: scalars that read as integers, reals or booleans become those.
json ToJson(const YAML::Node& node, JsonBudget& budget, int depth = 0) {
  budget.Take(node, depth);
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      json out = json::object();
      for (const auto& kv : node) {
        out[kv.first.as<std::string>()] = ToJson(kv.second, budget, depth + 1);
      }
      return out;
    }
    case YAML::NodeType::Sequence: {
      json out = json::array();
      for (const auto& item : node) out.push_back(ToJson(item, budget, depth + 1));
      return out;
    }
    case YAML::NodeType::Scalar: {
      const std::string text = node.Scalar();
      if (node.Tag() == "!") return text;  // quoted: a string
      int64_t i = 0;
      double d = 0;
      bool b = false;
      if (YAML::convert<int64_t>::decode(node, i)) return i;
      if (YAML::convert<double>::decode(node, d)) return d;
      if (YAML::convert<bool>::decode(node, b)) return b;
      return text;
    }
    default:
      return nullptr;
  }
}

// Sets `path` (dotted) in `j` to `value` (parsed as a YAML scalar).
absl::Status ApplySet(json& j, const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--set '", assignment, "': give KEY.PATH=VALUE, e.g. upscale.crf=20"));
  }
  json* at = &j;
  for (absl::string_view part : absl::StrSplit(assignment.substr(0, eq), '.')) {
    at = &(*at)[std::string(part)];
  }
  JsonBudget budget;
  *at = ToJson(YAML::Load(assignment.substr(eq + 1)), budget);
  return absl::OkStatus();
}

// The wedge axes of a generate spec as the README writes them: `steps: [5, 20]`,
// `sampler: [euler, ddim]`, `guidance_scale: [2, 5]` (or `guidance:`, as the flag),
// `prompt: [a, b]` become the API's lists (step_counts, samplers, guidance_scales,
// prompts); `seeds` takes a number, "1-8", "1,5,9-12" or a list of those.
absl::Status NormalizeGenerateAxes(json& g, const std::string& where) {
  if (!g.is_object()) return absl::OkStatus();
  if (g.contains("guidance")) {
    if (g.contains("guidance_scale") || g.contains("guidanceScale")) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": generate gives guidance and guidance_scale; give one"));
    }
    g["guidance_scale"] = g["guidance"];
    g.erase("guidance");
  }
  struct Axis {
    const char* single;
    const char* single_camel;
    const char* list;
    const char* list_camel;
  };
  for (const Axis& a :
       {Axis{"prompt", "prompt", "prompts", "prompts"},
        Axis{"steps", "steps", "step_counts", "stepCounts"},
        Axis{"sampler", "sampler", "samplers", "samplers"},
        Axis{"guidance_scale", "guidanceScale", "guidance_scales", "guidanceScales"}}) {
    for (const char* key : {a.single, a.single_camel}) {
      if (!g.contains(key) || !g[key].is_array()) continue;
      if (g.contains(a.list) || g.contains(a.list_camel)) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": generate gives ", key, " as a list and ", a.list, "; give one"));
      }
      g[a.list] = g[key];
      g.erase(key);
    }
  }
  if (g.contains("seeds")) {
    json seeds = g["seeds"];
    if (!seeds.is_array()) seeds = json::array({seeds});
    json out = json::array();
    for (const json& s : seeds) {
      if (!s.is_string()) {
        out.push_back(s);  // a number, or a bad value the API's parser names
        continue;
      }
      absl::StatusOr<std::vector<int64_t>> parsed = ParseSeeds(s.get<std::string>());
      if (!parsed.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": generate.seeds: ", parsed.status().message()));
      }
      for (int64_t v : *parsed) out.push_back(v);
    }
    if (out.size() > static_cast<size_t>(kMaxSeeds)) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": generate.seeds has ", out.size(),
                                                     " seeds; at most ", kMaxSeeds,
                                                     " per job: split the wedge into jobs"));
    }
    g["seeds"] = out;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ExpandVariables(
    const std::string& text, const std::function<const char*(const std::string&)>& getenv) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    const size_t start = text.find("${", i);
    if (start == std::string::npos) {
      out += text.substr(i);
      break;
    }
    out += text.substr(i, start - i);
    const size_t end = text.find('}', start);
    if (end == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("'${' at offset ", start, " has no closing '}'"));
    }
    std::string name = text.substr(start + 2, end - start - 2);
    std::string fallback;
    bool has_fallback = false;
    if (const auto dash = name.find(":-"); dash != std::string::npos) {
      fallback = name.substr(dash + 2);
      name = name.substr(0, dash);
      has_fallback = true;
    }
    const char* value = getenv(name);
    if (value && *value) {
      out += value;
    } else if (has_fallback) {
      out += fallback;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "variable ${", name, "} is not set; export it or write ${", name, ":-default}"));
    }
    i = end + 1;
  }
  return out;
}

absl::StatusOr<std::vector<FileJob>> LoadJobFile(
    const std::string& path, const std::vector<std::string>& sets,
    const std::function<const char*(const std::string&)>& getenv) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("job file '", path, "' cannot be read"));
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (!ec && size > kMaxJobFileBytes) {
    return absl::InvalidArgumentError(absl::StrCat("job file '", path, "' is ", size,
                                                   " bytes, over the limit of ", kMaxJobFileBytes,
                                                   "; split it"));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseJobText(ss.str(), path, sets, getenv);
}

namespace {

absl::StatusOr<std::vector<FileJob>> ParseJobTextOrThrow(
    const std::string& text, const std::string& path, const std::vector<std::string>& sets,
    const std::function<const char*(const std::string&)>& getenv);

}  // namespace

absl::StatusOr<std::vector<FileJob>> ParseJobText(
    const std::string& text, const std::string& path, const std::vector<std::string>& sets,
    const std::function<const char*(const std::string&)>& getenv) {
  // yaml-cpp and nlohmann::json report bad input by throwing: a map as a key, a name
  // that is a number, text that is not UTF-8, a --set value that is not YAML... Every
  // one of them is a bad file, not a crash (found by fuzz/job_spec_fuzz.cc).
  if (text.size() > kMaxJobFileBytes) {
    return absl::InvalidArgumentError(absl::StrCat("job file '", path, "' is ", text.size(),
                                                   " bytes, over the limit of ", kMaxJobFileBytes,
                                                   "; split it"));
  }
  try {
    return ParseJobTextOrThrow(text, path, sets, getenv);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("job file '", path, "': ", e.what()));
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("job file '", path, "': ", e.what()));
  }
}

namespace {

absl::StatusOr<std::vector<FileJob>> ParseJobTextOrThrow(
    const std::string& text, const std::string& path, const std::vector<std::string>& sets,
    const std::function<const char*(const std::string&)>& getenv) {
  auto expanded = ExpandVariables(text, getenv);
  if (!expanded.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("job file '", path, "': ", expanded.status().message()));
  }
  YAML::Node root;
  try {
    root = YAML::Load(*expanded);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("job file '", path, "': ", e.what()));
  }
  std::vector<YAML::Node> nodes;
  if (root.IsMap() && root["jobs"]) {
    for (const auto& n : root["jobs"]) nodes.push_back(n);
  } else if (root.IsSequence()) {
    for (const auto& n : root) nodes.push_back(n);
  } else if (root.IsMap()) {
    nodes.push_back(root);
  }
  if (nodes.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("job file '", path, "' holds no job; give a spec or jobs: [...]"));
  }
  std::vector<FileJob> jobs;
  std::map<std::string, size_t> by_name;
  JsonBudget budget;  // for the whole file
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (!nodes[i].IsMap()) {
      return absl::InvalidArgumentError(
          absl::StrCat("job file '", path, "': job ", i + 1, " is not a map of fields"));
    }
    json j = ToJson(nodes[i], budget);
    for (const std::string& s : sets) {
      absl::Status st = ApplySet(j, s);
      if (!st.ok()) return st;
    }
    FileJob job;
    job.name = j.value("name", absl::StrCat("job", i + 1));
    const std::string where = absl::StrCat("job file '", path, "': job '", job.name, "'");
    std::vector<int64_t> ids;
    for (const char* key : {"depends_on", "dependsOn"}) {
      if (!j.contains(key)) continue;
      json deps = j[key];
      if (!deps.is_array()) deps = json::array({deps});
      for (const json& d : deps) {
        if (d.is_number_integer()) {
          ids.push_back(d.get<int64_t>());
        } else if (d.is_string()) {
          job.after.push_back(d.get<std::string>());
        } else {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ": depends_on takes job names or ids"));
        }
      }
      j.erase(key);
    }
    if (j.contains("generate")) {
      absl::Status st = NormalizeGenerateAxes(j["generate"], where);
      if (!st.ok()) return st;
    }
    google::protobuf::util::JsonParseOptions options;
    auto st = google::protobuf::util::JsonStringToMessage(j.dump(), &job.spec, options);
    if (!st.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": ", st.message().as_string()));
    }
    for (int64_t id : ids) job.spec.add_depends_on(id);
    if (job.spec.name().empty()) job.spec.set_name(job.name);
    if (!by_name.emplace(job.name, i).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("job file '", path, "': two jobs are named '", job.name, "'"));
    }
    jobs.push_back(std::move(job));
  }
  // Order: each job after those it names (depth-first; a cycle is an error).
  std::vector<FileJob> ordered;
  std::vector<int> mark(jobs.size(), 0);  // 0 new, 1 visiting, 2 done
  std::function<absl::Status(size_t)> visit = [&](size_t i) -> absl::Status {
    if (mark[i] == 2) return absl::OkStatus();
    if (mark[i] == 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "job file '", path, "': depends_on makes a cycle through job '", jobs[i].name, "'"));
    }
    mark[i] = 1;
    for (const std::string& dep : jobs[i].after) {
      auto it = by_name.find(dep);
      if (it == by_name.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("job file '", path, "': job '", jobs[i].name, "' depends on '", dep,
                         "', which is not a job of the file; give its name or a job id"));
      }
      absl::Status st = visit(it->second);
      if (!st.ok()) return st;
    }
    mark[i] = 2;
    ordered.push_back(jobs[i]);
    return absl::OkStatus();
  };
  for (size_t i = 0; i < jobs.size(); ++i) {
    absl::Status st = visit(i);
    if (!st.ok()) return st;
  }
  return ordered;
}

}  // namespace
absl::StatusOr<std::vector<int64_t>> ParseSeeds(const std::string& text) {
  std::vector<int64_t> out;
  auto bad = [&](const std::string& part) {
    return absl::InvalidArgumentError(
        absl::StrCat("--seeds '", text, "': '", part,
                     "' is not a seed or a range; give e.g. 7, 1-8 or 1,5,9-12"));
  };
  auto too_many = [&](const std::string& what, uint64_t n) {
    return absl::InvalidArgumentError(absl::StrCat("--seeds '", text, "': ", what, " has ", n,
                                                   " seeds; at most ", kMaxSeeds,
                                                   " per job: split the wedge into jobs"));
  };
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    const std::string p(absl::StripAsciiWhitespace(part));
    const size_t dash = p.find('-', 1);  // a leading '-' is a sign
    int64_t a = 0, b = 0;
    if (dash == std::string::npos) {
      if (!absl::SimpleAtoi(p, &a)) return bad(p);
      out.push_back(a);
      continue;
    }
    if (!absl::SimpleAtoi(p.substr(0, dash), &a) || !absl::SimpleAtoi(p.substr(dash + 1), &b)) {
      return bad(p);
    }
    if (b < a) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--seeds '", text, "': range '", p, "' ends before it starts; give e.g. ", b, "-", a));
    }
    // Unsigned: the count of a range of int64 seeds may not fit in an int64.
    const uint64_t count = static_cast<uint64_t>(b) - static_cast<uint64_t>(a) + 1;
    if (count == 0 || count > static_cast<uint64_t>(kMaxSeeds)) {
      return too_many(absl::StrCat("seed range ", p), count == 0 ? UINT64_MAX : count);
    }
    if (out.size() + count > static_cast<uint64_t>(kMaxSeeds)) {
      return too_many("the list", out.size() + count);
    }
    for (uint64_t k = 0; k < count; ++k) {
      out.push_back(static_cast<int64_t>(static_cast<uint64_t>(a) + k));
    }
  }
  if (out.size() > static_cast<size_t>(kMaxSeeds)) return too_many("the list", out.size());
  if (out.empty()) return bad(text);
  return out;
}

absl::StatusOr<std::pair<int, int>> ParseSize(const std::string& text) {
  const size_t x = text.find('x');
  int w = 0, h = 0;
  if (x == std::string::npos || !absl::SimpleAtoi(text.substr(0, x), &w) ||
      !absl::SimpleAtoi(text.substr(x + 1), &h) || w < 1 || h < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--size '", text, "': give WIDTHxHEIGHT, e.g. 256x256"));
  }
  return std::make_pair(w, h);
}

}  // namespace reelfarm::cli
