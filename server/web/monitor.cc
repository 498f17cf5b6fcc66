#include "server/web/monitor.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include <grpcpp/client_context.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/thread_name.h"
#include "reelfarm/v1/jobs.grpc.pb.h"
#include "server/web/assets.h"
#include "server/web/html.h"
#include "server/web/pages.h"
#include "server/web/sections.h"
#include "server/web/sessions.h"
#include "server/web/thumbnails.h"

namespace reelfarm::server::web {
namespace {

constexpr char kCookie[] = "rf_session";
constexpr char kHtml[] = "text/html; charset=utf-8";
constexpr int kReservedThreads = 8;  // threads kept for pages while event streams are open
constexpr auto kCallDeadline = std::chrono::seconds(20);
constexpr auto kWatchDeadline = std::chrono::seconds(60);  // then the browser reconnects
// The jobs page's streams follow the newest this many queued, running, paused and
// waiting jobs (the jobs page lists at most as many).
constexpr int kMaxActiveFollowed = 100000;
constexpr int kMaxPollWaitMs = 2000;
constexpr int kWipeWidth = 960;         // the wipe's frames, at most this wide
constexpr int kMaxLogEventLines = 200;  // lines per log event

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int HttpStatus(const grpc::Status& s) {
  switch (s.error_code()) {
    case grpc::StatusCode::OK:
      return 200;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
      return 400;
    case grpc::StatusCode::UNAUTHENTICATED:
      return 401;
    case grpc::StatusCode::PERMISSION_DENIED:
      return 403;
    case grpc::StatusCode::NOT_FOUND:
      return 404;
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::ABORTED:
      return 409;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return 429;
    case grpc::StatusCode::UNAVAILABLE:
      return 503;
    default:
      return 500;
  }
}

int HttpStatus(const absl::Status& s) {
  return HttpStatus(
      grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message())));
}

std::optional<v1::JobState> ParseState(const std::string& name) {
  for (int s = v1::JobState_MIN; s <= v1::JobState_MAX; ++s) {
    if (v1::JobState_IsValid(s) && s != v1::JOB_STATE_UNSPECIFIED &&
        StateName(static_cast<v1::JobState>(s)) == name) {
      return static_cast<v1::JobState>(s);
    }
  }
  return std::nullopt;
}

// One change of a job for the jobs page's event streams.
struct JobChange {
  uint64_t seq = 0;
  int64_t id = 0;
  std::string project;
  std::string json;
};

class MonitorImpl final : public WebMonitor {
 public:
  MonitorImpl(const WebOptions& options, std::shared_ptr<grpc::Channel> channel,
              Authenticator* auth, const common::Storage* storage)
      : options_(options),
        stub_(v1::JobService::NewStub(channel)),
        auth_(auth),
        storage_(storage),
        thumbs_(storage, options.cache_dir),
        frames_(storage, options.cache_dir, kWipeWidth) {}
  ~MonitorImpl() override { Stop(); }

  absl::Status Listen();

  int port() const override { return port_; }
  std::string url() const override {
    return absl::StrCat(options_.cert_file.empty() ? "http" : "https", "://", host_, ":", port_);
  }
  void Stop() override;

 private:
  void Routes();
  // The request's session; with auth off, a new anonymous admin session (set as the
  // cookie on `res`) when it has none.
  std::optional<Session> SessionOf(const httplib::Request& req, httplib::Response& res);
  PageContext ContextOf(const Session& s) const;
  // Sends the session's page, or the sign-in page (redirect) when not signed in.
  bool RequireSession(const httplib::Request& req, httplib::Response& res, Session* out);
  void SetupCall(grpc::ClientContext* ctx, const std::string& token,
                 std::chrono::seconds deadline = kCallDeadline) const;
  void ErrorPage(httplib::Response& res, int status, const std::string& message) const;
  // The job of the route's first number, as the session's user may see it (GetJob);
  // false when an error page was sent instead.
  bool GetJobOrError(const httplib::Request& req, httplib::Response& res, const Session& s,
                     v1::Job* job);

  void JobsPage(const httplib::Request& req, httplib::Response& res);
  void JobPage(const httplib::Request& req, httplib::Response& res);
  void WedgePage(const httplib::Request& req, httplib::Response& res);
  void Preview(const httplib::Request& req, httplib::Response& res, bool take);
  // A picture a worker made of one of the job's tasks (Task.thumbnail, Task.preview).
  void Picture(const httplib::Request& req, httplib::Response& res);
  void WorkersPage(const httplib::Request& req, httplib::Response& res);
  void Login(const httplib::Request& req, httplib::Response& res);
  void Logout(const httplib::Request& req, httplib::Response& res);
  void JobAction(const httplib::Request& req, httplib::Response& res);
  void WorkerAction(const httplib::Request& req, httplib::Response& res);
  void PriorityAction(const httplib::Request& req, httplib::Response& res);
  // The session of an event-stream request, if it has one and a stream slot is free;
  // else the 401 or 503 page is written and nothing is returned.
  std::optional<Session> AdmitStream(const httplib::Request& req, httplib::Response& res);
  void Events(const httplib::Request& req, httplib::Response& res);
  void JobsEvents(const Session& s, httplib::Response& res);
  void JobEvents(const Session& s, int64_t job_id, httplib::Response& res);
  // Checks the session and CSRF token of a POST; false (403 sent) when refused.
  bool CheckPost(const httplib::Request& req, httplib::Response& res, Session* out);

  // QC flags of the job's published outputs: the finished takes, or the final output.
  QcByOutput QcOf(const v1::Job& job);

