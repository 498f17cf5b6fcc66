#include "server/worker_service.h"

#include <algorithm>
#include <deque>

#include <spdlog/spdlog.h>

#include "common/job_defaults.h"
#include "server/convert.h"

namespace reelfarm::server {

// One worker's stream. Reads are handled as they arrive; writes go through an outbox
// so that only one is in flight. Deleted by gRPC after OnDone.
class WorkerSession final : public grpc::ServerBidiReactor<v1::WorkerMessage, v1::ServerMessage> {
 public:
  WorkerSession(WorkerServiceImpl* service, std::string peer)
      : service_(service), peer_(std::move(peer)) {
    StartRead(&in_);
  }

  const std::string& name() const { return name_; }

  // Queues a message; dropped once the stream is finishing. Thread-safe.
  void Send(v1::ServerMessage msg) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    QueueLocked(std::move(msg));
    if (!writing_) WriteNextLocked();
  }

  // Queues messages in order (see Send); to a worker that reads batches they leave
  // together, in one message.
  void SendAll(std::vector<v1::ServerMessage> msgs) ABSL_LOCKS_EXCLUDED(mu_) {
    if (msgs.empty()) return;
    absl::MutexLock lock(&mu_);
    for (v1::ServerMessage& msg : msgs) QueueLocked(std::move(msg));
    if (!writing_) WriteNextLocked();
  }

  // Queues assignments, in order (see SendAll).
  void SendAssignments(const std::vector<scheduler::Assignment>& as) {
    std::vector<v1::ServerMessage> msgs(as.size());
    for (size_t i = 0; i < as.size(); ++i) {
      const scheduler::Assignment& a = as[i];
      spdlog::info("leased job={} task={} worker={} lease={} attempt={}{}", a.lease.job_id,
                   a.lease.task_index, name_, a.lease.id, a.lease.attempt,
                   a.lease.held ? " held" : "");
      *msgs[i].mutable_assignment() = ToProto(a);
    }
    SendAll(std::move(msgs));
  }

