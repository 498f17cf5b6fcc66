#include "worker/agent.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <set>
#include <utility>

#include <spdlog/spdlog.h>

#include "common/model_manifest.h"
#include "common/thread_name.h"
#include "worker/inference/generator.h"
#include "worker/inference/model.h"

#ifndef REELFARM_VERSION
#define REELFARM_VERSION "dev"
#endif

namespace reelfarm::worker {

using SteadyClock = std::chrono::steady_clock;

namespace {

// Per-task stage times: from a few milliseconds (publish) to an hour (a long chunk).
const prometheus::Histogram::BucketBoundaries kStageBuckets = {
    0.001, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600};

}  // namespace

Agent::Agent(const common::Storage& storage, AgentOptions options, prometheus::Registry& registry)
    : storage_(storage),
      options_(std::move(options)),
      servers_(common::ServerList::Parse(options_.server).value()),
      frames_(prometheus::BuildCounter()
                  .Name("reelfarm_worker_frames_processed_total")
                  .Help("Frames run through a model and encoded, by model and device")
                  .Register(registry)),
      tasks_(prometheus::BuildCounter()
                 .Name("reelfarm_worker_tasks_total")
                 .Help("Tasks finished by this worker, by kind and result")
                 .Register(registry)),
      stage_seconds_(prometheus::BuildCounter()
                         .Name("reelfarm_worker_stage_seconds_total")
                         .Help("Seconds spent per pipeline stage (decode, infer, encode, "
                               "publish, assemble), summed over tasks")
                         .Register(registry)),
      stage_hist_(prometheus::BuildHistogram()
                      .Name("reelfarm_worker_stage_duration_seconds")
                      .Help("Seconds one task spent in a pipeline stage")
                      .Register(registry)),
      bytes_written_(prometheus::BuildCounter()
                         .Name("reelfarm_worker_written_bytes_total")
                         .Help("Bytes published to the storage root, by task kind")
                         .Register(registry)),
      model_load_(prometheus::BuildGauge()
                      .Name("reelfarm_worker_model_load_duration_seconds")
                      .Help("Seconds the last warm-up load of a model took, by model "
                            "and device")
                      .Register(registry)),
      ready_gauge_(prometheus::BuildGauge()
                       .Name("reelfarm_worker_ready")
                       .Help("1 once the worker's models are warm, else 0")
                       .Register(registry)
                       .Add({})) {
  for (int i = 0; i < options_.slots; ++i) {
    slots_.emplace_back([this, i] {
      common::NameThread(("rf-slot-" + std::to_string(i)).c_str());
      SlotLoop(i);
    });
  }
  heartbeat_ = std::thread([this] {
    common::NameThread("rf-heartbeat");
    HeartbeatLoop();
  });
}

Agent::~Agent() {
  Stop();
  for (auto& t : slots_) t.join();
  heartbeat_.join();
}

void Agent::Stop() {
  stop_.store(true);
  {
    absl::MutexLock lock(&ctx_mu_);
    if (ctx_) ctx_->TryCancel();
  }
  DropAllWork("worker stopping");
  work_cv_.SignalAll();
}

bool Agent::Send(const v1::WorkerMessage& msg) {
  absl::MutexLock lock(&stream_mu_);
  if (!stream_) return false;
  return stream_->Write(msg);
}

void Agent::DropAllWork(const std::string& why) {
  absl::MutexLock lock(&work_mu_);
  for (auto& [id, flag] : active_) flag->store(true);
  if (!active_.empty()) spdlog::warn("stopping {} task(s): {}", active_.size(), why);
  active_.clear();
  queue_.clear();
  unacked_.clear();
}

void Agent::SendResult(const v1::WorkerMessage& result) {
  {
    absl::MutexLock lock(&work_mu_);
    unacked_[result.result().lease_id()] = result;
  }
  if (!Send(result)) {
    spdlog::warn("result for lease={} kept until the server is back", result.result().lease_id());
  }
}

int Agent::Warm() {
  // Each model at every scale it was made for; built-ins at ×2.
  std::vector<std::pair<std::string, int>> scales;
  std::set<std::string> seen;
  for (const auto& name : common::BuiltinModels()) {
    scales.emplace_back(name, 2);
    seen.insert(name);
  }
  std::vector<std::string> warm;
  for (const auto& m : common::FindModelPackages(options_.pipeline.model_path)) {
    if (m.kind == "upscaler" && seen.insert(m.name).second) {
      for (int s : m.Scales()) scales.emplace_back(m.name, s);
    }
    if (m.kind != "denoiser") continue;
    // Denoisers are offered when their modules load.
    const auto t0 = SteadyClock::now();
    auto g = inference::Generator::Load(m, options_.pipeline.device);
    if (!g.ok()) {
      spdlog::error("model not offered model={} device={}: it does not load: {}", m.name,
                    options_.pipeline.device, std::string(g.status().message()));
      continue;
    }
    const double seconds = std::chrono::duration<double>(SteadyClock::now() - t0).count();
    model_load_.Add({{"model", m.name}, {"device", options_.pipeline.device}}).Set(seconds);
    warm.push_back(m.name);
  }
  c10::InferenceMode guard;
  for (const auto& [name, scale] : scales) {
    const auto t0 = SteadyClock::now();
    absl::StatusOr<std::unique_ptr<inference::Model>> m =
        inference::LoadModel(name, scale, options_.pipeline.model_path, options_.pipeline.device);
    absl::Status st = m.status();
    if (st.ok()) {
      // One small frame: the first run pays for lazy initialisation (kernels, device).
      // A model that loads but fails this run (a temporal model wants k frames, a model
      // may reject a 16x16 frame) is still offered: its tasks then fail with the model's
      // own error, naming the frame, instead of waiting for a worker forever.
      absl::StatusOr<at::Tensor> y = (*m)->Upscale(at::zeros({1, 3, 16, 16}));
      if (!y.ok()) {
        spdlog::warn("model warm-up run failed model={} device={}: {}", name,
                     options_.pipeline.device, std::string(y.status().message()));
      }
      if (options_.after_warm_up) options_.after_warm_up(name);
    }
    const double seconds = std::chrono::duration<double>(SteadyClock::now() - t0).count();
    if (!st.ok()) {
      spdlog::error("model not offered model={} device={}: it does not load: {}", name,
                    options_.pipeline.device, std::string(st.message()));
      continue;
    }
    model_load_.Add({{"model", name}, {"device", options_.pipeline.device}}).Set(seconds);
    spdlog::info("model warm model={} scale={} device={} seconds={:.3f}", name, scale,
                 options_.pipeline.device, seconds);
    if (std::find(warm.begin(), warm.end(), name) == warm.end()) warm.push_back(name);
  }
  models_ = warm;
  ready_.store(true);
  ready_gauge_.Set(1);
  return static_cast<int>(warm.size());
}

void Agent::SendTaskLogs(uint64_t lease_id) {
  if (!options_.task_log) return;
  absl::MutexLock lock(&log_send_mu_);
  std::map<uint64_t, std::vector<std::string>> all;
  if (lease_id != 0) {
    auto lines = options_.task_log->Take(lease_id);
    if (!lines.empty()) all[lease_id] = std::move(lines);
  } else {
    all = options_.task_log->TakeAll();
  }
  for (auto& [id, lines] : all) {
    v1::WorkerMessage m;
    m.mutable_task_log()->set_lease_id(id);
    for (auto& line : lines) m.mutable_task_log()->add_lines(std::move(line));
    Send(m);
  }
}

int64_t Agent::PublishedBytes(const v1::Assignment& a) const {
  std::vector<std::string> files;
  if (a.kind() == v1::TASK_KIND_ASSEMBLE) {
    files = {a.upscale().output(), a.upscale().output() + ".json"};
  } else if (a.kind() == v1::TASK_KIND_TAKE) {
    files = {a.take_output(), a.take_output() + ".json"};
  } else {
    files = {a.segment()};
  }
  int64_t total = 0;
  for (const auto& f : files) {
    auto p = storage_.Resolve(f, "output");
    std::error_code ec;
    if (!p.ok()) continue;
    const auto size = std::filesystem::file_size(*p, ec);
    if (!ec) total += static_cast<int64_t>(size);
  }
  return total;
}

v1::WorkerService::Stub& Agent::StubFor(const std::string& address) {
  std::unique_ptr<v1::WorkerService::Stub>& stub = stubs_[address];
  if (!stub) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10'000);
    // Reconnect soon after a server restart: leases are honoured for one lease duration.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1'000);
    auto channel = common::MakeChannel(address, options_.tls, options_.token, args);
    if (!channel.ok()) {
      // main() checks the TLS files first; this is a file that went away since.
      spdlog::error("cannot set up the channel to {}: {}", address,
                    std::string(channel.status().message()));
      stub = v1::WorkerService::NewStub(
          grpc::CreateChannel("unix:/nonexistent", grpc::InsecureChannelCredentials()));
    } else {
      stub = v1::WorkerService::NewStub(*channel);
    }
  }
  return *stub;
}

