#include "server/ha_server.h"

#include <unistd.h>

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/server_builder.h>
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "common/grpc_security.h"
#include "common/thread_name.h"
#include "scheduler/pg_connection.h"

namespace reelfarm::server {

namespace {

constexpr int kPollMs = 500;

// Every call ends at once with UNAVAILABLE and, when known, the leader's address.
class Refusal final : public grpc::ServerGenericBidiReactor {
 public:
  Refusal(grpc::GenericCallbackServerContext* ctx, const std::string& message,
          const std::string& leader) {
    if (!leader.empty()) ctx->AddTrailingMetadata(kLeaderMetadataKey, leader);
    Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, message));
  }
  void OnDone() override { delete this; }
};

// "host:port" with the port replaced; an unspecified host becomes this host's name.
std::string WithPort(const std::string& listen, int port, bool for_clients) {
  std::string host = listen.substr(0, listen.rfind(':'));
  if (for_clients && (host.empty() || host == "0.0.0.0" || host == "[::]")) {
    char name[256] = {};
    gethostname(name, sizeof(name) - 1);
    host = name;
  }
  return absl::StrCat(host, ":", port);
}

}  // namespace

// What a standby answers: kept across standby periods (each has its own service).
struct StandbyAnswer {
  absl::Mutex mu;
  std::string message ABSL_GUARDED_BY(mu) =
      "this reelfarm-server is a standby and has not found the leader yet; "
      "try again or another server";
  std::string leader ABSL_GUARDED_BY(mu);  // address, or ""
};

// Answers every method of every service while this server is a standby.
class StandbyService final : public grpc::CallbackGenericService {
 public:
  explicit StandbyService(std::shared_ptr<StandbyAnswer> answer) : answer_(std::move(answer)) {}
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    absl::MutexLock lock(&answer_->mu);
    return new Refusal(ctx, answer_->message, answer_->leader);
  }

 private:
  const std::shared_ptr<StandbyAnswer> answer_;
};

// The leading FarmServer's gauges, or none.
class ForwardingCollectable final : public prometheus::Collectable {
 public:
  void Set(std::shared_ptr<prometheus::Collectable> target) {
    absl::MutexLock lock(&mu_);
    target_ = std::move(target);
  }
  std::vector<prometheus::MetricFamily> Collect() const override {
    absl::MutexLock lock(&mu_);
    return target_ ? target_->Collect() : std::vector<prometheus::MetricFamily>{};
  }

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<prometheus::Collectable> target_ ABSL_GUARDED_BY(mu_);
};

HaServer::HaServer(ServerOptions options, prometheus::Registry& registry)
    : options_(std::move(options)),
      registry_(registry),
      collectable_(std::make_shared<ForwardingCollectable>()),
      answer_(std::make_shared<StandbyAnswer>()) {}

absl::StatusOr<std::unique_ptr<HaServer>> HaServer::Start(ServerOptions options,
                                                          std::string advertise,
                                                          prometheus::Registry& registry) {
  std::unique_ptr<HaServer> s(new HaServer(std::move(options), registry));
  RETURN_IF_ERROR(s->StartStandby());
  // From now on the same port, whether standby or leader.
  s->advertise_ = advertise.empty() ? WithPort(s->options_.listen, s->port_, true) : advertise;
  s->options_.listen = WithPort(s->options_.listen, s->port_, false);
  ASSIGN_OR_RETURN(s->election_,
                   scheduler::LeaderElection::Create(s->options_.store, s->advertise_));
  s->loop_ = std::thread([srv = s.get()] {
    common::NameThread("rf-lead");
    srv->Loop();
  });
  return s;
}

HaServer::~HaServer() { Shutdown(); }

std::shared_ptr<prometheus::Collectable> HaServer::metrics_collectable() const {
  return collectable_;
}

absl::Status HaServer::StartStandby() {
  grpc::EnableDefaultHealthCheckService(true);
  // The standby answers on the leader's terms: the same TLS (mutual TLS included).
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> creds,
                   common::MakeServerCredentials(options_.tls));
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options_.listen, creds, &port);
  // A generic service serves one server only: a new one for each standby period.
  standby_service_ = std::make_unique<StandbyService>(answer_);
  builder.RegisterCallbackGenericService(standby_service_.get());
  standby_ = builder.BuildAndStart();
  if (!standby_ || port == 0) {
    standby_.reset();
    return absl::UnavailableError(absl::StrCat("cannot listen on '", options_.listen,
                                               "'; is another server using that port?"));
  }
  if (auto* health = standby_->GetHealthCheckService()) health->SetServingStatus(false);
  port_ = port;
  return absl::OkStatus();
}

