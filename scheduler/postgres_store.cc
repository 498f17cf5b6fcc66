// PostgresJobStore: the JobStore for several servers (active/standby) on one
// PostgreSQL database. Rows are store_rows.h's, as in the SQLite store. One session
// behind a mutex; every call is one transaction, committed before it returns
// (PostgreSQL's default synchronous_commit=on makes that durable). A session that broke
// is reconnected by the next call; until the database is back every call answers
// UNAVAILABLE.
//
// Fencing: a store opened with a leader's epoch checks, inside every write
// transaction, that the epoch in `leadership` is still its own (the row is read FOR
// SHARE, which a new leader's epoch bump must wait for). A deposed leader therefore
// cannot commit anything once a new one has taken over.
#include <algorithm>
#include <cstdlib>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/memory/memory.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "scheduler/job_store.h"
#include "scheduler/pg_connection.h"
#include "scheduler/store_rows.h"

namespace reelfarm::scheduler {

namespace {

// Forward-only: step i brings the schema from version i to i + 1. Never edit a
// shipped step; append one. Same tables and columns as the SQLite store's.
constexpr const char* kMigrations[] = {
    // Version 1. Job ids come from job_ids (never reused); inserts with an id chosen
    // by the caller move the sequence past it. `leadership` holds the epoch of the
    // current leader (bumped by each new one) and its address for standbys to name.
    R"sql(
CREATE TABLE jobs(
  id BIGINT PRIMARY KEY,
  spec TEXT NOT NULL,
  input_info TEXT NOT NULL,
  state INTEGER NOT NULL,
  error TEXT NOT NULL,
  created_unix_ms BIGINT NOT NULL,
  started_unix_ms BIGINT NOT NULL,
  finished_unix_ms BIGINT NOT NULL);
CREATE SEQUENCE job_ids;
CREATE TABLE tasks(
  job_id BIGINT NOT NULL REFERENCES jobs(id),
  idx INTEGER NOT NULL,
  kind INTEGER NOT NULL,
  frame_begin BIGINT NOT NULL,
  frame_end BIGINT NOT NULL,
  state INTEGER NOT NULL,
  attempts INTEGER NOT NULL,
  workers TEXT NOT NULL,
  error TEXT NOT NULL,
  model_digest TEXT NOT NULL,
  seconds DOUBLE PRECISION NOT NULL,
  errors TEXT NOT NULL,
  lease_id BIGINT NOT NULL,
  PRIMARY KEY(job_id, idx));
CREATE TABLE leadership(
  id INTEGER PRIMARY KEY CHECK (id = 1),
  epoch BIGINT NOT NULL,
  address TEXT NOT NULL,
  since_unix_ms BIGINT NOT NULL);
INSERT INTO leadership VALUES(1, 0, '', 0);
)sql",
    // Version 2: what a chunk published, checked when its job is assembled.
    R"sql(
ALTER TABLE tasks ADD COLUMN output_digest TEXT NOT NULL DEFAULT '';
)sql",
    // Version 3: what the worker measured (QC) and the pictures it made, as JSON.
    R"sql(
ALTER TABLE tasks ADD COLUMN qc TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN pictures TEXT NOT NULL DEFAULT '';
)sql",
};

std::string Num(int64_t v) { return std::to_string(v); }
std::string Num(double v) { return absl::StrFormat("%.17g", v); }

int64_t IntAt(const PGresult* r, int row, int col) {
  return std::strtoll(PQgetvalue(r, row, col), nullptr, 10);
}
std::string TextAt(const PGresult* r, int row, int col) {
  return std::string(PQgetvalue(r, row, col), PQgetlength(r, row, col));
}

std::vector<std::string> JobParams(const JobRow& r) {
  return {Num(r.id),
          r.spec,
          r.input_info,
          Num(r.state),
          r.error,
          Num(r.created_unix_ms),
          Num(r.started_unix_ms),
          Num(r.finished_unix_ms)};
}

// One round trip: the insert, and job_ids moved past the id.
constexpr const char* kInsertJob =
    "WITH j AS (INSERT INTO jobs(id, spec, input_info, state, error, created_unix_ms, "
    "started_unix_ms, finished_unix_ms) VALUES($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id) "
    "SELECT setval('job_ids', GREATEST((SELECT id FROM j), (SELECT last_value FROM job_ids)))";