  // Ends the stream from the server side.
  void Close(const grpc::Status& status) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    finishing_ = true;
    final_status_ = status;
    MaybeFinishLocked();
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Close(grpc::Status::OK);
      return;
    }
    if (!Handle(in_)) return;
    StartRead(&in_);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      outbox_.clear();
      finishing_ = true;
    }
    if (!outbox_.empty() && !finishing_) {
      WriteNextLocked();
    } else {
      MaybeFinishLocked();
    }
  }

  void OnCancel() override { Close(grpc::Status::CANCELLED); }

  void OnDone() override {
    if (registered_) {
      service_->metrics_->WorkerDisconnected();
      service_->Unregister(name_, this);
      spdlog::info("worker disconnected worker={}", name_);
    }
    delete this;
  }

 private:
  void QueueLocked(v1::ServerMessage msg) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finish_called_ || finishing_) return;
    if (msg.has_assignment()) {
      const v1::Assignment& a = msg.assignment();
      leases_[a.lease_id()] = {a.job_id(), a.task_index(), a.attempt()};
    }
    outbox_.push_back(std::move(msg));
  }

  // Writes what is queued: one message, or, to a worker that reads batches, everything
  // queued (up to a size well below a receiver's default message limit of 4 MiB) in one.
  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!batches_ || outbox_.size() == 1) {
      current_ = std::move(outbox_.front());
      outbox_.pop_front();
    } else {
      current_.Clear();
      v1::ServerBatch* batch = current_.mutable_batch();
      size_t bytes = 0;
      while (!outbox_.empty() && batch->messages_size() < kMaxBatchMessages) {
        const size_t size = outbox_.front().ByteSizeLong();
        if (batch->messages_size() > 0 && bytes + size > kMaxBatchBytes) break;
        bytes += size;
        *batch->add_messages() = std::move(outbox_.front());
        outbox_.pop_front();
      }
    }
    writing_ = true;
    StartWrite(&current_);
  }

  void MaybeFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finishing_ && !writing_ && !finish_called_) {
      finish_called_ = true;
      Finish(final_status_);
    }
  }

  // Returns false when the stream was closed because of the message.
  bool Handle(const v1::WorkerMessage& msg) {
    if (registered_) {
      std::vector<scheduler::Scheduler::Report> results;
      if (msg.has_batch()) {
        for (const v1::WorkerMessage& m : msg.batch().messages()) {
          if (!m.has_batch()) HandleOne(m, &results);  // a batch in a batch is ignored
        }
      } else {
        HandleOne(msg, &results);
      }
      Complete(results);
      return true;
    }
    return HandleHello(msg);
  }

  // The stream's first message: a Hello, or the stream is closed (returns false).
  bool HandleHello(const v1::WorkerMessage& msg) {
    scheduler::Scheduler* sched = service_->sched_;
    if (!msg.has_hello() || msg.hello().name().empty()) {
      Close({grpc::StatusCode::INVALID_ARGUMENT,
             "the first message on a worker stream must be a Hello with a name"});
      return false;
    }
    name_ = msg.hello().name();
    if (!service_->Register(name_, this)) {
      Close({grpc::StatusCode::ALREADY_EXISTS, "a worker named '" + name_ +
                                                   "' is already connected; give each "
                                                   "worker a unique --name"});
      return false;
    }
    registered_ = true;
    service_->metrics_->WorkerConnected();
    scheduler::WorkerInfo info;
    info.name = name_;
    info.slots = std::max(1, msg.hello().slots());
    info.prefetch = std::clamp(msg.hello().prefetch(), 0, common::kMaxPrefetch);
    info.models.assign(msg.hello().models().begin(), msg.hello().models().end());
    info.tags.insert(msg.hello().tags().begin(), msg.hello().tags().end());
    info.memory_bytes = msg.hello().memory_bytes();
    info.devices.assign(msg.hello().devices().begin(), msg.hello().devices().end());
    {
      absl::MutexLock lock(&mu_);
      batches_ = msg.hello().batches();
    }
    v1::ServerMessage welcome;
    welcome.mutable_welcome()->set_heartbeat_interval_ms(sched->options().heartbeat_ms);
    welcome.mutable_welcome()->set_lease_duration_ms(sched->options().lease_ms);
    welcome.mutable_welcome()->set_batches(true);
    Send(std::move(welcome));
    std::vector<uint64_t> held(msg.hello().held_leases().begin(), msg.hello().held_leases().end());
    for (uint64_t stale : sched->RegisterWorker(info, held)) {
      v1::ServerMessage cancel;
      cancel.mutable_cancel()->set_lease_id(stale);
      cancel.mutable_cancel()->set_reason("lease is no longer current");
      Send(std::move(cancel));
    }
    // Leases kept across the reconnect: their task logs go to the right file too.
    for (const auto& w : sched->ListWorkers()) {
      if (w.info.name != name_) continue;
      absl::MutexLock lock(&mu_);
      for (const auto& l : w.leases) leases_[l.id] = {l.job_id, l.task_index, l.attempt};
    }
    spdlog::info(
        "worker connected worker={} peer={} slots={} prefetch={} batches={} models={} "
        "held_leases={}",
        name_, peer_, info.slots, info.prefetch, msg.hello().batches(), info.models.size(),
        held.size());
    return true;
  }

  // One message of a registered worker; a result is added to `results`, to be completed
  // with the others of its batch.
  void HandleOne(const v1::WorkerMessage& msg, std::vector<scheduler::Scheduler::Report>* results) {
    scheduler::Scheduler* sched = service_->sched_;
    switch (msg.msg_case()) {
      case v1::WorkerMessage::kHeartbeat: {
        std::vector<uint64_t> ids(msg.heartbeat().lease_ids().begin(),
                                  msg.heartbeat().lease_ids().end());
        for (uint64_t stale : sched->Heartbeat(name_, ids)) {
          v1::ServerMessage cancel;
          cancel.mutable_cancel()->set_lease_id(stale);
          cancel.mutable_cancel()->set_reason("lease is no longer current");
          Send(std::move(cancel));
        }
        break;
      }
      case v1::WorkerMessage::kProgress:
        (void)sched->ReportProgress(name_, msg.progress().lease_id(), msg.progress().frames_done());
        break;
      case v1::WorkerMessage::kTaskLog: {
        LeaseTask t;
        {
          absl::MutexLock lock(&mu_);
          auto it = leases_.find(msg.task_log().lease_id());
          if (it == leases_.end()) break;  // never assigned here: dropped
          t = it->second;
        }
        std::vector<std::string> lines(msg.task_log().lines().begin(),
                                       msg.task_log().lines().end());
        const std::string prefix = "[" + name_ + " attempt " + std::to_string(t.attempt) + "] ";
        absl::Status st = service_->task_logs_->Append(t.job_id, t.task_index, prefix, lines);
        if (!st.ok()) {
          spdlog::warn("task log dropped job={} task={} worker={}: {}", t.job_id, t.task_index,
                       name_, std::string(st.message()));
        }
        break;
      }
      case v1::WorkerMessage::kResult: {
        const v1::TaskResult& r = msg.result();
        {
          absl::MutexLock lock(&mu_);
          leases_.erase(r.lease_id());
        }
        if (!r.ok()) {
          spdlog::warn("task failed worker={} lease={} retryable={}: {}", name_, r.lease_id(),
                       r.retryable(), r.error());
        }
        results->push_back({r.lease_id(), FromProto(r)});
        break;
      }
      default:
        break;
    }
  }

  // Completes a message's results together: answered once their outcomes are committed,
  // in one message, without holding this thread. The worker's next work is leased in
  // the same commit and sent at once.
  void Complete(const std::vector<scheduler::Scheduler::Report>& results) {
    if (results.empty()) return;
    WorkerServiceImpl* service = service_;
    std::vector<uint64_t> leases;
    leases.reserve(results.size());
    for (const auto& r : results) leases.push_back(r.lease_id);
    std::vector<scheduler::Assignment> next;
    service_->sched_->CompleteAllAsync(
        name_, results,
        [service, name = name_, leases = std::move(leases)](const std::vector<absl::Status>& st) {
          service->AnswerResults(name, leases, st);
        },
        &next);
    SendAssignments(next);
  }

  // What each lease sent on this stream is for, so task logs find their file.
  struct LeaseTask {
    int64_t job_id = 0;
    int task_index = 0;
    int attempt = 0;
  };

  WorkerServiceImpl* const service_;
  const std::string peer_;
  v1::WorkerMessage in_;
  std::string name_;
  bool registered_ = false;  // touched only by the reading side
  static constexpr int kMaxBatchMessages = 256;
  static constexpr size_t kMaxBatchBytes = size_t{1} << 20;

  absl::Mutex mu_;
  std::deque<v1::ServerMessage> outbox_ ABSL_GUARDED_BY(mu_);
  v1::ServerMessage current_ ABSL_GUARDED_BY(mu_);  // the write in flight
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_called_ ABSL_GUARDED_BY(mu_) = false;
  bool batches_ ABSL_GUARDED_BY(mu_) = false;  // the worker reads ServerBatch
  grpc::Status final_status_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, LeaseTask> leases_ ABSL_GUARDED_BY(mu_);
};

