// reelctl: the command-line client for pipeline TDs.
//
// Exit codes: 0 success, 1 the job failed or was cancelled, 2 usage error,
// 3 server unreachable, 4 rejected by the server (the message says why), 5 `wait
// --timeout` passed (`wait` also gives 2 for an unknown job).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include <google/protobuf/util/json_util.h>
#include <grpc/support/log.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/client_interceptor.h>
#include <yaml-cpp/yaml.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_join.h"
#include "cli/job_file.h"
#include "cli/open_url.h"
#include "cli/progress.h"
#include "common/duration.h"
#include "common/grpc_security.h"
#include "common/job_defaults.h"
#include "common/server_list.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "reelfarm/v1/jobs.grpc.pb.h"

namespace v1 = reelfarm::v1;
namespace common = reelfarm::common;
using reelfarm::cli::Display;
using reelfarm::cli::ProgressLine;
using reelfarm::cli::StateName;
using reelfarm::cli::WatchJobs;

namespace {

constexpr int kExitFailed = 1;
constexpr int kExitUnreachable = 3;
constexpr int kExitRejected = 4;

const char* TaskStateName(v1::TaskState s) {
  switch (s) {
    case v1::TASK_STATE_PENDING:
      return "pending";
    case v1::TASK_STATE_LEASED:
      return "running";
    case v1::TASK_STATE_SUCCEEDED:
      return "done";
    case v1::TASK_STATE_FAILED:
      return "failed";
    case v1::TASK_STATE_CANCELLED:
      return "cancelled";
    default:
      return "unknown";
  }
}

int ExitFor(const v1::Job& job) { return job.state() == v1::JOB_STATE_SUCCEEDED ? 0 : kExitFailed; }

// How reelctl reached the server (set once the command line is read), to say why a
// connection failed.
struct Transport {
  std::string server;
  common::ClientTlsOptions tls;
};
Transport transport_used;

// gRPC core logs a failed TLS handshake to stderr ("E1201 ... Handshake failed ..."):
// reelctl says it once, in its own words. GRPC_VERBOSITY in the environment brings the
// core's logs back.
void QuietGrpcLogs() {
  if (std::getenv("GRPC_VERBOSITY") != nullptr) return;
  gpr_set_log_function([](gpr_log_func_args*) {});
}

// The server speaks TLS: a TLS handshake with it gets as far as its certificate.
bool ServerSpeaksTls(const std::string& address) {
  auto channel = grpc::CreateChannel(address, grpc::SslCredentials(grpc::SslCredentialsOptions()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::ListWorkersResponse resp;
  const grpc::Status st =
      v1::JobService::NewStub(channel)->ListWorkers(&ctx, v1::ListWorkersRequest(), &resp);
  return st.error_code() != grpc::StatusCode::UNAVAILABLE ||
         st.error_message().find("certificate verify failed") != std::string::npos;
}

// When a connection failed because reelctl and the server disagree on TLS: which side
// expects what, and the flag that fixes it. Empty for any other failure.
std::string TlsMismatchHint(const grpc::Status& st) {
  if (st.error_code() != grpc::StatusCode::UNAVAILABLE) return "";
  const std::string& msg = st.error_message();
  const std::string& server = transport_used.server;
  if (msg.find("wrong version number") != std::string::npos) {
    return "the server at " + server +
           " speaks plaintext (it runs with --insecure) but reelctl used TLS; give --insecure "
           "(or REELFARM_INSECURE=1, or `insecure: true` in the config file), or run the "
           "server with --tls-cert/--tls-key";
  }
  if (msg.find("certificate verify failed") != std::string::npos) {
    return "the server at " + server +
           " speaks TLS, but its certificate is not signed by a CA reelctl trusts (" +
           (transport_used.tls.ca_file.empty() ? std::string("the system's")
                                               : "--tls-ca " + transport_used.tls.ca_file) +
           "); give --tls-ca FILE with the CA that signed it (or REELFARM_TLS_CA, or "
           "`tls_ca:` in the config file)";
  }
  if (transport_used.tls.insecure && msg.find("Socket closed") != std::string::npos &&
      ServerSpeaksTls(server)) {
    return "the server at " + server +
           " speaks TLS but reelctl used plaintext (--insecure); drop --insecure (and "
           "REELFARM_INSECURE, `insecure:` in the config file) and give --tls-ca FILE when its "
           "certificate comes from a private CA";
  }
  return "";
}

int ReportRpcError(const grpc::Status& st, const std::string& what = "") {
  static const char* kNames[] = {"OK",
                                 "CANCELLED",
                                 "UNKNOWN",
                                 "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED",
                                 "NOT_FOUND",
                                 "ALREADY_EXISTS",
                                 "PERMISSION_DENIED",
                                 "RESOURCE_EXHAUSTED",
                                 "FAILED_PRECONDITION",
                                 "ABORTED",
                                 "OUT_OF_RANGE",
                                 "UNIMPLEMENTED",
                                 "INTERNAL",
                                 "UNAVAILABLE",
                                 "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  int code = st.error_code();
  const std::string hint = TlsMismatchHint(st);
  if (!hint.empty()) {
    std::fprintf(stderr, "reelctl: %s%s\n", what.c_str(), hint.c_str());
    return kExitUnreachable;
  }
  std::fprintf(stderr, "reelctl: %s%s: %s\n", what.c_str(),
               code >= 0 && code <= 16 ? kNames[code] : "ERROR", st.error_message().c_str());
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

// Rows (the first is the header) in columns as wide as their widest cell, one space
// apart, the last column unpadded; an empty cell shows as "-".
std::vector<std::string> Columns(const std::vector<std::vector<std::string>>& rows,
                                 const std::string& indent = "") {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 1);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::vector<std::string> lines;
  for (const auto& row : rows) {
    std::string line = indent;
    for (size_t i = 0; i < row.size(); ++i) {
      const std::string cell = row[i].empty() ? "-" : row[i];
      line += cell;
      if (i + 1 < row.size()) line += std::string(widths[i] - cell.size() + 1, ' ');
    }
    lines.push_back(line);
  }
  return lines;
}

template <typename T, typename Show>
std::string Join(const T& items, const std::string& sep, Show show) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : sep) + show(item);
  return out;
}

// "1-8,12": runs of consecutive seeds as ranges, as --seeds takes them.
std::string SeedRanges(const google::protobuf::RepeatedField<int64_t>& seeds) {
  std::string out;
  for (int i = 0; i < seeds.size();) {
    int end = i;
    while (end + 1 < seeds.size() && seeds[end + 1] == seeds[end] + 1) ++end;
    out += (out.empty() ? "" : ",") + std::to_string(seeds[i]);
    if (end > i) out += "-" + std::to_string(seeds[end]);
    i = end + 1;
  }
  return out;
}

std::string Number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

// A wedge axis: its list, else its single value ("" when neither is set).
template <typename T, typename Show>
std::string Axis(const google::protobuf::RepeatedField<T>& list, T single, Show show) {
  if (list.empty()) return single == T() ? "" : show(single);
  return Join(list, ", ", show);
}

std::string Axis(const google::protobuf::RepeatedPtrField<std::string>& list,
                 const std::string& single, bool quote) {
  auto show = [quote](const std::string& v) { return quote ? "\"" + v + "\"" : v; };
  if (list.empty()) return single.empty() ? "" : show(single);
  return Join(list, ", ", show);
}

// A generate job's spec: the model, the takes, and each axis of its wedge.
void PrintGenerate(const v1::Job& j) {
  const auto& g = j.spec().generate();
  std::printf("  generate  model %s: %d takes of %d frames at %dx%d, %d fps\n", g.model().c_str(),
              j.tasks_total(), g.frames(), g.width(), g.height(), g.fps());
  auto line = [](const char* label, const std::string& value) {
    if (!value.empty()) std::printf("  %-9s %s\n", label, value.c_str());
  };
  line("prompts", Axis(g.prompts(), g.prompt(), true));
  if (!g.negative_prompt().empty()) line("negative", "\"" + g.negative_prompt() + "\"");
  line("seeds", g.seeds().empty() ? std::string("0") : SeedRanges(g.seeds()));
  line("steps", Axis(g.step_counts(), g.steps(), [](int v) { return std::to_string(v); }));
  line("guidance", Axis(g.guidance_scales(), g.guidance_scale(), Number));
  line("sampler", Axis(g.samplers(), g.sampler(), false));
  for (int i = 0; i < g.takes_size(); ++i) {
    const auto& t = g.takes(i);
    std::string fields;
    if (t.has_prompt()) fields += " prompt \"" + t.prompt() + "\"";
    if (t.has_seed()) fields += " seed " + std::to_string(t.seed());
    if (t.has_steps()) fields += " steps " + std::to_string(t.steps());
    if (t.has_guidance_scale()) fields += " guidance " + Number(t.guidance_scale());
    if (t.has_sampler()) fields += " sampler " + t.sampler();
    std::printf("  take %-4d%s\n", i + 1, fields.c_str());
  }
  if (!g.init().empty()) line("init", g.init() + " at strength " + Number(g.strength()));
  line("output", g.output() + " (each take's name replaces {take} or the file's stem)");
}

void PrintJob(const v1::Job& j) {
  const auto& u = j.spec().upscale();
  const bool generate = j.spec().has_generate();
  std::printf("job %lld  %s\n", static_cast<long long>(j.id()), StateName(j.state()));
  std::printf("  name      %s (project %s, priority %d)\n", j.spec().name().c_str(),
              j.spec().project().c_str(), j.spec().priority());
  if (!j.owner().empty()) std::printf("  owner     %s\n", j.owner().c_str());
  if (j.spec().depends_on_size() > 0) {
    std::string deps;
    for (int64_t d : j.spec().depends_on()) deps += (deps.empty() ? "" : ", ") + std::to_string(d);
    std::printf("  after     job %s\n", deps.c_str());
  }
  if (generate) PrintGenerate(j);
  const auto& in = j.input_info();
  if (!generate) {
    std::printf("  upscale   %s -> %s  model %s x%d  chunk %d\n", u.input().c_str(),
                u.output().c_str(), u.model().c_str(), u.scale(), u.chunk_frames());
    std::printf("  input     %dx%d %s %s, %lld frames at %d/%d fps\n", in.width(), in.height(),
                in.codec().c_str(), in.pixel_format().c_str(),
                static_cast<long long>(in.frame_count()), in.fps_num(), in.fps_den());
    if (in.held_frames() > 0 || in.dropped_frames() > 0) {
      std::printf(
          "  timeline  %lld coded frames on the constant-rate grid: %lld held, %lld dropped\n",
          static_cast<long long>(in.coded_frames()), static_cast<long long>(in.held_frames()),
          static_cast<long long>(in.dropped_frames()));
    }
    if (in.tail_cut_frames() > 0) {
      std::printf(
          "  tail      cut: the file is truncated; its last %lld frames do not decode "
          "and are left out\n",
          static_cast<long long>(in.tail_cut_frames()));
    }
    if (in.rotation() != 0) {
      std::printf("  rotation  %d degrees clockwise, applied: frames are read upright\n",
                  in.rotation());
    }
    std::printf("  output    %dx%d\n", in.width() * u.scale(), in.height() * u.scale());
  }
  std::printf("  progress  %s\n", ProgressLine(j, false).c_str());
  if (!j.error().empty()) std::printf("  error     %s\n", j.error().c_str());
  if (j.tasks_size() > 0) {
    std::vector<std::vector<std::string>> rows = {
        {"task", "kind", generate ? "take" : "frames", "state", "attempts", "worker", "qc"}};
    for (const auto& t : j.tasks()) {
      std::string what;
      if (t.kind() == v1::TASK_KIND_TAKE) {
        char take[32];
        std::snprintf(take, sizeof(take), "_take%03d", t.index() + 1);
        what = j.spec().name() + take;
      } else if (t.kind() == v1::TASK_KIND_CHUNK) {
        what = std::to_string(t.frame_begin()) + "-" + std::to_string(t.frame_end() - 1);
      }
      rows.push_back({std::to_string(t.index()),
                      t.kind() == v1::TASK_KIND_CHUNK  ? "chunk"
                      : t.kind() == v1::TASK_KIND_TAKE ? "take"
                                                       : "assemble",
                      // Held: prefetched by its worker, waiting for a slot there.
                      what, t.held() ? "held" : TaskStateName(t.state()),
                      std::to_string(t.attempts()), t.worker(),
                      !t.has_qc()              ? "-"
                      : t.qc().flags().empty() ? "ok"
                                               : std::to_string(t.qc().flags_size()) + " flagged"});
    }
    const std::vector<std::string> lines = Columns(rows, "  ");
    std::printf("%s\n", lines[0].c_str());
    for (int k = 0; k < j.tasks_size(); ++k) {
      const auto& t = j.tasks(k);
      std::printf("%s\n", lines[k + 1].c_str());
      // Every attempt that failed, with its worker and error.
      for (int i = 0; i < t.errors_size() && i < t.workers_size(); ++i) {
        if (t.errors(i).empty()) continue;
        std::printf("        attempt %d on %s: %s\n", i + 1, t.workers(i).c_str(),
                    t.errors(i).c_str());
      }
      for (const auto& flag : t.qc().flags()) std::printf("        qc %s\n", flag.c_str());
      if (!t.thumbnail().empty()) std::printf("        thumbnail %s\n", t.thumbnail().c_str());
      if (!t.preview().empty()) std::printf("        preview %s\n", t.preview().c_str());
    }
  }
}

// Server, token and TLS: flags, else $REELFARM_SERVER / $REELFARM_TOKEN /
// $REELFARM_TLS_CA / $REELFARM_INSECURE=1, else the config file ($REELFARM_CONFIG,
// default ~/.config/reelfarm/reelctl.yaml: `server:`, `token:`, `tls_ca:`, `insecure:`).
void LoadDefaults(std::string* server, std::string* token, common::ClientTlsOptions* tls) {
  std::string path;
  if (const char* p = std::getenv("REELFARM_CONFIG")) {
    path = p;
  } else if (const char* home = std::getenv("HOME")) {
    path = std::string(home) + "/.config/reelfarm/reelctl.yaml";
  }
  try {
    if (!path.empty() && std::ifstream(path)) {
      YAML::Node config = YAML::LoadFile(path);
      if (config["server"]) *server = config["server"].as<std::string>();
      if (config["token"]) *token = config["token"].as<std::string>();
      if (config["tls_ca"]) tls->ca_file = config["tls_ca"].as<std::string>();
      if (config["insecure"]) tls->insecure = config["insecure"].as<bool>();
    }
  } catch (const YAML::Exception& e) {
    std::fprintf(stderr, "reelctl: config '%s': %s (ignored)\n", path.c_str(), e.what());
  }
  if (const char* env = std::getenv("REELFARM_SERVER")) *server = env;
  if (const char* env = std::getenv("REELFARM_TOKEN")) *token = env;
  if (const char* env = std::getenv("REELFARM_TLS_CA")) tls->ca_file = env;
  if (const char* env = std::getenv("REELFARM_INSECURE")) tls->insecure = std::string(env) == "1";
}

struct Context {
  std::string server;       // after Connect(): the one the commands go to (the leader)
  std::string server_list;  // after Connect(): --server as given
  std::string token;
  common::ClientTlsOptions tls;
  bool json = false;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::JobService::Stub> stub;

  // `server` may list several servers sharing one PostgreSQL database: the command
  // then goes to the leader. False (after a message) for a malformed list or TLS files
  // that cannot be read.
  bool Connect() {
    absl::StatusOr<common::ServerList> servers = common::ServerList::Parse(server);
    if (!servers.ok()) {
      std::fprintf(stderr, "reelctl: --server: %s\n",
                   std::string(servers.status().message()).c_str());
      return false;
    }
    // Reads the TLS files once, so that a missing one is reported before any call.
    auto first = common::MakeChannel(servers->current(), tls, token);
    if (!first.ok()) {
      std::fprintf(stderr, "reelctl: %s\n", std::string(first.status().message()).c_str());
      return false;
    }
    server_list = server;
    transport_used = {servers->current(), tls};
    server = servers->size() > 1 ? FindLeader(*servers) : servers->current();
    transport_used.server = server;
    channel = MakeChannel(server);
    stub = v1::JobService::NewStub(channel);
    return true;
  }
  // Connect() has checked the TLS files; one that went away since fails the calls.
  std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address) const {
    auto ch = common::MakeChannel(address, tls, token);
    return ch.ok() ? *ch
                   : grpc::CreateChannel("unix:/nonexistent", grpc::InsecureChannelCredentials());
  }
  // The server that answers a JobService call with anything but UNAVAILABLE leads; a
  // standby's answer names the leader, which is tried next. A few rounds, so that a
  // failover in progress (a standby about to lead) is waited for; else the current
  // address, and the command reports its error.
  std::string FindLeader(common::ServerList& servers) {
    const size_t tries = 3 * servers.size() + 2;
    for (size_t i = 0; i < tries; ++i) {
      grpc::ClientContext ctx;
      SetDeadline(&ctx, 3);
      v1::ListWorkersRequest req;
      v1::ListWorkersResponse resp;
      const grpc::Status st =
          v1::JobService::NewStub(MakeChannel(servers.current()))->ListWorkers(&ctx, req, &resp);
      if (st.error_code() != grpc::StatusCode::UNAVAILABLE &&
          st.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
        return servers.current();
      }
      std::string leader;
      const auto& trailers = ctx.GetServerTrailingMetadata();
      if (auto it = trailers.find("reelfarm-leader"); it != trailers.end()) {
        leader.assign(it->second.data(), it->second.size());
      }
      if (leader.empty() && (i + 1) % servers.size() == 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
      }
      servers.Next(leader);
    }
    return servers.current();
  }
  // A deadline for unary calls, so an unreachable server fails fast.
  void SetDeadline(grpc::ClientContext* ctx, int seconds = 30) {
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  }
};

// Follows jobs to their end: bars on a terminal, plain lines when piped, JSON events

using JobStub = v1::JobService::Stub;

// A unary method of a generated stub: JobService's, or grpc.health.v1's Check.
template <typename Stub, typename Req, typename Resp>
using UnaryMethod = grpc::Status (Stub::*)(grpc::ClientContext*, const Req&, Resp*);

// One unary call with a deadline, so that an unreachable server fails fast. A connect
// that gRPC took for failed when it was not (common::IsSpuriousConnectFailure; nothing
// reached the server) is called once more, waiting for gRPC's next connect (its
// back-off, about 1 s) within the same deadline.
template <typename Stub, typename Req, typename Resp>
grpc::Status CallUnary(Stub& stub, UnaryMethod<Stub, Req, Resp> method, const Req& req, Resp* resp,
                       int deadline_seconds = 30) {
  const auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(deadline_seconds);
  grpc::ClientContext ctx;
  ctx.set_deadline(deadline);
  const grpc::Status st = (stub.*method)(&ctx, req, resp);
  if (!common::IsSpuriousConnectFailure(st)) return st;
  grpc::ClientContext again;
  again.set_deadline(deadline);
  again.set_wait_for_ready(true);
  return (stub.*method)(&again, req, resp);
}

// With --json, `m` as one line of JSON; else what `text` prints. Exit 0.
template <typename Text>
int Print(const Context& c, const google::protobuf::Message& m, Text text) {
  if (c.json) {
    std::printf("%s\n", ToJson(m).c_str());
  } else {
    text();
  }
  return 0;
}

// The JobService call of a command: an error is reported (exit 3 when the server is
// unreachable, 4 when it refused); else `show` gets the answer and gives the exit code.
template <typename Req, typename Resp, typename Show>
int Run(Context& c, UnaryMethod<JobStub, Req, Resp> method, const Req& req, Show show) {
  Resp resp;
  const grpc::Status st = CallUnary(*c.stub, method, req, &resp);
  if (!st.ok()) return ReportRpcError(st);
  return show(resp);
}

// Run() for the usual command: the answer as JSON with --json, else as `text` prints it.
template <typename Req, typename Resp, typename Text>
int RunAndPrint(Context& c, UnaryMethod<JobStub, Req, Resp> method, const Req& req, Text text) {
  return Run(c, method, req, [&](const Resp& resp) { return Print(c, resp, [&] { text(resp); }); });
}
// with --json. Exit 0 when every job succeeded, 1 otherwise.
int Watch(Context& c, const std::vector<int64_t>& ids) {
  const Display display = c.json                  ? Display::kJson
                          : isatty(STDOUT_FILENO) ? Display::kTerminal
                                                  : Display::kLines;
  // A stream cut by a change of leader (the leader killed, or shutting down) goes on
  // with the new leader when --server lists several servers.
  std::mutex mu;
  std::shared_ptr<v1::JobService::Stub> stub = v1::JobService::NewStub(c.channel);
  int reconnects = 0;
  auto stubs = [&](const grpc::Status* failed) -> std::shared_ptr<v1::JobService::Stub> {
    std::lock_guard<std::mutex> lock(mu);
    if (failed == nullptr) return stub;
    // Nothing reached the server: the same one again (WatchJobs waits for the channel).
    if (common::IsSpuriousConnectFailure(*failed)) return ++reconnects > 10 ? nullptr : stub;
    const bool cut = failed->error_code() == grpc::StatusCode::UNAVAILABLE ||
                     failed->error_code() == grpc::StatusCode::CANCELLED;
    absl::StatusOr<common::ServerList> servers = common::ServerList::Parse(c.server_list);
    if (!cut || !servers.ok() || servers->size() < 2 || ++reconnects > 10) return nullptr;
    c.server = c.FindLeader(*servers);
    stub = v1::JobService::NewStub(c.MakeChannel(c.server));
    return stub;
  };
  grpc::Status st;
  std::vector<v1::Job> jobs = WatchJobs(stubs, ids, display, stdout, &st);
  if (!st.ok()) return ReportRpcError(st);
  int rc = 0;
  for (const auto& j : jobs) {
    if (!c.json) {
      if (j.state() == v1::JOB_STATE_SUCCEEDED) {
        std::printf("job %lld succeeded: %s\n", static_cast<long long>(j.id()), j.output().c_str());
      } else {
        std::printf("job %lld %s: %s\n", static_cast<long long>(j.id()), StateName(j.state()),
                    j.error().c_str());
      }
    }
    rc = std::max(rc, ExitFor(j));
  }
  return rc;
}

// What a validated (not submitted) job would make: its tasks, one a line.
void PrintDryRun(const std::string& name, const v1::SubmitJobResponse& resp) {
  std::printf("job '%s': ok, %d tasks (%lld frames of %dx%d); nothing submitted\n", name.c_str(),
              resp.job().tasks_total(), static_cast<long long>(resp.job().frames_total()),
              resp.job().input_info().width(), resp.job().input_info().height());
  for (const auto& t : resp.job().tasks()) {
    if (t.kind() == v1::TASK_KIND_TAKE) {
      std::printf("  task %d  take      %s_take%03d\n", t.index(), resp.job().spec().name().c_str(),
                  t.index() + 1);
    } else if (t.kind() == v1::TASK_KIND_CHUNK) {
      std::printf("  task %d  chunk     frames %lld-%lld\n", t.index(),
                  static_cast<long long>(t.frame_begin()),
                  static_cast<long long>(t.frame_end() - 1));
    } else {
      std::printf("  task %d  assemble  %s\n", t.index(),
                  resp.job().spec().upscale().output().c_str());
    }
  }
}

// Dry runs: why the server could not find `job`'s input now, when a job of the file
// it depends on makes it (the server probes it when that job succeeds); else "".
// An upscale dependency makes its output; a generate one, its takes' outputs.
std::string MadeByFileJob(const reelfarm::cli::FileJob& job, const grpc::Status& st,
                          const std::map<std::string, v1::JobSpec>& specs) {
  const std::string& input = job.spec.upscale().input();
  if (st.error_code() != grpc::StatusCode::NOT_FOUND || input.empty() ||
      st.error_message().find("upscale.input '" + input + "'") == std::string::npos) {
    return "";
  }
  for (const std::string& dep : job.after) {
    auto it = specs.find(dep);
    if (it == specs.end()) continue;
    if (it->second.has_generate() || it->second.upscale().output() == input) {
      return "input " + input + " is made by a job of this file ('" + dep +
             "'); checked when it runs";
    }
  }
  return "";
}

// Submits the jobs of a file in dependency order, naming each job's dependencies by
// the ids the server gave. With dry_run, each spec is validated and its tasks printed;
// a job whose input a job of the file makes is listed, its input checked when it runs.
// With --json, stdout holds one array: per job, its SubmitJobResponse with the job's
// "name" in the file and, for dry runs, "checked" (false, with a "note" saying why, for
// such a job); anything else goes to stderr.
int SubmitFile(Context& c, const std::string& path, const std::vector<std::string>& sets,
               bool dry_run, bool watch) {
  auto jobs = reelfarm::cli::LoadJobFile(
      path, sets, [](const std::string& name) { return std::getenv(name.c_str()); });
  if (!jobs.ok()) {
    std::fprintf(stderr, "reelctl: %s\n", std::string(jobs.status().message()).c_str());
    return 2;
  }
  std::map<std::string, int64_t> ids;
  std::map<std::string, v1::JobSpec> specs;  // name -> spec, for dry runs
  std::vector<int64_t> submitted;
  nlohmann::json json_out = nlohmann::json::array();
  FILE* human = c.json ? stderr : stdout;
  for (const auto& job : *jobs) {
    v1::SubmitJobRequest req;
    *req.mutable_spec() = job.spec;
    req.set_validate_only(dry_run);
    if (!dry_run) {
      for (const std::string& dep : job.after) req.mutable_spec()->add_depends_on(ids.at(dep));
    }
    specs[job.name] = job.spec;
    v1::SubmitJobResponse resp;
    const grpc::Status st = CallUnary(*c.stub, &JobStub::SubmitJob, req, &resp);
    const std::string deferred = dry_run && !st.ok() ? MadeByFileJob(job, st, specs) : "";
    if (!st.ok() && deferred.empty()) return ReportRpcError(st, "job '" + job.name + "': ");
    if (!deferred.empty()) *resp.mutable_job()->mutable_spec() = req.spec();
    ids[job.name] = resp.job_id();
    if (!dry_run) submitted.push_back(resp.job_id());
    if (c.json) {
      nlohmann::json j = nlohmann::json::parse(ToJson(resp));
      j["name"] = job.name;
      if (dry_run) j["checked"] = deferred.empty();
      if (!deferred.empty()) j["note"] = deferred;
      json_out.push_back(std::move(j));
    }
    if (!deferred.empty()) {
      std::fprintf(human, "job '%s': %s\n", job.name.c_str(), deferred.c_str());
    } else if (!c.json && dry_run) {
      PrintDryRun(job.name, resp);
    } else if (!c.json && job.spec.has_generate()) {
      std::printf("submitted job %lld '%s': %s, %d takes -> %s\n",
                  static_cast<long long>(resp.job_id()), job.name.c_str(),
                  job.spec.generate().model().c_str(), resp.job().tasks_total(),
                  job.spec.generate().output().c_str());
    } else if (!c.json) {
      std::printf("submitted job %lld '%s': %s -> %s\n", static_cast<long long>(resp.job_id()),
                  job.name.c_str(), job.spec.upscale().input().c_str(),
                  job.spec.upscale().output().c_str());
    }
  }
  if (c.json) std::printf("%s\n", json_out.dump().c_str());
  std::fflush(stdout);
  if (watch && !dry_run && !submitted.empty()) return Watch(c, submitted);
  return 0;
}

// Prints each task's lines as "[task N] <line>" (or one JSON object per message).
int Logs(Context& c, int64_t id, int task, bool follow) {
  v1::GetTaskLogsRequest req;
  req.set_job_id(id);
  if (task >= 0) req.set_task_index(task);
  req.set_follow(follow);
  grpc::Status st;
  // A second stream only after a connect that gRPC took for failed (CallUnary).
  for (int attempt = 0; attempt < 2; ++attempt) {
    grpc::ClientContext ctx;
    if (!follow) c.SetDeadline(&ctx, 60);
    ctx.set_wait_for_ready(attempt > 0);
    auto reader = c.stub->GetTaskLogs(&ctx, req);
    v1::TaskLogLines m;
    while (reader->Read(&m)) {
      if (c.json) {
        std::printf("%s\n", ToJson(m).c_str());
      } else {
        for (const auto& line : m.lines()) {
          std::printf("[task %d] %s\n", m.task_index(), line.c_str());
        }
      }
      std::fflush(stdout);
    }
    st = reader->Finish();
    if (!common::IsSpuriousConnectFailure(st)) break;
  }
  if (!st.ok()) return ReportRpcError(st);
  return 0;
}

// grpc.health.v1 Check: exit 0 when SERVING, 1 when not, 3 when unreachable. Meant for
// container health checks and scripts (`reelctl --server HOST:PORT health`).
int Health(Context& c, const std::string& service) {
  using grpc::health::v1::HealthCheckResponse;
  auto stub = grpc::health::v1::Health::NewStub(c.channel);
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  HealthCheckResponse resp;
  const grpc::Status st =
      CallUnary(*stub, &grpc::health::v1::Health::Stub::Check, req, &resp, /*deadline_seconds=*/5);
  if (!st.ok()) return ReportRpcError(st);
  Print(c, resp, [&] {
    std::printf("%s\n", HealthCheckResponse::ServingStatus_Name(resp.status()).c_str());
  });
  return resp.status() == HealthCheckResponse::SERVING ? 0 : kExitFailed;
}

// Submits one job; prints it as JSON or with `describe`; follows it with `watch`.
// With req.validate_only (--dry-run), the server checks the job and answers with the
// tasks it would make; nothing is submitted and nothing is watched.
int SubmitOne(Context& c, const v1::SubmitJobRequest& req, bool watch,
              const std::function<void(const v1::SubmitJobResponse&)>& describe) {
  return Run(c, &JobStub::SubmitJob, req, [&](const v1::SubmitJobResponse& resp) {
    Print(c, resp, [&] {
      if (req.validate_only()) {
        PrintDryRun(req.spec().name(), resp);
      } else {
        describe(resp);
      }
    });
    std::fflush(stdout);
    return watch && !req.validate_only() ? Watch(c, {resp.job_id()}) : 0;
  });
}

// Options every `submit <kind>` takes.
struct JobOptions {
  std::string name, project, request_id;
  int priority = common::kDefaultPriority, max_attempts = common::kDefaultMaxAttempts;
  CLI::Option* priority_opt = nullptr;
  CLI::Option* attempts_opt = nullptr;
  std::vector<int64_t> depends_on;
  std::vector<std::string> requires_tags;
  std::vector<std::string> webhooks;
  bool watch = false;
  bool dry_run = false;
};

void AddJobOptions(CLI::App* sub, JobOptions* o) {
  o->priority_opt = sub->add_option("--priority", o->priority, "0..100")->capture_default_str();
  sub->add_option("--name", o->name, "job name");
  sub->add_option("--project", o->project, "project (show)");
  sub->add_option("--depends-on", o->depends_on, "job ids that must succeed first (repeatable)");
  sub->add_option("--require", o->requires_tags,
                  "worker tag the job needs, KEY=VALUE (repeatable)");
  sub->add_option("--request-id", o->request_id,
                  "your id for this submit: retrying it never makes a second job");
  o->attempts_opt = sub->add_option("--max-attempts", o->max_attempts, "tries per task, 1..10");
  sub->add_option("--webhook", o->webhooks,
                  "http(s) URL the server POSTs a JSON body to when the job ends (repeatable)");
  sub->add_flag("--watch", o->watch, "follow progress until the job ends");
  sub->add_flag("--dry-run", o->dry_run,
                "validate on the server and print the tasks the job would make; submit "
                "nothing");
}

// False (after saying why) for a malformed option.
bool ApplyJobOptions(const JobOptions& o, v1::JobSpec* js) {
  js->set_name(o.name);
  js->set_project(o.project);
  if (o.priority_opt->count()) js->set_priority(o.priority);
  for (int64_t d : o.depends_on) js->add_depends_on(d);
  for (const std::string& t : o.requires_tags) {
    const auto eq = t.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::fprintf(stderr, "reelctl: --require '%s': give KEY=VALUE, e.g. gpu=h100\n", t.c_str());
      return false;
    }
    (*js->mutable_requirements())[t.substr(0, eq)] = t.substr(eq + 1);
  }
  js->set_request_id(o.request_id);
  if (o.attempts_opt->count()) js->set_max_attempts(o.max_attempts);
  for (const std::string& url : o.webhooks) js->add_webhooks(url);
  return true;
}

