#include "server/web/sections.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "media/output_format.h"
#include "server/web/html.h"

namespace reelfarm::server::web {
namespace {

bool Ended(v1::JobState s) {
  return s == v1::JOB_STATE_SUCCEEDED || s == v1::JOB_STATE_FAILED || s == v1::JOB_STATE_CANCELLED;
}

absl::Status CheckUpscaleFrame(const v1::Job& job, int64_t frame) {
  if (job.spec().has_generate()) {
    return absl::InvalidArgumentError(
        absl::StrCat("job ", job.id(), " is a generate job; the wipe is an upscale's"));
  }
  const int64_t first = job.input_info().first_frame();
  if (frame < first || frame >= first + job.frames_total()) {
    return absl::OutOfRangeError(absl::StrCat("job ", job.id(), " has frames ", first, "..",
                                              first + job.frames_total() - 1, ", not ", frame));
  }
  return absl::OkStatus();
}

std::string Field(const std::string& label, const std::string& name, const std::string& value,
                  const std::string& extra = "") {
  return absl::StrCat("<label>", label, " <input name=\"", name, "\" id=\"pick-", name,
                      "\" value=\"", HtmlEscape(value), "\"", extra, "></label>");
}

}  // namespace

std::string RenderLogSection(const v1::Job& job, const std::vector<v1::TaskLogLines>& logs) {
  const bool follow = !Ended(job.state());
  std::string out = absl::StrCat(
      "<section class=\"log-section\" id=\"log\" data-log-events=\"/jobs/", job.id(),
      "/log/events\"><h2>Log</h2><p class=\"log-controls\"><label><input type=\"checkbox\" "
      "id=\"log-follow\"",
      follow ? " checked" : "",
      "> follow</label> <label>Task <select id=\"log-task\"><option value=\"\">all</option>");
  for (const v1::Task& t : job.tasks()) {
    absl::StrAppend(&out, "<option value=\"", t.index(), "\">", t.index(), "</option>");
  }
  absl::StrAppend(&out,
                  "</select></label> <span class=\"log-status\" id=\"log-status\"></span></p>"
                  "<pre class=\"log\" id=\"log-lines\">");
  for (const v1::TaskLogLines& l : logs) {
    for (const std::string& line : l.lines()) {
      absl::StrAppend(&out, "[task ", l.task_index(), "] ", HtmlEscape(line), "\n");
    }
  }
  absl::StrAppend(&out, "</pre></section>");
  return out;
}

absl::StatusOr<FrameFile> InputFrameOf(const v1::Job& job, int64_t frame) {
  RETURN_IF_ERROR(CheckUpscaleFrame(job, frame));
  // A movie's frames and a sequence's files both go by the job's frame numbers.
  return FrameFile{job.spec().upscale().input(), frame};
}

absl::StatusOr<FrameFile> OutputFrameOf(const v1::Job& job, int64_t frame) {
  RETURN_IF_ERROR(CheckUpscaleFrame(job, frame));
  const std::string output = job.output().empty() ? job.spec().upscale().output() : job.output();
  const bool sequence = media::HasFramePattern(output);
  const int64_t offset = frame - job.input_info().first_frame();
  if (job.state() == v1::JOB_STATE_SUCCEEDED) {
    // A sequence's files take the input's numbers; a movie starts at 0.
    return FrameFile{output, sequence ? frame : offset};
  }
  for (const v1::Task& t : job.tasks()) {
    if (t.kind() != v1::TASK_KIND_CHUNK || offset < t.frame_begin() || offset >= t.frame_end()) {
      continue;
    }
    if (t.state() == v1::TASK_STATE_SUCCEEDED && !t.segment().empty()) {
      return FrameFile{t.segment(), offset - t.frame_begin()};
    }
    return absl::NotFoundError(absl::StrCat("frame ", frame, " is not rendered yet (task ",
                                            t.index(), " is ", v1::TaskState_Name(t.state()), ")"));
  }
  return absl::NotFoundError(
      absl::StrCat("frame ", frame, " of job ", job.id(), " is not rendered yet",
                   sequence ? " (an image sequence shows once the job is published)" : ""));
}

std::string RenderWipeSection(const v1::Job& job) {
  if (job.spec().has_generate() || job.frames_total() <= 0) return "";
  const int64_t first = job.input_info().first_frame();
  const int64_t last = first + job.frames_total() - 1;
  // The middle of the first rendered chunk while it runs, else of the whole job.
  int64_t frame = first + job.frames_total() / 2;
  if (job.state() != v1::JOB_STATE_SUCCEEDED) {
    for (const v1::Task& t : job.tasks()) {
      if (t.kind() == v1::TASK_KIND_CHUNK && t.state() == v1::TASK_STATE_SUCCEEDED) {
        frame = first + (t.frame_begin() + t.frame_end()) / 2;
        break;
      }
    }
  }
  const std::string base = absl::StrCat("/jobs/", job.id(), "/frames/");
  return absl::StrCat(
      "<section class=\"wipe\" id=\"wipe\" data-frames=\"", base,
      "\"><h2>Before / after</h2><p class=\"wipe-controls\"><label>Frame <input type=\"range\" "
      "id=\"wipe-frame\" min=\"",
      first, "\" max=\"", last, "\" value=\"", frame,
      "\"></label> <input type=\"number\" id=\"wipe-frame-number\" min=\"", first, "\" max=\"",
      last, "\" value=\"", frame,
      "\"> <span class=\"wipe-status\" id=\"wipe-status\"></span></p>"
      "<div class=\"wipe-view\" id=\"wipe-view\" tabindex=\"0\" title=\"drag to compare\">"
      "<img id=\"wipe-before\" alt=\"input frame\" src=\"",
      base, frame,
      "/input.png\"><img id=\"wipe-after\" alt=\"output frame\" style=\"clip-path: inset(0 0 0 "
      "50%)\" src=\"",
      base, frame,
      "/output.png\"><div class=\"wipe-divider\" id=\"wipe-divider\" style=\"left: 50%\"></div>"
      "<span class=\"wipe-label wipe-label-before\">input</span>"
      "<span class=\"wipe-label wipe-label-after\">output</span></div></section>");
}

std::string PickOutputFor(const std::string& take_output, int scale) {
  const size_t slash = take_output.rfind('/');
  const size_t name = slash == std::string::npos ? 0 : slash + 1;
  const size_t dot = take_output.find('.', name);
  const std::string suffix = absl::StrCat("_x", scale);
  if (dot == std::string::npos) return take_output + suffix;
  return absl::StrCat(take_output.substr(0, dot), suffix, take_output.substr(dot));
}

PickForm DefaultPick(const v1::Job& job, const TakeCell& take, const std::string& request_id) {
  PickForm f;
  f.name = take.name + "_x2";
  f.model = "bicubic";
  f.scale = "2";
  f.output = PickOutputFor(take.output, 2);
  f.priority = absl::StrCat(job.spec().has_priority() ? job.spec().priority() : 50);
  f.request_id = request_id;
  return f;
}

absl::StatusOr<v1::SubmitJobRequest> PickRequest(const v1::Job& job, const TakeCell& take,
                                                 const PickForm& form) {
  int scale = 0;
  if (!absl::SimpleAtoi(form.scale, &scale)) {
    return absl::InvalidArgumentError(
        absl::StrCat("scale '", form.scale, "' is not a number; give 2, 3 or 4"));
  }
  int priority = 0;
  if (!absl::SimpleAtoi(form.priority, &priority)) {
    return absl::InvalidArgumentError(
        absl::StrCat("priority '", form.priority, "' is not a number; give 0..100"));
  }
  v1::SubmitJobRequest req;
  v1::JobSpec* spec = req.mutable_spec();
  spec->set_name(form.name);
  spec->set_project(job.spec().project());
  spec->set_priority(priority);
  if (!form.request_id.empty()) spec->set_request_id(form.request_id);
  v1::UpscaleSpec* up = spec->mutable_upscale();
  up->set_input(take.output);
  up->set_output(form.output);
  up->set_model(form.model);
  up->set_scale(scale);
  return req;
}

std::string PickButton(const PageContext& ctx, const v1::Job& job, const TakeCell& take,
                       const std::string& task_state) {
  if (task_state != "succeeded" || !ctx.CanControl(job.spec().project())) return "";
  return absl::StrCat("<a class=\"btn-pick\" id=\"pick-", take.index, "\" href=\"/jobs/", job.id(),
                      "/takes/", take.index, "/pick\">Pick</a>");
}

std::string RenderPickPage(const PageContext& ctx, const v1::Job& job, const TakeCell& take,
                           const PickForm& form, const std::vector<std::string>& models,
                           const std::string& error) {
  std::string body = absl::StrCat("<h1>Pick ", HtmlEscape(take.name), " of <a href=\"/jobs/",
                                  job.id(), "/wedge\">", HtmlEscape(job.spec().name()),
                                  "</a></h1><p>Submits an upscale of this take in project <b>",
                                  HtmlEscape(job.spec().project()), "</b>.</p>");
  if (!error.empty()) absl::StrAppend(&body, "<p class=\"error\">", HtmlEscape(error), "</p>");
  absl::StrAppend(
      &body, "<div class=\"pick\"><img class=\"preview\" alt=\"", HtmlEscape(take.name),
      "\" src=\"/jobs/", job.id(), "/takes/", take.index,
      "/preview.png\"><form method=\"post\" class=\"pick-form\" id=\"pick-form\" action=\"/jobs/",
      job.id(), "/takes/", take.index, "/pick\"><input type=\"hidden\" name=\"csrf\" value=\"",
      HtmlEscape(ctx.csrf), "\"><input type=\"hidden\" name=\"request_id\" value=\"",
      HtmlEscape(form.request_id), "\"><label>Input <input value=\"", HtmlEscape(take.output),
      "\" id=\"pick-input\" readonly></label>", Field("Name", "name", form.name),
      Field("Model", "model", form.model, " list=\"pick-models\""),
      Field("Scale", "scale", form.scale, " type=\"number\" min=\"1\" max=\"8\""),
      Field("Output", "output", form.output),
      Field("Priority", "priority", form.priority, " type=\"number\" min=\"0\" max=\"100\""),
      "<datalist id=\"pick-models\">");
  for (const std::string& m : models) {
    absl::StrAppend(&body, "<option value=\"", HtmlEscape(m), "\">");
  }
  absl::StrAppend(&body,
                  "</datalist><button type=\"submit\" id=\"pick-submit\" data-action=\"pick\">"
                  "Submit upscale</button></form></div>");
  return RenderPage(&ctx, absl::StrCat("Pick ", take.name), body);
}

}  // namespace reelfarm::server::web
