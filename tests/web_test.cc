// The monitor's pure parts: escaping, sessions and CSRF, role checks, page rendering,
// "why is it waiting". The browser test (monitor_test.py) drives the whole of it.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "server/web/html.h"
#include "server/web/pages.h"
#include "server/web/sections.h"
#include "server/web/sessions.h"
#include "server/web/thumbnails.h"
#include "testing/fixtures.h"

using namespace reelfarm;
using namespace reelfarm::server;
using namespace reelfarm::server::web;

namespace {

constexpr char kXss[] = "<img src=x onerror=alert(1)>";

Principal Who(Role role, std::set<std::string> projects = {}) {
  Principal p;
  p.name = "someone";
  p.role = role;
  p.projects = std::move(projects);
  return p;
}

v1::Job RunningJob(int64_t id, const std::string& name, const std::string& project) {
  v1::Job j;
  j.set_id(id);
  j.mutable_spec()->set_name(name);
  j.mutable_spec()->set_project(project);
  j.mutable_spec()->mutable_upscale()->set_model("bicubic");
  j.set_state(v1::JOB_STATE_RUNNING);
  j.set_frames_total(100);
  j.set_frames_done(25);
  j.set_fps(12.5);
  j.set_eta_seconds(6);
  return j;
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("HtmlEscape escapes the five HTML characters", "[unit]") {
  CHECK(HtmlEscape(kXss) == "&lt;img src=x onerror=alert(1)&gt;");
  CHECK(HtmlEscape("a&b\"c'd") == "a&amp;b&quot;c&#39;d");
  CHECK(HtmlEscape("plain text 123") == "plain text 123");
}

TEST_CASE("UrlEncode and UrlDecode round-trip names with reserved characters", "[unit]") {
  const std::string name = "render node/1 & <x>?=%";
  const std::string enc = UrlEncode(name);
  CHECK(enc.find_first_of("/&<>?= ") == std::string::npos);
  CHECK(UrlDecode(enc) == name);
  CHECK(UrlDecode("a+b%2") == "a b%2");  // a cut escape stays as it is
}

TEST_CASE("FormatDuration gives short forms and a dash for unknown", "[unit]") {
  CHECK(FormatDuration(-1) == "\xE2\x80\x94");
  CHECK(FormatDuration(0.25) == "0.25s");
  CHECK(FormatDuration(42) == "42s");
  CHECK(FormatDuration(200) == "3m 20s");
  CHECK(FormatDuration(7500) == "2h 05m");
}

TEST_CASE("the jobs page shows a job name as text and buttons only to who may act", "[unit]") {
  PageContext admin;
  admin.principal = Who(Role::kAdmin);
  admin.csrf = "c5rf-admin";
  const std::vector<v1::Job> jobs = {RunningJob(7, kXss, "sh010")};
  const std::string page = RenderJobsPage(admin, jobs, JobsQuery(), false);
  CHECK(page.find(kXss) == std::string::npos);
  CHECK(page.find("&lt;img src=x onerror=alert(1)&gt;") != std::string::npos);
  CHECK(page.find("id=\"cancel-7\"") != std::string::npos);
  CHECK(page.find("value=\"c5rf-admin\"") != std::string::npos);
  CHECK(page.find("25/100") != std::string::npos);

  PageContext viewer = admin;
  viewer.principal = Who(Role::kViewer);
  CHECK(Count(RenderJobsPage(viewer, jobs, JobsQuery(), false), "data-action") == 0);

  PageContext other = admin;  // a submitter of another project
  other.principal = Who(Role::kSubmitter, {"sh020"});
  CHECK(Count(RenderJobsPage(other, jobs, JobsQuery(), false), "data-action") == 0);
  other.principal = Who(Role::kSubmitter, {"sh010"});
  CHECK(Count(RenderJobsPage(other, jobs, JobsQuery(), false), "data-action=\"cancel\"") == 1);
}

TEST_CASE("the workers page escapes tags and shows drain only to admins", "[unit]") {
  v1::Worker w;
  w.set_name("w<1>");
  w.set_state("idle");
  (*w.mutable_tags())["site"] = "\"lon\"";
  PageContext admin;
  admin.principal = Who(Role::kAdmin);
  const std::string page = RenderWorkersPage(admin, {w});
  CHECK(page.find("w&lt;1&gt;") != std::string::npos);
  CHECK(page.find("site=&quot;lon&quot;") != std::string::npos);
  CHECK(page.find("data-action=\"drain\"") != std::string::npos);
  PageContext submitter = admin;
  submitter.principal = Who(Role::kSubmitter, {"sh010"});
  CHECK(RenderWorkersPage(submitter, {w}).find("data-action") == std::string::npos);
}

TEST_CASE("sessions have random ids and CSRF tokens and expire", "[unit]") {
  SessionStore store;
  const Session a = store.Create("token-a", Who(Role::kAdmin));
  const Session b = store.Create("token-b", Who(Role::kViewer));
  CHECK(a.id.size() == 64);
  CHECK(a.csrf.size() == 64);
  CHECK(a.id != b.id);
  CHECK(a.csrf != b.csrf);
  CHECK(a.csrf != a.id);
  REQUIRE(store.Find(a.id).has_value());
  CHECK(store.Find(a.id)->token == "token-a");
  store.Remove(a.id);
  CHECK_FALSE(store.Find(a.id).has_value());
  CHECK_FALSE(store.Find("not-a-session").has_value());

  SessionStore expiring(std::chrono::seconds(0));
  const Session c = expiring.Create("t", Who(Role::kAdmin));
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  CHECK_FALSE(expiring.Find(c.id).has_value());

  SessionStore small(std::chrono::hours(1), 2);
  const Session first = small.Create("1", Who(Role::kAdmin));
  small.Create("2", Who(Role::kAdmin));
  small.Create("3", Who(Role::kAdmin));
  CHECK_FALSE(small.Find(first.id).has_value());  // the oldest went
}

TEST_CASE("a change needs a session, its own CSRF token and a role that may change", "[unit]") {
  SessionStore store;
  const Session admin = store.Create("a", Who(Role::kAdmin));
  const Session viewer = store.Create("v", Who(Role::kViewer));
  const Session submitter = store.Create("s", Who(Role::kSubmitter, {"sh010"}));
  CHECK(CheckChange(std::nullopt, admin.csrf).code() == absl::StatusCode::kPermissionDenied);
  CHECK(CheckChange(admin, "").code() == absl::StatusCode::kPermissionDenied);
  CHECK(CheckChange(admin, viewer.csrf).code() == absl::StatusCode::kPermissionDenied);
  CHECK(CheckChange(admin, admin.csrf.substr(1)).code() == absl::StatusCode::kPermissionDenied);
  CHECK(CheckChange(viewer, viewer.csrf).code() == absl::StatusCode::kPermissionDenied);
  CHECK(CheckChange(admin, admin.csrf).ok());
  CHECK(CheckChange(submitter, submitter.csrf).ok());
}

TEST_CASE("WhyWaiting names paused, unmet dependencies, tags, models and busy workers", "[unit]") {
  v1::Job j = RunningJob(3, "j", "p");
  j.set_state(v1::JOB_STATE_QUEUED);
  (*j.mutable_spec()->mutable_requirements())["gpu"] = "h100";
  j.add_tasks()->set_state(v1::TASK_STATE_PENDING);
  CHECK(WhyWaiting(j, {}, {}) == std::vector<std::string>{"no worker is connected"});

  v1::Worker w;
  w.set_name("w1");
  w.set_state("idle");
  w.set_slots(1);
  (*w.mutable_tags())["gpu"] = "a10";
  std::vector<std::string> why = WhyWaiting(j, {}, {w});
  REQUIRE(why.size() == 1);
  CHECK(why[0].find("gpu=h100") != std::string::npos);

  (*w.mutable_tags())["gpu"] = "h100";
  w.add_current_tasks("9/0");
  why = WhyWaiting(j, {}, {w});
  REQUIRE(why.size() == 1);
  CHECK(why[0].find("busy") != std::string::npos);

  w.clear_current_tasks();
  CHECK(WhyWaiting(j, {}, {w}).empty());

  j.mutable_spec()->mutable_upscale()->set_model("esrgan-thick");
  why = WhyWaiting(j, {}, {w});
  REQUIRE(why.size() == 1);
  CHECK(why[0].find("model 'esrgan-thick'") != std::string::npos);

  v1::Job dep = RunningJob(2, "plate prep", "p");
  j.set_state(v1::JOB_STATE_WAITING);
  why = WhyWaiting(j, {dep}, {w});
  REQUIRE_FALSE(why.empty());
  CHECK(why[0].find("waits for job 2") != std::string::npos);

  j.set_state(v1::JOB_STATE_PAUSED);
  CHECK(WhyWaiting(j, {}, {w})[0].find("paused") != std::string::npos);
}

TEST_CASE("JobEventJson carries the row's values as text", "[unit]") {
  const std::string json = JobEventJson(RunningJob(5, kXss, "p"));
  CHECK(json.find("\"id\":5") != std::string::npos);
  CHECK(json.find("\"frames\":\"25/100\"") != std::string::npos);
  CHECK(json.find("\"percent\":25") != std::string::npos);
  CHECK(json.find("\"state\":\"running\"") != std::string::npos);
  CHECK(json.find("img") == std::string::npos);  // no name: the script sets only values
}

TEST_CASE("the wedge page shows each take's QC flags, escaped, or QC ok", "[unit]") {
  v1::Job j;
  j.set_id(4);
  j.mutable_spec()->set_name("w");
  v1::GenerateSpec* g = j.mutable_spec()->mutable_generate();
  g->set_model("shapes_t2v");
  g->set_output("gen/w.mp4");
  g->add_seeds(1);
  g->add_seeds(2);
  for (int i = 0; i < 2; ++i) j.add_tasks()->set_state(v1::TASK_STATE_SUCCEEDED);
  const std::vector<TakeCell> takes = TakesOf(j);
  REQUIRE(takes.size() == 2);
  CHECK(takes[0].output == "gen/w_take001.mp4");
  QcByOutput qc;
  qc[takes[0].output] = {};
  qc[takes[1].output] = {"black: 2 of 4 frames black <b>"};
  PageContext ctx;
  ctx.principal = Who(Role::kViewer);
  const std::string page = RenderWedgePage(ctx, j, qc);
  CHECK(Count(page, "class=\"take\"") == 2);
  CHECK(Count(page, "/preview.png") == 2);
  CHECK(Count(page, "QC ok") == 1);
  CHECK(page.find("black: 2 of 4 frames black &lt;b&gt;") != std::string::npos);
}

namespace {

// An upscale of frames 1001..1096 in 4 chunks of 24: chunk 0 done (its segment known),
// chunk 1 running.
v1::Job UpscaleJob(const std::string& output) {
  v1::Job j = RunningJob(9, "plate", "sh010");
  j.mutable_spec()->mutable_upscale()->set_input("plates/sh010.####.exr");
  j.mutable_spec()->mutable_upscale()->set_output(output);
  j.set_output(output);
  j.mutable_input_info()->set_first_frame(1001);
  j.set_frames_total(96);
  for (int i = 0; i < 4; ++i) {
    v1::Task* t = j.add_tasks();
    t->set_index(i);
    t->set_kind(v1::TASK_KIND_CHUNK);
    t->set_frame_begin(i * 24);
    t->set_frame_end(i * 24 + 24);
    t->set_state(i == 0 ? v1::TASK_STATE_SUCCEEDED : v1::TASK_STATE_LEASED);
  }
  j.mutable_tasks(0)->set_segment(".reelfarm/jobs/9/parts/chunk_000000.lease_3.mov");
  v1::Task* assemble = j.add_tasks();
  assemble->set_index(4);
  assemble->set_kind(v1::TASK_KIND_ASSEMBLE);
  return j;
}

}  // namespace

TEST_CASE("the jobs and job pages show the owner, escaped", "[unit]") {
  PageContext ctx;
  ctx.principal = Who(Role::kViewer);
  v1::Job j = RunningJob(3, "n", "p");
  j.set_owner("ada <b>");
  const std::string list = RenderJobsPage(ctx, {j}, JobsQuery(), false);
  CHECK(list.find("<th>Owner</th>") != std::string::npos);
  CHECK(list.find("<td class=\"owner\">ada &lt;b&gt;</td>") != std::string::npos);
  CHECK(list.find("ada <b>") == std::string::npos);
  JobsQuery q;
  q.owner = "ada";
  q.sort = "owner";
  CHECK(RenderJobsPage(ctx, {j}, q, true).find("owner=ada&amp;sort=owner&amp;page=1") !=
        std::string::npos);
  const std::string page = RenderJobPage(ctx, j, {}, {}, {});
  CHECK(page.find("<dd class=\"owner\">ada &lt;b&gt;</dd>") != std::string::npos);
}

TEST_CASE("the log section follows a running job's log and shows lines as text", "[unit]") {
  v1::Job j = UpscaleJob("out/a.mp4");
  v1::TaskLogLines lines;
  lines.set_task_index(1);
  lines.add_lines(kXss);
  const std::string running = RenderLogSection(j, {lines});
  CHECK(running.find("data-log-events=\"/jobs/9/log/events\"") != std::string::npos);
  CHECK(running.find("id=\"log-follow\" checked") != std::string::npos);
  CHECK(running.find("[task 1] &lt;img src=x onerror=alert(1)&gt;\n") != std::string::npos);
  CHECK(Count(running, "<option value=\"") == 6);  // all, and the 5 tasks
  j.set_state(v1::JOB_STATE_SUCCEEDED);
  CHECK(RenderLogSection(j, {}).find("checked") == std::string::npos);
}

TEST_CASE("a wipe frame comes from the input, a done chunk's segment, or the output", "[unit]") {
  v1::Job j = UpscaleJob("out/a.mp4");
  absl::StatusOr<FrameFile> in = InputFrameOf(j, 1010);
  REQUIRE(in.ok());
  CHECK(in->path == "plates/sh010.####.exr");
  CHECK(in->number == 1010);
  // Running: frame 1010 is chunk 0's 10th, in its segment; chunk 1 is not done.
  absl::StatusOr<FrameFile> out = OutputFrameOf(j, 1010);
  REQUIRE(out.ok());
  CHECK(out->path == ".reelfarm/jobs/9/parts/chunk_000000.lease_3.mov");
  CHECK(out->number == 9);
  CHECK(OutputFrameOf(j, 1030).status().code() == absl::StatusCode::kNotFound);
  CHECK(OutputFrameOf(j, 1000).status().code() == absl::StatusCode::kOutOfRange);
  CHECK(OutputFrameOf(j, 1097).status().code() == absl::StatusCode::kOutOfRange);
  CHECK(InputFrameOf(j, 1097).status().code() == absl::StatusCode::kOutOfRange);
  CHECK(InputFrameOf(j, 1096).ok());
  // Succeeded: the published movie, counted from 0; a sequence keeps the numbers.
  j.set_state(v1::JOB_STATE_SUCCEEDED);
  out = OutputFrameOf(j, 1030);
  REQUIRE(out.ok());
  CHECK(out->path == "out/a.mp4");
  CHECK(out->number == 29);
  v1::Job seq = UpscaleJob("out/a.####.png");
  seq.set_state(v1::JOB_STATE_SUCCEEDED);
  out = OutputFrameOf(seq, 1030);
  REQUIRE(out.ok());
  CHECK(out->number == 1030);
  v1::Job gen;
  gen.mutable_spec()->mutable_generate()->set_model("shapes_t2v");
  CHECK(InputFrameOf(gen, 0).status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("the wipe section starts at a rendered frame and loads both of its images", "[unit]") {
  const std::string wipe = RenderWipeSection(UpscaleJob("out/a.mp4"));
  // Chunk 0 (frames 1001..1024) is the one done: its middle.
  CHECK(wipe.find("src=\"/jobs/9/frames/1013/input.png\"") != std::string::npos);
  CHECK(wipe.find("src=\"/jobs/9/frames/1013/output.png\"") != std::string::npos);
  CHECK(wipe.find("min=\"1001\" max=\"1096\"") != std::string::npos);
  v1::Job gen;
  gen.mutable_spec()->mutable_generate()->set_model("shapes_t2v");
  CHECK(RenderWipeSection(gen).empty());
}

TEST_CASE("a pick submits an upscale of the take in the wedge's project", "[unit]") {
  CHECK(PickOutputFor("gen/w_take002.mp4", 2) == "gen/w_take002_x2.mp4");
  CHECK(PickOutputFor("gen/v1.2/w_take002.####.png", 4) == "gen/v1.2/w_take002_x4.####.png");
  CHECK(PickOutputFor("w_take002", 3) == "w_take002_x3");
  v1::Job j;
  j.set_id(4);
  j.mutable_spec()->set_name("w");
  j.mutable_spec()->set_project("sh010");
  j.mutable_spec()->set_priority(60);
  v1::GenerateSpec* g = j.mutable_spec()->mutable_generate();
  g->set_model("shapes_t2v");
  g->set_output("gen/w.mp4");
  g->add_seeds(1);
  g->add_seeds(2);
  j.add_tasks()->set_state(v1::TASK_STATE_SUCCEEDED);
  j.add_tasks()->set_state(v1::TASK_STATE_LEASED);
  const std::vector<TakeCell> takes = TakesOf(j);
  REQUIRE(takes.size() == 2);
  PickForm form = DefaultPick(j, takes[0], "pick-4-0-ab");
  CHECK(form.output == "gen/w_take001_x2.mp4");
  CHECK(form.model == "bicubic");
  CHECK(form.priority == "60");
  form.model = "esrgan-slim";
  form.scale = "4";
  absl::StatusOr<v1::SubmitJobRequest> req = PickRequest(j, takes[0], form);
  REQUIRE(req.ok());
  CHECK(req->spec().project() == "sh010");
  CHECK(req->spec().request_id() == "pick-4-0-ab");
  CHECK(req->spec().upscale().input() == "gen/w_take001.mp4");
  CHECK(req->spec().upscale().output() == "gen/w_take001_x2.mp4");
  CHECK(req->spec().upscale().model() == "esrgan-slim");
  CHECK(req->spec().upscale().scale() == 4);
  form.scale = "two";
  CHECK(PickRequest(j, takes[0], form).status().code() == absl::StatusCode::kInvalidArgument);

  // The button: for who may submit to the project, on a take that succeeded.
  PageContext ctx;
  ctx.principal = Who(Role::kSubmitter, {"sh010"});
  CHECK(PickButton(ctx, j, takes[0], "succeeded").find("href=\"/jobs/4/takes/0/pick\"") !=
        std::string::npos);
  CHECK(PickButton(ctx, j, takes[1], "running").empty());
  ctx.principal = Who(Role::kViewer);
  CHECK(PickButton(ctx, j, takes[0], "succeeded").empty());
  CHECK(Count(RenderWedgePage(ctx, j), "btn-pick") == 0);
  ctx.principal = Who(Role::kSubmitter, {"sh020"});
  CHECK(PickButton(ctx, j, takes[0], "succeeded").empty());
  ctx.principal = Who(Role::kAdmin);
  CHECK(Count(RenderWedgePage(ctx, j), "btn-pick") == 1);

  ctx.csrf = "c5rf";
  const std::string page = RenderPickPage(ctx, j, takes[0], form, {"bicubic", "<x>"}, "no <b>");
  CHECK(page.find("action=\"/jobs/4/takes/0/pick\"") != std::string::npos);
  CHECK(page.find("name=\"csrf\" value=\"c5rf\"") != std::string::npos);
  CHECK(page.find("<p class=\"error\">no &lt;b&gt;</p>") != std::string::npos);
  CHECK(page.find("<option value=\"&lt;x&gt;\">") != std::string::npos);
  CHECK(page.find("value=\"two\"") != std::string::npos);
}

TEST_CASE("the monitor reads a worker's picture from the job's pictures folder and nothing else",
          "[unit]") {
  namespace fs = std::filesystem;
  testing::TempDir dir;
  const std::unique_ptr<common::Storage> storage = *common::Storage::Open(dir.path() / "root");
  const fs::path root = storage->root();
  const fs::path mine = root / common::Storage::JobPicturesDir(7);
  const fs::path other = root / common::Storage::JobPicturesDir(8);
  fs::create_directories(mine);
  fs::create_directories(other);
  fs::create_directories(root / "renders");
  std::ofstream(mine / "chunk_000001.jpg") << "jpeg bytes";
  std::ofstream(mine / "take_0001.webp") << "webp bytes";
  std::ofstream(other / "chunk_000001.jpg") << "job 8";
  std::ofstream(root / "renders/secret.jpg") << "an output";
  std::ofstream(dir.path() / "outside.jpg") << "outside the root";
  fs::create_symlink(root / "renders/secret.jpg", mine / "absolute.jpg");
  fs::create_symlink("../8/chunk_000001.jpg", mine / "sibling.jpg");
  fs::create_symlink(dir.path() / "outside.jpg", mine / "outside.jpg");

  absl::StatusOr<WorkerPicture> jpeg = ReadWorkerPicture(*storage, 7, "chunk_000001.jpg");
  REQUIRE(jpeg.ok());
  CHECK(jpeg->bytes == "jpeg bytes");
  CHECK(jpeg->content_type == "image/jpeg");
  absl::StatusOr<WorkerPicture> webp = ReadWorkerPicture(*storage, 7, "take_0001.webp");
  REQUIRE(webp.ok());
  CHECK(webp->content_type == "image/webp");

  for (const char* name : {"../8/chunk_000001.jpg", "..", ".", "", "/etc/passwd",
                           "../../../renders/secret.jpg", ".hidden.jpg", "chunk_000001.txt",
                           "absolute.jpg", "sibling.jpg", "outside.jpg", "a\\b.jpg"}) {
    INFO("name '" << name << "'");
    CHECK(ReadWorkerPicture(*storage, 7, name).status().code() ==
          absl::StatusCode::kPermissionDenied);
  }
  CHECK(ReadWorkerPicture(*storage, 7, "chunk_000002.jpg").status().code() ==
        absl::StatusCode::kNotFound);
  CHECK(ReadWorkerPicture(*storage, 9, "chunk_000001.jpg").status().code() ==
        absl::StatusCode::kNotFound);
}