// Every wedge axis is a repeatable flag: each value given is one value of the axis.
struct GenerateOptions {
  std::string model, negative_prompt, size, output, init, codec;
  std::vector<std::string> prompts, samplers, seeds;
  std::vector<float> guidance;
  std::vector<int> steps;
  int frames = 0, fps = 0;
  float strength = 0;
  bool overwrite = false;
};

void AddGenerateOptions(CLI::App* gen, GenerateOptions* o) {
  gen->add_option("--model", o->model, "denoiser model package")->required();
  gen->add_option("--prompt", o->prompts, "what to generate; repeat it for a wedge of prompts");
  gen->add_option("--negative-prompt", o->negative_prompt, "what to steer away from");
  gen->add_option("--seeds", o->seeds,
                  "seeds of the takes: 7, 1-8 or 1,5,9-12; repeatable (default 0)");
  gen->add_option("--steps", o->steps,
                  "sampler steps; repeat it for a wedge (default: the model's)");
  gen->add_option("--guidance", o->guidance,
                  "classifier-free guidance scale; repeat it for a wedge (default: the model's)");
  gen->add_option("--sampler", o->samplers,
                  "euler or ddim; repeat it for a wedge (default: the model's)");
  gen->add_option("--size", o->size,
                  "WIDTHxHEIGHT, multiples of the model's stride (default 256x256)");
  gen->add_option("--frames", o->frames, "frames per take (default 16)");
  gen->add_option("--fps", o->fps, "frame rate of movies (default 24)");
  gen->add_option("--init", o->init, "image or clip to start from (image-to-video)");
  gen->add_option("--strength", o->strength, "0 < strength <= 1 with --init (default 0.6)");
  gen->add_option("--output", o->output,
                  "output of each take: gen/sh010.mov or gen/sh010.####.png; the take's name "
                  "({name}_take001) replaces '{take}' or the file's stem")
      ->required();
  gen->add_option("--codec", o->codec, "codec (default: by extension)");
  gen->add_flag("--overwrite", o->overwrite, "replace existing take outputs");
}

