// The monitor's pages, rendered on the server from the API's messages (the same ones
// gRPC clients get). Every string that a user or a worker chose (job names, prompts,
// paths, errors, tags) is escaped; the pages load only /static/ assets of this binary.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "reelfarm/v1/jobs.pb.h"
#include "server/auth.h"

namespace reelfarm::server::web {

// Who looks at the page.
struct PageContext {
  Principal principal;
  std::string csrf;          // embedded in the forms of action buttons
  bool auth_enabled = true;  // shows the user and "sign out"
  int64_t now_unix_ms = 0;
  // Whether the viewer may act on a job of `project` (the service checks again).
  bool CanControl(const std::string& project) const;
  bool CanDrain() const { return principal.role == Role::kAdmin; }
};

struct JobsQuery {
  std::string state;             // "running", ... or empty
  std::string project;           // exact, or empty
  std::string name;              // substring of the name, or empty
  std::string owner;             // exact, or empty
  std::string sort = "created";  // created | priority | progress | name | owner
  int page = 0;                  // 0-based
  int page_size = 50;
};

// "running" for JOB_STATE_RUNNING; "" for unspecified.
std::string StateName(v1::JobState s);
std::string TaskStateName(v1::TaskState s);

// The jobs of one page (already filtered and sorted), `more` when a next page exists.
std::string RenderJobsPage(const PageContext& ctx, const std::vector<v1::Job>& jobs,
                           const JobsQuery& query, bool more);

// Why the job has not run (yet): unmet dependencies, paused, no connected worker with
// the tags or model it needs. Empty when it runs or has ended.
std::vector<std::string> WhyWaiting(const v1::Job& job, const std::vector<v1::Job>& deps,
                                    const std::vector<v1::Worker>& workers);

// QC flags of published outputs (media/qc.h), by output path; an output that was not
// checked is absent, a clean one maps to no flags.
using QcByOutput = std::map<std::string, std::vector<std::string>>;

// One job: spec, dependencies, why it waits, tasks with errors, outputs with their QC
// flags, log tail.
std::string RenderJobPage(const PageContext& ctx, const v1::Job& job,
                          const std::vector<v1::Job>& deps, const std::vector<std::string>& why,
                          const std::vector<v1::TaskLogLines>& logs, const QcByOutput& qc = {});

// A generate job's contact sheet: one cell per take with its preview and values.
std::string RenderWedgePage(const PageContext& ctx, const v1::Job& job, const QcByOutput& qc = {});

std::string RenderWorkersPage(const PageContext& ctx, const std::vector<v1::Worker>& workers);

std::string RenderLoginPage(const std::string& error);

// A page of the monitor around `body` (HTML): head, assets, navigation and the user;
// `ctx` null for a page without a session.
std::string RenderPage(const PageContext* ctx, const std::string& title, const std::string& body,
                       const std::string& body_attrs = "");

// A page that says what went wrong (escaped), with a link back.
std::string RenderErrorPage(int http_status, const std::string& message);

// The row of a job as the jobs page's script updates it (JSON: id, state, frames,
// progress, fps, eta, avg frame time, tasks), one Server-Sent Event's data.
std::string JobEventJson(const v1::Job& job);

// The output paths of a job's takes (a generate job), in task order; empty otherwise.
struct TakeCell {
  int index = 0;
  std::string name;
  std::string output;
  int64_t seed = 0;
  std::string prompt;
  int steps = 0;
  double guidance_scale = 0;
  std::string sampler;
  std::vector<std::string> varying;
};
std::vector<TakeCell> TakesOf(const v1::Job& job);

}  // namespace reelfarm::server::web
