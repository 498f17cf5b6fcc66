// Generation jobs end to end: real server and worker processes, a denoiser package
// made by the test (tests/testing/models.cc), decoded lossless output (16-bit PNG
// sequences). Reproducibility per seed, wedges spread over workers with sidecars that
// name each take's values, and every bad input refused with the field and the allowed
// values.
#include <catch2/catch.hpp>

#include <fstream>
#include <iterator>
#include <set>

#include <nlohmann/json.hpp>

#include "tests/testing/farm.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/models.h"

namespace fs = std::filesystem;
using namespace reelfarm;
using testing::Farm;

namespace {

// A farm whose server and workers see `models`; limits small enough to test.
struct GenFarm {
  testing::TempDir dir;
  std::string models;
  std::unique_ptr<Farm> farm;
  explicit GenFarm(int workers) {
    models = (dir.path() / "models").string();
    testing::WriteFixtureDenoiser(dir.path() / "models", "tiny");
    testing::WriteFixtureDenoiser(dir.path() / "models", "uncond", "none");
    testing::WriteFixtureDenoiser(dir.path() / "models", "pets", "class");
    testing::WriteFixtureDenoiser(dir.path() / "models", "broken", "none", 8, 32, /*nan=*/true);
    // A package whose manifest says its latents have 4 channels (not RGB) and a decoder:
    // only its manifest is read, by the server at submit (the "decoder" is a copy).
    testing::WriteFixtureDenoiser(dir.path() / "models", "latent4", "none");
    const fs::path manifest = dir.path() / "models/latent4/model.json";
    std::string json;
    {
      std::ifstream in(manifest);
      json.assign(std::istreambuf_iterator<char>(in), {});
    }
    const std::string three = "\"latent_channels\": 3";
    REQUIRE(json.find(three) != std::string::npos);
    json.replace(json.find(three), three.size(),
                 "\"latent_channels\": 4, \"decoder\": \"decoder.pt\"");
    std::ofstream(manifest) << json;
    fs::copy_file(dir.path() / "models/latent4/denoiser.pt",
                  dir.path() / "models/latent4/decoder.pt");
    farm = std::make_unique<Farm>(
        dir.path() / "farm",
        std::vector<std::string>{"--model-path", models, "--max-generate-steps", "50",
                                 "--max-tasks-per-job", "10"});
    for (int i = 1; i <= workers; ++i) {
      farm->StartWorker("w" + std::to_string(i), {"--model-path", models});
    }
    if (workers > 0) farm->WaitForWorkers(workers);
  }
};

v1::JobSpec GenerateSpec(const std::string& output, std::vector<int64_t> seeds,
                         const std::string& prompt = "red circle") {
  v1::JobSpec spec;
  v1::GenerateSpec* g = spec.mutable_generate();
  g->set_model("tiny");
  g->set_prompt(prompt);
  for (int64_t s : seeds) g->add_seeds(s);
  g->set_width(32);
  g->set_height(24);
  g->set_frames(4);
  g->set_steps(6);
  g->set_output(output);
  spec.set_max_attempts(2);
  return spec;
}

// Every frame of the PNG sequence `pattern` ("####" for the number), as RGB24.
std::vector<std::vector<uint8_t>> Frames(const Farm& farm, const std::string& pattern) {
  std::string p = (farm.storage() / pattern).string();
  p.replace(p.find("####"), 4, "%04d");
  int w = 0, h = 0;
  return testing::DecodeRgb(p, "", &w, &h);
}

grpc::Status Refused(Farm& farm, const v1::JobSpec& spec) {
  v1::SubmitJobResponse resp;
  return farm.Submit(spec, &resp);
}

void RequireInvalid(const grpc::Status& st, const std::vector<std::string>& words) {
  INFO(st.error_message());
  REQUIRE(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  for (const auto& w : words) CHECK_THAT(st.error_message(), Catch::Contains(w));
}

}  // namespace

TEST_CASE("same spec and seed give identical frames, another seed differs",
          "[integration][generate]") {
  GenFarm f(1);
  f.farm->RunToSuccess(GenerateSpec("gen/a.####.png", {7}));
  f.farm->RunToSuccess(GenerateSpec("gen/b.####.png", {7}));
  f.farm->RunToSuccess(GenerateSpec("gen/c.####.png", {8}));
  auto a = Frames(*f.farm, "gen/a_take001.####.png");
  auto b = Frames(*f.farm, "gen/b_take001.####.png");
  auto c = Frames(*f.farm, "gen/c_take001.####.png");
  REQUIRE(a.size() == 4);
  REQUIRE(a[0].size() == 32 * 24 * 3);
  CHECK(a == b);
  REQUIRE(c.size() == 4);
  CHECK(a != c);
  // A guided take differs from an unguided one of the same seed (guidance is applied).
  v1::JobSpec unguided = GenerateSpec("gen/d.####.png", {7});
  unguided.mutable_generate()->set_guidance_scale(1.0f);
  f.farm->RunToSuccess(unguided);
  CHECK(Frames(*f.farm, "gen/d_take001.####.png") != a);
}

TEST_CASE("a wedge of 2 prompts x 4 seeds is 8 takes over 2 workers with sidecars",
          "[integration][generate]") {
  GenFarm f(2);
  v1::JobSpec spec = GenerateSpec("gen/wedge.####.png", {1, 2, 3, 4}, "");
  spec.set_name("sh010");
  spec.mutable_generate()->add_prompts("red circle moving right");
  spec.mutable_generate()->add_prompts("blue square");
  v1::Job job = f.farm->RunToSuccess(spec);
  CHECK(job.tasks_total() == 8);
  v1::Job full = f.farm->Get(job.id());
  std::set<std::string> workers;
  for (const auto& t : full.tasks()) {
    CHECK(t.kind() == v1::TASK_KIND_TAKE);
    workers.insert(t.worker());
  }
  CHECK(workers.size() == 2);
  std::set<std::pair<std::string, int64_t>> seen;
  for (int i = 0; i < 8; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "sh010_take%03d", i + 1);
    const std::string pattern = std::string("gen/") + name + ".####.png";
    CHECK(Frames(*f.farm, pattern).size() == 4);
    std::ifstream in(f.farm->storage() / (pattern + ".json"));
    REQUIRE(in.good());
    nlohmann::json side = nlohmann::json::parse(in);
    const auto& take = side.at("take");
    CHECK(take.at("name") == name);
    // Prompts outermost, seeds inside.
    CHECK(take.at("prompt") == (i < 4 ? "red circle moving right" : "blue square"));
    CHECK(take.at("seed") == (i % 4) + 1);
    CHECK(take.at("varying") == nlohmann::json::array({"prompt", "seed"}));
    CHECK(side.at("model").at("digest").get<std::string>().rfind("sha256:", 0) == 0);
    seen.insert({take.at("prompt").get<std::string>(), take.at("seed").get<int64_t>()});
  }
  CHECK(seen.size() == 8);
}