int SubmitGenerate(Context& c, const JobOptions& jo, const GenerateOptions& go) {
  v1::SubmitJobRequest req;
  req.set_validate_only(jo.dry_run);
  v1::JobSpec* js = req.mutable_spec();
  if (!ApplyJobOptions(jo, js)) return 2;
  v1::GenerateSpec* g = js->mutable_generate();
  g->set_model(go.model);
  if (go.prompts.size() == 1) g->set_prompt(go.prompts[0]);
  if (go.prompts.size() > 1)
    for (const auto& p : go.prompts) g->add_prompts(p);
  g->set_negative_prompt(go.negative_prompt);
  auto seeds = reelfarm::cli::ParseSeeds(go.seeds.empty() ? "0" : absl::StrJoin(go.seeds, ","));
  if (!seeds.ok()) {
    std::fprintf(stderr, "reelctl: %s\n", std::string(seeds.status().message()).c_str());
    return 2;
  }
  for (int64_t s : *seeds) g->add_seeds(s);
  if (!go.size.empty()) {
    auto size = reelfarm::cli::ParseSize(go.size);
    if (!size.ok()) {
      std::fprintf(stderr, "reelctl: %s\n", std::string(size.status().message()).c_str());
      return 2;
    }
    g->set_width(size->first);
    g->set_height(size->second);
  }
  if (go.steps.size() == 1) g->set_steps(go.steps[0]);
  if (go.steps.size() > 1)
    for (int v : go.steps) g->add_step_counts(v);
  if (go.guidance.size() == 1) g->set_guidance_scale(go.guidance[0]);
  if (go.guidance.size() > 1)
    for (float v : go.guidance) g->add_guidance_scales(v);
  if (go.samplers.size() == 1) g->set_sampler(go.samplers[0]);
  if (go.samplers.size() > 1)
    for (const auto& v : go.samplers) g->add_samplers(v);
  g->set_frames(go.frames);
  g->set_fps(go.fps);
  g->set_init(go.init);
  g->set_strength(go.strength);
  g->set_output(go.output);
  g->mutable_format()->set_codec(go.codec);
  g->set_overwrite(go.overwrite);
  return SubmitOne(c, req, jo.watch, [](const v1::SubmitJobResponse& resp) {
    const auto& sg = resp.job().spec().generate();
    std::printf("submitted job %lld '%s': %s, %d takes of %d frames at %dx%d -> %s\n",
                static_cast<long long>(resp.job_id()), resp.job().spec().name().c_str(),
                sg.model().c_str(), resp.job().tasks_total(), sg.frames(), sg.width(), sg.height(),
                sg.output().c_str());
  });
}

