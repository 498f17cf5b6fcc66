// Each default and range of a job spec has one home, common/job_defaults.h: the API's
// documentation (proto/reelfarm/v1/jobs.proto, the comment above each field) and the
// Python SDK's docstrings state the numbers the code uses.
#include <catch2/catch.hpp>

#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <string>

#include "common/job_defaults.h"

namespace {

namespace c = reelfarm::common;

std::string ReadSource(const std::string& relative) {
  std::ifstream in(std::string(REELFARM_SOURCE_DIR) + "/" + relative);
  REQUIRE(in.good());
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The comment of each field of `message` in `proto`: the // lines right above it and
// any at the end of its line, joined with spaces.
std::map<std::string, std::string> FieldDocs(const std::string& proto, const std::string& message) {
  std::map<std::string, std::string> docs;
  const size_t start = proto.find("\nmessage " + message + " {");
  REQUIRE(start != std::string::npos);
  std::istringstream lines(proto.substr(start + 1));
  std::string line, comment;
  std::getline(lines, line);  // "message X {"
  const std::regex field(R"(^\s*(optional |repeated )?[\w.<>, ]+ (\w+) = \d+;\s*(//(.*))?$)");
  const std::regex comment_line(R"(^\s*//(.*)$)");
  std::smatch m;
  while (std::getline(lines, line) && line != "}") {
    if (std::regex_match(line, m, comment_line)) {
      comment += m[1].str() + " ";
    } else if (std::regex_match(line, m, field)) {
      docs[m[2].str()] = comment + m[4].str();
      comment.clear();
    } else {
      comment.clear();  // a blank line, "oneof kind {", "}"
    }
  }
  return docs;
}

// The number after "default " in `doc`, if it says one.
std::optional<double> Default(const std::string& doc) {
  std::smatch m;
  if (!std::regex_search(doc, m, std::regex(R"(default (-?[0-9]+(\.[0-9]+)?))"))) return {};
  return std::stod(m[1].str());
}

// The range "A..B" in `doc`, if it gives one with numbers at both ends.
std::optional<std::pair<double, double>> Range(const std::string& doc) {
  std::smatch m;
  if (!std::regex_search(doc, m, std::regex(R"(([0-9]+)\.\.([0-9]+))"))) return {};
  return std::make_pair(std::stod(m[1].str()), std::stod(m[2].str()));
}

using P = std::pair<double, double>;

}  // namespace

TEST_CASE("the API documents the defaults and ranges of common/job_defaults.h",
          "[unit][defaults]") {
  const std::string proto = ReadSource("proto/reelfarm/v1/jobs.proto");

  const auto job = FieldDocs(proto, "JobSpec");
  INFO(job.at("priority"));
  CHECK(Default(job.at("priority")) == c::kDefaultPriority);
  CHECK(Range(job.at("priority")) == P(c::kMinPriority, c::kMaxPriority));
  CHECK(Default(job.at("max_attempts")) == c::kDefaultMaxAttempts);
  CHECK(Range(job.at("max_attempts")) == P(c::kMinMaxAttempts, c::kMaxMaxAttempts));
  CHECK_THAT(job.at("project"), Catch::Contains(std::string("default \"") + c::kDefaultProject));

  const auto up = FieldDocs(proto, "UpscaleSpec");
  CHECK(Default(up.at("chunk_frames")) == c::kDefaultChunkFrames);
  CHECK(Default(up.at("crf")) == c::kDefaultCrf);
  CHECK(Range(up.at("crf")) == P(c::kMinCrf, c::kMaxCrf));
  CHECK(Range(up.at("scale")) == P(c::kMinScale, c::kMaxScale));
  CHECK_THAT(up.at("scale"), Catch::Contains("send " + std::to_string(c::kDefaultScale)));

  const auto gen = FieldDocs(proto, "GenerateSpec");
  const std::string size = std::to_string(c::kDefaultGenerateSize);
  CHECK_THAT(gen.at("width"), Catch::Contains("default " + size + "x" + size));
  CHECK(Default(gen.at("frames")) == c::kDefaultGenerateFrames);
  CHECK(Default(gen.at("fps")) == c::kDefaultFps);
  CHECK(Range(gen.at("fps")) == P(1, c::kMaxFps));
  CHECK(Default(gen.at("strength")).value_or(-1) == Approx(c::kDefaultStrength));
  CHECK(Default(gen.at("crf")) == c::kDefaultCrf);
  CHECK(Range(gen.at("crf")) == P(c::kMinCrf, c::kMaxCrf));
  CHECK(Range(gen.at("guidance_scale")) == P(0, c::kMaxGuidanceScale));
  CHECK_THAT(gen.at("steps"), Catch::Contains("often " + std::to_string(c::kDefaultModelSteps)));
  for (const char* sampler : c::kSamplers) {
    CHECK_THAT(gen.at("sampler"), Catch::Contains(std::string("\"") + sampler + "\""));
  }
  // The parser reads what it should: a field with no default has none.
  CHECK_FALSE(Default(up.at("input")).has_value());
  CHECK(gen.size() >= 20);
}

TEST_CASE("the Python SDK's docs state the defaults of common/job_defaults.h", "[unit][defaults]") {
  const std::string sdk = ReadSource("clients/python/reelfarm/client.py");
  // "``name`` (default N" or "`name` (default N" in the docstrings.
  const auto documented = [&](const std::string& name) -> std::optional<double> {
    std::smatch m;
    if (!std::regex_search(sdk, m, std::regex("`" + name + R"(`+ \(default\s+([0-9.]+))"))) {
      return {};
    }
    return std::stod(m[1].str());
  };
  CHECK(documented("scale") == c::kDefaultScale);
  CHECK(documented("chunk_frames") == c::kDefaultChunkFrames);
  CHECK(documented("crf") == c::kDefaultCrf);
  CHECK(documented("priority") == c::kDefaultPriority);
  CHECK(documented("max_attempts") == c::kDefaultMaxAttempts);
  CHECK(documented("frames") == c::kDefaultGenerateFrames);
  CHECK(documented("fps") == c::kDefaultFps);
  CHECK(documented("strength").value_or(-1) == Approx(c::kDefaultStrength));
  CHECK_THAT(sdk, Catch::Contains("(default " + std::to_string(c::kDefaultGenerateSize)));
  // And the SDK's own default scale is the one it documents.
  // (`scale=2,` or, with a type hint, `scale: int = 2,`).
  CHECK(std::regex_search(
      sdk, std::regex(R"(\bscale(: int)? ?= ?)" + std::to_string(c::kDefaultScale) + ",")));
  for (const char* sampler : c::kSamplers) {
    CHECK_THAT(sdk, Catch::Contains(std::string("\"") + sampler + "\""));
  }
}