void Agent::Run() {
  int backoff_ms = 200;
  // The last failure logged, and when: the same one is logged again every 30 s, not on
  // every retry.
  std::string last_logged;
  SteadyClock::time_point last_logged_at;
  while (!stop_.load()) {
    grpc::ClientContext ctx;
    // Fail fast when the channel cannot connect (the server is away, or the TLS
    // handshake fails): the reason is in the call's status, logged below, and the
    // loop backs off. Waiting for the channel to be ready would retry in silence.
    ctx.set_wait_for_ready(false);
    const std::string server = servers_.current();
    {
      // Published before the call starts (starting it blocks until the channel is
      // ready): a cancel then ends the call as soon as it starts.
      absl::MutexLock lock(&ctx_mu_);
      ctx_ = &ctx;
      if (stop_.load()) ctx.TryCancel();
    }
    auto stream = StubFor(server).Connect(&ctx);
    v1::WorkerMessage hello;
    v1::Hello* h = hello.mutable_hello();
    h->set_name(options_.name);
    h->set_slots(options_.slots);
    h->set_prefetch(options_.prefetch);
    for (const auto& m : models_) h->add_models(m);
    h->add_devices(options_.pipeline.device);
    h->set_version(REELFARM_VERSION);
    h->mutable_tags()->insert(options_.tags.begin(), options_.tags.end());
    h->set_memory_bytes(options_.memory_bytes);
    h->set_batches(true);
    std::vector<v1::WorkerMessage> resend;
    {
      absl::MutexLock lock(&work_mu_);
      for (const auto& [id, flag] : active_) h->add_held_leases(id);
      for (const auto& [id, msg] : unacked_) {
        if (!active_.count(id)) h->add_held_leases(id);
        resend.push_back(msg);
      }
    }
    v1::ServerMessage first;
    // Other threads send only once the server has welcomed us.
    const bool wrote = stream->Write(hello);
    const bool read = wrote && stream->Read(&first);
    const bool connected = read && first.has_welcome();
    if (connected) {
      heartbeat_ms_.store(std::max<int64_t>(100, first.welcome().heartbeat_interval_ms()));
      spdlog::info("connected to {} as worker={} slots={} prefetch={} held_leases={}", server,
                   options_.name, options_.slots, options_.prefetch, h->held_leases_size());
      backoff_ms = 200;
      {
        absl::MutexLock lock(&stream_mu_);
        stream_ = stream.get();
      }
      if (first.welcome().batches() && resend.size() > 1) {
        // The results kept for the server, in one message.
        v1::WorkerMessage batch;
        for (auto& msg : resend) *batch.mutable_batch()->add_messages() = std::move(msg);
        Send(batch);
      } else {
        for (const auto& msg : resend) Send(msg);
      }
      Serve(stream.get());
    }
    {
      absl::MutexLock lock(&stream_mu_);
      stream_ = nullptr;
    }
    {
      absl::MutexLock lock(&ctx_mu_);
      ctx_ = nullptr;
    }
    // A failed first read means the server ended the call (it refused the token, or a
    // standby named its leader): Finish() then returns its status, which a cancel would
    // hide.
    if ((read && !connected) || stop_.load()) ctx.TryCancel();
    grpc::Status st = stream->Finish();
    if (stop_.load()) break;
    std::string leader;
    const auto& trailers = ctx.GetServerTrailingMetadata();
    if (auto it = trailers.find("reelfarm-leader"); it != trailers.end()) {
      leader.assign(it->second.data(), it->second.size());
    }
    if (!leader.empty() || servers_.size() > 1) {
      servers_.Next(leader);
      // A standby named the leader: go there at once.
      if (!leader.empty()) backoff_ms = std::min(backoff_ms, 100);
    }
    // A handshake that fails (a certificate the server refuses, or one of the server's
    // that this worker does not trust) fails again until someone changes one: back off
    // further than for a server that is away.
    const std::string& why = st.error_message();
    // Under TLS 1.3 a server that refuses this worker's client certificate closes the
    // connection once the handshake is done: the call then fails before any answer
    // with "Socket closed" (a server that is away refuses the connection instead).
    const bool refused_cert =
        !options_.tls.insecure && !read && why.find("Socket closed") != std::string::npos;
    const bool tls_failure = refused_cert || why.find("andshake") != std::string::npos ||
                             why.find("SSL") != std::string::npos ||
                             why.find("ertificate") != std::string::npos;
    const int max_backoff_ms = tls_failure ? 10'000 : 1'000;
    // Tasks keep running: the server may honour their leases when we are back.
    if (connected || why != last_logged ||
        SteadyClock::now() - last_logged_at > std::chrono::seconds(30)) {
      if (refused_cert) {
        spdlog::error(
            "cannot connect to {}: TLS handshake failed: the server closed the "
            "connection ({}); it refuses this worker's client certificate, or "
            "wants one: check --tls-cert and --tls-key against the server's "
            "--tls-client-ca; retrying every {} s",
            server, why, max_backoff_ms / 1000);
      } else if (tls_failure) {
        spdlog::error(
            "cannot connect to {}: TLS handshake failed ({}); check --tls-ca, "
            "--tls-cert and --tls-key against the server's; retrying every {} s",
            server, why, max_backoff_ms / 1000);
      } else {
        spdlog::warn("stream to {} ended ({}: {}); reconnecting to {} in {} ms", server,
                     static_cast<int>(st.error_code()), why, servers_.current(), backoff_ms);
      }
      last_logged = why;
      last_logged_at = SteadyClock::now();
    }
    for (int waited = 0; waited < backoff_ms && !stop_.load(); waited += 50) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    backoff_ms = std::min(backoff_ms * 2, max_backoff_ms);
  }
}