struct UpscaleOptions {
  std::string input, output, model = "bicubic", codec, pix_fmt, preset;
  int scale = common::kDefaultScale, chunk = common::kDefaultChunkFrames, crf = common::kDefaultCrf;
  int64_t first_frame = -1, last_frame = -1;
  bool overwrite = false;
  CLI::Option* first_opt = nullptr;
  CLI::Option* last_opt = nullptr;
  CLI::Option* chunk_opt = nullptr;
  CLI::Option* crf_opt = nullptr;
  std::string colorspace_in, colorspace_out, ocio_config;  // README "Colour management"
  std::string qc;
};

void AddColourOptions(CLI::App* up, UpscaleOptions* o) {
  up->add_option("--colorspace-in", o->colorspace_in,
                 "OpenColorIO colour space of the input, e.g. ACEScg (default: the file's "
                 "tags; README \"Colour management\")");
  up->add_option("--colorspace-out", o->colorspace_out,
                 "OpenColorIO colour space of the output (default: the input's)");
  up->add_option("--ocio-config", o->ocio_config,
                 "OCIO config beneath the storage root (default: the server's)");
}

void AddUpscaleOptions(CLI::App* up, UpscaleOptions* o) {
  up->add_option("--input", o->input,
                 "input movie or image sequence (x.####.exr), relative to the storage root")
      ->required();
  up->add_option("--output", o->output,
                 "output .mp4/.mov, or an image sequence x.####.exr/.png/.tif/.dpx, relative "
                 "to the storage root")
      ->required();
  up->add_option("--codec", o->codec,
                 "h264, h265, prores_422hq, prores_4444, dnxhr_hq (default: by extension)");
  up->add_option("--pix-fmt", o->pix_fmt, "pixel format written (default: the codec's)");
  up->add_option("--preset", o->preset, "x264/x265 preset (default veryfast)");
  o->first_opt = up->add_option("--first-frame", o->first_frame, "first frame, inclusive");
  o->last_opt = up->add_option("--last-frame", o->last_frame, "last frame, inclusive");
  up->add_option("--model", o->model, "model name")->capture_default_str();
  up->add_option("--scale", o->scale, "one of the model's scales (bicubic, lanczos: 2, 3, 4)")
      ->capture_default_str();
  o->chunk_opt =
      up->add_option("--chunk", o->chunk, "frames per chunk task")->capture_default_str();
  o->crf_opt = up->add_option("--crf", o->crf, "H.264/H.265 quality 0..51")->capture_default_str();
  up->add_flag("--overwrite", o->overwrite, "replace an existing output");
  up->add_option("--qc", o->qc,
                 "warn: QC flags (NaN, black, clipped, frozen, seam flicker) are shown; fail: a "
                 "flagged chunk fails (default warn)")
      ->check(CLI::IsMember(std::vector<std::string>{"warn", "fail"}));
  AddColourOptions(up, o);
}