constexpr const char* kInsertNewJob =
    "INSERT INTO jobs(id, spec, input_info, state, error, created_unix_ms, "
    "started_unix_ms, finished_unix_ms) VALUES(nextval('job_ids'), $1, $2, $3, $4, $5, "
    "$6, $7) RETURNING id";
constexpr const char* kUpdateJob =
    "UPDATE jobs SET spec = $2, input_info = $3, state = $4, error = $5, "
    "created_unix_ms = $6, started_unix_ms = $7, finished_unix_ms = $8 WHERE id = $1";
// Many tasks in one statement: one array per column, zipped by unnest.
constexpr const char* kInsertTasks =
    "INSERT INTO tasks(job_id, idx, kind, frame_begin, frame_end, state, attempts, workers, "
    "error, model_digest, seconds, errors, lease_id, output_digest, qc, pictures) "
    "SELECT * FROM unnest($1::bigint[], $2::int[], $3::int[], $4::bigint[], $5::bigint[], "
    "$6::int[], $7::int[], $8::text[], $9::text[], $10::text[], $11::float8[], $12::text[], "
    "$13::bigint[], $14::text[], $15::text[], $16::text[])";
constexpr size_t kTasksPerInsert = 10'000;

// Appends `value` to the text form of an array begun with "{": quoted, with double
// quotes and backslashes escaped.
void AppendElement(std::string* array, const std::string& value) {
  if (array->size() > 1) array->push_back(',');
  array->push_back('"');
  for (char c : value) {
    if (c == '"' || c == '\\') array->push_back('\\');
    array->push_back(c);
  }
  array->push_back('"');
}

constexpr const char* kUpdateTask =
    "UPDATE tasks SET state = $3, attempts = $4, workers = $5, error = $6, "
    "model_digest = $7, seconds = $8, errors = $9, lease_id = $10, output_digest = $11, "
    "qc = $12, pictures = $13 WHERE job_id = $1 AND idx = $2";
constexpr const char* kDeleteTasks = "DELETE FROM tasks WHERE job_id = $1";
constexpr const char* kDeleteJob = "DELETE FROM jobs WHERE id = $1";
// The sequence outlives deleted jobs: the next id is above every id ever stored.
constexpr const char* kNextJobId =
    "SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM job_ids";
constexpr const char* kSelectJobs =
    "SELECT id, spec, input_info, state, error, created_unix_ms, started_unix_ms, "
    "finished_unix_ms FROM jobs ORDER BY id";
constexpr const char* kSelectTasks =
    "SELECT job_id, idx, kind, frame_begin, frame_end, state, attempts, workers, error, "
    "model_digest, seconds, errors, lease_id, output_digest, qc, pictures FROM tasks "
    "ORDER BY job_id, idx";

// Kind and frame range are fixed at creation: `update` leaves them out.
std::vector<std::string> TaskParams(const TaskRow& r, bool update) {
  std::vector<std::string> p = {Num(r.job_id), Num(r.index)};
  if (!update) p.insert(p.end(), {Num(r.kind), Num(r.frame_begin), Num(r.frame_end)});
  p.insert(p.end(), {Num(r.state), Num(r.attempts), r.workers, r.error, r.model_digest,
                     Num(r.seconds), r.errors, Num(r.lease_id), r.output_digest, r.qc, r.pictures});
  return p;
}

