// WorkerService: one bidirectional stream per worker. Incoming messages are handled on
// gRPC's callback threads; assignments and cancellations are pushed by the server's
// dispatcher loop through Send().
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "reelfarm/v1/workers.grpc.pb.h"
#include "scheduler/scheduler.h"
#include "server/auth.h"
#include "server/metrics.h"
#include "server/task_logs.h"

namespace reelfarm::server {

class WorkerSession;

class WorkerServiceImpl final : public v1::WorkerService::CallbackService {
 public:
  // `metrics`, `task_logs` and `auth` are borrowed and must outlive the service. A
  // worker needs a worker (or admin) token and, with `require_client_cert`, a verified
  // TLS client certificate.
  WorkerServiceImpl(scheduler::Scheduler* sched, ServerMetrics* metrics, TaskLogStore* task_logs,
                    Authenticator* auth, bool require_client_cert)
      : sched_(sched),
        metrics_(metrics),
        task_logs_(task_logs),
        auth_(auth),
        require_client_cert_(require_client_cert) {}

  grpc::ServerBidiReactor<v1::WorkerMessage, v1::ServerMessage>* Connect(
      grpc::CallbackServerContext* ctx) override;

  // Leases work to every connected worker with a free slot and delivers revocations.
  void Dispatch();
  // Ends every stream (server shutdown).
  void CloseAll();
  // Answers a worker's results (one status per lease, in order) once their outcomes
  // are committed (or refused), in one message to a worker that reads batches.
  void AnswerResults(const std::string& worker, const std::vector<uint64_t>& lease_ids,
                     const std::vector<absl::Status>& statuses);

 private:
  friend class WorkerSession;
  // Returns false if a worker of that name is already connected.
  bool Register(const std::string& name, WorkerSession* s);
  void Unregister(const std::string& name, WorkerSession* s);
  // OK when the caller may connect as a worker.
  absl::Status Admit(grpc::CallbackServerContext* ctx) const;

  scheduler::Scheduler* const sched_;
  ServerMetrics* const metrics_;
  TaskLogStore* const task_logs_;
  Authenticator* const auth_;
  const bool require_client_cert_;
  // Held while a session is sent to (its own mutex is taken inside: the lock order is
  // this mu_, then the session's).
  absl::Mutex mu_;
  std::map<std::string, WorkerSession*> sessions_ ABSL_GUARDED_BY(mu_);
};

}  // namespace reelfarm::server