int SubmitUpscale(Context& c, const JobOptions& jo, const UpscaleOptions& uo) {
  v1::SubmitJobRequest req;
  req.set_validate_only(jo.dry_run);
  v1::JobSpec* js = req.mutable_spec();
  if (!ApplyJobOptions(jo, js)) return 2;
  v1::UpscaleSpec* u = js->mutable_upscale();
  u->set_input(uo.input);
  u->set_output(uo.output);
  u->set_model(uo.model);
  u->set_scale(uo.scale);
  if (uo.chunk_opt->count()) u->set_chunk_frames(uo.chunk);
  if (uo.crf_opt->count()) u->set_crf(uo.crf);
  u->set_overwrite(uo.overwrite);
  u->mutable_format()->set_codec(uo.codec);
  u->mutable_format()->set_pix_fmt(uo.pix_fmt);
  u->mutable_format()->set_preset(uo.preset);
  if (uo.first_opt->count()) u->set_first_frame(uo.first_frame);
  if (uo.last_opt->count()) u->set_last_frame(uo.last_frame);
  u->set_colorspace_in(uo.colorspace_in);
  u->set_colorspace_out(uo.colorspace_out);
  u->set_ocio_config(uo.ocio_config);
  u->set_qc(uo.qc);
  return SubmitOne(c, req, jo.watch, [&](const v1::SubmitJobResponse& resp) {
    const auto& in = resp.job().input_info();
    std::printf("submitted job %lld: %s (%dx%d, %lld frames) -> %s x%d, %d tasks\n",
                static_cast<long long>(resp.job_id()), uo.input.c_str(), in.width(), in.height(),
                static_cast<long long>(in.frame_count()), uo.output.c_str(), uo.scale,
                resp.job().tasks_total());
  });
}

