#include "server/web/pages.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "scheduler/wedge.h"
#include "server/convert.h"
#include "server/web/html.h"
#include "server/web/sections.h"

namespace reelfarm::server::web {
namespace {

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool Terminal(v1::JobState s) {
  return s == v1::JOB_STATE_SUCCEEDED || s == v1::JOB_STATE_FAILED || s == v1::JOB_STATE_CANCELLED;
}

std::string Num(double v, const char* fmt = "%.1f") {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, v);
  return buf;
}

// Average seconds per frame from the job's frame rate; negative when unknown.
double AvgFrameSeconds(const v1::Job& j) { return j.fps() > 0 ? 1.0 / j.fps() : -1; }

int ProgressPercent(const v1::Job& j) {
  if (j.state() == v1::JOB_STATE_SUCCEEDED) return 100;
  if (j.frames_total() <= 0) return 0;
  return static_cast<int>(std::min<int64_t>(100, j.frames_done() * 100 / j.frames_total()));
}

std::string Layout(const PageContext* ctx, const std::string& title, const std::string& body,
                   const std::string& body_attrs = "") {
  std::string out = absl::StrCat(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<title>",
      HtmlEscape(title),
      " \xC2\xB7 reelfarm</title>"
      "<link rel=\"stylesheet\" href=\"/static/monitor.css\">"
      "<script src=\"/static/monitor.js\" defer></script></head><body",
      body_attrs, "><header><a class=\"brand\" href=\"/jobs\">reelfarm</a>");
  if (ctx != nullptr) {
    absl::StrAppend(&out, "<nav><a href=\"/jobs\">Jobs</a> <a href=\"/workers\">Workers</a></nav>",
                    "<span class=\"user\">", HtmlEscape(ctx->principal.name), " (",
                    RoleName(ctx->principal.role), ")");
    if (ctx->auth_enabled) {
      absl::StrAppend(&out,
                      " <form method=\"post\" action=\"/logout\" class=\"inline\">"
                      "<input type=\"hidden\" name=\"csrf\" value=\"",
                      HtmlEscape(ctx->csrf), "\"><button type=\"submit\">Sign out</button></form>");
    }
    absl::StrAppend(&out, "</span>");
  }
  absl::StrAppend(&out, "</header><main>", body, "</main></body></html>\n");
  return out;
}

// A POST button in a form carrying the session's CSRF token.
std::string ActionButton(const PageContext& ctx, const std::string& action_url,
                         const std::string& action, const std::string& label,
                         const std::string& id) {
  return absl::StrCat("<form method=\"post\" action=\"", HtmlEscape(action_url),
                      "\" class=\"inline action\"><input type=\"hidden\" name=\"csrf\" value=\"",
                      HtmlEscape(ctx.csrf), "\"><button type=\"submit\" class=\"btn-", action,
                      "\" id=\"", HtmlEscape(id), "\" data-action=\"", action, "\">",
                      HtmlEscape(label), "</button></form>");
}

std::string JobActions(const PageContext& ctx, const v1::Job& j) {
  if (!ctx.CanControl(j.spec().project())) return "";
  const std::string base = absl::StrCat("/jobs/", j.id(), "/");
  const std::string id = absl::StrCat(j.id());
  std::string out;
  const v1::JobState s = j.state();
  if (!Terminal(s)) {
    absl::StrAppend(&out, ActionButton(ctx, base + "cancel", "cancel", "Cancel", "cancel-" + id));
    if (s == v1::JOB_STATE_PAUSED) {
      absl::StrAppend(&out, ActionButton(ctx, base + "resume", "resume", "Resume", "resume-" + id));
    } else {
      absl::StrAppend(&out, ActionButton(ctx, base + "pause", "pause", "Pause", "pause-" + id));
    }
  } else if (s == v1::JOB_STATE_FAILED || s == v1::JOB_STATE_CANCELLED) {
    absl::StrAppend(&out, ActionButton(ctx, base + "retry", "retry", "Retry", "retry-" + id));
  }
  return out;
}

// The job page's priority field, for who may control the job while it has not ended.
std::string PriorityForm(const PageContext& ctx, const v1::Job& j) {
  if (!ctx.CanControl(j.spec().project()) || Terminal(j.state())) return "";
  return absl::StrCat("<form method=\"post\" action=\"/jobs/", j.id(),
                      "/priority\" class=\"inline action\"><input type=\"hidden\" "
                      "name=\"csrf\" value=\"",
                      HtmlEscape(ctx.csrf),
                      "\"><input type=\"number\" name=\"priority\" min=\"0\" max=\"100\" "
                      "value=\"",
                      j.spec().priority(), "\" id=\"priority-value-", j.id(),
                      "\"><button type=\"submit\" data-action=\"priority\" id=\"priority-", j.id(),
                      "\">Set priority</button></form>");
}

std::string ProgressBar(const v1::Job& j) {
  const int pct = ProgressPercent(j);
  return absl::StrCat("<div class=\"bar\"><div class=\"fill\" style=\"width:", pct,
                      "%\"></div></div><span class=\"pct\">", pct, "%</span>");
}

// "QC ok", or the flags, for an output that was checked; "" otherwise.
std::string QcNote(const QcByOutput& qc, const std::string& output) {
  auto it = qc.find(output);
  if (it == qc.end()) return "";
  if (it->second.empty()) return "<span class=\"qc qc-ok\">QC ok</span>";
  std::string out = "<ul class=\"qc qc-flags\">";
  for (const std::string& f : it->second) absl::StrAppend(&out, "<li>", HtmlEscape(f), "</li>");
  return out + "</ul>";
}

// The monitor's URL of a picture a worker made of a task of job `j` ("" for none): the
// file's name in the job's pictures folder, which the server serves from there only.
std::string PictureUrl(const v1::Job& j, const std::string& path) {
  const size_t slash = path.rfind('/');
  if (path.empty() || slash == std::string::npos || slash + 1 == path.size()) return "";
  return absl::StrCat("/jobs/", j.id(), "/pictures/", UrlEncode(path.substr(slash + 1)));
}

// A task's QC badge: "ok", the names of its flags (the full text on hover), or nothing
// when it was not measured.
std::string QcBadge(const v1::Task& t) {
  if (!t.has_qc()) return "";
  if (t.qc().flags().empty()) return "<span class=\"qc-badge qc-ok\">ok</span>";
  std::vector<std::string> names;
  for (const std::string& f : t.qc().flags()) names.push_back(f.substr(0, f.find(':')));
  return absl::StrCat("<span class=\"qc-badge qc-flagged\" title=\"",
                      HtmlEscape(absl::StrJoin(t.qc().flags(), "\n")), "\">",
                      HtmlEscape(absl::StrJoin(names, " ")), "</span>");
}

std::string QueryUrl(const JobsQuery& q, int page, const std::string& sort) {
  return absl::StrCat("/jobs?state=", UrlEncode(q.state), "&project=", UrlEncode(q.project),
                      "&name=", UrlEncode(q.name), "&owner=", UrlEncode(q.owner),
                      "&sort=", UrlEncode(sort), "&page=", page);
}

}  // namespace

