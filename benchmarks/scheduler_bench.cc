// Scheduler benchmark: a real reelfarm-server process (durable state in SQLite, or in
// PostgreSQL with --store postgres) driven
// over loopback gRPC by simulated workers that finish each task the moment they get
// it. Prints one JSON line per figure:
//   dispatch      tasks completed per second with 1, 16 and 256 workers
//   submit        SubmitJob latency p50/p99 for a 1-chunk job (a chunk + assembly) and
//                 a 10,000-frame job (10,000 chunks of 1 frame + assembly)
//   memory        server resident memory per queued task with ~1,000,000 queued tasks
//   restart       time for a SIGKILLed server to reload them and answer again
// Usage: bench_scheduler [--quick] [--only dispatch|submit|restart[,...]] [--keep]
//                        [--store sqlite|postgres] [--postgres-url URL]
//                        [--prefetch N] [--server-bin PATH] [--workers N]
//                        [--submits N] [--submit-blocks]
//   --quick: smaller counts, for a smoke run. --only: one group of figures, or several
//   joined by commas (restart includes memory; "memory" is the same group). --keep:
//   leave the run's folder (named
//   on stderr), e.g. to profile a restart on its state. --store postgres: each server gets a new
//   database on the PostgreSQL server at --postgres-url (a superuser's URL), or on one
//   started for the run with tests/pg_server.sh. --prefetch: the simulated workers'
//   prefetch depth per slot (default 16, the most a server grants: they hold 16
//   assignments beyond the one they run, as `reelfarm-worker --prefetch 16` does; their
//   tasks take no time, so no held task waits behind a long one; the JSON says which).
//   They read and send batches (several messages in one) when the server does.
//   --server-bin: another
//   reelfarm-server to drive (e.g. an earlier build, for before/after figures from the
//   same client). --only: one figure. --workers: dispatch with N workers only.
//   --submits N: N submits of the 1-chunk job and N GetJob calls (default 300), and
//   none of the 10,000-frame job (e.g. to profile the server's submit path). Each
//   submit and get_job line also gives the server's CPU time per call
//   (server_cpu_ms): steadier than the latency on a shared machine, for before/after
//   comparisons of one path.
//   --submit-blocks: submits on demand, for a driver that interleaves them with another
//   farm's in the same minutes (benchmarks/peer_bench.py): prints "ready" once the
//   server answers (and has probed the input), then for each number N read from stdin
//   makes N submits of the 1-chunk job and prints one line {"bench":"submit_block",
//   "ms":[...]} of their latencies; stops the server at the end of stdin.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <libpq-fe.h>

#include "reelfarm/v1/jobs.grpc.pb.h"
#include "reelfarm/v1/workers.grpc.pb.h"

extern char** environ;
namespace fs = std::filesystem;
namespace v1 = reelfarm::v1;
using Clock = std::chrono::steady_clock;

namespace {

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

void Die(const std::string& what) {
  std::fprintf(stderr, "bench_scheduler: %s\n", what.c_str());
  std::exit(1);
}

// The PostgreSQL server databases are made on ("" for SQLite), and the store's name.
std::string g_postgres;
std::string g_store = "sqlite";
std::string g_server_bin = REELFARM_SERVER_BIN;

// A new database on g_postgres; its URL.
std::string NewDatabase(const std::string& name) {
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn(PQconnectdb(g_postgres.c_str()), &PQfinish);
  if (PQstatus(conn.get()) != CONNECTION_OK) Die(PQerrorMessage(conn.get()));
  const std::string db = name + "_" + std::to_string(getpid());
  PGresult* r = PQexec(conn.get(), ("CREATE DATABASE " + db).c_str());
  const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  PQclear(r);
  if (!ok) Die(PQerrorMessage(conn.get()));
  return g_postgres.substr(0, g_postgres.rfind('/') + 1) + db;
}

// A reelfarm-server child process on a data folder (and a database of its own with
// PostgreSQL).
class Server {
 public:
  explicit Server(fs::path dir)
      : dir_(std::move(dir)),
        store_(g_postgres.empty() ? (dir_ / "state.db").string()
                                  : NewDatabase(dir_.filename().string())) {
    Start();
    WaitUntilServing();
  }
  ~Server() { Stop(SIGTERM); }