int GetJob(Context& c, int64_t id) {
  v1::GetJobRequest req;
  req.set_job_id(id);
  return RunAndPrint(c, &JobStub::GetJob, req, PrintJob);
}

struct ListOptions {
  int limit = 50;
  std::vector<std::string> states;
  std::string project, since;
};

int ListJobs(Context& c, const ListOptions& o) {
  v1::ListJobsRequest req;
  req.set_limit(o.limit);
  req.set_project(o.project);
  for (const std::string& state_name : o.states) {
    v1::JobState state;
    if (!v1::JobState_Parse("JOB_STATE_" + absl::AsciiStrToUpper(state_name), &state)) {
      std::fprintf(stderr, "reelctl: --state '%s' is not a job state\n", state_name.c_str());
      return 2;
    }
    req.add_states(state);
  }
  if (!o.since.empty()) {
    char unit = o.since.back();
    const double n = std::atof(o.since.c_str());
    const double mult = unit == 's'   ? 1
                        : unit == 'm' ? 60
                        : unit == 'h' ? 3600
                        : unit == 'd' ? 86400
                                      : -1;
    if (mult < 0 || n <= 0) {
      std::fprintf(stderr, "reelctl: --since '%s': give a duration such as 30m, 12h, 2d\n",
                   o.since.c_str());
      return 2;
    }
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    req.set_since_unix_ms(now - static_cast<int64_t>(n * mult * 1000));
  }
  return RunAndPrint(c, &JobStub::ListJobs, req, [](const v1::ListJobsResponse& resp) {
    std::vector<std::vector<std::string>> rows = {
        {"ID", "STATE", "DONE", "FRAMES", "MODEL", "OUTPUT"}};
    for (const auto& j : resp.jobs()) {
      char done[16];
      std::snprintf(done, sizeof(done), "%.1f%%",
                    j.frames_total() ? 100.0 * j.frames_done() / j.frames_total() : 0.0);
      rows.push_back(
          {std::to_string(j.id()), StateName(j.state()), done,
           std::to_string(j.frames_done()) + "/" + std::to_string(j.frames_total()),
           j.spec().has_generate() ? j.spec().generate().model() : j.spec().upscale().model(),
           j.output()});
    }
    for (const std::string& line : Columns(rows)) std::printf("%s\n", line.c_str());
  });
}

int CancelJob(Context& c, int64_t id) {
  v1::CancelJobRequest req;
  req.set_job_id(id);
  return RunAndPrint(c, &JobStub::CancelJob, req, [](const v1::Job& job) {
    std::printf("job %lld cancelled\n", static_cast<long long>(job.id()));
  });
}

// Pause, resume, retry and priority: the job as it is afterwards.
template <typename Req>
int ChangeJob(Context& c, UnaryMethod<JobStub, Req, v1::Job> method, const Req& req,
              const char* done) {
  return RunAndPrint(c, method, req, [done](const v1::Job& job) {
    std::printf("job %lld %s: %s, priority %d\n", static_cast<long long>(job.id()), done,
                StateName(job.state()), job.spec().priority());
  });
}

int PauseJob(Context& c, int64_t id) {
  v1::PauseJobRequest req;
  req.set_job_id(id);
  return ChangeJob(c, &JobStub::PauseJob, req, "paused");
}

int ResumeJob(Context& c, int64_t id) {
  v1::ResumeJobRequest req;
  req.set_job_id(id);
  return ChangeJob(c, &JobStub::ResumeJob, req, "resumed");
}

int RetryJob(Context& c, int64_t id) {
  v1::RetryJobRequest req;
  req.set_job_id(id);
  return ChangeJob(c, &JobStub::RetryJob, req, "queued again");
}

int SetPriority(Context& c, int64_t id, int priority) {
  v1::SetPriorityRequest req;
  req.set_job_id(id);
  req.set_priority(priority);
  return ChangeJob(c, &JobStub::SetPriority, req, "reprioritised");
}

int DrainWorker(Context& c, const std::string& name, bool undrain) {
  v1::DrainWorkerRequest req;
  req.set_name(name);
  req.set_drain(!undrain);
  return RunAndPrint(c, &JobStub::DrainWorker, req, [](const v1::Worker& w) {
    std::printf("worker %s %s\n", w.name().c_str(), w.state().c_str());
  });
}

int ListModels(Context& c) {
  return Run(c, &JobStub::ListWorkers, v1::ListWorkersRequest(),
             [&](const v1::ListWorkersResponse& resp) {
               std::map<std::string, std::vector<std::string>> offered;  // model -> workers
               for (const auto& w : resp.workers()) {
                 for (const auto& m : w.models()) offered[m].push_back(w.name());
               }
               if (c.json) {
                 std::printf("%s\n", nlohmann::json(offered).dump().c_str());
                 return 0;
               }
               std::printf("%-24s %s\n", "MODEL", "WORKERS");
               for (const auto& [m, ws] : offered) {
                 std::string names;
                 for (const auto& w : ws) names += (names.empty() ? "" : ",") + w;
                 std::printf("%-24s %s\n", m.c_str(), names.c_str());
               }
               return 0;
             });
}

// Workers in columns as wide as their contents: state, slots, tasks done and held,
// device, tags and models.
int ListWorkers(Context& c) {
  return RunAndPrint(
      c, &JobStub::ListWorkers, v1::ListWorkersRequest(), [](const v1::ListWorkersResponse& resp) {
        std::vector<std::vector<std::string>> rows = {
            {"NAME", "STATE", "SLOTS", "DONE", "TASKS", "DEVICE", "TAGS", "MODELS"}};
        for (const auto& w : resp.workers()) {
          // Tags sorted by key: the map's order is not.
          std::map<std::string, std::string> tags(w.tags().begin(), w.tags().end());
          rows.push_back(
              {w.name(), w.state(), std::to_string(w.slots()), std::to_string(w.tasks_done()),
               Join(w.current_tasks(), ",", [](const std::string& t) { return t; }),
               Join(w.devices(), ",", [](const std::string& d) { return d; }),
               Join(tags, ",", [](const auto& kv) { return kv.first + "=" + kv.second; }),
               Join(w.models(), ",", [](const std::string& m) { return m; })});
        }
        const std::vector<std::string> lines = Columns(rows);
        std::printf("%s\n", lines[0].c_str());
        for (int i = 0; i < resp.workers_size(); ++i) {
          const auto& w = resp.workers(i);
          std::printf("%s\n", lines[i + 1].c_str());
          // Why it gets no work: the last lease that expired on it.
          if (w.state() == "unhealthy") {
            std::printf("    %d lease(s) expired, no heartbeat since; last: %s\n",
                        w.leases_expired(), w.unhealthy_reason().c_str());
          }
        }
      });
}

// A subcommand, and what runs it once the command line is parsed and the server found.
struct Command {
  CLI::App* app;
  std::function<int(Context&)> run;
};

// `submit upscale ...`, `submit generate ...`, or `submit -f FILE`.
Command AddSubmit(CLI::App& app) {
  struct Options {
    std::string job_file;
    std::vector<std::string> sets;
    bool dry_run = false, watch = false;
    // One set each: an option object is bound to one subcommand (sharing one struct let
    // `generate`'s options replace `upscale`'s, and --priority was lost).
    JobOptions up_jo, gen_jo;
    UpscaleOptions up;
    GenerateOptions gen;
  };
  auto o = std::make_shared<Options>();
  auto* submit = app.add_subcommand(
      "submit", "submit a job: `submit upscale ...`, or the jobs of a file with -f");
  submit->require_subcommand(0, 1);
  submit->add_option("-f,--file", o->job_file,
                     "YAML or JSON job file: one spec, a list, or {jobs: [...]}; depends_on "
                     "may name jobs of the file; ${VAR} comes from the environment");
  submit->add_option("--set", o->sets, "override a field in every job, e.g. upscale.crf=20");
  submit->add_flag("--dry-run", o->dry_run,
                   "validate on the server and print the tasks each job would make");
  submit->add_flag("--watch", o->watch, "follow the submitted jobs until they end");
  auto* up = submit->add_subcommand("upscale", "upscale a movie");
  auto* gen = submit->add_subcommand(
      "generate", "generate takes with a denoiser model: a wedge of prompts x seeds");
  AddJobOptions(up, &o->up_jo);
  AddJobOptions(gen, &o->gen_jo);
  AddUpscaleOptions(up, &o->up);
  AddGenerateOptions(gen, &o->gen);
  return {submit, [o, up, gen](Context& c) {
            // `submit --dry-run/--watch KIND ...` means the same as `submit KIND ... --dry-run`.
            for (JobOptions* jo : {&o->up_jo, &o->gen_jo}) {
              jo->dry_run |= o->dry_run;
              jo->watch |= o->watch;
            }
            if (*gen) return SubmitGenerate(c, o->gen_jo, o->gen);
            if (*up) return SubmitUpscale(c, o->up_jo, o->up);
            if (o->job_file.empty()) {
              std::fprintf(stderr,
                           "reelctl: submit needs `upscale ...`, `generate ...` or -f FILE\n");
              return 2;
            }
            return SubmitFile(c, o->job_file, o->sets, o->dry_run, o->watch);
          }};
}

