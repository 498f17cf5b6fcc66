// reelctl against a real farm: a job file with dependent jobs, --dry-run, --json, exit
// codes, and the progress display on a terminal and in a pipe.
#include <catch2/catch.hpp>

#include <chrono>
#include <fstream>
#include <regex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "media/media.h"
#include "tests/testing/farm.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/models.h"

namespace fs = std::filesystem;
using namespace reelfarm;
using testing::Farm;

namespace {

using nlohmann::json;

std::string Ctl(Farm& farm) { return farm.Reelctl(); }

// What a user sees of one reelctl run: exit status, stdout and stderr apart.
struct Seen {
  int status = -1;
  std::string out, err;
};

// Runs reelctl with `args` (no config file, no REELFARM_* from the environment);
// `env` is put before it ("VAR=value ").
Seen RunCtl(const testing::TempDir& dir, const std::string& args, const std::string& env = "") {
  const fs::path err = dir.path() / "reelctl.stderr";
  Seen seen;
  seen.out = testing::Capture(
      "env -u REELFARM_SERVER -u REELFARM_TOKEN -u REELFARM_TLS_CA "
      "-u REELFARM_INSECURE REELFARM_CONFIG=/nonexistent " +
          env + std::string(REELFARM_REELCTL_BIN) + " " + args + " 2>" + err.string(),
      &seen.status);
  std::ifstream in(err);
  std::stringstream ss;
  ss << in.rdbuf();
  seen.err = ss.str();
  return seen;
}

// Every line of `text` parses as JSON (and there is at least one unless `may_be_empty`).
bool EveryLineIsJson(const std::string& text, bool may_be_empty = false) {
  std::istringstream lines(text);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    if (!json::accept(line)) return false;
    ++n;
  }
  return n > 0 || may_be_empty;
}

// The line of `text` that starts with `prefix` ("" when none).
std::string LineStarting(const std::string& text, const std::string& prefix) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(prefix, 0) == 0) return line;
  }
  return "";
}

// A self-signed certificate for 127.0.0.1/localhost (its own CA), made with openssl.
struct Cert {
  fs::path crt, key;
};
Cert MakeCert(const fs::path& dir) {
  fs::create_directories(dir);
  const Cert cert{dir / "server.crt", dir / "server.key"};
  REQUIRE(testing::Run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
                       "-nodes -days 2 -subj /CN=localhost -addext "
                       "subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " +
                       cert.key.string() + " -out " + cert.crt.string() + " >/dev/null 2>&1") == 0);
  return cert;
}

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
  // The same with --json: one array on stdout holding both jobs, the dependent one
  // marked as checked when it runs; the sentence on stderr.
  Seen dry = RunCtl(dir,
                    "submit -f " + file.string() + " --dry-run --set upscale.chunk_frames=8 " +
                        "--json --server " + farm.address() + " --insecure",
                    env);
  INFO(dry.out << dry.err);
  CHECK(dry.status == 0);
  REQUIRE(json::accept(dry.out));
  json array = json::parse(dry.out);
  REQUIRE(array.size() == 2);
  CHECK(array[0]["name"] == "first");
  CHECK(array[0]["checked"] == true);
  CHECK(array[0]["job"]["tasksTotal"] == 4);  // as above
  CHECK(array[1]["name"] == "final");
  CHECK(array[1]["checked"] == false);
  CHECK(array[1]["job"]["spec"]["upscale"]["input"] == "renders/sh030_x2.mp4");
  CHECK_THAT(array[1]["note"].get<std::string>(), Catch::Contains("made by a job of this file"));
  CHECK_THAT(dry.err, Catch::Contains("job 'final': input renders/sh030_x2.mp4 is made by"));
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

