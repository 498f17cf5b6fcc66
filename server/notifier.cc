#include "server/notifier.h"

#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/thread_name.h"
#include "scheduler/wedge.h"

namespace reelfarm::server {

namespace {

struct CurlUrlFree {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
struct CurlFree {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct CurlSlistFree {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
struct CurlStrFree {
  void operator()(char* s) const { curl_free(s); }
};

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Discards the receiver's answer.
size_t IgnoreBody(char*, size_t size, size_t n, void*) { return size * n; }

std::vector<std::string> Outputs(const scheduler::Job& job) {
  if (!job.spec.is_generate()) return {job.spec.upscale.output};
  std::vector<std::string> out;
  for (const scheduler::Take& take : scheduler::ExpandWedge(job.spec.name, job.spec.generate)) {
    out.push_back(take.output);
  }
  return out;
}

const char* StateName(scheduler::JobState s) {
  switch (s) {
    case scheduler::JobState::kSucceeded:
      return "SUCCEEDED";
    case scheduler::JobState::kFailed:
      return "FAILED";
    case scheduler::JobState::kCancelled:
      return "CANCELLED";
    default:
      return scheduler::ToString(s);
  }
}

}  // namespace

absl::Status CheckWebhookUrl(const std::string& url, const std::string& field) {
  const auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " '", url.substr(0, 200), "': ", why,
                     "; give an http(s) URL, e.g. https://hooks.example.com/reelfarm"));
  };
  std::unique_ptr<CURLU, CurlUrlFree> h(curl_url());
  if (!h) return absl::ResourceExhaustedError("out of memory parsing a URL");
  // No guessing: the scheme must be written out.
  if (curl_url_set(h.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) {
    return bad("not a URL");
  }
  char* raw = nullptr;
  if (curl_url_get(h.get(), CURLUPART_SCHEME, &raw, 0) != CURLUE_OK) return bad("no scheme");
  const std::unique_ptr<char, CurlStrFree> scheme(raw);
  const std::string s = absl::AsciiStrToLower(scheme.get());
  if (s != "http" && s != "https") return bad(absl::StrCat("scheme '", s, "' is not http(s)"));
  raw = nullptr;
  if (curl_url_get(h.get(), CURLUPART_HOST, &raw, 0) != CURLUE_OK) return bad("no host");
  const std::unique_ptr<char, CurlStrFree> host(raw);
  if (std::string(host.get()).empty()) return bad("no host");
  return absl::OkStatus();
}

std::string DefaultMonitorUrl(const std::string& web_listen, bool plaintext,
                              const std::string& hostname) {
  const size_t colon = web_listen.rfind(':');
  if (colon == std::string::npos) return "";
  std::string host = web_listen.substr(0, colon);
  const std::string port = web_listen.substr(colon + 1);
  if (port.empty() || port == "0") return "";
  if (host.empty() || host == "0.0.0.0" || host == "[::]") host = hostname;
  return absl::StrCat(plaintext ? "http://" : "https://", host, ":", port);
}

std::string WebhookBody(const scheduler::Job& job, const std::string& monitor_url) {
  nlohmann::json j;
  j["job_id"] = job.id;
  j["name"] = job.spec.name;
  j["project"] = job.spec.project;
  j["state"] = StateName(job.state);
  j["outputs"] = Outputs(job);
  j["error"] = job.error;
  std::string base = monitor_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  j["monitor"] = base.empty() ? std::string() : absl::StrCat(base, "/jobs/", job.id);
  j["finished_unix_ms"] = job.finished_unix_ms;
  j["finished"] = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ",
                                   absl::FromUnixMillis(job.finished_unix_ms), absl::UTCTimeZone());
  // Texts were checked as UTF-8 at submit; a worker's error may not be: replaced.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Notifier::Notifier(NotifierOptions options, prometheus::Registry& registry,
                   scheduler::SchedulerEvents* next)
    : options_(std::move(options)),
      next_(next),
      sent_(prometheus::BuildCounter()
                .Name("reelfarm_webhook_deliveries_total")
                .Help("Webhook deliveries that ended, by result: sent (a 2xx answer) or failed "
                      "(every try failed)")
                .Register(registry)
                .Add({{"result", "sent"}})),
      failed_(prometheus::BuildCounter()
                  .Name("reelfarm_webhook_deliveries_total")
                  .Help("Webhook deliveries that ended, by result: sent (a 2xx answer) or "
                        "failed (every try failed)")
                  .Register(registry)
                  .Add({{"result", "failed"}})),
      attempts_(prometheus::BuildCounter()
                    .Name("reelfarm_webhook_attempts_total")
                    .Help("Webhook POSTs tried, retries included")
                    .Register(registry)
                    .Add({})) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  monitor_url_ = options_.monitor_url;
  thread_ = std::thread([this] {
    common::NameThread("rf-notify");
    Loop();
  });
}