TEST_CASE("generate refuses an unknown sampler", "[integration][generate]") {
  GenFarm f(0);
  v1::JobSpec spec = GenerateSpec("gen/x.####.png", {1});
  spec.mutable_generate()->set_sampler("heun");
  RequireInvalid(Refused(*f.farm, spec), {"generate.sampler", "'heun'", "euler, ddim"});
}

TEST_CASE("generate refuses steps below 1 or over the maximum", "[integration][generate]") {
  GenFarm f(0);
  v1::JobSpec spec = GenerateSpec("gen/x.####.png", {1});
  spec.mutable_generate()->set_steps(-1);
  RequireInvalid(Refused(*f.farm, spec), {"generate.steps", "-1", "1..50"});
  spec.mutable_generate()->set_steps(51);
  RequireInvalid(Refused(*f.farm, spec), {"generate.steps", "51", "1..50"});
  spec.mutable_generate()->set_steps(50);
  spec.mutable_generate()->add_step_counts(4);
  spec.mutable_generate()->add_step_counts(80);
  RequireInvalid(Refused(*f.farm, spec), {"generate.step_counts", "80", "1..50"});
}

TEST_CASE("generate refuses a size that is not a multiple of the model's stride",
          "[integration][generate]") {
  GenFarm f(0);
  v1::JobSpec spec = GenerateSpec("gen/x.####.png", {1});
  spec.mutable_generate()->set_width(36);
  RequireInvalid(Refused(*f.farm, spec), {"generate.width", "36", "stride 8", "such as 32"});
}

