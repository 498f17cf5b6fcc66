// reelctl: the command-line client for pipeline TDs.
//
// Exit codes: 0 success, 1 the job failed or was cancelled, 2 usage error,
// 3 server unreachable, 4 rejected by the server (the message says why).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include "reelfarm/v1/jobs.grpc.pb.h"

namespace v1 = reelfarm::v1;

namespace {

constexpr int kExitFailed = 1;
constexpr int kExitUnreachable = 3;
constexpr int kExitRejected = 4;

const char* StateName(v1::JobState s) {
  switch (s) {
    case v1::JOB_STATE_QUEUED: return "queued";
    case v1::JOB_STATE_RUNNING: return "running";
    case v1::JOB_STATE_SUCCEEDED: return "succeeded";
    case v1::JOB_STATE_FAILED: return "failed";
    case v1::JOB_STATE_CANCELLED: return "cancelled";
    case v1::JOB_STATE_PAUSED: return "paused";
    default: return "unknown";
  }
}

const char* TaskStateName(v1::TaskState s) {
  switch (s) {
    case v1::TASK_STATE_PENDING: return "pending";
    case v1::TASK_STATE_LEASED: return "running";
    case v1::TASK_STATE_SUCCEEDED: return "done";
    case v1::TASK_STATE_FAILED: return "failed";
    case v1::TASK_STATE_CANCELLED: return "cancelled";
    default: return "unknown";
  }
}

bool IsTerminal(v1::JobState s) {
  return s == v1::JOB_STATE_SUCCEEDED || s == v1::JOB_STATE_FAILED ||
         s == v1::JOB_STATE_CANCELLED;
}

int ExitFor(const v1::Job& job) {
  return job.state() == v1::JOB_STATE_SUCCEEDED ? 0 : kExitFailed;
}

int ReportRpcError(const grpc::Status& st) {
  static const char* kNames[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
                                 "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                                 "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
                                 "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  int code = st.error_code();
  std::fprintf(stderr, "reelctl: %s: %s\n", code >= 0 && code <= 16 ? kNames[code] : "ERROR",
               st.error_message().c_str());
  if (code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return kExitUnreachable;
  }
  return kExitRejected;
}

std::string ToJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opts;
  opts.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, opts);
  return out;
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

std::string ProgressLine(const v1::Job& j) {
  char buf[256];
  double pct = j.frames_total() ? 100.0 * j.frames_done() / j.frames_total() : 0;
  std::snprintf(buf, sizeof(buf),
                "job %lld %-9s %5.1f%%  frames %lld/%lld  tasks %d/%d  %.1f fps  ETA %s",
                static_cast<long long>(j.id()), StateName(j.state()), pct,
                static_cast<long long>(j.frames_done()),
                static_cast<long long>(j.frames_total()), j.tasks_done(), j.tasks_total(),
                j.fps(), IsTerminal(j.state()) ? "-" : Duration(j.eta_seconds()).c_str());
  return buf;
}

void PrintJob(const v1::Job& j) {
  const auto& u = j.spec().upscale();
  std::printf("job %lld  %s\n", static_cast<long long>(j.id()), StateName(j.state()));
  std::printf("  name      %s (project %s, priority %d)\n", j.spec().name().c_str(),
              j.spec().project().c_str(), j.spec().priority());
  std::printf("  upscale   %s -> %s  model %s x%d  chunk %d\n", u.input().c_str(),
              u.output().c_str(), u.model().c_str(), u.scale(), u.chunk_frames());
  const auto& in = j.input_info();
  std::printf("  input     %dx%d %s %s, %lld frames at %d/%d fps\n", in.width(), in.height(),
              in.codec().c_str(), in.pixel_format().c_str(),
              static_cast<long long>(in.frame_count()), in.fps_num(), in.fps_den());
  std::printf("  output    %dx%d\n", in.width() * u.scale(), in.height() * u.scale());
  std::printf("  progress  %s\n", ProgressLine(j).c_str());
  if (!j.error().empty()) std::printf("  error     %s\n", j.error().c_str());
  if (j.tasks_size() > 0) {
    std::printf("  %-5s %-9s %-13s %-10s %-8s %s\n", "task", "kind", "frames", "state",
                "attempts", "worker");
    for (const auto& t : j.tasks()) {
      char frames[48] = "-";
      if (t.kind() == v1::TASK_KIND_CHUNK) {
        std::snprintf(frames, sizeof(frames), "%lld-%lld",
                      static_cast<long long>(t.frame_begin()),
                      static_cast<long long>(t.frame_end() - 1));
      }
      std::printf("  %-5d %-9s %-13s %-10s %-8d %s%s%s\n", t.index(),
                  t.kind() == v1::TASK_KIND_CHUNK ? "chunk" : "assemble", frames,
                  TaskStateName(t.state()), t.attempts(), t.worker().c_str(),
                  t.error().empty() ? "" : "  error: ", t.error().c_str());
    }
  }
}

struct Context {
  std::string server;
  bool json = false;
  std::unique_ptr<v1::JobService::Stub> stub;

