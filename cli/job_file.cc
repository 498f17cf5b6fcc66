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
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    const std::string p(absl::StripAsciiWhitespace(part));
    const size_t dash = p.find('-', 1);  // a leading '-' is a sign
    int64_t a = 0, b = 0;
    if (dash == std::string::npos) {
      if (!absl::SimpleAtoi(p, &a)) return bad(p);
      out.push_back(a);
      continue;
    }
    if (!absl::SimpleAtoi(p.substr(0, dash), &a) || !absl::SimpleAtoi(p.substr(dash + 1), &b) ||
        b < a || b - a >= 100000) {
      return bad(p);
    }
    for (int64_t s = a; s <= b; ++s) out.push_back(s);
  }
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