std::string RenderPage(const PageContext* ctx, const std::string& title, const std::string& body,
                       const std::string& body_attrs) {
  return Layout(ctx, title, body, body_attrs);
}

bool PageContext::CanControl(const std::string& project) const {
  return principal.CanControl(project);
}

std::string StateName(v1::JobState s) {
  const std::string n = v1::JobState_Name(s);
  return s == v1::JOB_STATE_UNSPECIFIED ? "" : Lower(n.substr(std::string("JOB_STATE_").size()));
}

std::string TaskStateName(v1::TaskState s) {
  const std::string n = v1::TaskState_Name(s);
  return s == v1::TASK_STATE_UNSPECIFIED ? "" : Lower(n.substr(std::string("TASK_STATE_").size()));
}

std::string RenderJobsPage(const PageContext& ctx, const std::vector<v1::Job>& jobs,
                           const JobsQuery& q, bool more) {
  std::string body = "<h1>Jobs</h1><form method=\"get\" action=\"/jobs\" class=\"filters\">";
  absl::StrAppend(&body, "<label>State <select name=\"state\"><option value=\"\">any</option>");
  for (v1::JobState s :
       {v1::JOB_STATE_QUEUED, v1::JOB_STATE_RUNNING, v1::JOB_STATE_WAITING, v1::JOB_STATE_PAUSED,
        v1::JOB_STATE_SUCCEEDED, v1::JOB_STATE_FAILED, v1::JOB_STATE_CANCELLED}) {
    const std::string n = StateName(s);
    absl::StrAppend(&body, "<option", n == q.state ? " selected" : "", ">", n, "</option>");
  }
  absl::StrAppend(&body, "</select></label> <label>Project <input name=\"project\" value=\"",
                  HtmlEscape(q.project), "\"></label> <label>Name <input name=\"name\" value=\"",
                  HtmlEscape(q.name), "\"></label> <label>Owner <input name=\"owner\" value=\"",
                  HtmlEscape(q.owner), "\"></label> <label>Sort <select name=\"sort\">");
  for (const char* s : {"created", "priority", "progress", "name", "owner"}) {
    absl::StrAppend(&body, "<option", q.sort == s ? " selected" : "", ">", s, "</option>");
  }
  absl::StrAppend(&body,
                  "</select></label> <button type=\"submit\">Filter</button></form>"
                  "<table class=\"jobs\" id=\"jobs\"><thead><tr><th>Id</th><th>Name</th>"
                  "<th>State</th><th>Progress</th><th>Frames</th><th>fps</th><th>Avg frame</th>"
                  "<th>ETA</th><th>Project</th><th>Owner</th><th>Priority</th><th>Age</th>"
                  "<th></th></tr></thead><tbody>");
  for (const v1::Job& j : jobs) {
    absl::StrAppend(&body, "<tr data-job-id=\"", j.id(), "\" class=\"state-", StateName(j.state()),
                    "\"><td>", j.id(), "</td><td class=\"name\"><a href=\"/jobs/", j.id(), "\">",
                    HtmlEscape(j.spec().name()), "</a></td><td class=\"state\">",
                    StateName(j.state()), "</td><td class=\"progress\">", ProgressBar(j),
                    "</td><td class=\"frames\">", j.frames_done(), "/", j.frames_total(),
                    "</td><td class=\"fps\">", Num(j.fps()), "</td><td class=\"avg\">",
                    FormatDuration(AvgFrameSeconds(j)), "</td><td class=\"eta\">",
                    Terminal(j.state()) ? "" : FormatDuration(j.eta_seconds()), "</td><td>",
                    HtmlEscape(j.spec().project()), "</td><td class=\"owner\">",
                    HtmlEscape(j.owner()), "</td><td>", j.spec().priority(), "</td><td>",
                    FormatAge(j.created_unix_ms(), ctx.now_unix_ms), "</td><td class=\"actions\">",
                    JobActions(ctx, j), "</td></tr>");
  }
  absl::StrAppend(&body, "</tbody></table><p class=\"pages\">");
  if (q.page > 0) {
    absl::StrAppend(&body, "<a href=\"", HtmlEscape(QueryUrl(q, q.page - 1, q.sort)),
                    "\">&larr; newer</a> ");
  }
  absl::StrAppend(&body, "page ", q.page + 1);
  if (more) {
    absl::StrAppend(&body, " <a href=\"", HtmlEscape(QueryUrl(q, q.page + 1, q.sort)),
                    "\" id=\"next-page\">older &rarr;</a>");
  }
  absl::StrAppend(&body, "</p>");
  return Layout(&ctx, "Jobs", body, " data-events=\"/events\"");
}