TEST_CASE("generate refuses more frames than the model makes", "[integration][generate]") {
  GenFarm f(0);
  v1::JobSpec spec = GenerateSpec("gen/x.####.png", {1});
  spec.mutable_generate()->set_frames(33);
  RequireInvalid(Refused(*f.farm, spec), {"generate.frames", "33", "1..32"});
}

TEST_CASE("generate refuses a prompt for a model without text conditioning",
          "[integration][generate]") {
  GenFarm f(0);
  v1::JobSpec spec = GenerateSpec("gen/x.####.png", {1});
  spec.mutable_generate()->set_model("uncond");
  RequireInvalid(Refused(*f.farm, spec),
                 {"generate.prompt", "'red circle'", "no text conditioning"});
  spec.mutable_generate()->clear_prompt();
  CHECK(Refused(*f.farm, spec).ok());
}

TEST_CASE("generate refuses a wedge over the per-job task limit", "[integration][generate]") {
  GenFarm f(0);
  v1::JobSpec spec = GenerateSpec("gen/x.####.png", {1, 2, 3, 4, 5, 6});
  spec.mutable_generate()->add_prompts("red");
  spec.mutable_generate()->add_prompts("blue");
  RequireInvalid(Refused(*f.farm, spec), {"wedge", "12 takes", "limit of 10"});
}

TEST_CASE("generate refuses over-long or NUL-holding prompts, naming the field",
          "[integration][generate][security]") {
  GenFarm f(0);
  v1::JobSpec spec = GenerateSpec("gen/x.####.png", {1});
  spec.mutable_generate()->set_prompt(std::string(2000, 'a'));
  RequireInvalid(Refused(*f.farm, spec), {"generate.prompt", "2000 characters", "1024"});
  spec.mutable_generate()->set_prompt("red circle");
  spec.mutable_generate()->add_prompts("blue square");
  spec.mutable_generate()->add_prompts(std::string("red\0circle", 10));
  RequireInvalid(Refused(*f.farm, spec), {"generate.prompts[1]", "NUL"});
}

TEST_CASE("a model that produces NaN fails its take at once, saying so",
          "[integration][generate]") {
  GenFarm f(1);
  v1::JobSpec spec = GenerateSpec("gen/nan.####.png", {1}, "");
  spec.mutable_generate()->set_model("broken");
  spec.set_max_attempts(3);
  v1::SubmitJobResponse resp;
  REQUIRE(f.farm->Submit(spec, &resp).ok());
  v1::Job job = f.farm->WaitForJob(resp.job_id());
  CHECK(job.state() == v1::JOB_STATE_FAILED);
  CHECK_THAT(job.error(), Catch::Contains("NaN") && Catch::Contains("not retryable"));
  v1::Job full = f.farm->Get(job.id());
  REQUIRE(full.tasks_size() == 1);
  CHECK(full.tasks(0).attempts() == 1);
}

