// Notifier: webhooks for jobs that end. When a job reaches a terminal state, every
// http(s) URL it names (JobSpec.webhooks) and every URL of the server's own
// (--webhook) gets one POST with a JSON body (see WebhookBody). Delivery runs on the
// notifier's own thread, off the scheduler's lock and the gRPC threads: the scheduler
// event only queues the job. A delivery that fails (no connection, timeout, a status
// other than 2xx) is tried again after a back-off that doubles from
// `first_backoff_ms`, up to `max_attempts` tries in all; each outcome is logged and
// counted (reelfarm_webhook_deliveries_total{result="sent"|"failed"}, and
// reelfarm_webhook_attempts_total for every try).
//
// Nothing survives a restart: deliveries queued or waiting for a retry when the
// server stops are dropped (logged at stop), and jobs that ended while it was down
// are not announced.
//
// Thread-safety: every method may be called from any thread; the SchedulerEvents
// methods only queue (quick, never block on the network).
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include "absl/synchronization/mutex.h"
#include "common/status.h"
#include "scheduler/events.h"
#include "scheduler/job.h"

namespace reelfarm::server {

// Webhooks a job may name (JobSpec.webhooks).
inline constexpr int kMaxWebhooks = 16;

struct NotifierOptions {
  std::vector<std::string> webhooks;  // called for every job, besides the job's own
  std::string monitor_url;            // base of the body's "monitor" link ("" for none)
  int max_attempts = 5;               // tries per URL, the first included
  int64_t first_backoff_ms = 1000;    // then 2x, 4x, ... between tries
  int64_t timeout_ms = 10'000;        // per try: connect and answer
};

// OK for an http:// or https:// URL with a host (libcurl's URL parser decides);
// INVALID_ARGUMENT naming `field` and the URL otherwise.
absl::Status CheckWebhookUrl(const std::string& url, const std::string& field);

// The monitor's base URL for the body's link when --monitor-url is not given: the
// monitor's own --web-listen address `web_listen` (HOST:PORT), https unless `plaintext`;
// a wildcard host (0.0.0.0, [::]) becomes `hostname`. "" when there is no monitor
// (empty address) or its port is not known yet (port 0).
std::string DefaultMonitorUrl(const std::string& web_listen, bool plaintext,
                              const std::string& hostname);

// The JSON body sent for `job` (docs: README "Notifications"): {"job_id", "name",
// "project", "state" ("SUCCEEDED", "FAILED", "CANCELLED"), "outputs" [paths under the
// storage root], "error", "monitor" (monitor_url + "/jobs/<id>", or ""),
// "finished_unix_ms", "finished" (RFC 3339, UTC)}.
std::string WebhookBody(const scheduler::Job& job, const std::string& monitor_url);

class Notifier final : public scheduler::SchedulerEvents {
 public:
  // Events are forwarded to `next` (borrowed; may be null), e.g. the server's metrics.
  Notifier(NotifierOptions options, prometheus::Registry& registry,
           scheduler::SchedulerEvents* next);
  ~Notifier() override;  // stops the thread; what is still queued is dropped (logged)
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  void JobSubmitted(const scheduler::Job& job) override;
  void JobFinished(const scheduler::Job& job) override;
  void TaskLeased(const scheduler::Job& job, const scheduler::Task& task,
                  int64_t queued_ms) override;
  void TaskFinished(const scheduler::Job& job, const scheduler::Task& task, bool ok,
                    bool will_retry, int64_t run_ms) override;
  void LeaseExpired(const scheduler::Lease& lease) override;

  // The base of the body's "monitor" link from now on ("" for none): the server sets it
  // once its monitor listens, so that a link never names a monitor that failed to start.
  void SetMonitorUrl(std::string url);

 private:
  struct Delivery {
    int64_t job_id = 0;
    std::string url;
    std::string body;
    int attempt = 0;     // tries made so far
    int64_t due_ms = 0;  // steady clock
  };
  void Loop();
  // One POST; OK for a 2xx answer.
  absl::Status Post(const Delivery& d) const;

  const NotifierOptions options_;  // its monitor_url is the first monitor_url_
  scheduler::SchedulerEvents* const next_;
  prometheus::Counter& sent_;
  prometheus::Counter& failed_;
  prometheus::Counter& attempts_;

  absl::Mutex mu_;
  absl::CondVar wake_;
  std::deque<Delivery> queue_ ABSL_GUARDED_BY(mu_);
  std::string monitor_url_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace reelfarm::server