  // A job's task log as Server-Sent Events ("log", then "end"): GetTaskLogs, following
  // while the job runs when asked to.
  void LogEvents(const httplib::Request& req, httplib::Response& res);
  // Frame N of an upscale's input or output for the wipe, at display size.
  void WipeFrame(const httplib::Request& req, httplib::Response& res);
  // The pick form of a take (GET) and its submit (POST): a follow-up upscale.
  void PickPage(const httplib::Request& req, httplib::Response& res);
  void PickSubmit(const httplib::Request& req, httplib::Response& res);
  // The take of the route's second number of a generate job, succeeded; false when an
  // error page was sent instead.
  bool TakeOrError(const httplib::Request& req, httplib::Response& res, const v1::Job& job,
                   TakeCell* take);
  // Model names a pick may choose: the built-ins and what connected workers advertise.
  std::vector<std::string> ModelsFor(const Session& s);

  void PollLoop();
  void PollOnce();

  const WebOptions options_;
  std::unique_ptr<v1::JobService::Stub> stub_;
  Authenticator* const auth_;
  const common::Storage* const storage_;
  Thumbnailer thumbs_;
  Thumbnailer frames_;  // the wipe's, at display size
  SessionStore sessions_;
  std::string poll_token_;  // a viewer token known only to this process (auth on)
  std::unique_ptr<httplib::Server> http_;
  std::string host_;
  int port_ = 0;
  std::thread listener_;
  std::thread poller_;
  std::atomic<int> streams_{0};

  absl::Mutex mu_;
  absl::CondVar changed_;  // stop_ or seq_ changed, or a stream opened
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t seq_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<JobChange> changes_ ABSL_GUARDED_BY(mu_);  // the newest 20,000
  // id -> what the row of an active job shows
  std::map<int64_t, std::string> last_active_ ABSL_GUARDED_BY(mu_);
  bool primed_ ABSL_GUARDED_BY(mu_) = false;  // last_active_ was listed once
  // Open WatchJob calls, cancelled at Stop().
  std::set<grpc::ClientContext*> watches_ ABSL_GUARDED_BY(mu_);
};

absl::Status MonitorImpl::Listen() {
  const auto colon = options_.listen.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--web-listen '", options_.listen, "': give HOST:PORT, e.g. 127.0.0.1:7780"));
  }
  host_ = options_.listen.substr(0, colon);
  int port = 0;
  if (!absl::SimpleAtoi(options_.listen.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--web-listen '", options_.listen, "': the port is not a number 0..65535"));
  }
  std::string bind_host = host_;
  if (bind_host.size() >= 2 && bind_host.front() == '[') {
    bind_host = bind_host.substr(1, bind_host.size() - 2);
  }
  if (!options_.cert_file.empty()) {
    auto ssl =
        std::make_unique<httplib::SSLServer>(options_.cert_file.c_str(), options_.key_file.c_str());
    if (!ssl->is_valid()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--web-listen: cannot use the TLS certificate '", options_.cert_file,
                       "' and key '", options_.key_file, "'"));
    }
    http_ = std::move(ssl);
  } else {
    http_ = std::make_unique<httplib::Server>();
  }
  const int threads = std::max(kReservedThreads + 1, options_.threads);
  // cpp-httplib makes the pool on the listening thread (rf-web-accept), and a new
  // thread takes its maker's name: the pool's threads are rf-web.
  http_->new_task_queue = [threads] {
    common::NameThread("rf-web");
    auto* pool = new httplib::ThreadPool(threads);
    common::NameThread("rf-web-accept");
    return pool;
  };
  http_->set_keep_alive_timeout(5);
  http_->set_payload_max_length(64 * 1024);
  Routes();
  if (port == 0) {
    port_ = http_->bind_to_any_port(bind_host);
  } else {
    port_ = http_->bind_to_port(bind_host, port) ? port : -1;
  }
  if (port_ <= 0) {
    return absl::UnavailableError(absl::StrCat(
        "--web-listen '", options_.listen,
        "': cannot listen there; is the port in use? Give another (port 0 picks a free one), "
        "or an empty --web-listen to serve no monitor"));
  }
  if (auth_->enabled()) {
    poll_token_ = RandomHex(32);
    auth_->AddToken("monitor", Role::kViewer, poll_token_);
  }
  listener_ = std::thread([this] {
    common::NameThread("rf-web-accept");
    http_->listen_after_bind();
  });
  poller_ = std::thread([this] {
    common::NameThread("rf-web-poll");
    PollLoop();
  });
  return absl::OkStatus();
}

void MonitorImpl::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stop_ && !listener_.joinable() && !poller_.joinable()) return;
    stop_ = true;
    for (grpc::ClientContext* c : watches_) c->TryCancel();
  }
  changed_.SignalAll();
  if (http_) http_->stop();
  if (listener_.joinable()) listener_.join();
  if (poller_.joinable()) poller_.join();
}

void MonitorImpl::SetupCall(grpc::ClientContext* ctx, const std::string& token,
                            std::chrono::seconds deadline) const {
  ctx->set_deadline(std::chrono::system_clock::now() + deadline);
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
}

void MonitorImpl::ErrorPage(httplib::Response& res, int status, const std::string& message) const {
  res.status = status;
  res.set_content(RenderErrorPage(status, message), kHtml);
}

std::optional<Session> MonitorImpl::SessionOf(const httplib::Request& req, httplib::Response& res) {
  const std::string cookies = req.get_header_value("Cookie");
  for (absl::string_view part : absl::StrSplit(cookies, ';')) {
    part = absl::StripAsciiWhitespace(part);
    if (absl::ConsumePrefix(&part, absl::StrCat(kCookie, "="))) {
      if (std::optional<Session> s = sessions_.Find(part)) return s;
    }
  }
  if (auth_->enabled()) return std::nullopt;
  absl::StatusOr<Principal> anonymous = auth_->AuthenticateToken("");
  if (!anonymous.ok()) return std::nullopt;
  Session s = sessions_.Create("", *anonymous);
  res.set_header("Set-Cookie",
                 absl::StrCat(kCookie, "=", s.id, "; Path=/; HttpOnly; SameSite=Strict",
                              options_.cert_file.empty() ? "" : "; Secure"));
  return s;
}