  void Connect() {
    stub = v1::JobService::NewStub(
        grpc::CreateChannel(server, grpc::InsecureChannelCredentials()));
  }
  // A deadline for unary calls, so an unreachable server fails fast.
  void SetDeadline(grpc::ClientContext* ctx, int seconds = 30) {
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  }
};

int Watch(Context& c, int64_t id) {
  grpc::ClientContext ctx;
  v1::WatchJobRequest req;
  req.set_job_id(id);
  auto reader = c.stub->WatchJob(&ctx, req);
  v1::JobEvent ev;
  v1::Job last;
  const bool tty = !c.json && isatty(STDOUT_FILENO);
  std::string last_line;
  while (reader->Read(&ev)) {
    last = ev.job();
    if (c.json) {
      std::printf("%s\n", ToJson(ev).c_str());
      std::fflush(stdout);
      continue;
    }
    std::string line = ProgressLine(last);
    if (tty) {
      std::printf("\r\033[K%s", line.c_str());
    } else if (line != last_line) {
      std::printf("%s\n", line.c_str());
    }
    last_line = line;
    std::fflush(stdout);
  }
  grpc::Status st = reader->Finish();
  if (tty) std::printf("\n");
  if (!st.ok()) return ReportRpcError(st);
  if (!c.json) {
    if (last.state() == v1::JOB_STATE_SUCCEEDED) {
      std::printf("job %lld succeeded: %s\n", static_cast<long long>(last.id()),
                  last.output().c_str());
    } else {
      std::printf("job %lld %s: %s\n", static_cast<long long>(last.id()),
                  StateName(last.state()), last.error().c_str());
    }
  }
  return ExitFor(last);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"reelctl: submit and follow reelfarm jobs"};
  app.require_subcommand(1);
  Context c;
  const char* env = std::getenv("REELFARM_SERVER");
  c.server = env ? env : "127.0.0.1:7700";
  app.add_option("--server", c.server, "server address (or REELFARM_SERVER)")
      ->capture_default_str();
  app.add_flag("--json", c.json, "print JSON for scripts");

  auto* submit = app.add_subcommand("submit", "submit a job");
  submit->require_subcommand(1);
  auto* up = submit->add_subcommand("upscale", "upscale a movie");
  std::string input, output, model = "bicubic", name, project;
  int scale = 2, chunk = 48, priority = 50, crf = 18;
  bool watch_after = false, overwrite = false;
  up->add_option("--input", input,
                 "input movie or image sequence (x.####.exr), relative to the storage root")
      ->required();
  up->add_option("--output", output,
                 "output .mp4/.mov, or an image sequence x.####.exr/.png/.tif/.dpx, relative "
                 "to the storage root")
      ->required();
  std::string codec, pix_fmt, preset;
  int64_t first_frame = -1, last_frame = -1;
  up->add_option("--codec", codec,
                 "h264, h265, prores_422hq, prores_4444, dnxhr_hq (default: by extension)");
  up->add_option("--pix-fmt", pix_fmt, "pixel format written (default: the codec's)");
  up->add_option("--preset", preset, "x264/x265 preset (default veryfast)");
  auto* first_opt = up->add_option("--first-frame", first_frame, "first frame, inclusive");
  auto* last_opt = up->add_option("--last-frame", last_frame, "last frame, inclusive");
  up->add_option("--model", model, "model name")->capture_default_str();
  up->add_option("--scale", scale, "2, 3 or 4")->capture_default_str();
  auto* chunk_opt = up->add_option("--chunk", chunk, "frames per chunk task")
                        ->capture_default_str();
  auto* crf_opt =
      up->add_option("--crf", crf, "H.264/H.265 quality 0..51")->capture_default_str();
  auto* prio_opt = up->add_option("--priority", priority, "0..100")->capture_default_str();
  up->add_option("--name", name, "job name");
  up->add_option("--project", project, "project (show)");
  up->add_flag("--overwrite", overwrite, "replace an existing output");
  up->add_flag("--watch", watch_after, "follow progress until the job ends");