  void Start() {
    const fs::path port_file = dir_ / "port";
    fs::remove(port_file);
    std::vector<std::string> args = {g_server_bin,
                                     "--data-dir",
                                     dir_.string(),
                                     "--listen",
                                     "127.0.0.1:" + std::to_string(port_),
                                     "--port-file",
                                     port_file.string(),
                                     "--insecure",
                                     "--no-auth",
                                     "--metrics-listen",
                                     "",
                                     "--lease-seconds",
                                     "120",
                                     "--log-level",
                                     "error",
                                     "--store",
                                     store_};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid_, argv[0], nullptr, nullptr, argv.data(), environ) != 0) {
      Die("cannot start " + args[0]);
    }
    for (int i = 0; i < 6000 && !fs::exists(port_file); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (!fs::exists(port_file)) Die("server did not start");
    std::ifstream(port_file) >> port_;
    // Reconnects as soon as a worker would (the restart figure is the server's time, not
    // gRPC's default back-off of 1 s and more after a refused connection).
    grpc::ChannelArguments channel_args;
    channel_args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    channel_args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    channel_args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1'000);
    stub_ = v1::JobService::NewStub(
        grpc::CreateCustomChannel(address(), grpc::InsecureChannelCredentials(), channel_args));
  }

  // Until the server serves (on PostgreSQL it listens as a standby first, until it
  // has taken the leadership and loaded the state).
  void WaitUntilServing() {
    for (;;) {
      grpc::ClientContext ctx;
      v1::ListJobsRequest req;
      req.set_limit(1);
      v1::ListJobsResponse resp;
      if (stub_->ListJobs(&ctx, req, &resp).ok()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  void Stop(int sig) {
    if (pid_ <= 0) return;
    kill(pid_, sig);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  v1::JobService::Stub& jobs() { return *stub_; }

  // User + system CPU seconds the server has used so far (/proc/PID/stat).
  double CpuSeconds() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // Fields after the command's closing parenthesis: state is field 3, utime 14, stime 15.
    std::istringstream rest(stat.substr(stat.rfind(')') + 2));
    std::string field;
    double ticks = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
      if (i >= 14) ticks += std::stod(field);
    }
    return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
  }

  int64_t RssBytes() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
    std::string key;
    while (in >> key) {
      if (key == "VmRSS:") {
        int64_t kb = 0;
        in >> kb;
        return kb * 1024;
      }
    }
    return 0;
  }

  int64_t Submit(const std::string& input, const std::string& output, int chunk) {
    grpc::ClientContext ctx;
    v1::SubmitJobRequest req;
    auto* u = req.mutable_spec()->mutable_upscale();
    u->set_input(input);
    u->set_output(output);
    u->set_model("bicubic");
    u->set_scale(2);
    u->set_chunk_frames(chunk);
    v1::SubmitJobResponse resp;
    grpc::Status st = stub_->SubmitJob(&ctx, req, &resp);
    if (!st.ok()) Die("submit: " + st.error_message());
    return resp.job_id();
  }

  bool AllDone(const std::vector<int64_t>& ids) {
    for (int64_t id : ids) {
      grpc::ClientContext ctx;
      v1::GetJobRequest req;
      req.set_job_id(id);
      v1::Job job;
      if (!stub_->GetJob(&ctx, req, &job).ok()) return false;
      if (job.state() == v1::JOB_STATE_FAILED) Die("job failed: " + job.error());
      if (job.state() != v1::JOB_STATE_SUCCEEDED) return false;
    }
    return true;
  }

 private:
  fs::path dir_;
  std::string store_;
  pid_t pid_ = -1;
  int port_ = 0;
  std::unique_ptr<v1::JobService::Stub> stub_;
};

// A worker that reports success for every assignment at once, holding `prefetch` more.
// The assignments that arrive in one message are answered in one (a WorkerBatch) when
// the server reads batches (its Welcome says so), else one result per message.
class SimWorker {
 public:
  SimWorker(const std::string& address, std::string name, int prefetch)
      : name_(std::move(name)), prefetch_(prefetch) {
    channel_ = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
    stub_ = v1::WorkerService::NewStub(channel_);
    thread_ = std::thread([this] { Run(); });
  }
  ~SimWorker() {
    stop_ = true;
    ctx_.TryCancel();
    thread_.join();
  }
  int64_t done() const { return done_.load(); }

 private:
  static void AddResult(uint64_t lease_id, v1::WorkerMessage* msg) {
    v1::TaskResult* r = msg->mutable_result();
    r->set_lease_id(lease_id);
    r->set_ok(true);
    r->set_model_digest("builtin:bicubic");
  }