bool HaServer::Pause(int ms) {
  absl::MutexLock lock(&stop_mu_);
  return !stop_mu_.AwaitWithTimeout(absl::Condition(&stop_), absl::Milliseconds(ms));
}

void HaServer::SetStandbyAnswer(std::string message, std::string leader) {
  absl::MutexLock lock(&answer_->mu);
  answer_->message = std::move(message);
  answer_->leader = std::move(leader);
}

void HaServer::UpdateStandbyAnswer() {
  absl::StatusOr<scheduler::LeaderElection::Leader> leader = election_->CurrentLeader();
  if (!leader.ok()) {
    SetStandbyAnswer(
        absl::StrCat("this reelfarm-server stands by and cannot reach the database (",
                     leader.status().message(), "); no leader is known, try again later"),
        "");
  } else if (leader->address.empty() || leader->address == advertise_) {
    SetStandbyAnswer("this reelfarm-server is a standby; no leader yet, try again shortly", "");
  } else {
    SetStandbyAnswer(
        absl::StrCat("this reelfarm-server is a standby; the leader is '", leader->address,
                     "' (epoch ", leader->epoch, "): send calls there"),
        leader->address);
  }
}

void HaServer::Loop() {
  std::string last_error;
  while (true) {
    // Standby: poll for the lock, keep the answer for clients current.
    while (true) {
      absl::StatusOr<bool> got = election_->TryAcquire();
      if (got.ok() && *got) break;
      if (!got.ok() && std::string(got.status().message()) != last_error) {
        last_error = std::string(got.status().message());
        spdlog::warn("standby: {}", last_error);
      }
      UpdateStandbyAnswer();
      if (!Pause(kPollMs)) return;
    }
    last_error.clear();
    const int64_t epoch = election_->epoch();
    ServerOptions options = options_;
    options.epoch = epoch;
    // The farm binds the port beside the standby (gRPC listens with SO_REUSEPORT), and
    // only then does the standby go: the port never refuses connections. The same the
    // other way round when stepping down.
    absl::StatusOr<std::unique_ptr<FarmServer>> farm = FarmServer::Start(options, registry_);
    if (!farm.ok()) {
      spdlog::error("epoch {}: cannot serve: {}", epoch, std::string(farm.status().message()));
      election_->Resign();
      if (!Pause(kPollMs)) return;
      continue;
    }
    standby_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
    standby_->Wait();
    standby_.reset();
    farm_ = std::move(*farm);
    collectable_->Set(farm_->metrics_collectable());
    leading_epoch_.store(epoch);
    spdlog::info("leading epoch={} address={} database={}", epoch, advertise_,
                 scheduler::RedactDatabaseUrl(options_.store));
    std::string why;
    while (Pause(kPollMs)) {
      if (!election_->StillLeading()) {
        why = absl::StrCat("the leadership session to database '",
                           scheduler::RedactDatabaseUrl(options_.store), "' ended");
        break;
      }
      if (absl::Status health = farm_->health(); !health.ok()) {
        why = std::string(health.message());
        break;
      }
    }
    leading_epoch_.store(0);
    if (why.empty()) return;  // Shutdown() stops the farm
    spdlog::error(
        "stepping down from epoch {}: {}; standby until this server can lead "
        "again (then the committed state is reloaded)",
        epoch, why);
    SetStandbyAnswer(absl::StrCat("this reelfarm-server stepped down (", why,
                                  ") and stands by; try again later"),
                     "");
    collectable_->Set(nullptr);
    for (absl::Status bound = StartStandby(); !bound.ok(); bound = StartStandby()) {
      spdlog::warn("standby: {}", std::string(bound.message()));
      if (!Pause(kPollMs)) return;
    }
    farm_->Shutdown();
    farm_.reset();
    election_->Resign();
    spdlog::info("standing by on port {}", port_);
    if (!Pause(kPollMs)) return;
  }
}

void HaServer::Shutdown() {
  {
    absl::MutexLock lock(&stop_mu_);
    if (stop_) return;
    stop_ = true;  // wakes Pause()
  }
  if (loop_.joinable()) loop_.join();
  collectable_->Set(nullptr);
  if (farm_) farm_->Shutdown();
  farm_.reset();
  if (standby_) {
    standby_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
    standby_->Wait();
    standby_.reset();
  }
  if (election_) election_->Resign();
}

}  // namespace reelfarm::server
