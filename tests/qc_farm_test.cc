// QC flags and the workers' pictures on a real farm (issue 17 points 3 and 4): each flag
// fires on an input or model built to trigger it (ffmpeg's lavfi color=black and white,
// a brightness jump at a chunk boundary, a model that produces NaN) and on nothing of a
// clean testsrc2 clip; the flags are kept on the tasks, listed by `reelctl get --json`,
// counted by the server's /metrics; `qc: fail` fails the flagged task; the thumbnails
// and take previews the workers made are served by the monitor, and nothing else is.
#include <catch2/catch.hpp>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/storage.h"
#include "tests/testing/checks.h"
#include "tests/testing/farm.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/models.h"

namespace fs = std::filesystem;
using namespace reelfarm;
using testing::Farm;
using testing::UpscaleSpec;

namespace {

// A farm with two workers, /metrics and the monitor on free ports, and the tests'
// models (nearest ×2, the NaN-producing "unbounded" one, a tiny denoiser).
struct QcFarm {
  testing::TempDir dir;
  std::string models = (dir.path() / "models").string();
  std::unique_ptr<Farm> farm;

  QcFarm() {
    testing::WriteUnboundedModel(dir.path() / "models", "unbounded");
    testing::WriteFixtureDenoiser(dir.path() / "models", "tiny", "none");
    farm = std::make_unique<Farm>(
        dir.path() / "farm",
        std::vector<std::string>{"--metrics", "--model-path", models, "--web-listen", "127.0.0.1:0",
                                 "--web-port-file", (dir.path() / "web.port").string()});
    farm->StartWorker("w1", {"--model-path", models});
    farm->StartWorker("w2", {"--model-path", models});
    farm->WaitForWorkers(2);
  }

  // An ffmpeg-made clip at `rel` under the storage root.
  void MakeClip(const std::string& rel, const std::string& lavfi, const std::string& vf = "") {
    const fs::path path = farm->storage() / rel;
    fs::create_directories(path.parent_path());
    REQUIRE(testing::Run("ffmpeg -nostdin -v error -y -f lavfi -i '" + lavfi + "' -frames:v 96 " +
                         (vf.empty() ? "" : "-vf \"" + vf + "\" ") +
                         "-c:v libx264 -pix_fmt yuv420p '" + path.string() + "'") == 0);
  }

  v1::Job Run(v1::JobSpec spec) {
    v1::SubmitJobResponse resp;
    const grpc::Status st = farm->Submit(spec, &resp);
    INFO(st.error_message());
    REQUIRE(st.ok());
    const v1::Job job = farm->WaitForJob(resp.job_id());
    if (job.state() != v1::JOB_STATE_SUCCEEDED && job.state() != v1::JOB_STATE_FAILED) {
      farm->DumpLogs();
    }
    return job;
  }

  // GET `path` of the monitor: HTTP status and content type; the body goes to `body`.
  std::string Get(const std::string& path, std::string* body = nullptr) {
    std::ifstream port_file(dir.path() / "web.port");
    int port = 0;
    port_file >> port;
    REQUIRE(port > 0);
    const fs::path out = dir.path() / "http.body";
    const std::string status = testing::Capture(
        "curl -s --path-as-is -o '" + out.string() + "' -w '%{http_code} %{content_type}' " +
        "'http://127.0.0.1:" + std::to_string(port) + path + "'");
    if (body) {
      std::ifstream in(out, std::ios::binary);
      std::ostringstream ss;
      ss << in.rdbuf();
      *body = ss.str();
    }
    return status;
  }

