#include "scheduler/pg_connection.h"

#include <cstdlib>
#include <regex>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace reelfarm::scheduler {

namespace {

// SQLSTATE classes: what retrying or fixing the host helps with is UNAVAILABLE; a
// broken constraint or bad text is the caller's value; anything else INTERNAL.
absl::StatusCode CodeFor(absl::string_view sqlstate, bool connection_lost) {
  if (connection_lost || sqlstate.empty()) return absl::StatusCode::kUnavailable;
  if (absl::StartsWith(sqlstate, "23") || absl::StartsWith(sqlstate, "22")) {
    return absl::StatusCode::kInvalidArgument;
  }
  static constexpr absl::string_view kHost[] = {"08", "53", "57", "40", "55", "58", "25"};
  for (absl::string_view prefix : kHost) {
    if (absl::StartsWith(sqlstate, prefix)) return absl::StatusCode::kUnavailable;
  }
  return absl::StatusCode::kInternal;
}

// libpq's message on one line.
std::string Trimmed(const char* text) {
  std::string out(absl::StripTrailingAsciiWhitespace(text ? text : ""));
  for (size_t i = out.find('\n'); i != std::string::npos; i = out.find('\n', i)) {
    size_t end = i + 1;
    while (end < out.size() && (out[end] == '\t' || out[end] == ' ')) ++end;
    out.replace(i, end - i, "; ");
  }
  return out;
}

}  // namespace

std::string RedactDatabaseUrl(absl::string_view url) {
  // postgres://user:secret@host → postgres://user:***@host; password=secret → ***
  static const std::regex kUserInfo(R"(^(postgres(ql)?://[^:/@]*):[^@/]*@)");
  static const std::regex kParam(R"(password=[^&\s]*)");
  std::string out = std::regex_replace(std::string(url), kUserInfo, "$1:***@");
  return std::regex_replace(out, kParam, "password=***");
}

bool IsPostgresUrl(absl::string_view target) {
  return absl::StartsWith(target, "postgres://") || absl::StartsWith(target, "postgresql://");
}

PgConnection::PgConnection(std::string display_url, PGconn* conn)
    : display_url_(std::move(display_url)), conn_(conn) {}

PgConnection::~PgConnection() { PQfinish(conn_); }

absl::StatusOr<std::unique_ptr<PgConnection>> PgConnection::Open(
    const std::string& url, const std::string& application_name,
    const std::string& session_options) {
  const std::string shown = RedactDatabaseUrl(url);
  char* parse_error = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(url.c_str(), &parse_error);
  if (!parsed) {
    const std::string detail = Trimmed(parse_error ? parse_error : "out of memory");
    PQfreemem(parse_error);
    return absl::InvalidArgumentError(
        absl::StrCat("database '", shown, "': not a valid URL: ", detail,
                     "; give postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE"));
  }
  PQconninfoFree(parsed);
  // Defaults first: what the URL says wins (the URL is expanded where `dbname` is).
  const char* keys[] = {"connect_timeout",
                        "keepalives_idle",
                        "keepalives_interval",
                        "keepalives_count",
                        "application_name",
                        "options",
                        "dbname",
                        nullptr};
  const char* values[] = {
      "5", "5", "2", "3", application_name.c_str(), session_options.c_str(), url.c_str(), nullptr};
  PGconn* conn = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  // Notices ("relation ... already exists, skipping") are not errors: not printed.
  if (conn)
    PQsetNoticeProcessor(
        conn, [](void*, const char*) {}, nullptr);
  std::unique_ptr<PgConnection> c(new PgConnection(shown, conn));
  if (!conn || PQstatus(conn) != CONNECTION_OK) {
    return c->Error(absl::StatusCode::kUnavailable, "cannot connect",
                    absl::StrCat(conn ? Trimmed(PQerrorMessage(conn)) : "out of memory",
                                 "; check the host, port, database name and login, and "
                                 "that PostgreSQL is running"));
  }
  return c;
}

bool PgConnection::broken() const { return PQstatus(conn_) != CONNECTION_OK; }

absl::Status PgConnection::EnsureConnected() {
  if (!broken()) return absl::OkStatus();
  prepared_.clear();
  PQreset(conn_);
  if (!broken()) return absl::OkStatus();
  return Error(absl::StatusCode::kUnavailable, "reconnect", Trimmed(PQerrorMessage(conn_)));
}

absl::Status PgConnection::Error(absl::StatusCode code, absl::string_view what,
                                 absl::string_view detail) const {
  return absl::Status(code, absl::StrCat("database '", display_url_, "': ", what, ": ", detail));
}

absl::StatusOr<PgResultPtr> PgConnection::Check(PGresult* raw, absl::string_view what) {
  PgResultPtr r(raw);
  const ExecStatusType st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return r;
  const char* state = r ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr;
  const std::string detail = Trimmed(r ? PQresultErrorMessage(r.get()) : PQerrorMessage(conn_));
  return Error(CodeFor(state ? state : "", broken()), what,
               detail.empty() ? Trimmed(PQerrorMessage(conn_)) : detail);
}