// A subcommand without arguments.
Command AddCommand(CLI::App& app, const char* name, const char* help, int (*run)(Context&)) {
  return {app.add_subcommand(name, help), run};
}

// A subcommand whose one argument is a job id.
Command AddJobCommand(CLI::App& app, const char* name, const char* help,
                      int (*run)(Context&, int64_t)) {
  auto id = std::make_shared<int64_t>(0);
  CLI::App* sub = app.add_subcommand(name, help);
  sub->add_option("id", *id)->required();
  return {sub, [id, run](Context& c) { return run(c, *id); }};
}

Command AddList(CLI::App& app) {
  auto o = std::make_shared<ListOptions>();
  auto* list = app.add_subcommand("list", "list jobs, newest first");
  list->add_option("--limit", o->limit)->capture_default_str();
  list->add_option("--state", o->states,
                   "only these states: queued running succeeded failed cancelled paused "
                   "waiting (repeatable)");
  list->add_option("--project", o->project, "only this project");
  list->add_option("--since", o->since, "only jobs created in the last 30m, 12h, 2d ...");
  return {list, [o](Context& c) { return ListJobs(c, *o); }};
}

Command AddWatch(CLI::App& app) {
  auto ids = std::make_shared<std::vector<int64_t>>();
  auto* watch = app.add_subcommand("watch", "follow jobs' progress until they end");
  watch->add_option("ids", *ids, "job ids")->required();
  return {watch, [ids](Context& c) { return Watch(c, *ids); }};
}

Command AddPriority(CLI::App& app) {
  auto id = std::make_shared<int64_t>(0);
  auto priority = std::make_shared<int>(50);
  auto* prio = app.add_subcommand("priority", "change a job's priority (0..100)");
  prio->add_option("id", *id)->required();
  prio->add_option("priority", *priority)->required();
  return {prio, [id, priority](Context& c) { return SetPriority(c, *id, *priority); }};
}

Command AddDrain(CLI::App& app) {
  auto name = std::make_shared<std::string>();
  auto undrain = std::make_shared<bool>(false);
  auto* drain = app.add_subcommand("drain", "let a worker finish its tasks and take no more");
  drain->add_option("worker", *name)->required();
  drain->add_flag("--undo", *undrain, "let the worker take work again");
  return {drain, [name, undrain](Context& c) { return DrainWorker(c, *name, *undrain); }};
}

// `reelctl open JOB`: prints the job's monitor URL (after checking the job exists), and
// with --browser opens it with xdg-open.
Command AddOpen(CLI::App& app) {
  struct Options {
    int64_t id = 0;
    std::string web;
    bool browser = false;
  };
  auto o = std::make_shared<Options>();
  if (const char* env = std::getenv("REELFARM_WEB")) o->web = env;
  auto* open = app.add_subcommand("open", "print (or open) a job's page in the farm monitor");
  open->add_option("id", o->id)->required();
  open->add_option("--web", o->web,
                   "the monitor's base URL, e.g. https://farm:7780 (or REELFARM_WEB; default: "
                   "the --server host at port 7780)");
  open->add_flag("--browser", o->browser, "open it with xdg-open");
  return {open, [o](Context& c) {
            v1::GetJobRequest req;
            req.set_job_id(o->id);
            return Run(c, &JobStub::GetJob, req, [&](const v1::Job&) {
              const std::string url =
                  reelfarm::cli::MonitorJobUrl(c.server, c.tls.insecure, o->web, o->id);
              std::printf("%s\n", url.c_str());
              if (!o->browser) return 0;
              const std::string cmd = "xdg-open '" + url + "' >/dev/null 2>&1";
              if (std::system(cmd.c_str()) == 0) return 0;
              std::fprintf(stderr, "reelctl: xdg-open failed; open the URL above\n");
              return 1;
            });
          }};
}

Command AddLogs(CLI::App& app) {
  struct Options {
    int64_t id = 0;
    int task = -1;
    bool follow = false;
  };
  auto o = std::make_shared<Options>();
  auto* logs = app.add_subcommand("logs", "show what workers logged for a job's tasks");
  logs->add_option("id", o->id)->required();
  logs->add_option("--task", o->task, "only this task (index, as in `reelctl get`)");
  logs->add_flag("--follow,-f", o->follow, "keep printing new lines until the job ends");
  return {logs, [o](Context& c) { return Logs(c, o->id, o->task, o->follow); }};
}

Command AddHealth(CLI::App& app) {
  auto service = std::make_shared<std::string>();
  auto* health = app.add_subcommand(
      "health", "check a server's or worker's gRPC health service (exit 0 when SERVING)");
  health->add_option("--service", *service,
                     "service to check, e.g. reelfarm.v1.JobService (default: overall)");
  return {health, [service](Context& c) { return Health(c, *service); }};
}

// `reelctl wait JOB...`: blocks until every job has ended. Exit codes (also in
// `reelctl wait --help` and the README): see kWaitHelp.
constexpr int kExitWaitTimeout = 5;
constexpr const char* kWaitHelp =
    "block until the jobs end. Exit 0: all succeeded; 1: one or more failed or were "
    "cancelled; 2: usage error or unknown job; 3: server unreachable; 4: refused by the "
    "server (e.g. permission); 5: --timeout passed first";

// Wakes `reelctl wait` when a job it waits for ends: one WatchJob stream per job, read
// on a thread of its own (the server closes it once the job has ended). So wait returns
// as the last job ends, where a poll every half second returned up to 0.5 s later (a
// job of 5 s measured 5.2-5.7 s). A stream that breaks (a failover, a server gone) only
// brings the poll back to every half second; GetJob stays what wait reports from.
class JobEndWaiter {
 public:
  JobEndWaiter(const std::shared_ptr<grpc::Channel>& channel, const std::vector<int64_t>& ids)
      : stub_(v1::JobService::NewStub(channel)) {
    for (int64_t id : ids) {
      auto ctx = std::make_unique<grpc::ClientContext>();
      grpc::ClientContext* raw = ctx.get();
      contexts_.push_back(std::move(ctx));
      readers_.emplace_back([this, raw, id] { Follow(raw, id); });
    }
  }
  ~JobEndWaiter() {
    for (auto& ctx : contexts_) ctx->TryCancel();
    for (auto& t : readers_) t.join();
  }
  JobEndWaiter(const JobEndWaiter&) = delete;
  JobEndWaiter& operator=(const JobEndWaiter&) = delete;

  // Blocks until a job ended (or a stream broke) since the last call, or `at_most`
  // passed; at most half a second once a stream has broken.
  void Wait(std::chrono::milliseconds at_most) {
    std::unique_lock<std::mutex> lock(mu_);
    if (broken_) at_most = std::min(at_most, std::chrono::milliseconds(500));
    changed_.wait_for(lock, at_most, [&] { return version_ != seen_; });
    seen_ = version_;
  }

 private:
  void Follow(grpc::ClientContext* ctx, int64_t id) {
    v1::WatchJobRequest req;
    req.set_job_id(id);
    auto reader = stub_->WatchJob(ctx, req);
    v1::JobEvent ev;
    bool ended = false;
    while (!ended && reader->Read(&ev)) ended = reelfarm::cli::IsTerminal(ev.job().state());
    // Closed with OK: the job has ended (also when it had before the stream opened).
    const grpc::Status st = reader->Finish();
    std::lock_guard<std::mutex> lock(mu_);
    if (!ended && !st.ok() && st.error_code() != grpc::StatusCode::CANCELLED) broken_ = true;
    ++version_;
    changed_.notify_all();
  }