  void Run() {
    auto stream = stub_->Connect(&ctx_);
    v1::WorkerMessage hello;
    hello.mutable_hello()->set_name(name_);
    hello.mutable_hello()->set_slots(1);
    hello.mutable_hello()->set_prefetch(prefetch_);
    hello.mutable_hello()->add_models("bicubic");
    hello.mutable_hello()->set_batches(true);
    if (!stream->Write(hello)) return;
    v1::ServerMessage msg;
    bool batches = false;  // the server reads WorkerBatch
    std::vector<uint64_t> leases;
    while (!stop_ && stream->Read(&msg)) {
      if (msg.has_welcome()) batches = msg.welcome().batches();
      leases.clear();
      if (msg.has_assignment()) leases.push_back(msg.assignment().lease_id());
      for (const v1::ServerMessage& m : msg.batch().messages()) {
        if (m.has_assignment()) leases.push_back(m.assignment().lease_id());
      }
      if (leases.empty()) continue;
      bool ok = true;
      if (batches && leases.size() > 1) {
        v1::WorkerMessage out;
        for (uint64_t id : leases) AddResult(id, out.mutable_batch()->add_messages());
        ok = stream->Write(out);
      } else {
        for (uint64_t id : leases) {
          v1::WorkerMessage out;
          AddResult(id, &out);
          ok = ok && stream->Write(out);
        }
      }
      if (!ok) break;
      done_ += static_cast<int64_t>(leases.size());
    }
    stream->Finish();
  }