void Agent::Serve(grpc::ClientReaderWriter<v1::WorkerMessage, v1::ServerMessage>* stream) {
  v1::ServerMessage msg;
  while (stream->Read(&msg)) {
    if (msg.has_batch()) {
      spdlog::info("server batch messages={}", msg.batch().messages_size());
      // In order, as if sent one by one; a batch in a batch is ignored.
      for (const v1::ServerMessage& m : msg.batch().messages()) {
        if (!m.has_batch()) Handle(m);
      }
    } else {
      Handle(msg);
    }
  }
}

void Agent::Handle(const v1::ServerMessage& msg) {
  if (msg.has_assignment()) {
    Work w{msg.assignment(), std::make_shared<std::atomic<bool>>(false)};
    spdlog::info("assigned job={} task={} lease={} attempt={}", w.assignment.job_id(),
                 w.assignment.task_index(), w.assignment.lease_id(), w.assignment.attempt());
    absl::MutexLock lock(&work_mu_);
    active_[w.assignment.lease_id()] = w.cancelled;
    queue_.push_back(std::move(w));
    work_cv_.Signal();
  } else if (msg.has_cancel()) {
    absl::MutexLock lock(&work_mu_);
    const uint64_t id = msg.cancel().lease_id();
    unacked_.erase(id);
    auto it = active_.find(id);
    if (it != active_.end()) {
      spdlog::info("cancel lease={}: {}", it->first, msg.cancel().reason());
      it->second->store(true);
      active_.erase(it);
    }
    // A task still queued for a slot is dropped there (its flag is set).
  } else if (msg.has_ack()) {
    absl::MutexLock lock(&work_mu_);
    unacked_.erase(msg.ack().lease_id());
    if (!msg.ack().accepted()) {
      spdlog::warn("server refused the result of lease={}: {}", msg.ack().lease_id(),
                   msg.ack().message());
    }
  }
}