  std::unique_ptr<v1::JobService::Stub> stub_;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts_;
  std::mutex mu_;
  std::condition_variable changed_;
  uint64_t version_ = 0;  // streams ended (their job, or broken)
  uint64_t seen_ = 0;
  bool broken_ = false;
  std::vector<std::thread> readers_;  // last: joined before the rest goes
};

int Wait(Context& c, const std::vector<int64_t>& ids, const std::string& timeout) {
  int64_t timeout_ms = 0;
  if (!timeout.empty()) {
    absl::StatusOr<int64_t> t = common::ParseAge(timeout, "--timeout");
    if (!t.ok()) {
      std::fprintf(stderr, "reelctl: %s\n", std::string(t.status().message()).c_str());
      return 2;
    }
    timeout_ms = *t;
  }
  const auto start = std::chrono::steady_clock::now();
  std::vector<int64_t> left = ids;
  int rc = 0;
  std::unique_ptr<JobEndWaiter> ends;
  for (;;) {
    std::vector<int64_t> still;
    for (int64_t id : left) {
      v1::GetJobRequest req;
      req.set_job_id(id);
      v1::Job job;
      const grpc::Status st = CallUnary(*c.stub, &JobStub::GetJob, req, &job);
      if (st.error_code() == grpc::StatusCode::NOT_FOUND) {
        ReportRpcError(st, "job " + std::to_string(id) + ": ");
        return 2;
      }
      if (!st.ok()) return ReportRpcError(st);
      if (!reelfarm::cli::IsTerminal(job.state())) {
        still.push_back(id);
        continue;
      }
      job.clear_tasks();
      if (c.json) {
        std::printf("%s\n", ToJson(job).c_str());
      } else if (job.state() == v1::JOB_STATE_SUCCEEDED) {
        std::printf("job %lld succeeded: %s\n", static_cast<long long>(id), job.output().c_str());
      } else {
        std::printf("job %lld %s: %s\n", static_cast<long long>(id), StateName(job.state()),
                    job.error().c_str());
      }
      std::fflush(stdout);
      rc = std::max(rc, ExitFor(job));
    }
    left = std::move(still);
    if (left.empty()) return rc;
    const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - start)
                            .count();
    if (timeout_ms > 0 && waited >= timeout_ms) {
      std::fprintf(stderr, "reelctl: --timeout %s passed; %zu job(s) have not ended\n",
                   timeout.c_str(), left.size());
      return kExitWaitTimeout;
    }
    // Followed from the first time a job has not ended (the streams' set-up is only
    // paid by a wait that waits). A stream that sees no end wakes the next GetJob
    // within a minute all the same.
    if (!ends) ends = std::make_unique<JobEndWaiter>(c.channel, left);
    std::chrono::milliseconds at_most(60'000);
    if (timeout_ms > 0) at_most = std::min(at_most, std::chrono::milliseconds(timeout_ms - waited));
    ends->Wait(at_most);
  }
}

Command AddWait(CLI::App& app) {
  struct Options {
    std::vector<int64_t> ids;
    std::string timeout;
  };
  auto o = std::make_shared<Options>();
  auto* wait = app.add_subcommand("wait", kWaitHelp);
  wait->add_option("ids", o->ids, "job ids")->required();
  wait->add_option("--timeout", o->timeout, "give up after this long: 90s, 30m, 12h ...");
  return {wait, [o](Context& c) { return Wait(c, o->ids, o->timeout); }};
}

// `reelctl purge`: retention by hand (an admin's).
int Purge(Context& c, const std::vector<int64_t>& ids, const std::string& older_than,
          bool dry_run) {
  v1::PurgeJobsRequest req;
  if (!older_than.empty()) {
    absl::StatusOr<int64_t> age = common::ParseAge(older_than, "--older-than");
    if (!age.ok()) {
      std::fprintf(stderr, "reelctl: %s\n", std::string(age.status().message()).c_str());
      return 2;
    }
    req.set_older_than_seconds(*age / 1000);
  }
  for (int64_t id : ids) req.add_job_ids(id);
  req.set_dry_run(dry_run);
  return RunAndPrint(c, &JobStub::PurgeJobs, req, [&](const v1::PurgeJobsResponse& resp) {
    for (const v1::PurgedJob& p : resp.purged()) {
      std::printf("%s job %lld %s (%s)\n", dry_run ? "would purge" : "purged",
                  static_cast<long long>(p.id()), p.name().c_str(), StateName(p.state()));
    }
    for (const v1::KeptJob& k : resp.kept()) {
      std::printf("kept job %lld: %s\n", static_cast<long long>(k.id()), k.reason().c_str());
    }
    if (resp.purged().empty()) std::printf("%s\n", dry_run ? "nothing to purge" : "nothing purged");
  });
}

Command AddPurge(CLI::App& app) {
  struct Options {
    std::vector<int64_t> ids;
    std::string older_than;
    bool dry_run = false;
  };
  auto o = std::make_shared<Options>();
  auto* purge = app.add_subcommand(
      "purge", "forget ended jobs with their task logs and scratch (outputs stay); admins only");
  purge->add_option("ids", o->ids, "only these jobs (default: every ended job)");
  purge->add_option("--older-than", o->older_than,
                    "only jobs that ended at least this long ago: 30d, 12h, 90m ...");
  purge->add_flag("--dry-run", o->dry_run, "list what would be purged; delete nothing");
  return {purge, [o](Context& c) { return Purge(c, o->ids, o->older_than, o->dry_run); }};
}

void AddCredentialOptions(CLI::App& app, Context* c) {
  app.add_option("--token", c->token, "API token (or REELFARM_TOKEN, or the config file)");
  app.add_option("--tls-ca", c->tls.ca_file,
                 "PEM CAs trusted for the server (or REELFARM_TLS_CA, or `tls_ca:`; default: "
                 "the system's)");
  app.add_option("--tls-server-name", c->tls.server_name,
                 "name to check in the server's certificate (default: the --server host)");
  app.add_flag("--insecure", c->tls.insecure,
               "plaintext, no TLS (or REELFARM_INSECURE=1, or `insecure: true`)");
}

}  // namespace

int main(int argc, char** argv) {
  QuietGrpcLogs();
  CLI::App app{"reelctl: submit and follow reelfarm jobs"};
  app.require_subcommand(1);
  // The global options (--json, --server, --token, --insecure, --tls-ca...) go before or
  // after the subcommand: an option a subcommand does not know falls through to here.
  // Set before the subcommands are added, which inherit it.
  app.fallthrough();
  app.footer(
      "The global options (--json, --server, --token, --tls-ca, --tls-server-name, --insecure) "
      "go before or after the subcommand; `reelctl --help` lists them.");
  Context c;
  c.server = "127.0.0.1:7700";
  LoadDefaults(&c.server, &c.token, &c.tls);
  app.add_option("--server", c.server,
                 "server address, or a comma-separated list of servers sharing one "
                 "PostgreSQL database to use the leader of (or REELFARM_SERVER, or "
                 "`server:` in the config file)")
      ->capture_default_str();
  app.add_flag("--json", c.json,
               "for scripts: stdout holds only JSON (one document, or one per line for "
               "watch, logs and submit --watch); messages go to stderr");
  // In the order `reelctl --help` lists them.
  std::vector<Command> commands = {
      AddSubmit(app), AddJobCommand(app, "get", "show a job and its tasks", GetJob), AddList(app),
      AddJobCommand(app, "cancel", "cancel a job", CancelJob), AddWatch(app)};
  AddCredentialOptions(app, &c);
  for (Command command : {
           AddCommand(app, "workers", "list connected workers", ListWorkers),
           AddCommand(app, "models", "list the models connected workers offer", ListModels),
           AddJobCommand(app, "pause", "lease no more tasks of a job (running ones finish)",
                         PauseJob),
           AddJobCommand(app, "resume", "resume a paused job", ResumeJob),
           AddJobCommand(app, "retry", "queue the failed tasks of a failed job again", RetryJob),
           AddPriority(app),
           AddDrain(app),
           AddLogs(app),
           AddOpen(app),
           AddHealth(app),
           AddWait(app),
           AddPurge(app),
       }) {
    commands.push_back(std::move(command));
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help is success; any usage error is 2
  }
  if (!c.Connect()) return 2;
  for (const Command& command : commands) {
    if (*command.app) return command.run(c);
  }
  return 2;
}
