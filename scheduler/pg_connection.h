// PgConnection: one libpq session, for the PostgreSQL job store and the leader
// election. Wraps PGconn and PGresult on first contact, turns PostgreSQL's errors into
// statuses (SQLSTATE → gRPC code) whose messages name the database (password hidden),
// and reconnects on demand after the session broke.
//
// Thread-safety: none; each user keeps its own connection behind its own lock.
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/status.h"

namespace reelfarm::scheduler {

struct PgResultFree {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResultPtr = std::unique_ptr<PGresult, PgResultFree>;

// `url` with any password replaced by "***", for messages and logs.
std::string RedactDatabaseUrl(absl::string_view url);

// True when `target` names a PostgreSQL database (postgres:// or postgresql://).
bool IsPostgresUrl(absl::string_view target);

// The ids of PostgreSQL advisory locks reelfarm takes (two-key form: kLockSpace, id).
inline constexpr int kPgLockSpace = 0x52464d31;  // "RFM1"
inline constexpr int kPgMigrationLock = 1;
inline constexpr int kPgLeadershipLock = 2;

class PgConnection final {
 public:
  // Connects at once (5 s connect timeout, TCP keepalives), so that a wrong or
  // unreachable URL fails at start-up: INVALID_ARGUMENT for a malformed URL,
  // UNAVAILABLE for a database that cannot be reached or refuses the login; the
  // message names the URL. `application_name` shows in pg_stat_activity;
  // `session_options` are server settings for the session ("-c name=value ...").
  static absl::StatusOr<std::unique_ptr<PgConnection>> Open(
      const std::string& url, const std::string& application_name,
      const std::string& session_options = "");
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // Reconnects if the session broke (UNAVAILABLE when the database is still away).
  absl::Status EnsureConnected();
  bool broken() const;

  // Runs one statement with text parameters (or, without parameters, one or more
  // statements). `what` names the step in errors. Rows
  // come back in the result; a statement that returns none gives an empty result.
  absl::StatusOr<PgResultPtr> Exec(const std::string& sql, const std::vector<std::string>& params,
                                   absl::string_view what);
  absl::Status Run(const std::string& sql, absl::string_view what) {
    return Exec(sql, {}, what).status();
  }
  // Like Exec, through a statement prepared once per session under `name`.
  absl::StatusOr<PgResultPtr> ExecPrepared(const char* name, const std::string& sql,
                                           const std::vector<std::string>& params,
                                           absl::string_view what);

  // Runs the prepared statement `name` once per entry of `params`, all sent before any
  // answer is read (libpq's pipeline mode: one round trip for the lot, each statement
  // still its own, in order). Returns the rows each one affected. The first statement
  // that fails gives the error (the ones after it are skipped by the server). At most
  // kMaxPipelined entries per call.
  static constexpr size_t kMaxPipelined = 1000;
  absl::StatusOr<std::vector<int64_t>> ExecPreparedPipelined(
      const char* name, const std::string& sql, const std::vector<std::vector<std::string>>& params,
      absl::string_view what);

  // The first column of the first row as int64 (0 when no row).
  static int64_t FirstInt(const PGresult* r);

  // An error about this database: "database 'URL': <what>: <detail>".
  absl::Status Error(absl::StatusCode code, absl::string_view what, absl::string_view detail) const;
  const std::string& display_url() const { return display_url_; }

 private:
  PgConnection(std::string display_url, PGconn* conn);
  absl::StatusOr<PgResultPtr> Check(PGresult* raw, absl::string_view what);

  const std::string display_url_;
  PGconn* conn_;
  std::set<std::string> prepared_;  // in the current session
};

}  // namespace reelfarm::scheduler

namespace reelfarm::scheduler {

// Brings reelfarm's schema in the database of `conn` to the newest version: versioned,
// forward-only steps recorded in `schema_version`, all in one transaction under an
// advisory lock, so servers starting together migrate once. FAILED_PRECONDITION for a
// schema newer than this build knows.
absl::Status MigratePostgresSchema(PgConnection& conn);

}  // namespace reelfarm::scheduler