TEST_CASE(
    "reelctl takes --json, --server, --token, --tls-ca, --insecure before or after the "
    "subcommand",
    "[integration][reelctl]") {
  testing::TempDir dir;
  const Cert cert = MakeCert(dir.path() / "pki");
  const fs::path tokens = dir.path() / "tokens.yaml";
  std::ofstream(tokens)
      << "tokens:\n  - {name: root, role: admin, token: \"s3cret-admin-token-0123\"}\n";
  Farm farm(dir.path() / "farm", {"--tls-cert", cert.crt.string(), "--tls-key", cert.key.string(),
                                  "--tokens-file", tokens.string()});
  const std::string globals = "--server " + farm.address() + " --tls-ca " + cert.crt.string() +
                              " --token s3cret-admin-token-0123";
  testing::MakeTestClip(farm.storage() / "plates/a.mp4", 64, 36, 12);
  // A queued job (no worker), so that the listings have something to show.
  Seen submitted = RunCtl(
      dir, "submit upscale --input plates/a.mp4 --output renders/a.mp4 " + globals + " --json");
  INFO(submitted.out << submitted.err);
  REQUIRE(submitted.status == 0);
  const std::string id = json::parse(submitted.out)["jobId"].get<std::string>();
  // Before, after, and split around the subcommand: the same answer.
  const Seen before = RunCtl(dir, "--json " + globals + " list");
  const Seen after = RunCtl(dir, "list --json " + globals);
  const Seen split = RunCtl(dir, "--server " + farm.address() + " list --json --token " +
                                     "s3cret-admin-token-0123 --tls-ca " + cert.crt.string());
  INFO(before.err << after.err << split.err);
  CHECK(before.status == 0);
  CHECK(after.status == 0);
  CHECK(split.status == 0);
  REQUIRE(json::accept(before.out));
  CHECK(json::parse(before.out)["jobs"][0]["id"] == id);
  CHECK(after.out == before.out);
  CHECK(split.out == before.out);
  // After a subcommand's own arguments and options too.
  const Seen get = RunCtl(dir, "get " + id + " --json " + globals);
  CHECK(get.status == 0);
  REQUIRE(json::accept(get.out));
  CHECK(json::parse(get.out)["id"] == id);
  const Seen logs = RunCtl(dir, "logs " + id + " --task 0 " + globals + " --json");
  CHECK(logs.status == 0);
  CHECK(logs.err.empty());
  // The token after the subcommand is the one sent: without it the server refuses.
  const Seen no_token =
      RunCtl(dir, "list --json --server " + farm.address() + " --tls-ca " + cert.crt.string());
  CHECK(no_token.status == 4);
  CHECK_THAT(no_token.err, Catch::Contains("UNAUTHENTICATED"));
  // --insecure after the subcommand: plaintext to a plaintext farm.
  Farm plain(dir.path() / "plain");
  const Seen insecure = RunCtl(dir, "workers --json --server " + plain.address() + " --insecure");
  INFO(insecure.err);
  CHECK(insecure.status == 0);
  CHECK(json::accept(insecure.out));
  // Without it, TLS: refused, so the flag after the subcommand was what made it work.
  CHECK(RunCtl(dir, "workers --json --server " + plain.address()).status == 3);
}

TEST_CASE("reelctl --json: stdout holds only JSON, one document or one per line for streams",
          "[integration][reelctl]") {
  testing::TempDir dir;
  testing::WriteFixtureDenoiser(dir.path() / "models", "tiny");
  const std::string models = (dir.path() / "models").string();
  Farm farm(dir.path() / "farm", {"--model-path", models});
  testing::MakeTestClip(farm.storage() / "plates/a.mp4", 64, 36, 24);
  farm.StartWorker("w1", {"--model-path", models});
  farm.WaitForWorkers(1);
  const std::string server = " --server " + farm.address() + " --insecure";
  // A job file as the README's look.yaml: a generate job and an upscale of its first
  // take. The dry run's array holds both; the dependent one says it is checked later.
  const fs::path look = dir.path() / "look.yaml";
  std::ofstream(look) << R"(
jobs:
  - name: look
    generate: {model: tiny, prompt: "red square", seeds: [3], width: 32, height: 32,
               frames: 2, output: gen/look.mov}
  - name: look_x2
    depends_on: [look]
    upscale: {input: gen/look_take001.mov, output: renders/look_x2.mov, model: bicubic, scale: 2}
)";
  for (const std::string& args : {"--json submit -f " + look.string() + " --dry-run" + server,
                                  "submit -f " + look.string() + " --dry-run --json" + server}) {
    const Seen dry = RunCtl(dir, args);
    INFO(args << "\n" << dry.out << dry.err);
    CHECK(dry.status == 0);
    REQUIRE(json::accept(dry.out));  // no sentence before the array
    const json array = json::parse(dry.out);
    REQUIRE(array.is_array());
    REQUIRE(array.size() == 2);
    CHECK(array[0]["name"] == "look");
    CHECK(array[0]["checked"] == true);
    CHECK(array[0]["job"]["tasksTotal"] == 1);
    CHECK(array[1]["name"] == "look_x2");
    CHECK(array[1]["checked"] == false);
    CHECK(array[1]["job"]["spec"]["upscale"]["input"] == "gen/look_take001.mov");
    CHECK_THAT(dry.err, Catch::Contains("look_x2") && Catch::Contains("checked when it runs"));
  }
  // Nothing was submitted.
  CHECK(json::parse(RunCtl(dir, "list --json" + server).out)["jobs"].empty());

  // Submit and follow: the submit's answer, then one JSON event per line; no human line.
  const Seen watched = RunCtl(
      dir, "submit upscale --input plates/a.mp4 --output renders/a.mp4 --chunk 12 --watch --json" +
               server);
  INFO(watched.out << watched.err);
  CHECK(watched.status == 0);
  CHECK(EveryLineIsJson(watched.out));
  CHECK(watched.out.find("succeeded:") == std::string::npos);
  const std::string id =
      json::parse(watched.out.substr(0, watched.out.find('\n')))["jobId"].get<std::string>();
  // The stream of logs, one message per line; a job's get and the models.
  for (const std::string& args :
       {"logs " + id + " --json", "--json watch " + id, "get --json " + id,
        std::string("models --json"), std::string("health --json")}) {
    const Seen seen = RunCtl(dir, args + server);
    INFO(args << "\n" << seen.out << seen.err);
    CHECK(seen.status == 0);
    CHECK(EveryLineIsJson(seen.out, args.rfind("logs", 0) == 0));
  }
  // An error: nothing on stdout, the message on stderr.
  const Seen missing = RunCtl(dir, "get 999 --json" + server);
  CHECK(missing.status == 4);
  CHECK(missing.out.empty());
  CHECK_THAT(missing.err, Catch::Contains("NOT_FOUND"));
}