  int64_t job_id = 0;
  auto* get = app.add_subcommand("get", "show a job and its tasks");
  get->add_option("id", job_id)->required();
  auto* list = app.add_subcommand("list", "list jobs, newest first");
  int limit = 50;
  list->add_option("--limit", limit)->capture_default_str();
  auto* cancel = app.add_subcommand("cancel", "cancel a job");
  cancel->add_option("id", job_id)->required();
  auto* watch = app.add_subcommand("watch", "follow a job's progress until it ends");
  watch->add_option("id", job_id)->required();
  auto* workers = app.add_subcommand("workers", "list connected workers");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help is success; any usage error is 2
  }
  c.Connect();

  if (*up) {
    v1::SubmitJobRequest req;
    v1::JobSpec* js = req.mutable_spec();
    js->set_name(name);
    js->set_project(project);
    if (prio_opt->count()) js->set_priority(priority);
    v1::UpscaleSpec* u = js->mutable_upscale();
    u->set_input(input);
    u->set_output(output);
    u->set_model(model);
    u->set_scale(scale);
    if (chunk_opt->count()) u->set_chunk_frames(chunk);
    if (crf_opt->count()) u->set_crf(crf);
    u->set_overwrite(overwrite);
    u->mutable_format()->set_codec(codec);
    u->mutable_format()->set_pix_fmt(pix_fmt);
    u->mutable_format()->set_preset(preset);
    if (first_opt->count()) u->set_first_frame(first_frame);
    if (last_opt->count()) u->set_last_frame(last_frame);
    grpc::ClientContext ctx;
    c.SetDeadline(&ctx);
    v1::SubmitJobResponse resp;
    grpc::Status st = c.stub->SubmitJob(&ctx, req, &resp);
    if (!st.ok()) return ReportRpcError(st);
    if (c.json) {
      std::printf("%s\n", ToJson(resp).c_str());
    } else {
      const auto& in = resp.job().input_info();
      std::printf("submitted job %lld: %s (%dx%d, %lld frames) -> %s x%d, %d tasks\n",
                  static_cast<long long>(resp.job_id()), input.c_str(), in.width(),
                  in.height(), static_cast<long long>(in.frame_count()), output.c_str(),
                  scale, resp.job().tasks_total());
    }
    std::fflush(stdout);
    return watch_after ? Watch(c, resp.job_id()) : 0;
  }
  if (*get) {
    grpc::ClientContext ctx;
    c.SetDeadline(&ctx);
    v1::GetJobRequest req;
    req.set_job_id(job_id);
    v1::Job job;
    grpc::Status st = c.stub->GetJob(&ctx, req, &job);
    if (!st.ok()) return ReportRpcError(st);
    if (c.json) {
      std::printf("%s\n", ToJson(job).c_str());
    } else {
      PrintJob(job);
    }
    return 0;
  }
  if (*list) {
    grpc::ClientContext ctx;
    c.SetDeadline(&ctx);
    v1::ListJobsRequest req;
    req.set_limit(limit);
    v1::ListJobsResponse resp;
    grpc::Status st = c.stub->ListJobs(&ctx, req, &resp);
    if (!st.ok()) return ReportRpcError(st);
    if (c.json) {
      std::printf("%s\n", ToJson(resp).c_str());
      return 0;
    }
    std::printf("%-6s %-10s %-7s %-15s %-7s %s\n", "ID", "STATE", "DONE", "FRAMES", "MODEL",
                "OUTPUT");
    for (const auto& j : resp.jobs()) {
      char frames[40];
      std::snprintf(frames, sizeof(frames), "%lld/%lld",
                    static_cast<long long>(j.frames_done()),
                    static_cast<long long>(j.frames_total()));
      std::printf("%-6lld %-10s %5.1f%%  %-15s %-7s %s\n", static_cast<long long>(j.id()),
                  StateName(j.state()),
                  j.frames_total() ? 100.0 * j.frames_done() / j.frames_total() : 0.0, frames,
                  j.spec().upscale().model().c_str(), j.output().c_str());
    }
    return 0;
  }
  if (*cancel) {
    grpc::ClientContext ctx;
    c.SetDeadline(&ctx);
    v1::CancelJobRequest req;
    req.set_job_id(job_id);
    v1::Job job;
    grpc::Status st = c.stub->CancelJob(&ctx, req, &job);
    if (!st.ok()) return ReportRpcError(st);
    if (c.json) {
      std::printf("%s\n", ToJson(job).c_str());
    } else {
      std::printf("job %lld cancelled\n", static_cast<long long>(job.id()));
    }
    return 0;
  }
  if (*watch) return Watch(c, job_id);
  if (*workers) {
    grpc::ClientContext ctx;
    c.SetDeadline(&ctx);
    v1::ListWorkersResponse resp;
    grpc::Status st = c.stub->ListWorkers(&ctx, v1::ListWorkersRequest(), &resp);
    if (!st.ok()) return ReportRpcError(st);
    if (c.json) {
      std::printf("%s\n", ToJson(resp).c_str());
      return 0;
    }
    std::printf("%-24s %-6s %-5s %-6s %s\n", "NAME", "STATE", "SLOTS", "DONE", "TASKS");
    for (const auto& w : resp.workers()) {
      std::string tasks;
      for (const auto& t : w.current_tasks()) tasks += (tasks.empty() ? "" : ",") + t;
      std::printf("%-24s %-6s %-5d %-6lld %s\n", w.name().c_str(), w.state().c_str(),
                  w.slots(), static_cast<long long>(w.tasks_done()), tasks.c_str());
    }
    return 0;
  }
  return 2;
}