PageContext MonitorImpl::ContextOf(const Session& s) const {
  PageContext ctx;
  ctx.principal = s.principal;
  ctx.csrf = s.csrf;
  ctx.auth_enabled = auth_->enabled();
  ctx.now_unix_ms = NowUnixMs();
  return ctx;
}

bool MonitorImpl::RequireSession(const httplib::Request& req, httplib::Response& res,
                                 Session* out) {
  std::optional<Session> s = SessionOf(req, res);
  if (!s.has_value()) {
    res.set_redirect("/login", 303);
    return false;
  }
  *out = std::move(*s);
  return true;
}

bool MonitorImpl::CheckPost(const httplib::Request& req, httplib::Response& res, Session* out) {
  std::optional<Session> s = SessionOf(req, res);
  std::string csrf = req.get_param_value("csrf");
  if (csrf.empty()) csrf = req.get_header_value("X-CSRF-Token");
  absl::Status ok = CheckChange(s, csrf);
  if (!ok.ok()) {
    spdlog::warn("monitor: refused {} {}: {}", req.method, req.path, std::string(ok.message()));
    ErrorPage(res, 403, std::string(ok.message()));
    return false;
  }
  *out = std::move(*s);
  return true;
}

void MonitorImpl::Routes() {
  httplib::Server& h = *http_;
  h.set_post_routing_handler([](const httplib::Request&, httplib::Response& res) {
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("X-Frame-Options", "DENY");
    res.set_header("Referrer-Policy", "same-origin");
    res.set_header("Content-Security-Policy",
                   "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                   "img-src 'self'; frame-ancestors 'none'; form-action 'self'");
    if (!res.has_header("Cache-Control")) res.set_header("Cache-Control", "no-store");
  });
  h.Get("/", [](const httplib::Request&, httplib::Response& res) { res.set_redirect("/jobs"); });
  h.Get("/static/monitor.js", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(kMonitorJs, "text/javascript; charset=utf-8");
  });
  h.Get("/static/monitor.css", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(kMonitorCss, "text/css; charset=utf-8");
  });
  h.Get("/login", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(RenderLoginPage(""), kHtml);
  });
  h.Post("/login", [this](const httplib::Request& q, httplib::Response& r) { Login(q, r); });
  h.Post("/logout", [this](const httplib::Request& q, httplib::Response& r) { Logout(q, r); });
  h.Get("/jobs", [this](const httplib::Request& q, httplib::Response& r) { JobsPage(q, r); });
  h.Get(R"(/jobs/(\d+))",
        [this](const httplib::Request& q, httplib::Response& r) { JobPage(q, r); });
  h.Get(R"(/jobs/(\d+)/wedge)",
        [this](const httplib::Request& q, httplib::Response& r) { WedgePage(q, r); });
  h.Get(R"(/jobs/(\d+)/preview\.png)",
        [this](const httplib::Request& q, httplib::Response& r) { Preview(q, r, false); });
  h.Get(R"(/jobs/(\d+)/takes/(\d+)/preview\.png)",
        [this](const httplib::Request& q, httplib::Response& r) { Preview(q, r, true); });
  h.Get(R"(/jobs/(\d+)/log/events)",
        [this](const httplib::Request& q, httplib::Response& r) { LogEvents(q, r); });
  h.Get(R"(/jobs/(\d+)/frames/(\d+)/(input|output)\.png)",
        [this](const httplib::Request& q, httplib::Response& r) { WipeFrame(q, r); });
  h.Get(R"(/jobs/(\d+)/takes/(\d+)/pick)",
        [this](const httplib::Request& q, httplib::Response& r) { PickPage(q, r); });
  h.Post(R"(/jobs/(\d+)/takes/(\d+)/pick)",
         [this](const httplib::Request& q, httplib::Response& r) { PickSubmit(q, r); });
  h.Get(R"(/jobs/(\d+)/pictures/([^/]+))",
        [this](const httplib::Request& q, httplib::Response& r) { Picture(q, r); });
  h.Get("/workers", [this](const httplib::Request& q, httplib::Response& r) { WorkersPage(q, r); });
  h.Post(R"(/jobs/(\d+)/(cancel|pause|resume|retry))",
         [this](const httplib::Request& q, httplib::Response& r) { JobAction(q, r); });
  h.Post(R"(/jobs/(\d+)/priority)",
         [this](const httplib::Request& q, httplib::Response& r) { PriorityAction(q, r); });
  h.Post(R"(/workers/([^/]+)/(drain|undrain))",
         [this](const httplib::Request& q, httplib::Response& r) { WorkerAction(q, r); });
  h.Get("/events", [this](const httplib::Request& q, httplib::Response& r) { Events(q, r); });
  h.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
}

void MonitorImpl::Login(const httplib::Request& req, httplib::Response& res) {
  const std::string token = req.get_param_value("token");
  absl::StatusOr<Principal> p = auth_->AuthenticateToken(token);
  if (!p.ok() || p->role == Role::kWorker) {
    res.status = 401;
    res.set_content(RenderLoginPage(p.ok() ? "a worker token cannot sign in to the monitor"
                                           : std::string(p.status().message())),
                    kHtml);
    return;
  }
  spdlog::info("monitor: '{}' ({}) signed in", p->name, RoleName(p->role));
  Session s = sessions_.Create(token, *p);
  res.set_header("Set-Cookie",
                 absl::StrCat(kCookie, "=", s.id, "; Path=/; HttpOnly; SameSite=Strict",
                              options_.cert_file.empty() ? "" : "; Secure"));
  res.set_redirect("/jobs", 303);
}

void MonitorImpl::Logout(const httplib::Request& req, httplib::Response& res) {
  Session s;
  if (!CheckPost(req, res, &s)) return;
  sessions_.Remove(s.id);
  res.set_header("Set-Cookie", absl::StrCat(kCookie, "=; Path=/; Max-Age=0; HttpOnly"));
  res.set_redirect("/login", 303);
}