TEST_CASE("reelctl generate: repeatable wedge flags, job-file axis lists, get and list show it",
          "[integration][reelctl]") {
  testing::TempDir dir;
  testing::WriteFixtureDenoiser(dir.path() / "models", "tiny");
  Farm farm(dir.path() / "farm", {"--model-path", (dir.path() / "models").string()});
  const std::string server = " --server " + farm.address() + " --insecure";
  // No worker: the jobs stay queued as submitted.
  // Every wedge axis repeats: 1 prompt x 3 seeds x 2 guidance x 2 steps x 2 samplers.
  const Seen flags = RunCtl(dir,
                            "submit generate --model tiny --prompt 'red square' --seeds 1-2 "
                            "--seeds 5 --guidance 2 --guidance 4 --steps 5 --steps 20 "
                            "--sampler euler --sampler ddim --size 32x32 --frames 2 "
                            "--output gen/w/{take}.mov --name wedge --json" +
                                server);
  INFO(flags.out << flags.err);
  REQUIRE(flags.status == 0);
  const json submitted = json::parse(flags.out);
  const std::string id = submitted["jobId"].get<std::string>();
  const json g = submitted["job"]["spec"]["generate"];
  CHECK(g["seeds"] == json::array({"1", "2", "5"}));
  CHECK(g["stepCounts"] == json::array({5, 20}));
  CHECK(g["samplers"] == json::array({"euler", "ddim"}));
  CHECK(g["guidanceScales"] == json::array({2.0, 4.0}));
  CHECK(submitted["job"]["tasksTotal"] == 24);

  // The job-file keys: each axis a list under its single name.
  const fs::path file = dir.path() / "wedge.yaml";
  std::ofstream(file) << R"(
name: filewedge
generate:
  model: tiny
  prompt: ["red square", "blue circle"]
  seeds: "1-2"
  steps: [5, 20]
  sampler: [euler, ddim]
  guidance_scale: [2, 4]
  width: 32
  height: 32
  frames: 2
  output: gen/f/{take}.mov
)";
  const Seen from_file = RunCtl(dir, "submit -f " + file.string() + " --json" + server);
  INFO(from_file.out << from_file.err);
  REQUIRE(from_file.status == 0);
  const json file_job = json::parse(from_file.out).at(0);
  CHECK(file_job["job"]["tasksTotal"] == 32);  // 2 x 2 x 2 x 2 x 2
  CHECK(file_job["job"]["spec"]["generate"]["stepCounts"] == json::array({5, 20}));
  CHECK(file_job["job"]["spec"]["generate"]["prompts"] ==
        json::array({"red square", "blue circle"}));

  // `get` shows a generate job as one: model, takes, prompts, seeds, the other axes.
  const Seen get = RunCtl(dir, "get " + id + server);
  INFO(get.out << get.err);
  CHECK(get.status == 0);
  CHECK_THAT(get.out, Catch::Contains("generate  model tiny: 24 takes of 2 frames at 32x32"));
  CHECK_THAT(get.out, Catch::Contains("prompts   \"red square\""));
  CHECK_THAT(get.out, Catch::Contains("seeds     1-2,5"));
  CHECK_THAT(get.out, Catch::Contains("steps     5, 20"));
  CHECK_THAT(get.out, Catch::Contains("guidance  2, 4"));
  CHECK_THAT(get.out, Catch::Contains("sampler   euler, ddim"));
  CHECK_THAT(get.out, Catch::Contains("wedge_take001") && Catch::Contains("wedge_take024"));
  CHECK_THAT(get.out, !Catch::Contains("upscale") && !Catch::Contains("input     0x0"));

  // `list` fills the model column, in a column as wide as its widest cell.
  const Seen list = RunCtl(dir, "list" + server);
  INFO(list.out << list.err);
  CHECK(list.status == 0);
  const std::string header = LineStarting(list.out, "ID");
  const std::string row = LineStarting(list.out, id + " ");
  REQUIRE_FALSE(row.empty());
  CHECK(std::regex_search(row, std::regex(" tiny +gen/w/\\{take\\}\\.mov$")));
  CHECK(row.find(" tiny ") + 1 == header.find("MODEL"));
  CHECK(row.find("gen/w/") == header.find("OUTPUT"));

  // Seeds past the limit say the limit.
  const Seen many =
      RunCtl(dir, "submit generate --model tiny --seeds 1-100001 --output gen/x.mov" + server);
  CHECK(many.status == 2);
  CHECK_THAT(many.err, Catch::Contains("seed range 1-100001 has 100001 seeds; at most 100000 "
                                       "per job"));
  CHECK_THAT(many.err, !Catch::Contains("is not a seed or a range"));
}