Notifier::~Notifier() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    wake_.SignalAll();
  }
  thread_.join();
  absl::MutexLock lock(&mu_);
  for (const Delivery& d : queue_) {
    spdlog::warn("webhook dropped job={} url={} after {} tries: the server is stopping", d.job_id,
                 d.url, d.attempt);
  }
}

void Notifier::SetMonitorUrl(std::string url) {
  absl::MutexLock lock(&mu_);
  monitor_url_ = std::move(url);
}

void Notifier::JobSubmitted(const scheduler::Job& job) {
  if (next_) next_->JobSubmitted(job);
}

void Notifier::JobFinished(const scheduler::Job& job) {
  if (next_) next_->JobFinished(job);
  if (job.spec.webhooks.empty() && options_.webhooks.empty()) return;
  std::vector<std::string> urls = options_.webhooks;
  for (const std::string& url : job.spec.webhooks) {
    if (std::find(urls.begin(), urls.end(), url) == urls.end()) urls.push_back(url);
  }
  absl::MutexLock lock(&mu_);
  const std::string body = WebhookBody(job, monitor_url_);
  for (std::string& url : urls) {
    queue_.push_back({job.id, std::move(url), body, 0, SteadyMs()});
  }
  wake_.Signal();
}

void Notifier::TaskLeased(const scheduler::Job& job, const scheduler::Task& task,
                          int64_t queued_ms) {
  if (next_) next_->TaskLeased(job, task, queued_ms);
}

void Notifier::TaskFinished(const scheduler::Job& job, const scheduler::Task& task, bool ok,
                            bool will_retry, int64_t run_ms) {
  if (next_) next_->TaskFinished(job, task, ok, will_retry, run_ms);
}

void Notifier::LeaseExpired(const scheduler::Lease& lease) {
  if (next_) next_->LeaseExpired(lease);
}

absl::Status Notifier::Post(const Delivery& d) const {
  std::unique_ptr<CURL, CurlFree> curl(curl_easy_init());
  if (!curl) return absl::ResourceExhaustedError("curl_easy_init failed");
  std::unique_ptr<curl_slist, CurlSlistFree> headers(
      curl_slist_append(nullptr, "Content-Type: application/json"));
  char error[CURL_ERROR_SIZE] = {0};
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, d.url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, d.body.c_str());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(d.body.size()));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.timeout_ms));
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "reelfarm-server");
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &IgnoreBody);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
  const CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) {
    return absl::UnavailableError(error[0] ? error : curl_easy_strerror(rc));
  }
  long code = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  if (code < 200 || code > 299) {
    return absl::UnavailableError(absl::StrCat("the receiver answered HTTP ", code));
  }
  return absl::OkStatus();
}

void Notifier::Loop() {
  absl::MutexLock lock(&mu_);
  while (!stop_) {
    if (queue_.empty()) {
      wake_.Wait(&mu_);
      continue;
    }
    auto next = std::min_element(queue_.begin(), queue_.end(),
                                 [](const auto& a, const auto& b) { return a.due_ms < b.due_ms; });
    const int64_t wait = next->due_ms - SteadyMs();
    if (wait > 0) {
      wake_.WaitWithTimeout(&mu_, absl::Milliseconds(wait));
      continue;
    }
    Delivery d = std::move(*next);
    queue_.erase(next);
    absl::Status st;
    {
      // The network call runs unlocked: JobFinished queues meanwhile.
      mu_.Unlock();
      st = Post(d);
      mu_.Lock();
    }
    ++d.attempt;
    attempts_.Increment();
    if (st.ok()) {
      sent_.Increment();
      spdlog::info("webhook sent job={} url={} tries={}", d.job_id, d.url, d.attempt);
      continue;
    }
    if (d.attempt >= options_.max_attempts) {
      failed_.Increment();
      spdlog::warn("webhook failed job={} url={} tries={}: {}; giving up", d.job_id, d.url,
                   d.attempt, std::string(st.message()));
      continue;
    }
    const int64_t backoff = options_.first_backoff_ms << (d.attempt - 1);
    spdlog::warn("webhook try failed job={} url={} try={}: {}; next try in {} ms", d.job_id, d.url,
                 d.attempt, std::string(st.message()), backoff);
    d.due_ms = SteadyMs() + backoff;
    queue_.push_back(std::move(d));
  }
}

}  // namespace reelfarm::server
