#include "cli/progress.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <google/protobuf/util/json_util.h>

#include "common/grpc_security.h"

namespace reelfarm::cli {

const char* StateName(v1::JobState s) {
  switch (s) {
    case v1::JOB_STATE_QUEUED:
      return "queued";
    case v1::JOB_STATE_RUNNING:
      return "running";
    case v1::JOB_STATE_SUCCEEDED:
      return "succeeded";
    case v1::JOB_STATE_FAILED:
      return "failed";
    case v1::JOB_STATE_CANCELLED:
      return "cancelled";
    case v1::JOB_STATE_PAUSED:
      return "paused";
    case v1::JOB_STATE_WAITING:
      return "waiting";
    default:
      return "unknown";
  }
}

bool IsTerminal(v1::JobState s) {
  return s == v1::JOB_STATE_SUCCEEDED || s == v1::JOB_STATE_FAILED || s == v1::JOB_STATE_CANCELLED;
}

std::string Duration(double s) {
  if (s < 0) return "?";
  char buf[32];
  int t = static_cast<int>(s + 0.5);
  if (t >= 3600) {
    std::snprintf(buf, sizeof(buf), "%dh%02dm", t / 3600, (t / 60) % 60);
  } else if (t >= 60) {
    std::snprintf(buf, sizeof(buf), "%dm%02ds", t / 60, t % 60);
  } else {
    std::snprintf(buf, sizeof(buf), "%ds", t);
  }
  return buf;
}

std::string ProgressLine(const v1::Job& j, bool bar) {
  const double frac =
      j.frames_total() ? static_cast<double>(j.frames_done()) / j.frames_total() : 0.0;
  int failed = 0;
  for (const auto& t : j.tasks()) failed += t.state() == v1::TASK_STATE_FAILED;
  std::string bar_text;
  if (bar) {
    constexpr int kWidth = 20;
    const int full = static_cast<int>(frac * kWidth + 0.5);
    bar_text = "[" + std::string(full, '#') + std::string(kWidth - full, '.') + "] ";
  }
  char buf[320];
  std::snprintf(buf, sizeof(buf),
                "job %lld %-9s %s%5.1f%%  frames %lld/%lld  tasks %d/%d  %.1f fps  ETA %s%s",
                static_cast<long long>(j.id()), StateName(j.state()), bar_text.c_str(),
                100.0 * frac, static_cast<long long>(j.frames_done()),
                static_cast<long long>(j.frames_total()), j.tasks_done(), j.tasks_total(), j.fps(),
                IsTerminal(j.state()) ? "-" : Duration(j.eta_seconds()).c_str(),
                failed ? ("  " + std::to_string(failed) + " failed").c_str() : "");
  return buf;
}

std::vector<v1::Job> WatchJobs(const WatchStubs& stubs, const std::vector<int64_t>& ids,
                               Display display, FILE* out, grpc::Status* status) {
  std::mutex mu;
  std::condition_variable changed;
  std::vector<v1::Job> jobs(ids.size());
  std::vector<bool> ended(ids.size(), false);
  std::vector<std::string> events;  // JSON lines to print
  size_t version = 0;
  *status = grpc::Status::OK;
  std::vector<std::thread> readers;
  for (size_t i = 0; i < ids.size(); ++i) {
    jobs[i].set_id(ids[i]);
    readers.emplace_back([&, i] {
      grpc::Status st;
      for (std::shared_ptr<v1::JobService::Stub> stub = stubs(nullptr); stub; stub = stubs(&st)) {
        grpc::ClientContext ctx;
        // After a connect gRPC took for failed, the stub's own server again, once it
        // connects (common::IsSpuriousConnectFailure).
        ctx.set_wait_for_ready(common::IsSpuriousConnectFailure(st));
        v1::WatchJobRequest req;
        req.set_job_id(ids[i]);
        auto reader = stub->WatchJob(&ctx, req);
        v1::JobEvent ev;
        bool over = false;
        while (reader->Read(&ev)) {
          std::string json;
          if (display == Display::kJson) {
            google::protobuf::util::JsonPrintOptions opts;
            opts.always_print_primitive_fields = true;
            (void)google::protobuf::util::MessageToJsonString(ev, &json, opts);
          }
          over = IsTerminal(ev.job().state());
          std::lock_guard<std::mutex> lock(mu);
          jobs[i] = ev.job();
          if (!json.empty()) events.push_back(std::move(json));
          ++version;
          changed.notify_one();
        }
        st = reader->Finish();
        if (st.ok() || over) {
          st = grpc::Status::OK;
          break;
        }
      }
      std::lock_guard<std::mutex> lock(mu);
      if (!st.ok() && status->ok()) *status = st;
      ended[i] = true;
      ++version;
      changed.notify_one();
    });
  }
  std::vector<std::string> shown(ids.size());
  bool drawn = false;
  size_t seen = 0;
  std::unique_lock<std::mutex> lock(mu);
  for (;;) {
    changed.wait(lock, [&] { return version != seen; });
    seen = version;
    if (display == Display::kJson) {
      for (const auto& e : events) std::fprintf(out, "%s\n", e.c_str());
      events.clear();
    } else if (display == Display::kTerminal) {
      // Redraw every line in place: up to the first, then each line cleared.
      if (drawn) std::fprintf(out, "\033[%zuA", ids.size());
      for (const auto& j : jobs) std::fprintf(out, "\r\033[K%s\n", ProgressLine(j, true).c_str());
      drawn = true;
    } else {
      for (size_t i = 0; i < jobs.size(); ++i) {
        if (jobs[i].state() == v1::JOB_STATE_UNSPECIFIED) continue;
        std::string line = ProgressLine(jobs[i], false);
        if (line != shown[i]) std::fprintf(out, "%s\n", line.c_str());
        shown[i] = std::move(line);
      }
    }
    std::fflush(out);
    if (std::all_of(ended.begin(), ended.end(), [](bool e) { return e; })) break;
  }
  lock.unlock();
  for (auto& t : readers) t.join();
  return jobs;
}

}  // namespace reelfarm::cli