void Agent::SlotLoop(int slot) {
  at::set_num_threads(options_.threads);
  PipelineOptions popts = options_.pipeline;
  TaskRunner runner(storage_, popts);
  while (true) {
    Work w;
    {
      absl::MutexLock lock(&work_mu_);
      while (!stop_.load() && queue_.empty()) work_cv_.Wait(&work_mu_);
      if (stop_.load()) return;
      w = std::move(queue_.front());
      queue_.pop_front();
    }
    if (w.cancelled->load()) continue;
    const v1::Assignment& a = w.assignment;
    const uint64_t lease = a.lease_id();
    auto last_sent = SteadyClock::now();
    auto progress = [&](int64_t frames) {
      auto now = SteadyClock::now();
      if (now - last_sent < std::chrono::milliseconds(100)) return;
      last_sent = now;
      v1::WorkerMessage m;
      m.mutable_progress()->set_lease_id(lease);
      m.mutable_progress()->set_frames_done(frames);
      Send(m);
    };
    TaskReport r;
    {
      // What this thread logs from here to the result goes to the task's log.
      TaskLogSink::Capture capture(lease);
      spdlog::info("task started job={} task={} lease={} attempt={} worker={}", a.job_id(),
                   a.task_index(), lease, a.attempt(), options_.name);
      r = runner.Run(a, progress, *w.cancelled);
      if (r.ok) {
        spdlog::info("task done job={} task={} lease={} frames={} seconds={:.2f}", a.job_id(),
                     a.task_index(), lease, r.frames_done, r.seconds);
      } else {
        spdlog::warn("task failed job={} task={} lease={} retryable={}: {}", a.job_id(),
                     a.task_index(), lease, r.retryable, r.error);
      }
    }
    const bool cancelled = w.cancelled->load();
    const char* kind = a.kind() == v1::TASK_KIND_ASSEMBLE ? "assemble"
                       : a.kind() == v1::TASK_KIND_TAKE   ? "take"
                                                          : "chunk";
    tasks_.Add({{"kind", kind},
                {"result", r.ok        ? "ok"
                           : cancelled ? "cancelled"
                                       : "failed"}})
        .Increment();
    frames_
        .Add(
            {{"model", a.kind() == v1::TASK_KIND_TAKE ? a.generate().model() : a.upscale().model()},
             {"device", options_.pipeline.device}})
        .Increment(static_cast<double>(r.ok ? r.frames_done : 0));
    for (const auto& [stage, s] : r.stage_seconds) {
      stage_seconds_.Add({{"stage", stage}}).Increment(s);
      stage_hist_.Add({{"stage", stage}}, kStageBuckets).Observe(s);
    }
    if (r.ok) {
      bytes_written_.Add({{"kind", kind}}).Increment(static_cast<double>(PublishedBytes(a)));
    }
    if (cancelled) {
      // The lease is gone; the server would refuse the result and drop its lines.
      if (options_.task_log) options_.task_log->Take(lease);
      continue;
    }
    {
      // Held until answered: from here the lease is reported through unacked_.
      absl::MutexLock lock(&work_mu_);
      active_.erase(lease);
    }
    SendTaskLogs(lease);  // before the result, so the log is complete when it lands
    v1::WorkerMessage m;
    v1::TaskResult* res = m.mutable_result();
    res->set_lease_id(lease);
    res->set_ok(r.ok);
    res->set_error(r.error);
    res->set_retryable(r.retryable);
    res->set_frames_done(r.frames_done);
    res->set_seconds(r.seconds);
    res->set_model_digest(r.model_digest);
    res->set_output_digest(r.output_digest);
    if (r.qc.measured()) *res->mutable_qc() = r.qc;
    res->set_thumbnail(r.thumbnail);
    res->set_preview(r.preview);
    SendResult(m);
    (void)slot;
  }
}

void Agent::HeartbeatLoop() {
  while (!stop_.load()) {
    v1::WorkerMessage m;
    // Sent with no leases too: it tells the server the worker is alive (a worker whose
    // lease expired gets work again only after a heartbeat).
    v1::Heartbeat* hb = m.mutable_heartbeat();
    {
      absl::MutexLock lock(&work_mu_);
      // Unanswered results are not listed: their leases end when the server commits
      // them, and a cancel for one then must not drop a result not yet committed.
      for (const auto& [id, flag] : active_) hb->add_lease_ids(id);
    }
    Send(m);
    SendTaskLogs(0);  // lines of running tasks, for `reelctl logs --follow`
    const int64_t wait = heartbeat_ms_.load();
    for (int64_t waited = 0; waited < wait && !stop_.load(); waited += 50) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
}

}  // namespace reelfarm::worker
