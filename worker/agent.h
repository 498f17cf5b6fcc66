// Agent: a worker's link to the server. Holds one WorkerService.Connect stream,
// announces what the worker can do, runs assignments on `slots` threads (one
// TaskRunner each), renews leases with heartbeats, reports progress and results, and
// reconnects with back-off when the stream breaks. Running tasks survive a broken
// stream: after reconnecting the worker names the leases it still holds, and the
// server keeps those that are current (e.g. after the server restarted) and cancels
// the rest.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_security.h"
#include "common/job_defaults.h"
#include "common/server_list.h"
#include "common/storage.h"
#include "reelfarm/v1/workers.grpc.pb.h"
#include "worker/pipeline.h"
#include "worker/task_log_sink.h"

namespace reelfarm::worker {

struct AgentOptions {
  // One address, or a list "host:port,host:port" of servers sharing one PostgreSQL
  // database: the worker follows the leader (a standby's answer names it).
  std::string server = "127.0.0.1:7700";
  std::string name;
  int slots = 1;
  // Assignments held per slot beyond the running one, started as soon as a slot frees
  // (common/job_defaults.h says why the default is 0).
  int prefetch = common::kDefaultPrefetch;
  int threads = 1;                          // LibTorch intra-op threads
  std::map<std::string, std::string> tags;  // e.g. gpu=h100, site=lon
  int64_t memory_bytes = 0;                 // memory offered to models (0: not said)
  PipelineOptions pipeline;
  common::ClientTlsOptions tls;  // TLS to the server (or plaintext when insecure)
  std::string token;             // worker token, sent as a bearer token
  // Where slot threads' log lines are captured per task (borrowed; may be null: task
  // logs are then not sent).
  TaskLogSink* task_log = nullptr;
  // Called after each model's warm-up run, on the thread of Warm() (may be empty): a
  // test's worker slows the warm-up with it.
  std::function<void(const std::string& model)> after_warm_up;
};

class Agent final {
 public:
  Agent(const common::Storage& storage, AgentOptions options, prometheus::Registry& registry);
  ~Agent();  // Stop() and join
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Loads every model the worker can offer (built-ins and packages on the model path)
  // on its device and runs one small frame through each, timing the load. Models that
  // fail are logged and not advertised. Afterwards the worker is ready (ready()).
  // Call before Run(); returns the number of models that are warm.
  int Warm();
  bool ready() const { return ready_.load(); }

  // Serves until Stop(): connects, runs assignments, reconnects after failures.
  void Run();
  // Thread-safe; makes Run() return.
  void Stop();

 private:
  struct Work {
    v1::Assignment assignment;
    std::shared_ptr<std::atomic<bool>> cancelled;
  };

  void SlotLoop(int slot);
  void HeartbeatLoop();
  // Sends on the current stream; false if there is none.
  bool Send(const v1::WorkerMessage& msg) ABSL_LOCKS_EXCLUDED(stream_mu_);
  void Serve(grpc::ClientReaderWriter<v1::WorkerMessage, v1::ServerMessage>* stream);
  // One message from the server (an assignment, a cancellation or an acknowledgement).
  void Handle(const v1::ServerMessage& msg) ABSL_LOCKS_EXCLUDED(work_mu_);
  void DropAllWork(const std::string& why) ABSL_LOCKS_EXCLUDED(work_mu_);
  // Sends a result and keeps it until the server answers it.
  void SendResult(const v1::WorkerMessage& result) ABSL_LOCKS_EXCLUDED(work_mu_, stream_mu_);
  // Sends what the task log sink kept for `lease_id` (all leases if 0).
  void SendTaskLogs(uint64_t lease_id) ABSL_LOCKS_EXCLUDED(log_send_mu_, stream_mu_);
  // Bytes of what a successful task published (segment, or movie and sidecar).
  int64_t PublishedBytes(const v1::Assignment& a) const;

  const common::Storage& storage_;
  const AgentOptions options_;
  // The stub for `address` (made on first use). Only Run() calls it.
  v1::WorkerService::Stub& StubFor(const std::string& address);

  common::ServerList servers_;  // only Run() touches it
  std::map<std::string, std::unique_ptr<v1::WorkerService::Stub>> stubs_;

  prometheus::Family<prometheus::Counter>& frames_;
  prometheus::Family<prometheus::Counter>& tasks_;
  prometheus::Family<prometheus::Counter>& stage_seconds_;
  prometheus::Family<prometheus::Histogram>& stage_hist_;
  prometheus::Family<prometheus::Counter>& bytes_written_;
  prometheus::Family<prometheus::Gauge>& model_load_;
  prometheus::Gauge& ready_gauge_;

  std::vector<std::string> models_;  // advertised; set by Warm() before Run()
  // Held while task log lines are taken and sent, so that a lease's lines reach the
  // server in order and before its result. Taken before stream_mu_.
  absl::Mutex log_send_mu_;
  std::atomic<bool> ready_{false};

  std::atomic<bool> stop_{false};
  std::atomic<int64_t> heartbeat_ms_{2000};

  // stream_: set while connected; writes go through it under stream_mu_. ctx_ has its
  // own mutex so that Stop() can cancel a write that is blocked holding stream_mu_.
  // Neither is held while the other is taken.
  absl::Mutex stream_mu_;
  grpc::ClientReaderWriter<v1::WorkerMessage, v1::ServerMessage>* stream_
      ABSL_GUARDED_BY(stream_mu_) = nullptr;
  absl::Mutex ctx_mu_;
  grpc::ClientContext* ctx_ ABSL_GUARDED_BY(ctx_mu_) = nullptr;

  absl::Mutex work_mu_;
  absl::CondVar work_cv_;  // work queued, or stopping
  std::deque<Work> queue_ ABSL_GUARDED_BY(work_mu_);
  std::map<uint64_t, std::shared_ptr<std::atomic<bool>>> active_ ABSL_GUARDED_BY(work_mu_);
  // Results not yet answered by the server, by lease: sent again after a reconnect,
  // so that a server restarted between a result and its commit still gets it.
  std::map<uint64_t, v1::WorkerMessage> unacked_ ABSL_GUARDED_BY(work_mu_);

  std::vector<std::thread> slots_;
  std::thread heartbeat_;
};

}  // namespace reelfarm::worker