TEST_CASE("reelctl submit generate runs a wedge of seeds, a job file chains it into an upscale",
          "[integration][generate][reelctl]") {
  GenFarm f(1);
  const std::string ctl = f.farm->Reelctl();
  int status = 0;
  std::string out = testing::Capture(
      ctl +
          " submit generate --model tiny --prompt 'red circle moving right' --seeds 1-3 "
          "--frames 4 --size 32x24 --steps 4 --output gen/cli.####.png --watch 2>&1",
      &status);
  INFO(out);
  CHECK(status == 0);
  CHECK_THAT(out, Catch::Contains("3 takes of 4 frames at 32x24"));
  for (int take = 1; take <= 3; ++take) {
    char pattern[48];
    std::snprintf(pattern, sizeof pattern, "gen/cli_take%03d.####.png", take);
    CHECK(Frames(*f.farm, pattern).size() == 4);
  }
  // Bad input comes back as the server's message and exit code 2.
  out = testing::Capture(ctl +
                             " submit generate --model tiny --seeds 1 --size 33x24 "
                             "--output gen/bad.####.png 2>&1",
                         &status);
  CHECK(status != 0);
  CHECK_THAT(out, Catch::Contains("generate.width") && Catch::Contains("stride 8"));

  // generate -> upscale through depends_on by name.
  const fs::path file = f.dir.path() / "chain.yaml";
  std::ofstream(file) << R"(
jobs:
  - name: up
    depends_on: [look]
    upscale: {input: gen/look_take001.mp4, output: renders/look_x2.mp4, model: bicubic, scale: 2}
  - name: look
    generate: {model: tiny, prompt: blue square, seeds: [5], width: 32, height: 24, frames: 4,
               steps: 4, output: gen/look.mp4}
)";
  // A dry run checks the file without the take existing yet: the upscale's input is
  // what the generate job of the file will make, checked when it runs.
  out = testing::Capture(ctl + " submit -f " + file.string() + " --dry-run 2>&1", &status);
  CHECK(status == 0);
  CHECK_THAT(out, Catch::Contains("gen/look_take001.mp4"));
  CHECK_THAT(out, !Catch::Contains("NOT_FOUND"));
  CHECK_FALSE(fs::exists(f.farm->storage() / "gen/look_take001.mp4"));
  out = testing::Capture(ctl + " submit -f " + file.string() + " --watch 2>&1", &status);
  CHECK(status == 0);
  int w = 0, h = 0;
  auto frames = testing::DecodeRgb(f.farm->storage() / "renders/look_x2.mp4", "", &w, &h);
  CHECK(frames.size() == 4);
  CHECK(w == 64);
  CHECK(h == 48);
}

TEST_CASE("a class-conditioned model takes only its labels as prompts", "[integration][generate]") {
  GenFarm f(1);
  v1::JobSpec spec = GenerateSpec("gen/cow.####.png", {1}, "cow");
  spec.mutable_generate()->set_model("pets");
  RequireInvalid(Refused(*f.farm, spec), {"generate.prompt", "'cow'", "cat, dog"});
  spec = GenerateSpec("gen/cat.####.png", {1}, "cat");
  spec.mutable_generate()->set_model("pets");
  f.farm->RunToSuccess(spec);
  spec = GenerateSpec("gen/dog.####.png", {1}, "dog");
  spec.mutable_generate()->set_model("pets");
  f.farm->RunToSuccess(spec);
  CHECK(Frames(*f.farm, "gen/cat_take001.####.png") != Frames(*f.farm, "gen/dog_take001.####.png"));
}

TEST_CASE("generate refuses an init image for a model whose latents are not RGB",
          "[integration][generate]") {
  GenFarm f(0);
  REQUIRE(testing::Run("ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=s=32x24 -frames:v 1 '" +
                       (f.farm->storage() / "init.png").string() + "'") == 0);
  v1::JobSpec spec = GenerateSpec("gen/x.####.png", {1}, "");
  spec.mutable_generate()->set_model("latent4");
  spec.mutable_generate()->set_init("init.png");
  RequireInvalid(Refused(*f.farm, spec), {"generate.init", "'latent4'", "4-channel latents"});
  // The same spec without the init image is taken.
  spec.mutable_generate()->clear_init();
  v1::SubmitJobResponse resp;
  const grpc::Status st = f.farm->Submit(spec, &resp);
  CHECK(st.ok());
}

TEST_CASE("an init image with low strength keeps the take close to it, ddim runs",
          "[integration][generate]") {
  GenFarm f(1);
  REQUIRE(testing::Run("ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=s=32x24 -frames:v 1 '" +
                       (f.farm->storage() / "init.png").string() + "'") == 0);
  int w = 0, h = 0;
  const auto init = testing::DecodeRgb(f.farm->storage() / "init.png", "", &w, &h).at(0);
  v1::JobSpec spec = GenerateSpec("gen/i2v.####.png", {3});
  spec.mutable_generate()->set_init("init.png");
  spec.mutable_generate()->set_strength(0.2f);
  f.farm->RunToSuccess(spec);
  spec = GenerateSpec("gen/t2v.####.png", {3});
  spec.mutable_generate()->set_sampler("ddim");
  f.farm->RunToSuccess(spec);
  const double with_init = testing::Psnr(Frames(*f.farm, "gen/i2v_take001.####.png")[0], init);
  const double without = testing::Psnr(Frames(*f.farm, "gen/t2v_take001.####.png")[0], init);
  INFO(with_init << " dB with init, " << without << " dB without");
  CHECK(with_init > without + 6);
}