TEST_CASE("reelctl workers shows tags, models and device in columns that fit",
          "[integration][reelctl]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm");
  const std::string name = "render-node-with-a-rather-long-name-07";
  farm.StartWorker(name, {"--tag", "gpu=h100", "--tag", "site=lon"});
  farm.StartWorker("w2");
  farm.WaitForWorkers(2);
  const std::string server = " --server " + farm.address() + " --insecure";
  const Seen seen = RunCtl(dir, "workers" + server);
  INFO(seen.out << seen.err);
  CHECK(seen.status == 0);
  const std::string header = LineStarting(seen.out, "NAME");
  const std::string row = LineStarting(seen.out, name);
  const std::string short_row = LineStarting(seen.out, "w2 ");
  REQUIRE_FALSE(row.empty());
  REQUIRE_FALSE(short_row.empty());
  // Every column starts where its header does, however long the name.
  for (const char* column : {"STATE", "DEVICE", "TAGS", "MODELS"}) {
    INFO(column);
    REQUIRE(header.find(column) != std::string::npos);
  }
  CHECK(row.find("idle") == header.find("STATE"));
  CHECK(short_row.find("idle") == header.find("STATE"));
  CHECK(row.find(" cpu ") + 1 == header.find("DEVICE"));
  CHECK(row.find("gpu=h100,site=lon") == header.find("TAGS"));
  CHECK(row.find("bicubic") >= header.find("MODELS"));
  CHECK_THAT(row, Catch::Contains("lanczos"));
  CHECK(short_row.find(" - ") != std::string::npos);  // no tags
  // The same in JSON.
  const json workers = json::parse(RunCtl(dir, "workers --json" + server).out)["workers"];
  REQUIRE(workers.size() == 2);
  for (const json& w : workers) CHECK(w["devices"] == json::array({"cpu"}));
}