std::vector<std::string> WhyWaiting(const v1::Job& job, const std::vector<v1::Job>& deps,
                                    const std::vector<v1::Worker>& workers) {
  std::vector<std::string> why;
  const v1::JobState s = job.state();
  if (s == v1::JOB_STATE_PAUSED) why.push_back("the job is paused: resume it to lease its tasks");
  for (const v1::Job& d : deps) {
    if (d.state() != v1::JOB_STATE_SUCCEEDED) {
      why.push_back(absl::StrCat("waits for job ", d.id(), " '", d.spec().name(), "' (",
                                 StateName(d.state()), ") to succeed"));
    }
  }
  if (s != v1::JOB_STATE_QUEUED && s != v1::JOB_STATE_WAITING && s != v1::JOB_STATE_RUNNING) {
    return why;
  }
  bool pending = false;
  for (const v1::Task& t : job.tasks()) pending |= t.state() == v1::TASK_STATE_PENDING;
  if (!pending) return why;
  if (workers.empty()) {
    why.push_back("no worker is connected");
    return why;
  }
  const std::string model =
      job.spec().has_generate() ? job.spec().generate().model() : job.spec().upscale().model();
  const bool builtin = model == "bicubic" || model == "lanczos";
  int fit = 0, fit_free = 0;
  std::vector<std::string> missing_tags;
  bool model_missing = true;
  for (const v1::Worker& w : workers) {
    bool tags_ok = true;
    for (const auto& [k, v] : job.spec().requirements()) {
      auto it = w.tags().find(k);
      if (it == w.tags().end() || it->second != v) {
        tags_ok = false;
        missing_tags.push_back(absl::StrCat(k, "=", v));
      }
    }
    const bool has_model =
        builtin || std::find(w.models().begin(), w.models().end(), model) != w.models().end();
    model_missing &= !has_model;
    const bool usable =
        w.state() != "draining" && w.state() != "drained" && w.state() != "unhealthy";
    if (tags_ok && has_model && usable) {
      ++fit;
      if (w.current_tasks_size() < w.slots()) ++fit_free;
    }
  }
  if (fit == 0) {
    if (!missing_tags.empty()) {
      std::sort(missing_tags.begin(), missing_tags.end());
      missing_tags.erase(std::unique(missing_tags.begin(), missing_tags.end()), missing_tags.end());
      why.push_back(absl::StrCat("no usable worker has the required tags (",
                                 absl::StrJoin(missing_tags, ", "), ")"));
    }
    if (model_missing && !model.empty()) {
      why.push_back(absl::StrCat("no connected worker has model '", model, "'"));
    }
    if (why.empty()) why.push_back("every worker that could run it is draining or unhealthy");
  } else if (fit_free == 0) {
    why.push_back(absl::StrCat("all ", fit, " workers that can run it are busy"));
  }
  return why;
}