  // reelfarm_qc_flags_total{flag=...} on the server's /metrics (0 when absent).
  double FlagCount(const std::string& flag) {
    const std::string text = Farm::Scrape(farm->server_metrics_port());
    const std::regex line("reelfarm_qc_flags_total\\{flag=\"" + flag + "\"\\} (\\S+)");
    std::smatch m;
    return std::regex_search(text, m, line) ? std::stod(m[1]) : 0;
  }
};

// The names of the flags of `t` ("black" of "black: 24 of 24 frames black").
std::vector<std::string> FlagNames(const v1::Task& t) {
  std::vector<std::string> names;
  for (const std::string& f : t.qc().flags()) names.push_back(f.substr(0, f.find(':')));
  return names;
}

bool Has(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::vector<v1::Task> Chunks(const v1::Job& job) {
  std::vector<v1::Task> chunks;
  for (const v1::Task& t : job.tasks()) {
    if (t.kind() == v1::TASK_KIND_CHUNK) chunks.push_back(t);
  }
  return chunks;
}

const v1::Task& Assemble(const v1::Job& job) { return job.tasks(job.tasks_size() - 1); }

}  // namespace

TEST_CASE("a clean testsrc2 clip raises no QC flag and every chunk gets a served thumbnail",
          "[integration]") {
  QcFarm f;
  f.MakeClip("plates/clean.mp4", "testsrc2=s=320x180:r=24");
  const v1::Job job = f.Run(UpscaleSpec("plates/clean.mp4", "renders/clean_x2.mp4", 24));
  REQUIRE(job.state() == v1::JOB_STATE_SUCCEEDED);
  const std::vector<v1::Task> chunks = Chunks(job);
  REQUIRE(chunks.size() == 4);
  for (const v1::Task& t : chunks) {
    INFO("task " << t.index());
    REQUIRE(t.qc().measured());
    CHECK(t.qc().frames() == 24);
    CHECK(t.qc().flags_size() == 0);
    CHECK(t.qc().nan_inf_samples() == 0);
    CHECK(t.qc().black_frames() == 0);
    // testsrc2 moves: about 0.02 of the range between frames (numpy on ffmpeg's decode).
    CHECK(t.qc().median_difference() > 0.01);
    CHECK(t.qc().median_difference() < 0.05);
    CHECK(t.thumbnail() == common::Storage::JobPicturesDir(job.id()) + "/chunk_00000" +
                               std::to_string(t.index()) + ".jpg");
  }
  // The assembly measured the three seams, each like any other frame step.
  const v1::Task& assemble = Assemble(job);
  REQUIRE(assemble.qc().measured());
  REQUIRE(assemble.qc().seam_differences_size() == 3);
  for (double d : assemble.qc().seam_differences()) CHECK(d < 0.05);
  CHECK(assemble.qc().flags_size() == 0);
  for (const char* flag : {"nan", "black", "clipped", "frozen", "seam"}) {
    CHECK(f.FlagCount(flag) == 0);
  }

  // `reelctl get --json` lists the QC and the thumbnails.
  int status = -1;
  const std::string out =
      testing::Capture(f.farm->Reelctl() + " --json get " + std::to_string(job.id()), &status);
  REQUIRE(status == 0);
  const nlohmann::json got = nlohmann::json::parse(out);
  REQUIRE(got["tasks"].size() == 5);
  CHECK(got["tasks"][1]["thumbnail"] == chunks[1].thumbnail());
  CHECK(got["tasks"][1]["qc"]["measured"] == true);
  CHECK(got["tasks"][4]["qc"]["seamDifferences"].size() == 3);
  // The human form has a QC column.
  const std::string table =
      testing::Capture(f.farm->Reelctl() + " get " + std::to_string(job.id()), &status);
  CHECK(table.find(" qc") != std::string::npos);
  CHECK(table.find("thumbnail " + chunks[0].thumbnail()) != std::string::npos);

  // The thumbnail is a 320-wide JPEG of the chunk's middle frame (ffprobe reads it).
  const std::string name = fs::path(chunks[2].thumbnail()).filename().string();
  std::string jpeg;
  CHECK(f.Get("/jobs/" + std::to_string(job.id()) + "/pictures/" + name, &jpeg) ==
        "200 image/jpeg");
  const fs::path saved = f.dir.path() / "thumb.jpg";
  std::ofstream(saved, std::ios::binary) << jpeg;
  CHECK(testing::Capture(
            "ffprobe -v error -show_entries stream=codec_name,width,height -of csv=p=0 '" +
            saved.string() + "'") == "mjpeg,320,180\n");
  // The job page shows the strip and the QC badges.
  std::string page;
  CHECK(f.Get("/jobs/" + std::to_string(job.id()), &page).rfind("200", 0) == 0);
  CHECK(page.find("/jobs/" + std::to_string(job.id()) + "/pictures/" + name) != std::string::npos);
  CHECK(page.find("qc-badge qc-ok") != std::string::npos);

  // Nothing but the job's own pictures is served: another folder, a hidden or other
  // kind of file, a link planted in the folder that leads to an output.
  const std::string base = "/jobs/" + std::to_string(job.id()) + "/pictures/";
  const fs::path pictures = f.farm->storage() / common::Storage::JobPicturesDir(job.id());
  fs::create_symlink(f.farm->storage() / "renders/clean_x2.mp4", pictures / "escape.jpg");
  fs::create_symlink("../../../renders/clean_x2.mp4", pictures / "relative.jpg");
  CHECK(f.Get(base + "..%2F..%2F..%2Frenders%2Fclean_x2.mp4").rfind("200", 0) != 0);
  CHECK(f.Get(base + "../../../renders/clean_x2.mp4").rfind("200", 0) != 0);
  CHECK(f.Get(base + "escape.jpg").rfind("403", 0) == 0);
  CHECK(f.Get(base + "relative.jpg").rfind("403", 0) == 0);
  CHECK(f.Get(base + ".hidden.jpg").rfind("403", 0) == 0);
  CHECK(f.Get(base + "clean_x2.mp4").rfind("403", 0) == 0);
  CHECK(f.Get(base + "chunk_999999.jpg").rfind("404", 0) == 0);
  CHECK(f.Get("/jobs/" + std::to_string(job.id() + 100) + "/pictures/" + name).rfind("404", 0) ==
        0);
}

TEST_CASE("black frames raise the black flag, counted by the server's metrics", "[integration]") {
  QcFarm f;
  f.MakeClip("plates/black.mp4", "color=black:s=160x90:r=24");
  const v1::Job job = f.Run(UpscaleSpec("plates/black.mp4", "renders/black_x2.mp4", 24));
  REQUIRE(job.state() == v1::JOB_STATE_SUCCEEDED);  // qc: warn by default
  CHECK(job.spec().upscale().qc() == "warn");
  for (const v1::Task& t : Chunks(job)) {
    INFO("task " << t.index());
    CHECK(Has(FlagNames(t), "black"));
    CHECK(t.qc().black_frames() == 24);
    CHECK_FALSE(Has(FlagNames(t), "nan"));
  }
  CHECK(f.FlagCount("black") == 4);
  CHECK(f.FlagCount("nan") == 0);
}

TEST_CASE("all-white frames raise the clipped flag and not the black one", "[integration]") {
  QcFarm f;
  f.MakeClip("plates/white.mp4", "color=white:s=160x90:r=24");
  const v1::Job job = f.Run(UpscaleSpec("plates/white.mp4", "renders/white_x2.mp4", 48));
  REQUIRE(job.state() == v1::JOB_STATE_SUCCEEDED);
  for (const v1::Task& t : Chunks(job)) {
    INFO("task " << t.index());
    CHECK(Has(FlagNames(t), "clipped"));
    CHECK(t.qc().clipped_high_fraction() > 0.99);
    CHECK_FALSE(Has(FlagNames(t), "black"));
  }
  CHECK(f.FlagCount("clipped") == 2);
}

TEST_CASE("a model that produces NaN raises the nan flag", "[integration]") {
  QcFarm f;
  f.MakeClip("plates/nan.mp4", "testsrc2=s=160x90:r=24");
  const v1::Job job =
      f.Run(UpscaleSpec("plates/nan.mp4", "renders/nan_x2.mp4", 48, "unbounded", 2));
  REQUIRE(job.state() == v1::JOB_STATE_SUCCEEDED);
  for (const v1::Task& t : Chunks(job)) {
    INFO("task " << t.index());
    CHECK(Has(FlagNames(t), "nan"));
    // NaN, +inf and -inf at three samples of each output frame.
    CHECK(t.qc().nan_inf_samples() == 48 * 3);
  }
  CHECK(f.FlagCount("nan") == 2);
}

TEST_CASE("a brightness jump exactly at a chunk boundary raises seam flicker at that seam only",
          "[integration]") {
  QcFarm f;
  f.MakeClip("plates/jump.mp4", "testsrc2=s=320x180:r=24", "eq=brightness=0.4:enable='gte(n,24)'");
  const v1::Job job = f.Run(UpscaleSpec("plates/jump.mp4", "renders/jump_x2.mp4", 24));
  REQUIRE(job.state() == v1::JOB_STATE_SUCCEEDED);
  const v1::Task& assemble = Assemble(job);
  REQUIRE(assemble.qc().seam_differences_size() == 3);
  // numpy on ffmpeg's decode: 0.24 across the jump, 0.014..0.02 within the chunks.
  CHECK(assemble.qc().seam_differences(0) > 0.15);
  CHECK(assemble.qc().seam_differences(1) < 0.05);
  CHECK(assemble.qc().seam_differences(2) < 0.05);
  REQUIRE(assemble.qc().flags_size() == 1);
  CHECK(assemble.qc().flags(0).rfind("seam: chunks 1|2", 0) == 0);
  for (const v1::Task& t : Chunks(job)) CHECK_FALSE(Has(FlagNames(t), "seam"));
  CHECK(f.FlagCount("seam") == 1);
}

TEST_CASE("qc fail fails a flagged chunk, not retried, with the flag in its error",
          "[integration]") {
  QcFarm f;
  f.MakeClip("plates/black.mp4", "color=black:s=160x90:r=24");
  v1::JobSpec spec = UpscaleSpec("plates/black.mp4", "renders/black_x2.mp4", 48);
  spec.mutable_upscale()->set_qc("fail");
  const v1::Job job = f.Run(spec);
  REQUIRE(job.state() == v1::JOB_STATE_FAILED);
  CHECK(job.error().find("qc: black: ") != std::string::npos);
  CHECK(job.error().find("not retryable") != std::string::npos);
  bool failed_chunk = false;
  for (const v1::Task& t : Chunks(job)) {
    if (t.state() != v1::TASK_STATE_FAILED) continue;
    failed_chunk = true;
    CHECK(t.attempts() == 1);
    CHECK(t.error().rfind("qc: black: ", 0) == 0);
    CHECK(Has(FlagNames(t), "black"));  // kept on the failed task
  }
  CHECK(failed_chunk);
  CHECK_FALSE(fs::exists(f.farm->storage() / "renders/black_x2.mp4"));

  // A bad value is refused at submit, naming the field; reelctl takes --qc.
  spec.mutable_upscale()->set_qc("maybe");
  v1::SubmitJobResponse resp;
  const grpc::Status st = f.farm->Submit(spec, &resp);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(st.error_message().find("upscale.qc is 'maybe'") != std::string::npos);
  int status = -1;
  const std::string out = testing::Capture(f.farm->Reelctl() +
                                               " --json submit upscale --input plates/black.mp4 "
                                               "--output renders/b2.mp4 --qc fail --chunk 48",
                                           &status);
  INFO(out);
  REQUIRE(status == 0);
  const v1::Job second =
      f.farm->WaitForJob(std::stoll(nlohmann::json::parse(out)["jobId"].get<std::string>()));
  CHECK(second.spec().upscale().qc() == "fail");
  CHECK(second.state() == v1::JOB_STATE_FAILED);
}

TEST_CASE("every generate take gets a looping WebP preview and a thumbnail, on the contact sheet",
          "[integration]") {
  QcFarm f;
  v1::JobSpec spec;
  spec.set_name("wedge");
  v1::GenerateSpec* g = spec.mutable_generate();
  g->set_model("tiny");
  g->set_prompt("");
  g->add_seeds(1);
  g->add_seeds(2);
  g->set_steps(2);
  g->set_width(64);
  g->set_height(64);
  g->set_frames(8);
  g->set_output("gen/wedge.mp4");
  const v1::Job job = f.Run(spec);
  REQUIRE(job.state() == v1::JOB_STATE_SUCCEEDED);
  REQUIRE(job.tasks_size() == 2);
  std::string sheet;
  CHECK(f.Get("/jobs/" + std::to_string(job.id()) + "/wedge", &sheet).rfind("200", 0) == 0);
  for (const v1::Task& t : job.tasks()) {
    INFO("take " << t.index());
    CHECK(t.qc().measured());
    CHECK(t.qc().frames() == 8);
    REQUIRE_FALSE(t.preview().empty());
    REQUIRE_FALSE(t.thumbnail().empty());
    const std::string name = fs::path(t.preview()).filename().string();
    std::string webp;
    CHECK(f.Get("/jobs/" + std::to_string(job.id()) + "/pictures/" + name, &webp) ==
          "200 image/webp");
    // An animated WebP (RIFF "WEBP" with an ANIM chunk) with one ANMF frame per frame.
    REQUIRE(webp.size() > 30);
    CHECK(webp.compare(0, 4, "RIFF") == 0);
    CHECK(webp.compare(8, 4, "WEBP") == 0);
    CHECK(webp.find("ANIM") != std::string::npos);
    size_t frames = 0;
    for (size_t at = webp.find("ANMF"); at != std::string::npos; at = webp.find("ANMF", at + 4)) {
      ++frames;
    }
    CHECK(frames == 8);
    CHECK(sheet.find("/jobs/" + std::to_string(job.id()) + "/pictures/" + name) !=
          std::string::npos);
  }
}
