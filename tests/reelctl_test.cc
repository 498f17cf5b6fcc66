// reelctl against a real farm: a job file with dependent jobs, --dry-run, --json, exit
// codes, and the progress display on a terminal and in a pipe.
#include <catch2/catch.hpp>

#include <fstream>

#include <nlohmann/json.hpp>

#include "media/media.h"
#include "tests/testing/farm.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/models.h"

namespace fs = std::filesystem;
using namespace reelfarm;
using testing::Farm;

namespace {

std::string Ctl(Farm& farm) { return farm.Reelctl(); }

}  // namespace

TEST_CASE("reelctl runs a job file of two dependent jobs, and --dry-run makes none",
          "[integration][reelctl]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm");
  testing::MakeTestClip(farm.storage() / "plates/sh030.mp4", 160, 90, 24);
  farm.StartWorker("w1");
  farm.WaitForWorkers(1);
  const fs::path file = dir.path() / "jobs.yaml";
  std::ofstream(file) << R"(
jobs:
  - name: final
    depends_on: [first]
    upscale: {input: "renders/${SHOT}_x2.mp4", output: "renders/${SHOT}_x4.mp4",
              model: bicubic, scale: 2}
  - name: first
    upscale: {input: "plates/${SHOT}.mp4", output: "renders/${SHOT}_x2.mp4",
              model: "${MODEL:-bicubic}", scale: 2}
)";
  const std::string env = "SHOT=sh030 ";
  int status = 0;
  // Dry run: validated and listed, nothing made.
  std::string out = testing::Capture(env + Ctl(farm) + " submit -f " + file.string() +
                                         " --dry-run --set upscale.chunk_frames=8 2>&1",
                                     &status);
  INFO(out);
  CHECK(status == 0);
  CHECK(out.find("job 'first': ok, 4 tasks") != std::string::npos);  // 3 chunks + assembly
  CHECK(out.find("frames 16-23") != std::string::npos);
  CHECK(out.find("made by a job of this file") != std::string::npos);
  out = testing::Capture(Ctl(farm) + " --json list", &status);
  CHECK(status == 0);
  CHECK(nlohmann::json::parse(out).value("jobs", nlohmann::json::array()).empty());

  // The real thing, followed to the end.
  out = testing::Capture(env + Ctl(farm) + " submit -f " + file.string() +
                             " --set upscale.chunk_frames=8 --watch 2>&1",
                         &status);
  INFO(out);
  CHECK(status == 0);
  auto info = media::ProbeVideo((farm.storage() / "renders/sh030_x4.mp4").string());
  REQUIRE(info.ok());
  CHECK(info->width == 640);
  CHECK(info->frame_count == 24);
  out = testing::Capture(Ctl(farm) + " --json list", &status);
  auto jobs = nlohmann::json::parse(out)["jobs"];
  REQUIRE(jobs.size() == 2);
  // Newest first: "final" depends on the id the server gave "first".
  CHECK(jobs[0]["spec"]["name"] == "final");
  CHECK(jobs[0]["spec"]["dependsOn"][0] == jobs[1]["id"]);
  CHECK(jobs[0]["state"] == "JOB_STATE_SUCCEEDED");
  CHECK(jobs[1]["spec"]["upscale"]["chunkFrames"] == 8);
  out = testing::Capture(Ctl(farm) + " --json get " + jobs[1]["id"].get<std::string>(), &status);
  CHECK(status == 0);
  CHECK(nlohmann::json::parse(out)["tasks"].size() == 4);
  // The server address from a config file, and the models the workers offer.
  const fs::path config = dir.path() / "reelctl.yaml";
  std::ofstream(config) << "server: " << farm.address() << "\ntoken: t0ken\ninsecure: true\n";
  out = testing::Capture(
      "REELFARM_CONFIG=" + config.string() + " " + std::string(REELFARM_REELCTL_BIN) + " models",
      &status);
  CHECK(status == 0);
  CHECK(out.find("bicubic") != std::string::npos);
  CHECK(out.find("w1") != std::string::npos);
  out = testing::Capture("REELFARM_CONFIG=" + config.string() + " " +
                             std::string(REELFARM_REELCTL_BIN) + " --json models",
                         &status);
  CHECK(nlohmann::json::parse(out)["bicubic"][0] == "w1");
  // $REELFARM_SERVER wins over the file.
  testing::Capture("REELFARM_CONFIG=" + config.string() + " REELFARM_SERVER=127.0.0.1:1 " +
                       std::string(REELFARM_REELCTL_BIN) + " list 2>&1",
                   &status);
  CHECK(status == 3);
  // A bad file is a usage error.
  std::ofstream(dir.path() / "bad.yaml") << "upscale: {input: a.mp4, scael: 2}\n";
  testing::Capture(Ctl(farm) + " submit -f " + (dir.path() / "bad.yaml").string() + " 2>&1",
                   &status);
  CHECK(status == 2);
}

TEST_CASE("reelctl watch: bars on a terminal, plain lines in a pipe, exit 1 on failure",
          "[integration][reelctl]") {
  testing::TempDir dir;
  testing::WriteFailsOnWideFramesModel(dir.path() / "models", "broken");
  const std::string models = (dir.path() / "models").string();
  Farm farm(dir.path() / "farm", {"--model-path", models});
  testing::MakeTestClip(farm.storage() / "plates/w.mp4", 160, 90, 48);
  farm.StartWorker("w1", {"--model-path", models, "--frame-delay-ms", "10"});
  farm.WaitForWorkers(1);
  int status = 0;
  auto submit = [&](const std::string& output, const std::string& model) {
    std::string out = testing::Capture(Ctl(farm) +
                                           " --json submit upscale --input plates/w.mp4 "
                                           "--output " +
                                           output + " --chunk 12 --model " + model,
                                       &status);
    REQUIRE(status == 0);
    return nlohmann::json::parse(out)["jobId"].get<std::string>();
  };
  // On a terminal (script(1) gives reelctl a pseudo-terminal): redrawn lines with bars.
  const std::string good = submit("renders/tty.mp4", "bicubic");
  std::string tty =
      testing::Capture("script -qefc '" + Ctl(farm) + " watch " + good + "' /dev/null", &status);
  CHECK(status == 0);
  CHECK(tty.find("\033[K") != std::string::npos);
  CHECK(tty.find("[####################] 100.0%") != std::string::npos);
  // In a pipe: plain lines, no escape codes, one per change.
  const std::string piped_id = submit("renders/pipe.mp4", "bicubic");
  std::string piped = testing::Capture(Ctl(farm) + " watch " + piped_id, &status);
  CHECK(status == 0);
  CHECK(piped.find('\033') == std::string::npos);
  CHECK(piped.find('\r') == std::string::npos);
  CHECK(piped.find("job " + piped_id + " succeeded") != std::string::npos);
  CHECK(piped.find("frames 48/48") != std::string::npos);
  // A job that fails (the model rejects wide frames): exit status 1.
  const std::string bad = submit("renders/bad.mp4", "broken");
  std::string failed = testing::Capture(Ctl(farm) + " watch " + bad, &status);
  INFO(failed);
  CHECK(status == 1);
  CHECK(failed.find("failed") != std::string::npos);
  CHECK(failed.find("frame too wide") != std::string::npos);
  // Watching several jobs at once ends when all do: 1 because one failed.
  testing::Capture(Ctl(farm) + " watch " + good + " " + bad, &status);
  CHECK(status == 1);
}