std::string RenderJobPage(const PageContext& ctx, const v1::Job& j,
                          const std::vector<v1::Job>& deps, const std::vector<std::string>& why,
                          const std::vector<v1::TaskLogLines>& logs, const QcByOutput& qc) {
  const v1::JobSpec& sp = j.spec();
  std::string body = absl::StrCat("<h1>Job ", j.id(), ": <span class=\"job-name\">",
                                  HtmlEscape(sp.name()), "</span></h1>");
  absl::StrAppend(&body, "<div class=\"job-head\" data-job-id=\"", j.id(), "\">",
                  "<span class=\"state\">", StateName(j.state()), "</span> ",
                  "<span class=\"progress\">", ProgressBar(j), "</span> <span class=\"frames\">",
                  j.frames_done(), "/", j.frames_total(), "</span> frames, <span class=\"fps\">",
                  Num(j.fps()), "</span> fps, avg frame <span class=\"avg\">",
                  FormatDuration(AvgFrameSeconds(j)), "</span>, ETA <span class=\"eta\">",
                  Terminal(j.state()) ? "" : FormatDuration(j.eta_seconds()),
                  "</span> <span class=\"actions\">", JobActions(ctx, j), PriorityForm(ctx, j),
                  "</span></div>");
  if (!j.error().empty()) {
    absl::StrAppend(&body, "<p class=\"error\">", HtmlEscape(j.error()), "</p>");
  }
  if (!why.empty()) {
    absl::StrAppend(&body, "<h2>Why it waits</h2><ul class=\"why\">");
    for (const std::string& w : why) absl::StrAppend(&body, "<li>", HtmlEscape(w), "</li>");
    absl::StrAppend(&body, "</ul>");
  }
  absl::StrAppend(&body, "<h2>Spec</h2><dl class=\"spec\"><dt>Project</dt><dd>",
                  HtmlEscape(sp.project()), "</dd><dt>Owner</dt><dd class=\"owner\">",
                  HtmlEscape(j.owner()), "</dd><dt>Priority</dt><dd>", sp.priority(),
                  "</dd><dt>Max attempts</dt><dd>", sp.max_attempts(), "</dd>");
  if (sp.has_generate()) {
    const v1::GenerateSpec& g = sp.generate();
    absl::StrAppend(&body, "<dt>Kind</dt><dd>generate (<a href=\"/jobs/", j.id(),
                    "/wedge\" id=\"wedge-link\">contact sheet</a>)</dd><dt>Model</dt><dd>",
                    HtmlEscape(g.model()), "</dd><dt>Output</dt><dd>", HtmlEscape(g.output()),
                    "</dd><dt>Size</dt><dd>", g.width(), "x", g.height(), ", ", g.frames(),
                    " frames</dd>");
  } else {
    const v1::UpscaleSpec& u = sp.upscale();
    absl::StrAppend(&body, "<dt>Kind</dt><dd>upscale</dd><dt>Input</dt><dd>", HtmlEscape(u.input()),
                    "</dd><dt>Output</dt><dd>", HtmlEscape(u.output()), "</dd><dt>Model</dt><dd>",
                    HtmlEscape(u.model()), " x", u.scale(), "</dd>");
  }
  for (const auto& [k, v] : sp.requirements()) {
    absl::StrAppend(&body, "<dt>Requires</dt><dd>", HtmlEscape(k), "=", HtmlEscape(v), "</dd>");
  }
  absl::StrAppend(&body, "<dt>Created</dt><dd>", FormatAge(j.created_unix_ms(), ctx.now_unix_ms),
                  " ago</dd></dl>");
  if (!deps.empty()) {
    absl::StrAppend(&body, "<h2>Depends on</h2><ul class=\"deps\">");
    for (const v1::Job& d : deps) {
      absl::StrAppend(&body, "<li><a href=\"/jobs/", d.id(), "\">", d.id(), " ",
                      HtmlEscape(d.spec().name()), "</a> ", StateName(d.state()), "</li>");
    }
    absl::StrAppend(&body, "</ul>");
  }
  absl::StrAppend(&body, "<h2>Outputs</h2><ul class=\"outputs\">");
  if (sp.has_generate()) {
    for (const TakeCell& t : TakesOf(j)) {
      absl::StrAppend(&body, "<li>", HtmlEscape(t.output), " ", QcNote(qc, t.output), "</li>");
    }
  } else {
    const std::string output = j.output().empty() ? sp.upscale().output() : j.output();
    absl::StrAppend(&body, "<li>", HtmlEscape(output), " ", QcNote(qc, output), "</li>");
    if (j.state() == v1::JOB_STATE_SUCCEEDED) {
      absl::StrAppend(&body, "<li><img class=\"thumb\" alt=\"output frame\" src=\"/jobs/", j.id(),
                      "/preview.png\"></li>");
    }
  }
  // The strip: each task's thumbnail, as its worker made it.
  std::string strip;
  for (const v1::Task& t : j.tasks()) {
    const std::string url = PictureUrl(j, t.thumbnail());
    if (url.empty()) continue;
    absl::StrAppend(&strip, "<img class=\"task-thumb\" data-task=\"", t.index(), "\" alt=\"task ",
                    t.index(), "\" title=\"task ", t.index(), "\" src=\"", url, "\">");
  }
  if (!strip.empty()) absl::StrAppend(&body, "</ul><div class=\"strip\">", strip, "</div><ul>");
  absl::StrAppend(&body,
                  "</ul><h2>Tasks</h2><table class=\"tasks\"><thead><tr><th>#</th><th>Kind</th>"
                  "<th>State</th><th>Frames</th><th>Done</th><th>Attempts</th><th>Worker</th>"
                  "<th>Error</th><th>QC</th></tr></thead><tbody>");
  for (const v1::Task& t : j.tasks()) {
    std::string kind = Lower(v1::TaskKind_Name(t.kind()).substr(std::string("TASK_KIND_").size()));
    absl::StrAppend(&body, "<tr data-task=\"", t.index(), "\"><td>", t.index(), "</td><td>", kind,
                    "</td><td class=\"task-state\">", TaskStateName(t.state()), "</td><td>",
                    t.frame_begin(), "\xE2\x80\x93", t.frame_end(), "</td><td class=\"task-done\">",
                    t.frames_done(), "</td><td>", t.attempts(), "</td><td>", HtmlEscape(t.worker()),
                    "</td><td class=\"error\">", HtmlEscape(t.error()), "</td><td class=\"qc\">",
                    QcBadge(t), "</td></tr>");
  }
  absl::StrAppend(&body, "</tbody></table>", RenderWipeSection(j), RenderLogSection(j, logs));
  return Layout(&ctx, absl::StrCat("Job ", j.id()), body,
                absl::StrCat(" data-events=\"/events?job=", j.id(), "\""));
}