void MonitorImpl::JobsPage(const httplib::Request& req, httplib::Response& res) {
  Session s;
  if (!RequireSession(req, res, &s)) return;
  JobsQuery q;
  q.state = req.get_param_value("state");
  q.project = req.get_param_value("project");
  q.name = req.get_param_value("name");
  q.owner = req.get_param_value("owner");
  if (req.has_param("sort")) q.sort = req.get_param_value("sort");
  int page = 0;
  if (absl::SimpleAtoi(req.get_param_value("page"), &page) && page >= 0 && page < 100000) {
    q.page = page;
  }
  v1::ListJobsRequest list;
  if (!q.state.empty()) {
    std::optional<v1::JobState> st = ParseState(q.state);
    if (!st) return ErrorPage(res, 400, "state '" + q.state + "' is not a job state");
    list.add_states(*st);
  }
  list.set_project(q.project);
  // Newest first from the service: a page needs the ones before it; a name filter or
  // another order needs them all (at most 100,000).
  const bool whole = !q.name.empty() || !q.owner.empty() || q.sort != "created";
  list.set_limit(whole ? kMaxActiveFollowed : (q.page + 1) * q.page_size + 1);
  grpc::ClientContext ctx;
  SetupCall(&ctx, s.token);
  v1::ListJobsResponse listed;
  grpc::Status st = stub_->ListJobs(&ctx, list, &listed);
  if (!st.ok()) return ErrorPage(res, HttpStatus(st), st.error_message());
  std::vector<v1::Job> jobs;
  jobs.reserve(listed.jobs_size());
  for (v1::Job& j : *listed.mutable_jobs()) {
    if (!q.name.empty() && j.spec().name().find(q.name) == std::string::npos) continue;
    if (!q.owner.empty() && j.owner() != q.owner) continue;
    jobs.push_back(std::move(j));
  }
  if (q.sort == "priority") {
    std::stable_sort(jobs.begin(), jobs.end(), [](const v1::Job& a, const v1::Job& b) {
      return a.spec().priority() > b.spec().priority();
    });
  } else if (q.sort == "progress") {
    const auto frac = [](const v1::Job& j) {
      return j.frames_total() > 0 ? static_cast<double>(j.frames_done()) / j.frames_total() : 0;
    };
    std::stable_sort(jobs.begin(), jobs.end(),
                     [&](const v1::Job& a, const v1::Job& b) { return frac(a) > frac(b); });
  } else if (q.sort == "name") {
    std::stable_sort(jobs.begin(), jobs.end(), [](const v1::Job& a, const v1::Job& b) {
      return a.spec().name() < b.spec().name();
    });
  } else if (q.sort == "owner") {
    std::stable_sort(jobs.begin(), jobs.end(),
                     [](const v1::Job& a, const v1::Job& b) { return a.owner() < b.owner(); });
  }
  const size_t begin = std::min(jobs.size(), static_cast<size_t>(q.page) * q.page_size);
  const size_t end = std::min(jobs.size(), begin + q.page_size);
  std::vector<v1::Job> shown(std::make_move_iterator(jobs.begin() + begin),
                             std::make_move_iterator(jobs.begin() + end));
  res.set_content(RenderJobsPage(ContextOf(s), shown, q, end < jobs.size()), kHtml);
}

bool MonitorImpl::GetJobOrError(const httplib::Request& req, httplib::Response& res,
                                const Session& s, v1::Job* job) {
  int64_t id = 0;
  if (!absl::SimpleAtoi(req.matches[1].str(), &id)) {
    ErrorPage(res, 404, "no such job");
    return false;
  }
  v1::GetJobRequest get;
  get.set_job_id(id);
  grpc::ClientContext ctx;
  SetupCall(&ctx, s.token);
  grpc::Status st = stub_->GetJob(&ctx, get, job);
  if (!st.ok()) {
    ErrorPage(res, HttpStatus(st), st.error_message());
    return false;
  }
  return true;
}

void MonitorImpl::JobPage(const httplib::Request& req, httplib::Response& res) {
  Session s;
  if (!RequireSession(req, res, &s)) return;
  v1::Job job;
  if (!GetJobOrError(req, res, s, &job)) return;
  const int64_t id = job.id();
  std::vector<v1::Job> deps;
  for (int i = 0; i < job.spec().depends_on_size() && i < 50; ++i) {
    grpc::ClientContext ctx;
    SetupCall(&ctx, s.token);
    v1::GetJobRequest dep;
    dep.set_job_id(job.spec().depends_on(i));
    v1::Job d;
    if (stub_->GetJob(&ctx, dep, &d).ok()) {
      d.clear_tasks();
      deps.push_back(std::move(d));
    }
  }
  std::vector<v1::Worker> workers;
  {
    grpc::ClientContext ctx;
    SetupCall(&ctx, s.token);
    v1::ListWorkersResponse listed;
    if (stub_->ListWorkers(&ctx, v1::ListWorkersRequest(), &listed).ok()) {
      workers.assign(listed.workers().begin(), listed.workers().end());
    }
  }
  std::vector<v1::TaskLogLines> logs;
  {
    grpc::ClientContext ctx;
    SetupCall(&ctx, s.token, std::chrono::seconds(5));
    v1::GetTaskLogsRequest lr;
    lr.set_job_id(id);
    auto reader = stub_->GetTaskLogs(&ctx, lr);
    v1::TaskLogLines lines;
    size_t total = 0;
    while (reader->Read(&lines)) {
      total += lines.lines_size();
      logs.push_back(lines);
    }
    reader->Finish();
    // The tail: the last 100 lines.
    while (total > 100 && !logs.empty()) {
      v1::TaskLogLines& first = logs.front();
      const size_t drop = std::min<size_t>(first.lines_size(), total - 100);
      first.mutable_lines()->DeleteSubrange(0, static_cast<int>(drop));
      total -= drop;
      if (first.lines_size() == 0) logs.erase(logs.begin());
    }
  }
  const std::vector<std::string> why = WhyWaiting(job, deps, workers);
  res.set_content(RenderJobPage(ContextOf(s), job, deps, why, logs, QcOf(job)), kHtml);
}

