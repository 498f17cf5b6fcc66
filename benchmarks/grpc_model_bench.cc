// gRPC serving models against each other: the latency of a unary call whose handler
// makes one durable commit (a 16 KiB write and fdatasync, as a small SubmitJob's WAL
// commit does), served five ways by five server processes on loopback, in the same
// minutes (blocks of 100 calls, rotating which server goes first):
//   async_one_thread    an async generic service on one completion queue, driven by one
//                       thread that polls, handles and answers: no other thread polls
//   async_beside_callback  the same, with a callback service registered beside it (the
//                       default health service): gRPC then runs its callback queue's
//                       "nexting" threads (at least two), which poll too
//   sync                a sync service (grpc.health.v1.Health/Check), gRPC's thread pool
//   callback            a callback service, as reelfarm-server's JobService is
//   callback_held       the same, with all of gRPC's callback threads but one held
//                       (server::CallbackThreadHold), as reelfarm-server does with SQLite
// Prints one JSON line per model (p50/p99 in ms, and the ratio of its p50 to
// async_one_thread's) and a summary line. Why: reelfarm's submit is within a few
// percent of Celery's (benchmarks/peer_bench.py), and what separates the models is
// the serving threads' hand-offs (each wake of an idle vCPU costs tens of
// microseconds on a virtual machine), not the handler.
// Usage: bench_grpc_models [--blocks N] [--dir DIR]
//   --blocks: blocks of 100 calls per model (default 30). --dir: where the servers'
//   commit files go (default: a folder under /tmp; give the disk whose syncs matter).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "grpc/health/v1/health.grpc.pb.h"
#include "server/callback_threads.h"

namespace {

namespace fs = std::filesystem;
namespace health = grpc::health::v1;

constexpr int kCommitBytes = 16480;  // four WAL frames
constexpr int kSlots = 1000;         // the commit file's length in commits, laid out first

[[noreturn]] void Die(const std::string& msg) {
  std::fprintf(stderr, "bench_grpc_models: %s\n", msg.c_str());
  std::exit(1);
}

// One durable commit per call into a file laid out (and synced) beforehand, so that a
// sync writes data only, as the SQLite store's WAL does.
class Committer {
 public:
  explicit Committer(const std::string& path) : block_(kCommitBytes, 'c') {
    fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) Die("cannot open " + path);
    for (int i = 0; i < kSlots; ++i) Write(i);
    if (fsync(fd_) != 0) Die("fsync " + path);
  }
  void Commit() {
    Write(next_++ % kSlots);
    if (fdatasync(fd_) != 0) Die("fdatasync");
  }

 private:
  void Write(int slot) {
    const auto at = static_cast<off_t>(slot) * kCommitBytes;
    if (pwrite(fd_, block_.data(), block_.size(), at) != static_cast<ssize_t>(block_.size())) {
      Die("pwrite");
    }
  }
  std::vector<char> block_;
  int fd_ = -1;
  long next_ = 0;
};

health::HealthCheckResponse Serving() {
  health::HealthCheckResponse r;
  r.set_status(health::HealthCheckResponse::SERVING);
  return r;
}

class SyncHealth final : public health::Health::Service {
 public:
  explicit SyncHealth(Committer* c) : c_(c) {}
  grpc::Status Check(grpc::ServerContext*, const health::HealthCheckRequest*,
                     health::HealthCheckResponse* resp) override {
    c_->Commit();
    *resp = Serving();
    return grpc::Status::OK;
  }

 private:
  Committer* c_;
};

class CallbackHealth final : public health::Health::CallbackService {
 public:
  explicit CallbackHealth(Committer* c) : c_(c) {}
  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* ctx,
                                  const health::HealthCheckRequest*,
                                  health::HealthCheckResponse* resp) override {
    c_->Commit();
    *resp = Serving();
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  Committer* c_;
};

// Takes the calls of a CallbackThreadHold (and answers any other call UNIMPLEMENTED).
class HoldService final : public grpc::CallbackGenericService {
 public:
  explicit HoldService(reelfarm::server::CallbackThreadHold* hold) : hold_(hold) {}
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    class Reactor final : public grpc::ServerGenericBidiReactor {
     public:
      explicit Reactor(grpc::Status status) { Finish(status); }
      void OnDone() override { delete this; }
    };
    if (hold_->HoldCall(*ctx)) return new Reactor(grpc::Status::OK);
    return new Reactor(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "not served"));
  }

 private:
  reelfarm::server::CallbackThreadHold* const hold_;
};

