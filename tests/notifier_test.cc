// The notifier's and retention's pure parts: which webhook URLs are taken, what the
// body says of a generate job, how ages parse, and that a delivery that never gets
// through is tried a bounded number of times and counted as failed.
#include <catch2/catch.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include <prometheus/registry.h>

#include "common/duration.h"
#include "server/notifier.h"

namespace reelfarm::server {
namespace {

double CounterValue(prometheus::Registry& registry, const std::string& name,
                    const std::string& label_value) {
  for (const auto& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const auto& m : family.metric) {
      if (label_value.empty() || (!m.label.empty() && m.label[0].value == label_value)) {
        return m.counter.value;
      }
    }
  }
  return -1;
}

}  // namespace

TEST_CASE("webhook URLs: http(s) with a host are taken, anything else is refused",
          "[unit][notify]") {
  for (const std::string url :
       {"http://hooks.example.com/x", "https://hooks.example.com:8443/reelfarm?show=sh010",
        "HTTPS://Hooks.Example.com/", "http://127.0.0.1:9/hook", "http://[::1]:8080/h"}) {
    CAPTURE(url);
    CHECK(CheckWebhookUrl(url, "webhooks[0]").ok());
  }
  for (const std::string url :
       {"ftp://hooks.example.com/x", "file:///etc/passwd", "hooks.example.com/x", "https://", "",
        "mailto:ops@example.com", "http://exa mple.com/"}) {
    CAPTURE(url);
    const absl::Status st = CheckWebhookUrl(url, "webhooks[2]");
    CHECK(st.code() == absl::StatusCode::kInvalidArgument);
    CHECK(st.message().find("webhooks[2]") != absl::string_view::npos);
    CHECK(st.message().find("http(s)") != absl::string_view::npos);
  }
}

TEST_CASE("the webhook's monitor link defaults to the monitor's own address", "[unit][notify]") {
  CHECK(DefaultMonitorUrl("127.0.0.1:7780", true, "render01") == "http://127.0.0.1:7780");
  CHECK(DefaultMonitorUrl("0.0.0.0:7780", false, "farm-host") == "https://farm-host:7780");
  CHECK(DefaultMonitorUrl("[::]:443", false, "farm-host") == "https://farm-host:443");
  CHECK(DefaultMonitorUrl("", true, "farm-host").empty());             // no monitor
  CHECK(DefaultMonitorUrl("127.0.0.1:0", true, "farm-host").empty());  // port not known yet
}

TEST_CASE("a generate job's webhook body lists each take's output", "[unit][notify]") {
  scheduler::Job job;
  job.id = 12;
  job.spec.name = "sh010";
  job.spec.generate.model = "shapes_t2v";
  job.spec.generate.seeds = {1, 2, 3};
  job.spec.generate.output = "gen/sh010.####.png";
  job.state = scheduler::JobState::kCancelled;
  job.error = "cancelled";
  job.finished_unix_ms = 1'700'000'000'123;
  const nlohmann::json body = nlohmann::json::parse(WebhookBody(job, "http://farm:8080/"));
  // The naming rule of jobs.proto's GenerateSpec.output.
  CHECK(body["outputs"] ==
        nlohmann::json::array({"gen/sh010_take001.####.png", "gen/sh010_take002.####.png",
                               "gen/sh010_take003.####.png"}));
  CHECK(body["state"] == "CANCELLED");
  CHECK(body["monitor"] == "http://farm:8080/jobs/12");
  CHECK(body["finished"] == "2023-11-14T22:13:20.123Z");
  CHECK(body["error"] == "cancelled");
}

TEST_CASE("ages parse as a whole number and a unit", "[unit][notify]") {
  CHECK(*common::ParseAge("30d", "--keep-finished") == 30LL * 24 * 3600 * 1000);
  CHECK(*common::ParseAge("12h", "--keep-finished") == 12LL * 3600 * 1000);
  CHECK(*common::ParseAge("90m", "--keep-finished") == 90LL * 60 * 1000);
  CHECK(*common::ParseAge("45s", "--keep-finished") == 45000);
  CHECK(*common::ParseAge("2w", "--keep-finished") == 14LL * 24 * 3600 * 1000);
  CHECK(*common::ParseAge("0", "--keep-finished") == 0);
  for (const std::string bad : {"", "30", "d", "1.5h", "-1d", "30 days", "30D", "9999999999d"}) {
    CAPTURE(bad);
    const auto age = common::ParseAge(bad, "--keep-finished");
    CHECK(age.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(age.status().message().find("--keep-finished") != absl::string_view::npos);
  }
}

TEST_CASE("a webhook that never gets through is tried --webhook-attempts times, then failed",
          "[unit][notify]") {
  prometheus::Registry registry;
  NotifierOptions o;
  o.max_attempts = 3;
  o.first_backoff_ms = 20;
  o.timeout_ms = 2000;
  Notifier notifier(o, registry, nullptr);
  scheduler::Job job;
  job.id = 5;
  job.spec.name = "n";
  job.spec.upscale.output = "o.mp4";
  job.state = scheduler::JobState::kSucceeded;
  job.spec.webhooks = {"http://127.0.0.1:1/nobody-listens"};
  const auto start = std::chrono::steady_clock::now();
  notifier.JobFinished(job);  // returns at once: delivery is the notifier thread's
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(100));
  for (int i = 0;
       i < 100 && CounterValue(registry, "reelfarm_webhook_deliveries_total", "failed") < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(CounterValue(registry, "reelfarm_webhook_deliveries_total", "failed") == 1);
  CHECK(CounterValue(registry, "reelfarm_webhook_deliveries_total", "sent") == 0);
  CHECK(CounterValue(registry, "reelfarm_webhook_attempts_total", "") == 3);
  // A job without webhooks (and no server default) queues nothing.
  job.spec.webhooks.clear();
  notifier.JobFinished(job);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK(CounterValue(registry, "reelfarm_webhook_attempts_total", "") == 3);
}

}  // namespace reelfarm::server