std::vector<TakeCell> TakesOf(const v1::Job& job) {
  std::vector<TakeCell> cells;
  if (!job.spec().has_generate()) return cells;
  const scheduler::JobSpec spec = FromProto(job.spec());
  for (const scheduler::Take& t : scheduler::ExpandWedge(spec.name, spec.generate)) {
    TakeCell c;
    c.index = t.index;
    c.name = t.name;
    c.output = t.output;
    c.seed = t.seed;
    c.prompt = t.prompt;
    c.steps = t.steps;
    c.guidance_scale = t.guidance_scale;
    c.sampler = t.sampler;
    c.varying = t.varying;
    cells.push_back(std::move(c));
  }
  return cells;
}

std::string RenderWedgePage(const PageContext& ctx, const v1::Job& j, const QcByOutput& qc) {
  std::string body = absl::StrCat("<h1>Contact sheet: <a href=\"/jobs/", j.id(), "\">",
                                  HtmlEscape(j.spec().name()), "</a></h1><div class=\"wedge\">");
  const std::vector<TakeCell> cells = TakesOf(j);
  for (const TakeCell& c : cells) {
    const auto vary = [&](const char* axis) {
      return std::find(c.varying.begin(), c.varying.end(), axis) != c.varying.end()
                 ? " class=\"varying\""
                 : "";
    };
    std::string state;
    if (c.index < j.tasks_size()) state = TaskStateName(j.tasks(c.index).state());
    absl::StrAppend(&body, "<figure class=\"take\" data-take=\"", c.index, "\">");
    // The worker's looping preview, else its thumbnail, else one the server makes.
    std::string worker_picture;
    if (c.index < j.tasks_size()) {
      const v1::Task& t = j.tasks(c.index);
      worker_picture = PictureUrl(j, t.preview().empty() ? t.thumbnail() : t.preview());
    }
    if (state == "succeeded" && !worker_picture.empty()) {
      absl::StrAppend(&body, "<img class=\"preview\" alt=\"", HtmlEscape(c.name), "\" src=\"",
                      worker_picture, "\">");
    } else if (state == "succeeded") {
      absl::StrAppend(&body, "<img class=\"preview\" alt=\"", HtmlEscape(c.name), "\" src=\"/jobs/",
                      j.id(), "/takes/", c.index, "/preview.png\">");
    } else {
      absl::StrAppend(&body, "<div class=\"preview pending\">", state, "</div>");
    }
    absl::StrAppend(&body, "<figcaption><b>", HtmlEscape(c.name), "</b><br><span", vary("seed"),
                    ">seed ", c.seed, "</span> <span", vary("steps"), ">steps ", c.steps,
                    "</span> <span", vary("guidance_scale"), ">cfg ", Num(c.guidance_scale, "%g"),
                    "</span> <span", vary("sampler"), ">", HtmlEscape(c.sampler),
                    "</span><br><span", vary("prompt"), ">", HtmlEscape(c.prompt), "</span>",
                    QcNote(qc, c.output), PickButton(ctx, j, c, state), "</figcaption></figure>");
  }
  absl::StrAppend(&body, "</div>");
  return Layout(&ctx, absl::StrCat("Wedge ", j.id()), body);
}

