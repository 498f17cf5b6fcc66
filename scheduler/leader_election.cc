#include "scheduler/leader_election.h"

#include "absl/strings/str_cat.h"
#include "scheduler/pg_connection.h"

namespace reelfarm::scheduler {

namespace {
const std::string kLockArgs = absl::StrCat(kPgLockSpace, ", ", kPgLeadershipLock);
constexpr int kStallTimeoutMs = 10'000;
}  // namespace

LeaderElection::LeaderElection(std::unique_ptr<PgConnection> conn, std::string address)
    : address_(std::move(address)), conn_(std::move(conn)) {}

LeaderElection::~LeaderElection() = default;

absl::StatusOr<std::unique_ptr<LeaderElection>> LeaderElection::Create(const std::string& url,
                                                                       std::string address) {
  // The leader polls this session twice a second. One that stops polling (a stalled
  // process, a host cut off) has it ended by PostgreSQL after kStallTimeout, which frees
  // the lock for a standby; its writes are fenced by then (OpenPostgresJobStore).
  ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> conn,
                   PgConnection::Open(url, "reelfarm-leadership",
                                      absl::StrCat("-c idle_session_timeout=", kStallTimeoutMs)));
  RETURN_IF_ERROR(MigratePostgresSchema(*conn));
  return std::unique_ptr<LeaderElection>(new LeaderElection(std::move(conn), std::move(address)));
}

absl::StatusOr<bool> LeaderElection::TryAcquire() {
  absl::MutexLock lock(&mu_);
  if (epoch_ != 0 && !conn_->broken()) return true;
  epoch_ = 0;
  RETURN_IF_ERROR(conn_->EnsureConnected());
  ASSIGN_OR_RETURN(PgResultPtr got,
                   conn_->Exec(absl::StrCat("SELECT pg_try_advisory_lock(", kLockArgs, ")::int"),
                               {}, "take the leadership lock"));
  if (PgConnection::FirstInt(got.get()) != 1) return false;
  // Waits for the old leader's write in flight, if any (it holds the row FOR SHARE);
  // every later write of the old leader sees the new epoch and is refused.
  absl::StatusOr<PgResultPtr> bumped = conn_->Exec(
      "UPDATE leadership SET epoch = epoch + 1, address = $1, "
      "since_unix_ms = (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint "
      "WHERE id = 1 RETURNING epoch",
      {address_}, "start a new epoch");
  if (!bumped.ok()) {
    conn_->Run(absl::StrCat("SELECT pg_advisory_unlock(", kLockArgs, ")"), "unlock").IgnoreError();
    return bumped.status();
  }
  epoch_ = PgConnection::FirstInt(bumped->get());
  return true;
}

bool LeaderElection::StillLeading() {
  absl::MutexLock lock(&mu_);
  if (epoch_ == 0) return false;
  // A round trip on the lock's own session: if it fails, the session (and the lock)
  // may be gone, and another server may lead.
  if (conn_->broken() || !conn_->Run("SELECT 1", "check the leadership session").ok()) {
    epoch_ = 0;
    return false;
  }
  return true;
}

void LeaderElection::Resign() {
  absl::MutexLock lock(&mu_);
  if (epoch_ != 0 && !conn_->broken()) {
    conn_->Run(absl::StrCat("SELECT pg_advisory_unlock(", kLockArgs, ")"), "resign").IgnoreError();
  }
  epoch_ = 0;
}

int64_t LeaderElection::epoch() const {
  absl::MutexLock lock(&mu_);
  return epoch_;
}

absl::StatusOr<LeaderElection::Leader> LeaderElection::CurrentLeader() {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(conn_->EnsureConnected());
  ASSIGN_OR_RETURN(PgResultPtr r, conn_->Exec("SELECT epoch, address FROM leadership "
                                              "WHERE id = 1",
                                              {}, "read the leader"));
  Leader leader;
  if (PQntuples(r.get()) == 1) {
    leader.epoch = PgConnection::FirstInt(r.get());
    leader.address = PQgetvalue(r.get(), 0, 1);
  }
  return leader;
}

}  // namespace reelfarm::scheduler
