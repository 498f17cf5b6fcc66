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
  CHECK(reelfarm::cli::ParseSeeds("1-100000")->size() == 100000);
  CHECK(*reelfarm::cli::ParseSeeds("9223372036854775806-9223372036854775807") ==
        std::vector<int64_t>{9223372036854775806, 9223372036854775807});
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

TEST_CASE("seeds past the limit say the limit, not that they are not a range", "[unit][cli]") {
  auto range = reelfarm::cli::ParseSeeds("1-100001");
  REQUIRE_FALSE(range.ok());
  CHECK(range.status().code() == absl::StatusCode::kInvalidArgument);
  const std::string message(range.status().message());
  CHECK_THAT(message, Catch::Contains("seed range 1-100001 has 100001 seeds; at most 100000 per "
                                      "job"));
  CHECK_THAT(message, !Catch::Contains("is not a seed or a range"));
  // A list whose ranges add up past the limit.
  auto list = reelfarm::cli::ParseSeeds("1-60000,100001-160000");
  REQUIRE_FALSE(list.ok());
  CHECK_THAT(std::string(list.status().message()),
             Catch::Contains("has 120000 seeds; at most 100000 per job"));
  // The whole int64 range does not overflow the count.
  auto all = reelfarm::cli::ParseSeeds("-9223372036854775808-9223372036854775807");
  REQUIRE_FALSE(all.ok());
  CHECK_THAT(std::string(all.status().message()), Catch::Contains("at most 100000 per job"));
  // A reversed range says so.
  CHECK_THAT(std::string(reelfarm::cli::ParseSeeds("8-1").status().message()),
             Catch::Contains("ends before it starts"));
}

TEST_CASE("a job file takes each wedge axis as a list under its single name", "[unit][cli]") {
  reelfarm::testing::TempDir dir;
  const std::string path = Write(dir, R"(
generate:
  model: shapes_t2v
  prompt: ["red circle moving right", "blue square moving up"]
  seeds: "1-3"
  steps: [5, 20]
  sampler: [euler, ddim]
  guidance: [2, 5.5]
  output: gen/{take}.mov
)");
  auto jobs = LoadJobFile(path, {}, FakeEnv);
  REQUIRE(jobs.ok());
  const auto& g = (*jobs)[0].spec.generate();
  CHECK(std::vector<std::string>(g.prompts().begin(), g.prompts().end()) ==
        std::vector<std::string>{"red circle moving right", "blue square moving up"});
  CHECK(g.prompt().empty());
  CHECK(std::vector<int64_t>(g.seeds().begin(), g.seeds().end()) == std::vector<int64_t>{1, 2, 3});
  CHECK(std::vector<int>(g.step_counts().begin(), g.step_counts().end()) ==
        std::vector<int>{5, 20});
  CHECK(g.steps() == 0);
  CHECK(std::vector<std::string>(g.samplers().begin(), g.samplers().end()) ==
        std::vector<std::string>{"euler", "ddim"});
  CHECK(std::vector<float>(g.guidance_scales().begin(), g.guidance_scales().end()) ==
        std::vector<float>{2.0f, 5.5f});

  // Single values stay single; camelCase and seed lists mixing numbers and ranges.
  jobs = LoadJobFile(Write(dir,
                           "generate: {model: m, steps: 30, sampler: ddim, guidanceScale: "
                           "[1, 3], seeds: [7, \"10-11\"], output: a.mov}\n"),
                     {}, FakeEnv);
  REQUIRE(jobs.ok());
  const auto& single = (*jobs)[0].spec.generate();
  CHECK(single.steps() == 30);
  CHECK(single.step_counts().empty());
  CHECK(single.sampler() == "ddim");
  CHECK(single.guidance_scales().size() == 2);
  CHECK(std::vector<int64_t>(single.seeds().begin(), single.seeds().end()) ==
        std::vector<int64_t>{7, 10, 11});

  // --set reaches the lists too.
  jobs = LoadJobFile(Write(dir, "generate: {model: m, output: a.mov}\n"), {"generate.steps=[4, 8]"},
                     FakeEnv);
  REQUIRE(jobs.ok());
  CHECK((*jobs)[0].spec.generate().step_counts_size() == 2);

  // Both spellings of one axis, a bad seed range: refused naming the job and the field.
  auto both = LoadJobFile(
      Write(dir, "name: w\ngenerate: {model: m, steps: [5, 20], step_counts: [3], output: a}\n"),
      {}, FakeEnv);
  REQUIRE_FALSE(both.ok());
  CHECK_THAT(std::string(both.status().message()),
             Catch::Contains("job 'w'") && Catch::Contains("step_counts"));
  auto bad_seeds = LoadJobFile(
      Write(dir, "name: w\ngenerate: {model: m, seeds: \"1-100001\", output: a}\n"), {}, FakeEnv);
  REQUIRE_FALSE(bad_seeds.ok());
  CHECK_THAT(std::string(bad_seeds.status().message()),
             Catch::Contains("job 'w'") && Catch::Contains("at most 100000 per job"));
}