std::string RenderWorkersPage(const PageContext& ctx, const std::vector<v1::Worker>& workers) {
  std::string body =
      "<h1>Workers</h1><table class=\"workers\"><thead><tr><th>Name</th><th>State</th>"
      "<th>Slots</th><th>Tags</th><th>Models</th><th>Memory</th><th>Current tasks</th>"
      "<th>Done</th><th>Health</th><th></th></tr></thead><tbody>";
  for (const v1::Worker& w : workers) {
    std::vector<std::string> tags;
    for (const auto& [k, v] : w.tags()) tags.push_back(HtmlEscape(absl::StrCat(k, "=", v)));
    std::sort(tags.begin(), tags.end());
    std::vector<std::string> models, current;
    for (const std::string& m : w.models()) models.push_back(HtmlEscape(m));
    for (const std::string& t : w.current_tasks()) current.push_back(HtmlEscape(t));
    std::string health = w.state() == "unhealthy"
                             ? HtmlEscape(absl::StrCat(w.leases_expired(),
                                                       " leases expired: ", w.unhealthy_reason()))
                             : "ok";
    std::string actions;
    if (ctx.CanDrain()) {
      const bool draining = w.state() == "draining" || w.state() == "drained";
      const std::string url =
          absl::StrCat("/workers/", UrlEncode(w.name()), "/", draining ? "undrain" : "drain");
      actions =
          ActionButton(ctx, url, draining ? "undrain" : "drain", draining ? "Undrain" : "Drain",
                       absl::StrCat(draining ? "undrain-" : "drain-", w.name()));
    }
    absl::StrAppend(&body, "<tr data-worker=\"", HtmlEscape(w.name()), "\"><td>",
                    HtmlEscape(w.name()), "</td><td>", HtmlEscape(w.state()), "</td><td>",
                    w.slots(), "</td><td>", absl::StrJoin(tags, ", "), "</td><td>",
                    absl::StrJoin(models, ", "), "</td><td>",
                    w.memory_bytes() > 0 ? Num(w.memory_bytes() / 1073741824.0, "%.1f GiB") : "",
                    "</td><td>", absl::StrJoin(current, ", "), "</td><td>", w.tasks_done(),
                    "</td><td>", health, "</td><td class=\"actions\">", actions, "</td></tr>");
  }
  absl::StrAppend(&body, "</tbody></table>");
  return Layout(&ctx, "Workers", body);
}