namespace {
std::vector<const char*> Pointers(const std::vector<std::string>& params) {
  std::vector<const char*> out;
  out.reserve(params.size());
  for (const std::string& p : params) out.push_back(p.c_str());
  return out;
}
}  // namespace

absl::StatusOr<PgResultPtr> PgConnection::Exec(const std::string& sql,
                                               const std::vector<std::string>& params,
                                               absl::string_view what) {
  // Without parameters, the simple protocol: several statements in one text.
  if (params.empty()) return Check(PQexec(conn_, sql.c_str()), what);
  const std::vector<const char*> values = Pointers(params);
  return Check(PQexecParams(conn_, sql.c_str(), static_cast<int>(params.size()), nullptr,
                            values.data(), nullptr, nullptr, 0),
               what);
}

absl::StatusOr<PgResultPtr> PgConnection::ExecPrepared(const char* name, const std::string& sql,
                                                       const std::vector<std::string>& params,
                                                       absl::string_view what) {
  if (!prepared_.count(name)) {
    RETURN_IF_ERROR(Check(PQprepare(conn_, name, sql.c_str(), 0, nullptr), what).status());
    prepared_.insert(name);
  }
  const std::vector<const char*> values = Pointers(params);
  return Check(PQexecPrepared(conn_, name, static_cast<int>(params.size()), values.data(), nullptr,
                              nullptr, 0),
               what);
}

absl::StatusOr<std::vector<int64_t>> PgConnection::ExecPreparedPipelined(
    const char* name, const std::string& sql, const std::vector<std::vector<std::string>>& params,
    absl::string_view what) {
  if (params.size() > kMaxPipelined) {
    return absl::InternalError(absl::StrCat(what, ": ", params.size(),
                                            " statements in one "
                                            "pipeline; at most ",
                                            kMaxPipelined));
  }
  if (!prepared_.count(name)) {
    RETURN_IF_ERROR(Check(PQprepare(conn_, name, sql.c_str(), 0, nullptr), what).status());
    prepared_.insert(name);
  }
  if (PQenterPipelineMode(conn_) != 1) {
    return Error(broken() ? absl::StatusCode::kUnavailable : absl::StatusCode::kInternal, what,
                 "cannot enter pipeline mode: " + Trimmed(PQerrorMessage(conn_)));
  }
  absl::Status status;
  size_t sent = 0;
  for (const auto& p : params) {
    const std::vector<const char*> values = Pointers(p);
    if (PQsendQueryPrepared(conn_, name, static_cast<int>(p.size()), values.data(), nullptr,
                            nullptr, 0) != 1) {
      status = Error(absl::StatusCode::kUnavailable, what, Trimmed(PQerrorMessage(conn_)));
      break;
    }
    ++sent;
  }
  if (PQpipelineSync(conn_) != 1 && status.ok()) {
    status = Error(absl::StatusCode::kUnavailable, what, Trimmed(PQerrorMessage(conn_)));
  }
  // Every statement sent gives a result and a NULL after it; the sync gives its own.
  std::vector<int64_t> rows;
  rows.reserve(sent);
  for (size_t i = 0; i < sent && !broken(); ++i) {
    PGresult* raw = PQgetResult(conn_);
    if (raw == nullptr) break;
    if (PQresultStatus(raw) == PGRES_PIPELINE_ABORTED) {
      PQclear(raw);
    } else {
      absl::StatusOr<PgResultPtr> r = Check(raw, what);
      if (!r.ok()) {
        if (status.ok()) status = r.status();
      } else {
        int64_t n = 0;
        (void)absl::SimpleAtoi(PQcmdTuples(r->get()), &n);
        rows.push_back(n);
      }
    }
    while (PGresult* extra = PQgetResult(conn_)) PQclear(extra);  // to the NULL
  }
  for (int nulls = 0; !broken() && nulls < 2;) {  // to the sync's result
    PGresult* raw = PQgetResult(conn_);
    if (raw == nullptr) {
      ++nulls;
      continue;
    }
    const bool sync = PQresultStatus(raw) == PGRES_PIPELINE_SYNC;
    PQclear(raw);
    if (sync) break;
  }
  if (PQexitPipelineMode(conn_) != 1 && status.ok()) {
    status = Error(broken() ? absl::StatusCode::kUnavailable : absl::StatusCode::kInternal, what,
                   "cannot leave pipeline mode: " + Trimmed(PQerrorMessage(conn_)));
  }
  if (!status.ok()) return status;
  if (broken()) return Error(absl::StatusCode::kUnavailable, what, Trimmed(PQerrorMessage(conn_)));
  return rows;
}

int64_t PgConnection::FirstInt(const PGresult* r) {
  int64_t v = 0;
  if (PQntuples(r) < 1 || PQgetisnull(r, 0, 0)) return 0;
  return absl::SimpleAtoi(PQgetvalue(r, 0, 0), &v) ? v : 0;
}

}  // namespace reelfarm::scheduler
