// reelctl job files: variables, --set, dependencies by name, and their errors.
#include <catch2/catch.hpp>

#include <fstream>
#include <map>

#include "cli/job_file.h"
#include "tests/testing/fixtures.h"

using reelfarm::cli::ExpandVariables;
using reelfarm::cli::LoadJobFile;

namespace {

const char* FakeEnv(const std::string& name) {
  static const std::map<std::string, std::string> env = {{"SHOT", "sh010"}, {"EMPTY", ""}};
  auto it = env.find(name);
  return it == env.end() ? nullptr : it->second.c_str();
}

std::string Write(const reelfarm::testing::TempDir& dir, const std::string& text) {
  const std::string path = (dir.path() / "jobs.yaml").string();
  std::ofstream(path) << text;
  return path;
}

}  // namespace

TEST_CASE("job files expand ${VAR} and ${VAR:-default}", "[unit][cli]") {
  CHECK(*ExpandVariables("plates/${SHOT}.mp4", FakeEnv) == "plates/sh010.mp4");
  CHECK(*ExpandVariables("${EMPTY:-x}/${NOPE:-y}", FakeEnv) == "x/y");
  auto unset = ExpandVariables("plates/${NOPE}.mp4", FakeEnv);
  CHECK(unset.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(unset.status().message().find("${NOPE}") != absl::string_view::npos);
  CHECK_FALSE(ExpandVariables("${OPEN", FakeEnv).ok());
}

TEST_CASE("a job file orders jobs by their dependencies and applies --set", "[unit][cli]") {
  reelfarm::testing::TempDir dir;
  const std::string path = Write(dir, R"(
jobs:
  - name: x4
    depends_on: [x2, 17]
    upscale: {input: renders/${SHOT}_x2.mp4, output: renders/${SHOT}_x4.mp4, scale: 2}
  - name: x2
    priority: 70
    requirements: {gpu: h100}
    upscale:
      input: plates/${SHOT}.mp4
      output: renders/${SHOT}_x2.mp4
      model: bicubic
      scale: 2
      chunk_frames: 24
)");
  auto jobs = LoadJobFile(path, {"upscale.crf=20", "project=feature"}, FakeEnv);
  REQUIRE(jobs.ok());
  REQUIRE(jobs->size() == 2);
  CHECK((*jobs)[0].name == "x2");  // the dependency first
  CHECK((*jobs)[1].name == "x4");
  CHECK((*jobs)[1].after == std::vector<std::string>{"x2"});
  REQUIRE((*jobs)[1].spec.depends_on_size() == 1);
  CHECK((*jobs)[1].spec.depends_on(0) == 17);
  const auto& x2 = (*jobs)[0].spec;
  CHECK(x2.upscale().input() == "plates/sh010.mp4");
  CHECK(x2.upscale().chunk_frames() == 24);
  CHECK(x2.upscale().crf() == 20);
  CHECK(x2.project() == "feature");
  CHECK(x2.priority() == 70);
  CHECK(x2.requirements().at("gpu") == "h100");
  CHECK((*jobs)[1].spec.upscale().crf() == 20);
}

TEST_CASE("job file errors name the file, the job and the problem", "[unit][cli]") {
  reelfarm::testing::TempDir dir;
  auto load = [&](const std::string& text) { return LoadJobFile(Write(dir, text), {}, FakeEnv); };
  auto unknown_field = load("name: a\nupscale: {input: a.mp4, scael: 2}\n");
  CHECK(unknown_field.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(unknown_field.status().message().find("job 'a'") != absl::string_view::npos);
  CHECK(unknown_field.status().message().find("scael") != absl::string_view::npos);
  auto cycle = load("jobs:\n- {name: a, depends_on: [b]}\n- {name: b, depends_on: [a]}\n");
  CHECK(cycle.status().message().find("cycle") != absl::string_view::npos);
  auto missing = load("jobs:\n- {name: a, depends_on: [zz]}\n");
  CHECK(missing.status().message().find("'zz'") != absl::string_view::npos);
  auto twice = load("jobs:\n- {name: a}\n- {name: a}\n");
  CHECK(twice.status().message().find("two jobs are named 'a'") != absl::string_view::npos);
  CHECK(load("[not: [valid").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(LoadJobFile((dir.path() / "none.yaml").string(), {}, FakeEnv).status().code() ==
        absl::StatusCode::kNotFound);
}

TEST_CASE("seeds take numbers, ranges and lists, sizes take WIDTHxHEIGHT", "[unit][cli]") {
  CHECK(*reelfarm::cli::ParseSeeds("1-8") == std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8});
  CHECK(*reelfarm::cli::ParseSeeds("7") == std::vector<int64_t>{7});
  CHECK(*reelfarm::cli::ParseSeeds("1,5,9-11") == std::vector<int64_t>{1, 5, 9, 10, 11});
  CHECK(*reelfarm::cli::ParseSeeds("-3") == std::vector<int64_t>{-3});
  auto bad = reelfarm::cli::ParseSeeds("1-x");
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(std::string(bad.status().message()), Catch::Contains("'1-x'"));
  CHECK_FALSE(reelfarm::cli::ParseSeeds("8-1").ok());
  CHECK(*reelfarm::cli::ParseSize("256x128") == std::make_pair(256, 128));
  CHECK_FALSE(reelfarm::cli::ParseSize("256").ok());
  CHECK_FALSE(reelfarm::cli::ParseSize("0x5").ok());
}

TEST_CASE("a job file's size, alias expansion and depth are limited", "[unit][cli]") {
  reelfarm::testing::TempDir dir;
  // A "billion laughs": nine levels of nine aliases each.
  std::string bomb =
      "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n";
  for (char c = 'b'; c <= 'i'; ++c) {
    const char prev = static_cast<char>(c - 1);
    bomb += std::string(1, c) + ": &" + c + " [";
    for (int i = 0; i < 9; ++i) bomb += std::string(i ? "," : "") + "*" + prev;
    bomb += "]\n";
  }
  bomb += "upscale: {input: a.mp4, output: b.mp4, model: *i}\n";
  auto jobs = LoadJobFile(Write(dir, bomb), {}, FakeEnv);
  REQUIRE_FALSE(jobs.ok());
  CHECK(jobs.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(jobs.status().message()).find("aliases") != std::string::npos);
  // The same through --set.
  jobs = LoadJobFile(Write(dir, "upscale: {input: a.mp4, output: b.mp4}\n"),
                     {"upscale.model=" + bomb.substr(0, bomb.find("upscale:")) + "x: *i"}, FakeEnv);
  REQUIRE_FALSE(jobs.ok());
  CHECK(std::string(jobs.status().message()).find("aliases") != std::string::npos);
  // Too deep.
  std::string deep = "upscale: {input: a.mp4, output: b.mp4}\nname: " + std::string(40, '[') +
                     std::string(40, ']') + "\n";
  jobs = LoadJobFile(Write(dir, deep), {}, FakeEnv);
  REQUIRE_FALSE(jobs.ok());
  CHECK(std::string(jobs.status().message()).find("levels deep") != std::string::npos);
  // Too large.
  const std::string path = (dir.path() / "big.yaml").string();
  {
    std::ofstream big(path);
    big << "upscale: {input: a.mp4, output: b.mp4}\n";
    for (int i = 0; i < 200000; ++i) big << "# padding padding padding padding\n";
  }
  jobs = LoadJobFile(path, {}, FakeEnv);
  REQUIRE_FALSE(jobs.ok());
  CHECK(std::string(jobs.status().message()).find("over the limit") != std::string::npos);
  // A file with a few aliases is fine.
  jobs = LoadJobFile(Write(dir,
                           "jobs:\n  - upscale: {input: a.mp4, output: b.mp4, model: &m lanczos}\n"
                           "  - upscale: {input: b.mp4, output: c.mp4, model: *m}\n"),
                     {}, FakeEnv);
  CHECK(jobs.ok());
}