void MonitorImpl::WedgePage(const httplib::Request& req, httplib::Response& res) {
  Session s;
  if (!RequireSession(req, res, &s)) return;
  v1::Job job;
  if (!GetJobOrError(req, res, s, &job)) return;
  if (!job.spec().has_generate()) {
    return ErrorPage(res, 400, absl::StrCat("job ", job.id(), " is not a generate job (no wedge)"));
  }
  res.set_content(RenderWedgePage(ContextOf(s), job, QcOf(job)), kHtml);
}

void MonitorImpl::Preview(const httplib::Request& req, httplib::Response& res, bool take) {
  Session s;
  if (!RequireSession(req, res, &s)) return;
  int64_t id = 0;
  int index = 0;
  if (!absl::SimpleAtoi(req.matches[1].str(), &id) ||
      (take && !absl::SimpleAtoi(req.matches[2].str(), &index))) {
    return ErrorPage(res, 404, "no such job or take");
  }
  // The service decides whether this user may see the job, as for gRPC's GetJob.
  v1::GetJobRequest get;
  get.set_job_id(id);
  v1::Job job;
  grpc::ClientContext ctx;
  SetupCall(&ctx, s.token);
  grpc::Status st = stub_->GetJob(&ctx, get, &job);
  if (!st.ok()) return ErrorPage(res, HttpStatus(st), st.error_message());
  std::string output;
  if (take) {
    const std::vector<TakeCell> takes = TakesOf(job);
    if (index < 0 || index >= static_cast<int>(takes.size())) {
      return ErrorPage(res, 404, absl::StrCat("job ", id, " has no take ", index));
    }
    if (index >= job.tasks_size() || job.tasks(index).state() != v1::TASK_STATE_SUCCEEDED) {
      return ErrorPage(res, 404, absl::StrCat("take ", index, " of job ", id, " is not done"));
    }
    output = takes[index].output;
  } else {
    if (job.state() != v1::JOB_STATE_SUCCEEDED) {
      return ErrorPage(res, 404, absl::StrCat("job ", id, " has not succeeded"));
    }
    output = job.output().empty() ? job.spec().upscale().output() : job.output();
  }
  absl::StatusOr<std::string> png = thumbs_.Thumbnail(output);
  if (!png.ok())
    return ErrorPage(res, HttpStatus(png.status()), std::string(png.status().message()));
  res.set_header("Cache-Control", "private, max-age=60");
  res.set_content(*png, "image/png");
}

void MonitorImpl::Picture(const httplib::Request& req, httplib::Response& res) {
  Session s;
  if (!RequireSession(req, res, &s)) return;
  int64_t id = 0;
  if (!absl::SimpleAtoi(req.matches[1].str(), &id)) return ErrorPage(res, 404, "no such job");
  // The service decides whether this user may see the job, as for gRPC's GetJob.
  v1::GetJobRequest get;
  get.set_job_id(id);
  v1::Job job;
  grpc::ClientContext ctx;
  SetupCall(&ctx, s.token);
  grpc::Status st = stub_->GetJob(&ctx, get, &job);
  if (!st.ok()) return ErrorPage(res, HttpStatus(st), st.error_message());
  absl::StatusOr<WorkerPicture> picture = ReadWorkerPicture(*storage_, id, req.matches[2].str());
  if (!picture.ok()) {
    return ErrorPage(res, HttpStatus(picture.status()), std::string(picture.status().message()));
  }
  res.set_header("Cache-Control", "private, max-age=60");
  res.set_content(picture->bytes, picture->content_type);
}

QcByOutput MonitorImpl::QcOf(const v1::Job& job) {
  QcByOutput qc;
  const auto check = [&](const std::string& output) {
    absl::StatusOr<std::vector<std::string>> flags = thumbs_.QcFlags(output);
    if (flags.ok()) {
      qc[output] = *flags;
    } else {
      qc[output] = {"not checked: " + std::string(flags.status().message())};
    }
  };
  if (job.spec().has_generate()) {
    for (const TakeCell& t : TakesOf(job)) {
      if (t.index < job.tasks_size() && job.tasks(t.index).state() == v1::TASK_STATE_SUCCEEDED) {
        check(t.output);
      }
    }
  } else if (job.state() == v1::JOB_STATE_SUCCEEDED) {
    check(job.output().empty() ? job.spec().upscale().output() : job.output());
  }
  return qc;
}

void MonitorImpl::WorkersPage(const httplib::Request& req, httplib::Response& res) {
  Session s;
  if (!RequireSession(req, res, &s)) return;
  grpc::ClientContext ctx;
  SetupCall(&ctx, s.token);
  v1::ListWorkersResponse listed;
  grpc::Status st = stub_->ListWorkers(&ctx, v1::ListWorkersRequest(), &listed);
  if (!st.ok()) return ErrorPage(res, HttpStatus(st), st.error_message());
  std::vector<v1::Worker> workers(listed.workers().begin(), listed.workers().end());
  res.set_content(RenderWorkersPage(ContextOf(s), workers), kHtml);
}

void MonitorImpl::JobAction(const httplib::Request& req, httplib::Response& res) {
  Session s;
  if (!CheckPost(req, res, &s)) return;
  int64_t id = 0;
  if (!absl::SimpleAtoi(req.matches[1].str(), &id)) return ErrorPage(res, 404, "no such job");
  const std::string action = req.matches[2].str();
  grpc::ClientContext ctx;
  SetupCall(&ctx, s.token);
  v1::Job job;
  grpc::Status st;
  if (action == "cancel") {
    v1::CancelJobRequest r;
    r.set_job_id(id);
    st = stub_->CancelJob(&ctx, r, &job);
  } else if (action == "pause") {
    v1::PauseJobRequest r;
    r.set_job_id(id);
    st = stub_->PauseJob(&ctx, r, &job);
  } else if (action == "resume") {
    v1::ResumeJobRequest r;
    r.set_job_id(id);
    st = stub_->ResumeJob(&ctx, r, &job);
  } else {
    v1::RetryJobRequest r;
    r.set_job_id(id);
    st = stub_->RetryJob(&ctx, r, &job);
  }
  if (!st.ok()) return ErrorPage(res, HttpStatus(st), st.error_message());
  spdlog::info("monitor: '{}' {} job={}", s.principal.name, action, id);
  res.set_redirect(absl::StrCat("/jobs/", id), 303);
}