  std::string name_;
  const int prefetch_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WorkerService::Stub> stub_;
  grpc::ClientContext ctx_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> done_{0};
  std::thread thread_;
};

void MakeClip(const fs::path& path, int frames) {
  fs::create_directories(path.parent_path());
  const std::string cmd =
      "ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=s=32x32:r=24 -frames:v " +
      std::to_string(frames) + " -c:v libx264 -preset ultrafast '" + path.string() + "'";
  if (std::system(cmd.c_str()) != 0) Die("ffmpeg failed: " + cmd);
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5))];
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  bool keep = false;
  int prefetch = 16;  // common::kMaxPrefetch (see --prefetch above)
  std::string only;
  std::vector<int> worker_counts = {1, 16, 256};
  int submits = 0;  // --submits; 0: the defaults
  bool submit_blocks = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--quick") {
      quick = true;
    } else if (arg == "--keep") {
      keep = true;
    } else if (arg == "--only" && i + 1 < argc) {
      only = argv[++i];
    } else if (arg == "--prefetch" && i + 1 < argc) {
      prefetch = std::atoi(argv[++i]);
    } else if (arg == "--server-bin" && i + 1 < argc) {
      g_server_bin = argv[++i];
    } else if (arg == "--submit-blocks") {
      submit_blocks = true;
    } else if (arg == "--submits" && i + 1 < argc) {
      submits = std::atoi(argv[++i]);
    } else if (arg == "--workers" && i + 1 < argc) {
      worker_counts = {std::atoi(argv[++i])};
    } else if (arg == "--store" && i + 1 < argc) {
      g_store = argv[++i];
    } else if (arg == "--postgres-url" && i + 1 < argc) {
      g_postgres = argv[++i];
    } else {
      Die("usage: bench_scheduler [--quick] [--only dispatch|submit|restart] [--keep] "
          "[--store sqlite|postgres] [--postgres-url URL] [--prefetch N] [--server-bin PATH] "
          "[--workers N] [--submits N] [--submit-blocks]");
    }
  }
  const fs::path root = fs::temp_directory_path() / ("reelfarm-bench-" + std::to_string(getpid()));
  // A PostgreSQL server for the run, unless one was given; stopped at the end.
  const fs::path pg_state = root / "pg";
  const bool own_postgres = g_store == "postgres" && g_postgres.empty();
  if (own_postgres) {
    const std::string start =
        "bash " REELFARM_SOURCE_DIR "/tests/pg_server.sh start " + pg_state.string();
    if (std::system(start.c_str()) != 0) Die("cannot start PostgreSQL: " + start);
    std::ifstream(pg_state / "url") >> g_postgres;
  }
  if (g_store != "sqlite" && g_store != "postgres") Die("--store: give sqlite or postgres");
  // --only: one group, or several joined by commas.
  std::vector<std::string> groups;
  std::string arg_group;
  for (std::stringstream list(only); std::getline(list, arg_group, ',');) {
    if (arg_group == "memory") arg_group = "restart";
    if (arg_group != "dispatch" && arg_group != "submit" && arg_group != "restart") {
      Die("--only: give dispatch, submit or restart, or several joined by commas");
    }
    groups.push_back(arg_group);
  }
  const auto runs = [&](const char* group) {
    return !submit_blocks &&
           (groups.empty() || std::find(groups.begin(), groups.end(), group) != groups.end());
  };
  const int clip_frames = quick ? 1000 : 10000;
  if (!submit_blocks) MakeClip(root / "clips/storage/clips/long.mp4", clip_frames);
  MakeClip(root / "clips/storage/clips/one.mp4", 1);
  auto data_dir = [&](const std::string& name) {
    fs::path d = root / name;
    fs::create_directories(d / "storage");
    fs::copy(root / "clips/storage/clips", d / "storage/clips", fs::copy_options::recursive);
    return d;
  };

  // Submit latency in blocks, for a driver that interleaves them with another farm's
  // (peer_bench.py): a line "ready" once the server answers, then for each line N read
  // from stdin, N submits of the 1-chunk job and one line of their latencies in ms.
  if (submit_blocks) {
    ::sync();
    Server server(data_dir("submit_blocks"));
    server.Submit("clips/one.mp4", "out/b_first.mp4", 1);  // probes the input
    std::printf("ready\n");
    std::fflush(stdout);
    int block = 0;
    for (int n = 0; std::scanf("%d", &n) == 1; ++block) {
      std::string line = "{\"bench\":\"submit_block\",\"ms\":[";
      for (int i = 0; i < n; ++i) {
        const auto t0 = Clock::now();
        server.Submit("clips/one.mp4",
                      "out/b" + std::to_string(block) + "_" + std::to_string(i) + ".mp4", 1);
        char ms[32];
        std::snprintf(ms, sizeof ms, "%s%.4f", i ? "," : "", Seconds(t0) * 1000);
        line += ms;
      }
      std::printf("%s]}\n", line.c_str());
      std::fflush(stdout);
    }
  }

  // Submit latency, on a server with no workers (so the queue grows as it would). First,
  // as the peer bench measures Celery's submits first in its round: neither farm's
  // submits follow its own dispatch runs' writes.
  if (runs("submit")) {
    const fs::path submit_dir = data_dir("submit");
    // On a quiet disk: what was written before (the peer bench's previous round) is
    // flushed first, not during the submits' fsyncs (Redis's submits in the peer bench
    // start on a fresh server too).
    ::sync();
    Server server(submit_dir);
    // GetJob calls and submits of the 1-chunk job; submits of the 10,000-frame one.
    const int small_calls = submits > 0 ? submits : quick ? 50 : 300;
    const int large_submits = submits > 0 ? 0 : quick ? 5 : 40;
    {
      // The floor under it: a call that reads one job and writes nothing (GetJob).
      const int64_t id = server.Submit("clips/one.mp4", "out/s_floor.mp4", 1);
      const double cpu0 = server.CpuSeconds();
      std::vector<double> ms;
      for (int i = 0; i < small_calls; ++i) {
        const auto t0 = Clock::now();
        grpc::ClientContext ctx;
        v1::GetJobRequest req;
        req.set_job_id(id);
        v1::Job job;
        if (!server.jobs().GetJob(&ctx, req, &job).ok()) Die("GetJob failed");
        ms.push_back(Seconds(t0) * 1000);
      }
      std::printf(
          "{\"bench\":\"get_job\",\"count\":%zu,\"p50_ms\":%.2f,\"p99_ms\":%.2f,"
          "\"server_cpu_ms\":%.3f}\n",
          ms.size(), Percentile(ms, 0.5), Percentile(ms, 0.99),
          (server.CpuSeconds() - cpu0) * 1000 / static_cast<double>(ms.size()));
      std::fflush(stdout);
    }
    for (const auto& [name, input, count] :
         {std::make_tuple("1-chunk", "clips/one.mp4", small_calls),
          std::make_tuple("10000-frame", "clips/long.mp4", large_submits)}) {
      if (count == 0) continue;
      // The first submit of an input probes it (FFmpeg); the figures are of submits of a
      // known input, as the peer bench's are of publishes after the first. The first is
      // reported on its own (first_ms).
      auto t0 = Clock::now();
      server.Submit(input, "out/s_" + std::string(name) + "first.mp4", 1);
      const double first_ms = Seconds(t0) * 1000;
      const double cpu0 = server.CpuSeconds();
      std::vector<double> ms;
      for (int i = 0; i < count; ++i) {
        t0 = Clock::now();
        server.Submit(input, "out/s_" + std::string(name) + std::to_string(i) + ".mp4", 1);
        ms.push_back(Seconds(t0) * 1000);
      }
      const double server_cpu_ms = (server.CpuSeconds() - cpu0) * 1000 / count;
      std::printf(
          "{\"bench\":\"submit\",\"job\":\"%s\",\"count\":%d,\"p50_ms\":%.2f,\"p99_ms\":%.2f,"
          "\"first_ms\":%.2f,\"server_cpu_ms\":%.3f,\"store\":\"%s\"}\n",
          name, count, Percentile(ms, 0.5), Percentile(ms, 0.99), first_ms, server_cpu_ms,
          g_store.c_str());
      std::fflush(stdout);
    }
  }

  // Dispatch throughput: jobs of 1-frame chunks, every task finished at once.
  for (int workers : worker_counts) {
    if (!runs("dispatch")) break;
    Server server(data_dir("dispatch" + std::to_string(workers)));
    std::vector<std::unique_ptr<SimWorker>> sims;
    for (int i = 0; i < workers; ++i) {
      sims.push_back(
          std::make_unique<SimWorker>(server.address(), "sim" + std::to_string(i), prefetch));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + workers * 2));
    const int jobs = quick ? 2 : (workers == 1 ? 1 : 3);
    const auto t0 = Clock::now();
    std::vector<int64_t> ids;
    for (int j = 0; j < jobs; ++j) {
      ids.push_back(server.Submit("clips/long.mp4", "out/d" + std::to_string(j) + ".mp4", 1));
    }
    // Until the workers sent every result (counted here: a GetJob of 10,001 tasks would
    // hold the scheduler's lock while it copies them), then until the jobs say so.
    const int64_t tasks_total = static_cast<int64_t>(jobs) * (clip_frames + 1);
    for (;;) {
      int64_t sent = 0;
      for (const auto& w : sims) sent += w->done();
      if (sent >= tasks_total) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    while (!server.AllDone(ids)) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    const double s = Seconds(t0);
    const int64_t tasks = tasks_total;
    std::printf(
        "{\"bench\":\"dispatch\",\"workers\":%d,\"prefetch\":%d,\"tasks\":%lld,"
        "\"seconds\":%.3f,\"tasks_per_s\":%.0f,\"store\":\"%s\"}\n",
        workers, prefetch, static_cast<long long>(tasks), s, tasks / s, g_store.c_str());
    std::fflush(stdout);
  }

  // Memory with ~1,000,000 queued tasks, then restart time.
  if (runs("restart")) {
    const fs::path dir = data_dir("memory");
    Server server(dir);
    const int64_t rss0 = server.RssBytes();
    const int jobs = quick ? 20 : 100;
    const auto t0 = Clock::now();
    for (int j = 0; j < jobs; ++j)
      server.Submit("clips/long.mp4", "out/m" + std::to_string(j) + ".mp4", 1);
    const double submit_s = Seconds(t0);
    const int64_t tasks = static_cast<int64_t>(jobs) * (clip_frames + 1);
    const int64_t rss1 = server.RssBytes();
    std::printf(
        "{\"bench\":\"memory\",\"queued_tasks\":%lld,\"rss_bytes\":%lld,"
        "\"bytes_per_task\":%.0f,\"submit_seconds\":%.1f,\"store\":\"%s\"}\n",
        static_cast<long long>(tasks), static_cast<long long>(rss1), double(rss1 - rss0) / tasks,
        submit_s, g_store.c_str());
    std::fflush(stdout);
    server.Stop(SIGKILL);
    const auto t1 = Clock::now();
    server.Start();
    // Answering ListJobs means the state is loaded and served.
    server.WaitUntilServing();
    std::printf(
        "{\"bench\":\"restart\",\"tasks\":%lld,\"seconds\":%.2f,\"rss_bytes\":%lld,"
        "\"store\":\"%s\"}\n",
        static_cast<long long>(tasks), Seconds(t1), static_cast<long long>(server.RssBytes()),
        g_store.c_str());
    std::fflush(stdout);
  }
  if (own_postgres) {
    std::system(
        ("bash " REELFARM_SOURCE_DIR "/tests/pg_server.sh stop " + pg_state.string()).c_str());
  }
  if (keep) {
    std::fprintf(stderr, "bench_scheduler: kept %s\n", root.c_str());
  } else {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
  return 0;
}