class PostgresJobStore final : public JobStore {
 public:
  static absl::StatusOr<std::unique_ptr<JobStore>> Open(const std::string& url,
                                                        int64_t fence_epoch) {
    ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> conn, PgConnection::Open(url, "reelfarm-store"));
    RETURN_IF_ERROR(MigratePostgresSchema(*conn));
    return std::unique_ptr<JobStore>(new PostgresJobStore(std::move(conn), fence_epoch));
  }

  absl::StatusOr<int64_t> CreateJob(const Job& job, const std::vector<Task>& tasks) override {
    ASSIGN_OR_RETURN(const JobRow row, ToRow(job));
    absl::MutexLock lock(&mu_);
    int64_t id = 0;
    const absl::Status status =
        InTransaction(/*write=*/true, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::Status {
          std::vector<std::string> params = JobParams(row);
          params.erase(params.begin());  // the id comes from job_ids
          ASSIGN_OR_RETURN(PgResultPtr r, conn_->ExecPrepared("insert_new_job", kInsertNewJob,
                                                              params, "insert job"));
          id = PgConnection::FirstInt(r.get());
          std::vector<Task> with_id = tasks;
          std::vector<const Task*> rows;
          for (Task& t : with_id) {
            t.job_id = id;
            rows.push_back(&t);
          }
          return InsertTasks(rows);
        });
    if (!status.ok()) return status;
    return id;
  }

  absl::Status Commit(const std::vector<Write>& writes) override {
    absl::MutexLock lock(&mu_);
    return InTransaction(/*write=*/true, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::Status {
      // Runs of task inserts (a new job's tasks) and runs of task updates (a group
      // commit's results and leases) go as one statement each.
      std::vector<const Task*> inserts, updates;
      for (const Write& w : writes) {
        if (w.kind == Write::Kind::kInsertTask) {
          RETURN_IF_ERROR(UpdateTasks(updates));
          updates.clear();
          inserts.push_back(&w.task);
          continue;
        }
        RETURN_IF_ERROR(InsertTasks(inserts));
        inserts.clear();
        if (w.kind == Write::Kind::kUpdateTask) {
          updates.push_back(&w.task);
          continue;
        }
        RETURN_IF_ERROR(UpdateTasks(updates));
        updates.clear();
        RETURN_IF_ERROR(Apply(w));
      }
      RETURN_IF_ERROR(UpdateTasks(updates));
      return InsertTasks(inserts);
    });
  }

  absl::StatusOr<Snapshot> LoadAll() override {
    absl::MutexLock lock(&mu_);
    Snapshot snap;
    // One snapshot for both tables.
    const absl::Status status =
        InTransaction(/*write=*/false, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::Status {
          ASSIGN_OR_RETURN(PgResultPtr jobs, conn_->Exec(kSelectJobs, {}, "load jobs"));
          const int njobs = PQntuples(jobs.get());
          snap.jobs.reserve(njobs);
          for (int i = 0; i < njobs; ++i) {
            const PGresult* r = jobs.get();
            JobRow row{IntAt(r, i, 0),  TextAt(r, i, 1), TextAt(r, i, 2), IntAt(r, i, 3),
                       TextAt(r, i, 4), IntAt(r, i, 5),  IntAt(r, i, 6),  IntAt(r, i, 7)};
            ASSIGN_OR_RETURN(Job job, FromRow(row, conn_->display_url()));
            snap.jobs.push_back(std::move(job));
          }
          jobs.reset();
          ASSIGN_OR_RETURN(PgResultPtr tasks, conn_->Exec(kSelectTasks, {}, "load tasks"));
          const int ntasks = PQntuples(tasks.get());
          snap.tasks.reserve(ntasks);
          for (int i = 0; i < ntasks; ++i) {
            const PGresult* r = tasks.get();
            TaskRow row;
            row.job_id = IntAt(r, i, 0);
            row.index = IntAt(r, i, 1);
            row.kind = IntAt(r, i, 2);
            row.frame_begin = IntAt(r, i, 3);
            row.frame_end = IntAt(r, i, 4);
            row.state = IntAt(r, i, 5);
            row.attempts = IntAt(r, i, 6);
            row.workers = TextAt(r, i, 7);
            row.error = TextAt(r, i, 8);
            row.model_digest = TextAt(r, i, 9);
            row.seconds = std::strtod(PQgetvalue(r, i, 10), nullptr);
            row.errors = TextAt(r, i, 11);
            row.lease_id = IntAt(r, i, 12);
            row.output_digest = TextAt(r, i, 13);
            row.qc = TextAt(r, i, 14);
            row.pictures = TextAt(r, i, 15);
            ASSIGN_OR_RETURN(Task task, FromRow(row, conn_->display_url()));
            snap.tasks.push_back(std::move(task));
          }
          tasks.reset();
          ASSIGN_OR_RETURN(PgResultPtr next, conn_->Exec(kNextJobId, {}, "read job_ids"));
          snap.next_job_id = PgConnection::FirstInt(next.get());
          return absl::OkStatus();
        });
    if (!status.ok()) return status;
    return snap;
  }

 private:
  PostgresJobStore(std::unique_ptr<PgConnection> conn, int64_t fence_epoch)
      : fence_epoch_(fence_epoch), conn_(std::move(conn)) {}

  // Runs `body` in one transaction; rolls back if it or the commit fails. A commit
  // whose answer is lost with the connection is reported UNAVAILABLE: the caller
  // must reload what was stored rather than guess.
  absl::Status InTransaction(bool write, const std::function<absl::Status()>& body)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    RETURN_IF_ERROR(conn_->EnsureConnected());
    absl::Status status = write && fence_epoch_ != 0
                              ? BeginFenced()
                              : conn_->Run(write ? "BEGIN"
                                                 : "BEGIN ISOLATION LEVEL REPEATABLE READ "
                                                   "READ ONLY",
                                           "begin");
    if (status.ok()) status = body();
    if (status.ok()) status = conn_->Run("COMMIT", "commit");
    if (!status.ok() && !conn_->broken()) conn_->Run("ROLLBACK", "rollback").IgnoreError();
    return status;
  }

  // Begins a write transaction that only a leader of fence_epoch_ may commit (one
  // round trip): UNAVAILABLE once another server has taken the leadership.
  absl::Status BeginFenced() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ASSIGN_OR_RETURN(PgResultPtr r, conn_->Exec("BEGIN; SELECT epoch, address FROM leadership "
                                                "WHERE id = 1 FOR SHARE",
                                                {}, "begin and check the leadership"));
    const int64_t epoch = PgConnection::FirstInt(r.get());
    if (epoch == fence_epoch_) return absl::OkStatus();
    return conn_->Error(
        absl::StatusCode::kUnavailable, "write refused",
        absl::StrCat("this server led epoch ", fence_epoch_, " but epoch ", epoch,
                     " is now led by '", PQntuples(r.get()) ? TextAt(r.get(), 0, 1) : "",
                     "'; this server no longer leads, talk to the leader"));
  }

  // One write; NOT_FOUND when an update matches no row.
  absl::Status Apply(const Write& w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    switch (w.kind) {
      case Write::Kind::kInsertJob: {
        ASSIGN_OR_RETURN(const JobRow row, ToRow(w.job));
        return conn_
            ->ExecPrepared("insert_job", kInsertJob, JobParams(row),
                           absl::StrCat("insert job ", w.job.id))
            .status();
      }
      case Write::Kind::kUpdateJob: {
        ASSIGN_OR_RETURN(const JobRow row, ToRow(w.job));
        const std::string what = absl::StrCat("job ", w.job.id);
        ASSIGN_OR_RETURN(PgResultPtr r, conn_->ExecPrepared("update_job", kUpdateJob,
                                                            JobParams(row), "update " + what));
        return Updated(r.get(), what);
      }
      case Write::Kind::kInsertTask:
        return InsertTasks({&w.task});
      case Write::Kind::kUpdateTask:
        return UpdateOneTask(w.task);
      case Write::Kind::kDeleteJob: {
        const std::string what = absl::StrCat("job ", w.job.id);
        RETURN_IF_ERROR(conn_
                            ->ExecPrepared("delete_tasks", kDeleteTasks, {Num(w.job.id)},
                                           "delete tasks of " + what)
                            .status());
        ASSIGN_OR_RETURN(PgResultPtr r, conn_->ExecPrepared("delete_job", kDeleteJob,
                                                            {Num(w.job.id)}, "delete " + what));
        return Updated(r.get(), what);
      }
    }
    return absl::InternalError("unknown write kind");
  }

  absl::Status InsertTasks(const std::vector<const Task*>& tasks)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (size_t first = 0; first < tasks.size(); first += kTasksPerInsert) {
      const size_t end = std::min(tasks.size(), first + kTasksPerInsert);
      std::vector<std::string> columns(16, "{");
      for (size_t i = first; i < end; ++i) {
        ASSIGN_OR_RETURN(const TaskRow row, ToRow(*tasks[i]));
        const std::vector<std::string> values = TaskParams(row, /*update=*/false);
        for (size_t c = 0; c < columns.size(); ++c) AppendElement(&columns[c], values[c]);
      }
      for (std::string& column : columns) column.push_back('}');
      RETURN_IF_ERROR(conn_
                          ->ExecPrepared("insert_tasks", kInsertTasks, columns,
                                         absl::StrCat("insert ", end - first, " tasks of job ",
                                                      tasks[first]->job_id))
                          .status());
    }
    return absl::OkStatus();
  }

  // A run of task updates in one round trip: each its own statement, in order, sent
  // together (PgConnection::ExecPreparedPipelined). NOT_FOUND names a task that is not
  // there.
  absl::Status UpdateTasks(const std::vector<const Task*>& tasks)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (tasks.size() == 1) return UpdateOneTask(*tasks[0]);
    for (size_t first = 0; first < tasks.size(); first += PgConnection::kMaxPipelined) {
      const size_t end = std::min(tasks.size(), first + PgConnection::kMaxPipelined);
      std::vector<std::vector<std::string>> params;
      params.reserve(end - first);
      for (size_t i = first; i < end; ++i) {
        ASSIGN_OR_RETURN(const TaskRow row, ToRow(*tasks[i]));
        params.push_back(TaskParams(row, /*update=*/true));
      }
      ASSIGN_OR_RETURN(
          const std::vector<int64_t> rows,
          conn_->ExecPreparedPipelined("update_task", kUpdateTask, params,
                                       absl::StrCat("update ", end - first, " tasks")));
      for (size_t i = first; i < end; ++i) {
        if (i - first < rows.size() && rows[i - first] > 0) continue;
        return NotThere(absl::StrCat("task ", tasks[i]->job_id, "/", tasks[i]->index));
      }
    }
    return absl::OkStatus();
  }

  absl::Status UpdateOneTask(const Task& task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ASSIGN_OR_RETURN(const TaskRow row, ToRow(task));
    const std::string what = absl::StrCat("task ", task.job_id, "/", task.index);
    ASSIGN_OR_RETURN(PgResultPtr r, conn_->ExecPrepared("update_task", kUpdateTask,
                                                        TaskParams(row, true), "update " + what));
    return Updated(r.get(), what);
  }

  absl::Status Updated(const PGresult* r, const std::string& row) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (std::string(PQcmdTuples(const_cast<PGresult*>(r))) != "0") return absl::OkStatus();
    return NotThere(row);
  }

  absl::Status NotThere(const std::string& row) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return absl::NotFoundError(
        absl::StrCat(row, " is not in job store '", conn_->display_url(), "'"));
  }

  const int64_t fence_epoch_;
  absl::Mutex mu_;
  std::unique_ptr<PgConnection> conn_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::Status MigratePostgresSchema(PgConnection& conn) {
  RETURN_IF_ERROR(conn.EnsureConnected());
  RETURN_IF_ERROR(conn.Run("BEGIN", "begin migration"));
  auto body = [&]() -> absl::Status {
    // Held to the end of the transaction: servers starting together migrate once.
    RETURN_IF_ERROR(conn.Run(
        absl::StrCat("SELECT pg_advisory_xact_lock(", kPgLockSpace, ", ", kPgMigrationLock, ")"),
        "lock for migration"));
    RETURN_IF_ERROR(
        conn.Run("CREATE TABLE IF NOT EXISTS schema_version("
                 "version INTEGER PRIMARY KEY, applied_unix_ms BIGINT NOT NULL)",
                 "create schema_version"));
    ASSIGN_OR_RETURN(PgResultPtr r,
                     conn.Exec("SELECT COALESCE(MAX(version), 0) FROM schema_version", {},
                               "read schema version"));
    const int64_t current = PgConnection::FirstInt(r.get());
    const int64_t latest = static_cast<int64_t>(std::size(kMigrations));
    if (current > latest) {
      return conn.Error(absl::StatusCode::kFailedPrecondition, "schema version",
                        absl::StrCat("'", current, "' is not one this build knows (up to ", latest,
                                     "); run a newer reelfarm or give another database"));
    }
    for (int64_t v = current + 1; v <= latest; ++v) {
      const std::string what = absl::StrCat("migrate schema to version ", v);
      RETURN_IF_ERROR(conn.Run(kMigrations[v - 1], what));
      RETURN_IF_ERROR(conn.Exec("INSERT INTO schema_version VALUES($1, "
                                "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint)",
                                {Num(v)}, what)
                          .status());
    }
    return absl::OkStatus();
  };
  absl::Status status = body();
  if (status.ok()) status = conn.Run("COMMIT", "commit migration");
  if (!status.ok() && !conn.broken()) conn.Run("ROLLBACK", "rollback").IgnoreError();
  return status;
}

absl::StatusOr<std::unique_ptr<JobStore>> OpenPostgresJobStore(const std::string& url,
                                                               int64_t fence_epoch) {
  return PostgresJobStore::Open(url, fence_epoch);
}

}  // namespace reelfarm::scheduler