void MonitorImpl::PriorityAction(const httplib::Request& req, httplib::Response& res) {
  Session s;
  if (!CheckPost(req, res, &s)) return;
  v1::SetPriorityRequest r;
  int64_t id = 0;
  int priority = 0;
  if (!absl::SimpleAtoi(req.matches[1].str(), &id)) return ErrorPage(res, 404, "no such job");
  if (!absl::SimpleAtoi(req.get_param_value("priority"), &priority)) {
    return ErrorPage(
        res, 400,
        "priority '" + req.get_param_value("priority") + "' is not a number; give 0..100");
  }
  r.set_job_id(id);
  r.set_priority(priority);
  grpc::ClientContext ctx;
  SetupCall(&ctx, s.token);
  v1::Job job;
  grpc::Status st = stub_->SetPriority(&ctx, r, &job);
  if (!st.ok()) return ErrorPage(res, HttpStatus(st), st.error_message());
  spdlog::info("monitor: '{}' priority {} job={}", s.principal.name, priority, id);
  res.set_redirect(absl::StrCat("/jobs/", id), 303);
}

void MonitorImpl::WorkerAction(const httplib::Request& req, httplib::Response& res) {
  Session s;
  if (!CheckPost(req, res, &s)) return;
  v1::DrainWorkerRequest r;
  r.set_name(UrlDecode(req.matches[1].str()));
  r.set_drain(req.matches[2].str() == "drain");
  grpc::ClientContext ctx;
  SetupCall(&ctx, s.token);
  v1::Worker w;
  grpc::Status st = stub_->DrainWorker(&ctx, r, &w);
  if (!st.ok()) return ErrorPage(res, HttpStatus(st), st.error_message());
  spdlog::info("monitor: '{}' {} worker {}", s.principal.name, req.matches[2].str(), r.name());
  res.set_redirect("/workers", 303);
}

std::optional<Session> MonitorImpl::AdmitStream(const httplib::Request& req,
                                                httplib::Response& res) {
  std::optional<Session> s = SessionOf(req, res);
  if (!s.has_value()) {
    ErrorPage(res, 401, "not signed in");
  } else if (streams_.load() >= std::max(1, options_.threads - kReservedThreads)) {
    res.set_header("Retry-After", "5");
    ErrorPage(res, 503, "too many open event streams; try again later");
    s.reset();
  }
  return s;
}

void MonitorImpl::Events(const httplib::Request& req, httplib::Response& res) {
  std::optional<Session> s = AdmitStream(req, res);
  if (!s.has_value()) return;
  int64_t job_id = 0;
  if (req.has_param("job")) {
    if (!absl::SimpleAtoi(req.get_param_value("job"), &job_id)) {
      return ErrorPage(res, 400, "job is not a number");
    }
    return JobEvents(*s, job_id, res);
  }
  JobsEvents(*s, res);
}

void MonitorImpl::JobsEvents(const Session& s, httplib::Response& res) {
  res.set_header("Cache-Control", "no-store");
  res.set_header("X-Accel-Buffering", "no");
  uint64_t cursor;
  {
    absl::MutexLock lock(&mu_);
    cursor = seq_;
  }
  ++streams_;
  changed_.SignalAll();  // wakes the poller if it slept for want of streams
  const Principal who = s.principal;
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, cursor, who, first = true](size_t, httplib::DataSink& sink) mutable {
        std::string out;
        if (first) {
          out = "retry: 2000\n: streaming job changes\n\n";
          first = false;
        } else {
          absl::MutexLock lock(&mu_);
          const absl::Time deadline = absl::Now() + absl::Seconds(15);
          while (!stop_ && seq_ <= cursor && !changed_.WaitWithDeadline(&mu_, deadline)) {
          }
          if (stop_) return false;
          for (const JobChange& c : changes_) {
            if (c.seq <= cursor) continue;
            if (who.CanSee(c.project)) absl::StrAppend(&out, "event: job\ndata: ", c.json, "\n\n");
          }
          cursor = seq_;
          if (out.empty()) out = ": keep-alive\n\n";
        }
        return sink.write(out.data(), out.size());
      },
      [this](bool) { --streams_; });
}

void MonitorImpl::JobEvents(const Session& s, int64_t job_id, httplib::Response& res) {
  res.set_header("Cache-Control", "no-store");
  struct Watch {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReader<v1::JobEvent>> reader;
  };
  auto watch = std::make_shared<Watch>();
  SetupCall(&watch->ctx, s.token, kWatchDeadline);
  {
    absl::MutexLock lock(&mu_);
    if (stop_) return ErrorPage(res, 503, "shutting down");
    watches_.insert(&watch->ctx);
  }
  ++streams_;
  v1::WatchJobRequest wr;
  wr.set_job_id(job_id);
  watch->reader = stub_->WatchJob(&watch->ctx, wr);
  res.set_chunked_content_provider(
      "text/event-stream",
      [watch, first = true](size_t, httplib::DataSink& sink) mutable {
        if (first) {
          first = false;
          const std::string hello = "retry: 2000\n: watching\n\n";
          return sink.write(hello.data(), hello.size());
        }
        v1::JobEvent ev;
        if (!watch->reader->Read(&ev)) {
          sink.done();
          return true;
        }
        const std::string out = absl::StrCat("event: job\ndata: ", JobEventJson(ev.job()), "\n\n");
        return sink.write(out.data(), out.size());
      },
      [this, watch](bool) {
        watch->ctx.TryCancel();
        watch->reader->Finish();
        --streams_;
        absl::MutexLock lock(&mu_);
        watches_.erase(&watch->ctx);
      });
}