TEST_CASE("reelctl says which side of a TLS mismatch expects what, without gRPC's log",
          "[integration][reelctl]") {
  testing::TempDir dir;
  const Cert cert = MakeCert(dir.path() / "pki");
  Farm tls(dir.path() / "tls", {"--tls-cert", cert.crt.string(), "--tls-key", cert.key.string()});
  Farm plain(dir.path() / "plain");
  // reelctl in plaintext, the server in TLS.
  const Seen plaintext = RunCtl(dir, "list --insecure --server " + tls.address());
  INFO(plaintext.err);
  CHECK(plaintext.status == 3);
  CHECK_THAT(plaintext.err, Catch::Contains("speaks TLS but reelctl used plaintext") &&
                                Catch::Contains("--insecure") && Catch::Contains("--tls-ca"));
  // reelctl in TLS, the server in plaintext.
  const Seen to_plain = RunCtl(dir, "list --server " + plain.address());
  INFO(to_plain.err);
  CHECK(to_plain.status == 3);
  CHECK_THAT(to_plain.err, Catch::Contains("speaks plaintext") &&
                               Catch::Contains("but reelctl used TLS") &&
                               Catch::Contains("give --insecure"));
  // TLS both sides, but the server's CA not trusted.
  const Seen untrusted = RunCtl(dir, "list --server " + tls.address());
  INFO(untrusted.err);
  CHECK(untrusted.status == 3);
  CHECK_THAT(untrusted.err,
             Catch::Contains("not signed by a CA reelctl trusts") && Catch::Contains("--tls-ca"));
  // Each is one line of reelctl's own: none of gRPC core's log lines
  // ("E1201 12:00:00.000 ssl_transport_security.cc:1501] Handshake failed ...").
  for (const Seen* s : {&plaintext, &to_plain, &untrusted}) {
    CHECK(std::count(s->err.begin(), s->err.end(), '\n') == 1);
    CHECK(s->err.rfind("reelctl: ", 0) == 0);
    CHECK_THAT(s->err,
               !Catch::Contains("ssl_transport_security") && !Catch::Contains("Handshake failed"));
  }
  // With the CA: served.
  CHECK(RunCtl(dir, "list --server " + tls.address() + " --tls-ca " + cert.crt.string()).status ==
        0);
}

TEST_CASE(
    "reelctl calls again when gRPC took a connect for failed with errno 2 but not when the "
    "server refused it",
    "[integration][reelctl]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm");
  testing::MakeTestClip(farm.storage() / "plates/e.mp4", 64, 36, 12);
  farm.StartWorker("w1");
  farm.WaitForWorkers(1);
  // Each process's first TCP connect reads as failed with errno 2, as gRPC 1.51 now and
  // then takes one that was in progress (tests/testing/connect_enoent.cc).
  const std::string shim =
      "LD_PRELOAD=" + std::string(REELFARM_CONNECT_ENOENT_SHIM) + " CONNECT_ENOENT=1 ";
  const std::string server = "--server " + farm.address() + " --insecure ";

  // What a client that does not call again sees (Python's grpcio, the same gRPC core).
  int status = 0;
  const std::string bare = testing::Capture(
      shim + "/usr/bin/python3 -c \"import grpc; ch = grpc.insecure_channel('" + farm.address() +
          "'); ch.unary_unary('/grpc.health.v1.Health/Check')(b'', timeout=10)\" 2>&1",
      &status);
  INFO(bare);
  CHECK(status != 0);
  CHECK(bare.find("No such file or directory") != std::string::npos);

  // reelctl: unary calls (list, submit, health), a watch stream and a log stream.
  const Seen list = RunCtl(dir, server + "list", shim);
  INFO(list.err);
  CHECK(list.status == 0);
  CHECK(LineStarting(list.out, "ID ") != "");
  const Seen submit = RunCtl(
      dir, server + "--json submit upscale --input plates/e.mp4 --output renders/e.mp4", shim);
  INFO(submit.err);
  REQUIRE(submit.status == 0);
  const std::string id = json::parse(submit.out)["jobId"].get<std::string>();
  const Seen watch = RunCtl(dir, server + "watch " + id, shim);
  INFO(watch.err);
  CHECK(watch.status == 0);
  CHECK(watch.out.find("job " + id + " succeeded") != std::string::npos);
  const Seen logs = RunCtl(dir, server + "logs " + id, shim);
  INFO(logs.err);
  CHECK(logs.status == 0);
  CHECK(logs.err.empty());
  const Seen health = RunCtl(dir, server + "health", shim);
  CHECK(health.status == 0);
  CHECK(health.out == "SERVING\n");

  // A server that is not there: refused, reported at once (exit 3), not waited for.
  const auto start = std::chrono::steady_clock::now();
  const Seen refused = RunCtl(dir, "--server 127.0.0.1:1 --insecure list");
  CHECK(refused.status == 3);
  CHECK(refused.err.find("Connection refused") != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));
}