std::string RenderLoginPage(const std::string& error) {
  std::string body =
      "<h1>Sign in</h1><form method=\"post\" action=\"/login\" class=\"login\">"
      "<label>Token <input type=\"password\" name=\"token\" id=\"token\" "
      "autocomplete=\"off\"></label> <button type=\"submit\" id=\"sign-in\">Sign in</button>"
      "</form>";
  if (!error.empty()) absl::StrAppend(&body, "<p class=\"error\">", HtmlEscape(error), "</p>");
  return Layout(nullptr, "Sign in", body);
}

std::string RenderErrorPage(int http_status, const std::string& message) {
  return Layout(nullptr, absl::StrCat("Error ", http_status),
                absl::StrCat("<h1>Error ", http_status, "</h1><p class=\"error\">",
                             HtmlEscape(message), "</p><p><a href=\"/jobs\">Jobs</a></p>"));
}

std::string JobEventJson(const v1::Job& j) {
  nlohmann::json o;
  o["id"] = j.id();
  o["state"] = StateName(j.state());
  o["frames"] = absl::StrCat(j.frames_done(), "/", j.frames_total());
  o["frames_done"] = j.frames_done();
  o["percent"] = ProgressPercent(j);
  o["fps"] = Num(j.fps());
  o["avg"] = FormatDuration(AvgFrameSeconds(j));
  o["eta"] = Terminal(j.state()) ? "" : FormatDuration(j.eta_seconds());
  o["tasks_done"] = j.tasks_done();
  o["tasks_total"] = j.tasks_total();
  o["terminal"] = Terminal(j.state());
  nlohmann::json tasks = nlohmann::json::array();
  for (const v1::Task& t : j.tasks()) {
    tasks.push_back(
        {{"index", t.index()}, {"state", TaskStateName(t.state())}, {"done", t.frames_done()}});
  }
  if (!tasks.empty()) o["tasks"] = tasks;
  return o.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace reelfarm::server::web