void MonitorImpl::LogEvents(const httplib::Request& req, httplib::Response& res) {
  std::optional<Session> s = AdmitStream(req, res);
  if (!s.has_value()) return;
  int64_t job_id = 0;
  if (!absl::SimpleAtoi(req.matches[1].str(), &job_id)) return ErrorPage(res, 404, "no such job");
  v1::GetTaskLogsRequest lr;
  lr.set_job_id(job_id);
  if (!req.get_param_value("task").empty()) {
    int task = 0;
    if (!absl::SimpleAtoi(req.get_param_value("task"), &task)) {
      return ErrorPage(res, 400, "task '" + req.get_param_value("task") + "' is not a number");
    }
    lr.set_task_index(task);
  }
  lr.set_follow(req.get_param_value("follow") != "0");
  struct Logs {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReader<v1::TaskLogLines>> reader;
    bool finished = false;  // reader->Finish() was called
  };
  auto logs = std::make_shared<Logs>();
  SetupCall(&logs->ctx, s->token, lr.follow() ? kWatchDeadline : kCallDeadline);
  {
    absl::MutexLock lock(&mu_);
    if (stop_) return ErrorPage(res, 503, "shutting down");
    watches_.insert(&logs->ctx);
  }
  ++streams_;
  logs->reader = stub_->GetTaskLogs(&logs->ctx, lr);
  res.set_header("Cache-Control", "no-store");
  res.set_chunked_content_provider(
      "text/event-stream",
      [logs, first = true](size_t, httplib::DataSink& sink) mutable {
        std::string out;
        if (first) {
          first = false;
          out = "retry: 2000\n: task log\n\n";
          return sink.write(out.data(), out.size());
        }
        v1::TaskLogLines lines;
        if (logs->reader->Read(&lines)) {
          // Long runs go out as several events, so that none is huge.
          for (int at = 0; at < lines.lines_size(); at += kMaxLogEventLines) {
            nlohmann::json o;
            o["task"] = lines.task_index();
            nlohmann::json text = nlohmann::json::array();
            for (int i = at; i < lines.lines_size() && i < at + kMaxLogEventLines; ++i) {
              text.push_back(lines.lines(i));
            }
            o["lines"] = std::move(text);
            absl::StrAppend(&out, "event: log\ndata: ",
                            o.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                            "\n\n");
          }
          return sink.write(out.data(), out.size());
        }
        const grpc::Status st = logs->reader->Finish();
        logs->finished = true;
        // The call's deadline ends a long follow: the browser reconnects and reads again.
        if (st.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
          nlohmann::json o = nlohmann::json::object();
          if (!st.ok()) o["error"] = st.error_message();
          out = absl::StrCat("event: end\ndata: ",
                             o.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                             "\n\n");
          sink.write(out.data(), out.size());
        }
        sink.done();
        return true;
      },
      [this, logs](bool) {
        logs->ctx.TryCancel();
        if (!logs->finished) logs->reader->Finish();
        --streams_;
        absl::MutexLock lock(&mu_);
        watches_.erase(&logs->ctx);
      });
}

void MonitorImpl::WipeFrame(const httplib::Request& req, httplib::Response& res) {
  Session s;
  if (!RequireSession(req, res, &s)) return;
  v1::Job job;
  if (!GetJobOrError(req, res, s, &job)) return;
  int64_t frame = 0;
  if (!absl::SimpleAtoi(req.matches[2].str(), &frame)) return ErrorPage(res, 404, "no such frame");
  const absl::StatusOr<FrameFile> file =
      req.matches[3].str() == "input" ? InputFrameOf(job, frame) : OutputFrameOf(job, frame);
  if (!file.ok()) {
    return ErrorPage(res, HttpStatus(file.status()), std::string(file.status().message()));
  }
  absl::StatusOr<std::string> png = frames_.Frame(file->path, file->number);
  if (!png.ok()) {
    return ErrorPage(res, HttpStatus(png.status()), std::string(png.status().message()));
  }
  res.set_header("Cache-Control", "private, max-age=60");
  res.set_content(*png, "image/png");
}

bool MonitorImpl::TakeOrError(const httplib::Request& req, httplib::Response& res,
                              const v1::Job& job, TakeCell* take) {
  int index = 0;
  const std::vector<TakeCell> takes = TakesOf(job);
  if (!absl::SimpleAtoi(req.matches[2].str(), &index) || index < 0 ||
      index >= static_cast<int>(takes.size())) {
    ErrorPage(res, 404, absl::StrCat("job ", job.id(), " has no take ", req.matches[2].str()));
    return false;
  }
  if (index >= job.tasks_size() || job.tasks(index).state() != v1::TASK_STATE_SUCCEEDED) {
    ErrorPage(res, 409,
              absl::StrCat("take ", index, " of job ", job.id(),
                           " is not done; pick it once it succeeded"));
    return false;
  }
  *take = takes[index];
  return true;
}

std::vector<std::string> MonitorImpl::ModelsFor(const Session& s) {
  std::set<std::string> models = {"bicubic", "lanczos"};
  grpc::ClientContext ctx;
  SetupCall(&ctx, s.token);
  v1::ListWorkersResponse listed;
  if (stub_->ListWorkers(&ctx, v1::ListWorkersRequest(), &listed).ok()) {
    for (const v1::Worker& w : listed.workers())
      models.insert(w.models().begin(), w.models().end());
  }
  return {models.begin(), models.end()};
}