grpc::ByteBuffer Serialize(const google::protobuf::Message& m) {
  const std::string bytes = m.SerializeAsString();
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

// Serves MODE on a loopback port, prints the port on stdout, and runs until killed.
int Serve(const std::string& mode, const std::string& file) {
  Committer committer(file);
  SyncHealth sync_health(&committer);
  CallbackHealth callback_health(&committer);
  grpc::AsyncGenericService generic;
  reelfarm::server::CallbackThreadHold hold;
  HoldService hold_service(&hold);
  const bool async = mode == "async_one_thread" || mode == "async_beside_callback";
  if (mode == "async_beside_callback") grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  std::unique_ptr<grpc::ServerCompletionQueue> cq;
  if (async) {
    builder.RegisterAsyncGenericService(&generic);
    cq = builder.AddCompletionQueue();
  } else if (mode == "sync") {
    builder.RegisterService(&sync_health);
  } else if (mode == "callback" || mode == "callback_held") {
    builder.RegisterService(&callback_health);
    if (mode == "callback_held") builder.RegisterCallbackGenericService(&hold_service);
  } else {
    Die("unknown model " + mode);
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) Die("cannot serve " + mode);
  if (mode == "callback_held" && hold.Start(server.get(), absl::Seconds(5)) < 1) {
    Die("no callback thread held");
  }
  std::printf("%d\n", port);
  std::fflush(stdout);
  if (!async) {
    server->Wait();
    return 0;
  }
  // One call at a time, every step on this thread: request, read, commit, answer.
  const grpc::ByteBuffer answer = Serialize(Serving());
  for (;;) {
    grpc::GenericServerContext ctx;
    grpc::GenericServerAsyncReaderWriter stream(&ctx);
    void* tag = nullptr;
    bool ok = false;
    generic.RequestCall(&ctx, &stream, cq.get(), cq.get(), &ctx);
    if (!cq->Next(&tag, &ok) || !ok) return 0;
    grpc::ByteBuffer request;
    stream.Read(&request, &request);
    if (!cq->Next(&tag, &ok)) return 0;
    committer.Commit();
    stream.WriteAndFinish(answer, grpc::WriteOptions(), grpc::Status::OK, &stream);
    if (!cq->Next(&tag, &ok)) return 0;
  }
}

struct ServerProcess {
  std::string model;
  pid_t pid = -1;
  int port = 0;
  std::unique_ptr<grpc::GenericStub> stub;
  std::vector<double> ms;
};

ServerProcess Start(const std::string& self, const std::string& model, const fs::path& dir) {
  int out[2];
  if (pipe(out) != 0) Die("pipe");
  ServerProcess p;
  p.model = model;
  p.pid = fork();
  if (p.pid < 0) Die("fork");
  if (p.pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    close(out[1]);
    const std::string file = (dir / (model + ".commits")).string();
    execl(self.c_str(), self.c_str(), "--serve", model.c_str(), file.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  char buf[32] = {};
  ssize_t n = 0;
  for (ssize_t got; n < static_cast<ssize_t>(sizeof buf) - 1 &&
                    (got = read(out[0], buf + n, sizeof buf - 1 - n)) > 0;) {
    n += got;
    if (buf[n - 1] == '\n') break;
  }
  close(out[0]);
  p.port = std::atoi(buf);
  if (p.port <= 0) Die("the " + model + " server did not start");
  p.stub = std::make_unique<grpc::GenericStub>(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(p.port), grpc::InsecureChannelCredentials()));
  return p;
}

// One unary Health/Check call, in ms, from the client's side.
double Call(ServerProcess& p, grpc::CompletionQueue& cq) {
  static const grpc::ByteBuffer request = Serialize(health::HealthCheckRequest());
  grpc::ClientContext ctx;
  grpc::ByteBuffer response;
  grpc::Status status;
  const auto t0 = std::chrono::steady_clock::now();
  // The async servers' generic service takes any method no service of theirs has (not
  // Health/Check: beside the default health service, that one would answer it).
  const bool generic = p.model == "async_one_thread" || p.model == "async_beside_callback";
  auto rpc = p.stub->PrepareUnaryCall(
      &ctx, generic ? "/reelfarm.bench.Commit/Check" : "/grpc.health.v1.Health/Check", request,
      &cq);
  rpc->StartCall();
  rpc->Finish(&response, &status, &ctx);
  void* tag = nullptr;
  bool ok = false;
  if (!cq.Next(&tag, &ok) || !ok || !status.ok()) {
    Die(p.model + ": call failed: " + status.error_message());
  }
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

double Percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "--serve") return Serve(argv[2], argv[3]);
  int blocks = 30;
  fs::path dir;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--blocks" && i + 1 < argc) {
      blocks = std::atoi(argv[++i]);
    } else if (arg == "--dir" && i + 1 < argc) {
      dir = argv[++i];
    } else {
      Die("usage: bench_grpc_models [--blocks N] [--dir DIR]");
    }
  }
  if (blocks < 1) Die("--blocks: give at least 1");
  const bool own_dir = dir.empty();
  if (own_dir)
    dir = fs::temp_directory_path() / ("reelfarm-grpc-models-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  std::vector<ServerProcess> servers;
  for (const char* model :
       {"async_one_thread", "async_beside_callback", "sync", "callback", "callback_held"}) {
    servers.push_back(Start(self, model, dir));
  }
  grpc::CompletionQueue cq;
  for (auto& s : servers) {
    for (int i = 0; i < 20; ++i) Call(s, cq);  // connected and warm
  }
  const size_t n = servers.size();
  for (int b = 0; b < blocks; ++b) {
    for (size_t j = 0; j < n; ++j) {
      ServerProcess& s = servers[(static_cast<size_t>(b) + j) % n];
      for (int i = 0; i < 100; ++i) s.ms.push_back(Call(s, cq));
    }
  }
  const double base = Percentile(servers[0].ms, 0.5);
  std::string summary = "{\"summary\":\"grpc_models\",\"blocks\":" + std::to_string(blocks);
  for (auto& s : servers) {
    const double p50 = Percentile(s.ms, 0.5);
    const double p99 = Percentile(s.ms, 0.99);
    std::printf(
        "{\"bench\":\"grpc_model\",\"model\":\"%s\",\"calls\":%zu,\"p50_ms\":%.3f,"
        "\"p99_ms\":%.3f,\"p50_vs_async_one_thread\":%.3f}\n",
        s.model.c_str(), s.ms.size(), p50, p99, p50 / base);
    char part[96];
    std::snprintf(part, sizeof part, ",\"%s_p50_ms\":%.3f", s.model.c_str(), p50);
    summary += part;
    kill(s.pid, SIGKILL);
    waitpid(s.pid, nullptr, 0);
  }
  std::printf("%s}\n", summary.c_str());
  if (own_dir) fs::remove_all(dir);
  return 0;
}