namespace {

// A worker stream refused before it starts: finishes at once. Deleted after OnDone.
class RefusedSession final : public grpc::ServerBidiReactor<v1::WorkerMessage, v1::ServerMessage> {
 public:
  explicit RefusedSession(const absl::Status& status) { Finish(ToGrpc(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

absl::Status WorkerServiceImpl::Admit(grpc::CallbackServerContext* ctx) const {
  ASSIGN_OR_RETURN(Principal p, auth_->Authenticate(*ctx));
  RETURN_IF_ERROR(RequireRole(p, {Role::kWorker, Role::kAdmin}, "connect as a worker"));
  if (require_client_cert_ && !p.has_client_cert) {
    return absl::UnauthenticatedError(
        "workers must present a TLS client certificate signed by the server's "
        "--tls-client-ca; give the worker --tls-cert and --tls-key");
  }
  return absl::OkStatus();
}

grpc::ServerBidiReactor<v1::WorkerMessage, v1::ServerMessage>* WorkerServiceImpl::Connect(
    grpc::CallbackServerContext* ctx) {
  absl::Status admitted = Admit(ctx);
  if (!admitted.ok()) {
    spdlog::warn("worker refused peer={}: {}", ctx->peer(), std::string(admitted.message()));
    return new RefusedSession(admitted);
  }
  return new WorkerSession(this, ctx->peer());
}

bool WorkerServiceImpl::Register(const std::string& name, WorkerSession* s) {
  absl::MutexLock lock(&mu_);
  return sessions_.emplace(name, s).second;
}

void WorkerServiceImpl::Unregister(const std::string& name, WorkerSession* s) {
  {
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(name);
    if (it == sessions_.end() || it->second != s) return;
    sessions_.erase(it);
  }
  sched_->UnregisterWorker(name);
}

void WorkerServiceImpl::AnswerResults(const std::string& worker,
                                      const std::vector<uint64_t>& lease_ids,
                                      const std::vector<absl::Status>& statuses) {
  std::vector<v1::ServerMessage> acks;
  acks.reserve(lease_ids.size());
  for (size_t i = 0; i < lease_ids.size(); ++i) {
    const absl::Status& st = statuses[i];
    if (!st.ok()) {
      spdlog::warn("result refused worker={} lease={}: {}", worker, lease_ids[i],
                   std::string(st.message()));
      // Not a fencing refusal: the store failed. No answer, so the worker keeps the
      // result and sends it again after it reconnects.
      if (st.code() != absl::StatusCode::kFailedPrecondition) continue;
    }
    v1::ServerMessage& ack = acks.emplace_back();
    ack.mutable_ack()->set_lease_id(lease_ids[i]);
    ack.mutable_ack()->set_accepted(st.ok());
    ack.mutable_ack()->set_message(std::string(st.message()));
  }
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(worker);
  if (it != sessions_.end()) it->second->SendAll(std::move(acks));
}

void WorkerServiceImpl::Dispatch() {
  absl::MutexLock lock(&mu_);
  for (const scheduler::Lease& lease : sched_->TakeRevoked()) {
    auto it = sessions_.find(lease.worker);
    if (it == sessions_.end()) continue;
    v1::ServerMessage cancel;
    cancel.mutable_cancel()->set_lease_id(lease.id);
    cancel.mutable_cancel()->set_reason("lease revoked (job ended or lease expired)");
    it->second->Send(std::move(cancel));
  }
  for (auto& [name, session] : sessions_) {
    std::vector<scheduler::Assignment> leased;
    while (auto a = sched_->LeaseNext(name)) leased.push_back(std::move(*a));
    session->SendAssignments(leased);
  }
}

void WorkerServiceImpl::CloseAll() {
  absl::MutexLock lock(&mu_);
  for (auto& [name, session] : sessions_) {
    session->Close({grpc::StatusCode::UNAVAILABLE, "server shutting down"});
  }
}

}  // namespace reelfarm::server