void MonitorImpl::PickPage(const httplib::Request& req, httplib::Response& res) {
  Session s;
  if (!RequireSession(req, res, &s)) return;
  v1::Job job;
  if (!GetJobOrError(req, res, s, &job)) return;
  TakeCell take;
  if (!TakeOrError(req, res, job, &take)) return;
  const PageContext ctx = ContextOf(s);
  if (!ctx.CanControl(job.spec().project())) {
    return ErrorPage(res, 403,
                     absl::StrCat("'", s.principal.name, "' may not submit to project '",
                                  job.spec().project(), "'"));
  }
  const PickForm form =
      DefaultPick(job, take, absl::StrCat("pick-", job.id(), "-", take.index, "-", RandomHex(8)));
  res.set_content(RenderPickPage(ctx, job, take, form, ModelsFor(s), ""), kHtml);
}

void MonitorImpl::PickSubmit(const httplib::Request& req, httplib::Response& res) {
  Session s;
  if (!CheckPost(req, res, &s)) return;
  v1::Job job;
  if (!GetJobOrError(req, res, s, &job)) return;
  TakeCell take;
  if (!TakeOrError(req, res, job, &take)) return;
  PickForm form;
  form.name = req.get_param_value("name");
  form.model = req.get_param_value("model");
  form.scale = req.get_param_value("scale");
  form.output = req.get_param_value("output");
  form.priority = req.get_param_value("priority");
  form.request_id = req.get_param_value("request_id");
  const auto refused = [&](int status, const std::string& message) {
    res.status = status;
    res.set_content(RenderPickPage(ContextOf(s), job, take, form, ModelsFor(s), message), kHtml);
  };
  absl::StatusOr<v1::SubmitJobRequest> submit = PickRequest(job, take, form);
  if (!submit.ok()) {
    return refused(HttpStatus(submit.status()), std::string(submit.status().message()));
  }
  grpc::ClientContext ctx;
  SetupCall(&ctx, s.token);
  v1::SubmitJobResponse submitted;
  grpc::Status st = stub_->SubmitJob(&ctx, *submit, &submitted);
  if (!st.ok()) return refused(HttpStatus(st), st.error_message());
  spdlog::info("monitor: '{}' picked take {} of job={}: job={}", s.principal.name, take.index,
               job.id(), submitted.job_id());
  res.set_redirect(absl::StrCat("/jobs/", submitted.job_id()), 303);
}

void MonitorImpl::PollLoop() {
  absl::MutexLock lock(&mu_);
  while (!stop_) {
    absl::Duration wait = absl::Milliseconds(options_.poll_ms);
    if (streams_.load() > 0) {
      mu_.Unlock();
      const absl::Time began = absl::Now();
      PollOnce();
      // A farm with many active jobs is listed less often (at most a fifth of the time),
      // but at least every 2 s.
      const absl::Duration took = absl::Now() - began;
      wait = std::min(std::max(wait, 4 * took), std::max(wait, absl::Milliseconds(kMaxPollWaitMs)));
      mu_.Lock();
    }
    const absl::Time deadline = absl::Now() + wait;
    while (!stop_ && !changed_.WaitWithDeadline(&mu_, deadline)) {
    }
  }
}

void MonitorImpl::PollOnce() {
  v1::ListJobsRequest list;
  for (v1::JobState st :
       {v1::JOB_STATE_QUEUED, v1::JOB_STATE_RUNNING, v1::JOB_STATE_PAUSED, v1::JOB_STATE_WAITING}) {
    list.add_states(st);
  }
  list.set_limit(kMaxActiveFollowed);
  grpc::ClientContext ctx;
  SetupCall(&ctx, poll_token_);
  v1::ListJobsResponse listed;
  grpc::Status st = stub_->ListJobs(&ctx, list, &listed);
  if (!st.ok()) {
    spdlog::warn("monitor: cannot list jobs for the event streams: {}", st.error_message());
    return;
  }
  // What a row shows, cheaply: the event (JSON) is made only for the rows that changed.
  std::map<int64_t, std::string> active;
  for (const v1::Job& j : listed.jobs()) {
    active[j.id()] = absl::StrCat(j.state(), "/", j.frames_done(), "/", j.frames_total(), "/",
                                  j.tasks_done(), "/", static_cast<int64_t>(j.fps() * 10), "/",
                                  static_cast<int64_t>(j.eta_seconds()));
  }
  std::vector<int64_t> gone;
  std::vector<JobChange> changes;
  {
    absl::MutexLock lock(&mu_);
    for (const v1::Job& j : listed.jobs()) {
      auto it = last_active_.find(j.id());
      // The first listing only learns the rows (the pages were rendered with them).
      if (it == last_active_.end() ? primed_ : it->second != active[j.id()]) {
        changes.push_back({0, j.id(), j.spec().project(), JobEventJson(j)});
      }
    }
    for (const auto& [id, json] : last_active_) {
      if (active.count(id) == 0) gone.push_back(id);
    }
    last_active_ = std::move(active);
    primed_ = true;
  }
  // Jobs that left the active states: their last state.
  for (int64_t id : gone) {
    grpc::ClientContext c;
    SetupCall(&c, poll_token_);
    v1::GetJobRequest get;
    get.set_job_id(id);
    v1::Job j;
    if (stub_->GetJob(&c, get, &j).ok()) {
      j.clear_tasks();
      changes.push_back({0, id, j.spec().project(), JobEventJson(j)});
    }
  }
  if (changes.empty()) return;
  {
    absl::MutexLock lock(&mu_);
    for (JobChange& c : changes) {
      c.seq = ++seq_;
      changes_.push_back(std::move(c));
    }
    while (changes_.size() > 20000) changes_.pop_front();
  }
  changed_.SignalAll();
}

}  // namespace

absl::StatusOr<std::unique_ptr<WebMonitor>> WebMonitor::Start(
    const WebOptions& options, std::shared_ptr<grpc::Channel> channel, Authenticator* auth,
    const common::Storage* storage) {
  auto m = std::make_unique<MonitorImpl>(options, std::move(channel), auth, storage);
  absl::Status listening = m->Listen();
  if (!listening.ok()) return listening;
  spdlog::info("monitor at {}", m->url());
  return std::unique_ptr<WebMonitor>(std::move(m));
}

}  // namespace reelfarm::server::web
