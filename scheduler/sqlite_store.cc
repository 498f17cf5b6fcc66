// SqliteJobStore: the default JobStore, one SQLite file in WAL mode.
//
// One connection behind a mutex; every write is one committed transaction with
// synchronous=FULL, so a call that returned OK survives a crash. WAL checkpoints run
// off the commit path (a Checkpointer: its own connection and thread, which copies the
// WAL whole in the first pause of commits once it passes kCheckpointPages; with no
// pause, it copies the bulk and one commit copies the few frames added meanwhile), so
// almost no COMMIT pays for copying the WAL into the file. Rows are
// store_rows.h's (JSON text for specs, so adding a field needs no schema step);
// the schema itself evolves through kMigrations, recorded in `schema_version`.
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/memory/memory.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/thread_name.h"
#include "scheduler/job_store.h"
#include "scheduler/sqlite_wal_vfs.h"
#include "scheduler/store_rows.h"

namespace reelfarm::scheduler {

namespace {

constexpr int kBusyTimeoutMs = 5000;
// A checkpoint is due once a commit leaves the WAL this long, as SQLite's own
// auto-checkpoint would checkpoint (inside that COMMIT) at 1,000 pages. Longer than
// SQLite's default so that a burst of small submits (about 6 pages each) does not
// fsync behind a checkpoint: a checkpoint writes the pages into the database file and
// syncs it, and a commit's fdatasync waiting behind that flush made the submit's p99
// (1.69 against 1.42 ms in alternated runs of 300 submits, benchmarks/: submit). A
// crash recovery reads at most the WAL's length, about 40 MB here.
constexpr int kCheckpointPages = 2500;
// A due checkpoint runs once commits have paused this long (Checkpointer). A submit
// takes well under a millisecond; a pause of this length is a gap in the stream.
constexpr absl::Duration kQuietTime = absl::Milliseconds(20);
// With no pause, the bulk is copied beside the commits once the WAL is this long, and
// the commit that finds it this long after that copies the rest.
constexpr int kBulkPages = kCheckpointPages + kCheckpointPages / 5;
constexpr int kRestPages = kCheckpointPages + 2 * kCheckpointPages / 5;
// A commit that leaves the WAL this long checkpoints it itself whatever else is so
// (PASSIVE, copying only what earlier checkpoints have not), so the WAL never grows
// without bound, even when the copy of the rest (Checkpointer) did not let it start
// over (a reader held it) or one commit was this large.
constexpr int kInlineCheckpointPages = 4 * kCheckpointPages;
// The WAL's length laid out on disk at open (LayOutWal): room for the frames it holds
// between background checkpoints twice over (a frame is a page and a 24-byte header).
constexpr int64_t kWalLayoutBytes = 2 * kCheckpointPages * (4096 + 24);

// Forward-only: step i brings the schema from version i to i + 1. Never edit a
// shipped step; append one.
constexpr const char* kMigrations[] = {
    // Version 1. AUTOINCREMENT: job ids are never reused, even after a delete.
    R"sql(
CREATE TABLE jobs(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  spec TEXT NOT NULL,        -- JobSpec as JSON
  input_info TEXT NOT NULL,  -- MediaInfo as JSON
  state INTEGER NOT NULL,
  error TEXT NOT NULL,
  created_unix_ms INTEGER NOT NULL,
  started_unix_ms INTEGER NOT NULL,
  finished_unix_ms INTEGER NOT NULL);
CREATE TABLE tasks(
  job_id INTEGER NOT NULL REFERENCES jobs(id),
  idx INTEGER NOT NULL,
  kind INTEGER NOT NULL,
  frame_begin INTEGER NOT NULL,
  frame_end INTEGER NOT NULL,
  state INTEGER NOT NULL,
  attempts INTEGER NOT NULL,
  workers TEXT NOT NULL,     -- JSON array of worker names, in lease order
  error TEXT NOT NULL,
  model_digest TEXT NOT NULL,
  seconds REAL NOT NULL,
  PRIMARY KEY(job_id, idx));
)sql",
    // Version 2: every attempt's error, and the current lease (so that a restarted
    // server honours the leases of workers that were running).
    R"sql(
ALTER TABLE tasks ADD COLUMN errors TEXT NOT NULL DEFAULT '[]';
ALTER TABLE tasks ADD COLUMN lease_id INTEGER NOT NULL DEFAULT 0;
)sql",
    // Version 3: what a chunk published, checked when its job is assembled.
    R"sql(
ALTER TABLE tasks ADD COLUMN output_digest TEXT NOT NULL DEFAULT '';
)sql",
    // Version 4: what the worker measured (QC) and the pictures it made, as JSON.
    R"sql(
ALTER TABLE tasks ADD COLUMN qc TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN pictures TEXT NOT NULL DEFAULT '';
)sql",
};

struct SqliteDeleter {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using DbPtr = std::unique_ptr<sqlite3, SqliteDeleter>;
using StmtPtr = std::unique_ptr<sqlite3_stmt, SqliteDeleter>;

// Failures of the host (locks, files, disk, memory) are UNAVAILABLE: retrying
// or fixing the host helps. A broken constraint is the caller's value (a
// repeated task index, a NaN). Anything else (corruption, a bug in our SQL) is
// INTERNAL.
absl::StatusCode CodeFor(int rc) {
  if ((rc & 0xff) == SQLITE_CONSTRAINT) return absl::StatusCode::kInvalidArgument;
  static constexpr int kHost[] = {SQLITE_BUSY,  SQLITE_LOCKED, SQLITE_CANTOPEN, SQLITE_READONLY,
                                  SQLITE_IOERR, SQLITE_FULL,   SQLITE_PERM,     SQLITE_PROTOCOL,
                                  SQLITE_NOMEM, SQLITE_NOLFS};
  const bool host = std::count(std::begin(kHost), std::end(kHost), rc & 0xff) > 0;
  return host ? absl::StatusCode::kUnavailable : absl::StatusCode::kInternal;
}

// The one connection, with its path for error messages. Not thread-safe.
class Connection {
 public:
  Connection(std::string path, DbPtr db) : path_(std::move(path)), db_(std::move(db)) {}

  sqlite3* db() const { return db_.get(); }
  const std::string& path() const { return path_; }

  // `what` failed with `rc`: names the file and carries SQLite's message.
  absl::Status Error(int rc, absl::string_view what) const {
    std::string message = absl::StrCat("job store '", path_, "': ", what, ": ",
                                       db_ ? sqlite3_errmsg(db_.get()) : sqlite3_errstr(rc));
    const int primary = rc & 0xff;
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
      absl::StrAppend(&message, "; give each task of a job a distinct index");
    }
    if (primary == SQLITE_CANTOPEN || primary == SQLITE_READONLY) {
      absl::StrAppend(&message, "; check that folder '",
                      std::filesystem::path(path_).parent_path().string(),
                      "' exists and that it and the file are writable");
    }
    return absl::Status(CodeFor(rc), message);
  }

  // Runs statements that return no rows.
  absl::Status Exec(const std::string& sql, absl::string_view what) {
    int rc = sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, nullptr);
    return rc == SQLITE_OK ? absl::OkStatus() : Error(rc, what);
  }

  absl::StatusOr<StmtPtr> Prepare(const char* sql) {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v3(db_.get(), sql, -1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
    StmtPtr stmt(raw);
    if (rc != SQLITE_OK) return Error(rc, absl::StrCat("prepare '", sql, "'"));
    return stmt;
  }

  // Exec() of one statement that returns no rows, prepared once and kept: for the
  // BEGIN and COMMIT of every transaction (parsing them took as long as the inserts of
  // a small submit).
  absl::Status ExecKept(const char* sql, absl::string_view what) {
    StmtPtr& stmt = kept_[sql];
    if (stmt == nullptr) {
      ASSIGN_OR_RETURN(stmt, Prepare(sql));
    }
    const int rc = sqlite3_step(stmt.get());
    sqlite3_reset(stmt.get());
    return rc == SQLITE_DONE ? absl::OkStatus() : Error(rc, what);
  }

 private:
  std::string path_;
  DbPtr db_;
  std::map<std::string, StmtPtr> kept_;  // by ExecKept(); after db_: finalised first
};

// One use of a statement: binds in order, steps, reads columns, and resets it
// on destruction so that no statement stays active (pinning a read) between
// calls.
class Call {
 public:
  Call(const Connection& conn, sqlite3_stmt* stmt) : conn_(conn), stmt_(stmt) {}
  ~Call() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  // Binds the next parameters, in order.
  template <typename... Args>
  Call& Bind(const Args&... args) {
    (BindOne(args), ...);
    return *this;
  }

  // True when a row is ready, false when done.
  absl::StatusOr<bool> Step(absl::string_view what) {
    if (bind_rc_ != SQLITE_OK) return conn_.Error(bind_rc_, what);
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) return rc == SQLITE_ROW;
    return conn_.Error(rc, what);
  }

  int64_t ColumnInt(int i) const { return sqlite3_column_int64(stmt_, i); }
  double ColumnReal(int i) const { return sqlite3_column_double(stmt_, i); }
  std::string ColumnText(int i) const {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, i));
    return text ? std::string(text, sqlite3_column_bytes(stmt_, i)) : std::string();
  }

 private:
  void BindOne(int v) { BindOne(static_cast<int64_t>(v)); }
  void BindOne(int64_t v) { Check(sqlite3_bind_int64(stmt_, ++bound_, v)); }
  void BindOne(double v) { Check(sqlite3_bind_double(stmt_, ++bound_, v)); }
  void BindOne(const std::string& v) {
    Check(sqlite3_bind_text64(stmt_, ++bound_, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
  }
  void Check(int rc) {
    if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  }

  const Connection& conn_;
  sqlite3_stmt* stmt_;
  int bound_ = 0;
  int bind_rc_ = SQLITE_OK;
};

// Runs `body` between BEGIN and COMMIT; rolls back if either fails. IMMEDIATE
// (`write`) takes the write lock up front, so a writer never fails half-way on
// lock upgrade; a plain BEGIN gives a consistent read.
absl::Status InTransaction(Connection& conn, bool write,
                           const std::function<absl::Status()>& body) {
  RETURN_IF_ERROR(conn.ExecKept(write ? "BEGIN IMMEDIATE" : "BEGIN", "begin"));
  absl::Status status = body();
  if (status.ok()) status = conn.ExecKept("COMMIT", "commit");
  if (!status.ok() && !sqlite3_get_autocommit(conn.db())) {
    sqlite3_exec(conn.db(), "ROLLBACK", nullptr, nullptr, nullptr);
  }
  return status;
}

// Columns: id, spec, input_info, state, error, created, started, finished.
absl::StatusOr<Job> JobFromRow(const Connection& conn, const Call& call) {
  JobRow row;
  row.id = call.ColumnInt(0);
  row.spec = call.ColumnText(1);
  row.input_info = call.ColumnText(2);
  row.state = call.ColumnInt(3);
  row.error = call.ColumnText(4);
  row.created_unix_ms = call.ColumnInt(5);
  row.started_unix_ms = call.ColumnInt(6);
  row.finished_unix_ms = call.ColumnInt(7);
  return FromRow(row, conn.path());
}

// Columns: those of TaskRow, in its order.
void ReadTaskRow(const Call& call, TaskRow& row) {
  row.job_id = call.ColumnInt(0);
  row.index = call.ColumnInt(1);
  row.kind = call.ColumnInt(2);
  row.frame_begin = call.ColumnInt(3);
  row.frame_end = call.ColumnInt(4);
  row.state = call.ColumnInt(5);
  row.attempts = call.ColumnInt(6);
  row.workers = call.ColumnText(7);
  row.error = call.ColumnText(8);
  row.model_digest = call.ColumnText(9);
  row.seconds = call.ColumnReal(10);
  row.errors = call.ColumnText(11);
  row.lease_id = call.ColumnInt(12);
  row.output_digest = call.ColumnText(13);
  row.qc = call.ColumnText(14);
  row.pictures = call.ColumnText(15);
}

absl::StatusOr<Task> TaskFromRow(const Connection& conn, const Call& call) {
  TaskRow row;
  ReadTaskRow(call, row);
  return FromRow(row, conn.path());
}

// Runs a SELECT and converts every row with `from_row`.
template <typename T>
absl::Status ReadAll(const Connection& conn, sqlite3_stmt* stmt,
                     absl::StatusOr<T> (*from_row)(const Connection&, const Call&),
                     std::vector<T>* out) {
  Call call(conn, stmt);
  for (;;) {
    ASSIGN_OR_RETURN(const bool row, call.Step("load all"));
    if (!row) return absl::OkStatus();
    ASSIGN_OR_RETURN(T value, from_row(conn, call));
    out->push_back(std::move(value));
  }
}

// Checkpoints the WAL of the database at `path`, told after each commit how long the
// WAL is (AfterCommit). Once a commit leaves it kCheckpointPages long, a checkpoint is
// due, and it is run where it costs no commit anything if it can be:
//
// * In a pause: once no commit has come for kQuietTime, the checkpointer copies the
//   whole WAL into the database file on its own connection and thread (PASSIVE, so a
//   commit that comes meanwhile goes on), and the next commit starts the WAL from its
//   beginning again. Submits come in bursts (a TD's script, a wedge, a night's queue),
//   and a pause between them is where the copy and its two syncs belong: run beside a
//   stream of commits, its syncs and the device's flush of its pages are what those
//   commits' fdatasyncs wait behind.
// * Under commits back to back, with no pause, the bulk is copied in the background once
//   the WAL reaches kBulkPages (commits go on meanwhile); the commit that finds the WAL
//   kRestPages long after that pass copies the rest itself, on the store's connection,
//   and the commit after it starts the WAL over.
//
// Why the rest is copied by a commit then: the WAL starts over only at a write that
// finds it copied whole, and under commits back to back a background pass never ends so
// (each commit adds frames while it runs). Passes run again and again then, each
// copying a commit or two and syncing the WAL and the database file, and every commit's
// fdatasync queued behind those flushes: 2.4 syncs a submit where one is needed, over
// ~75 % of a stream of small submits (benchmarks/: submit). A commit copying the few
// frames added since the bulk pass does it with no other writer, so it ends with the
// WAL copied whole: one commit in some 500 small ones pays that copy and two syncs.
class Checkpointer {
 public:
  static absl::StatusOr<std::unique_ptr<Checkpointer>> Start(const std::string& path,
                                                             CheckpointObserver observer) {
    sqlite3* raw = nullptr;
    const int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                                   WalCoalescingVfs());
    Connection conn(path, DbPtr(raw));
    if (rc != SQLITE_OK) return conn.Error(rc, "open for checkpoints");
    // The checkpoint syncs the WAL, then the database file, before the WAL is reused.
    RETURN_IF_ERROR(conn.Exec("PRAGMA synchronous=FULL", "set synchronous"));
    return absl::WrapUnique(new Checkpointer(std::move(conn), std::move(observer)));
  }
  ~Checkpointer() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
      wake_.Signal();
    }
    thread_.join();
  }
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  // Called by SQLite's WAL hook after each commit on the store's connection `db`, with
  // the WAL's length in pages. Cheap unless this commit copies the rest of the WAL.
  void AfterCommit(sqlite3* db, const char* name, int pages) {
    absl::MutexLock lock(&mu_);
    last_commit_ = absl::Now();
    if (pages < kCheckpointPages) {
      phase_ = Phase::kShort;  // started over (or not yet long)
      return;
    }
    if (pages >= kInlineCheckpointPages) {
      // One commit this large (a job of tens of thousands of tasks), or the rest was not
      // copied whole (a reader kept the WAL): whatever is running, this commit copies
      // the WAL whole.
      RunInlineLocked(db, name, "limit");
      return;
    }
    switch (phase_) {
      case Phase::kShort:
        phase_ = Phase::kDue;  // the thread waits for a pause
        wake_.Signal();
        break;
      case Phase::kDue:
        if (pages >= kBulkPages) {
          phase_ = Phase::kBulk;  // no pause came: the bulk now, beside the commits
          if (!running_) wake_.Signal();
        }
        break;
      case Phase::kBulk:
        break;
      case Phase::kBulkDone:
        if (pages >= kRestPages) {
          phase_ = Phase::kRest;
          copied_in_pause_ = false;
          RunInlineLocked(db, name, "rest");
        }
        break;
      case Phase::kRest:
        // Copied whole, yet the WAL did not start over. After a pause's pass, a commit
        // came as it ended (its frames are past what it copied): they are the rest, as
        // after a bulk pass. After a commit's pass, a reader holds the WAL (another
        // program reading the file): passes cannot copy past it; the limit's will.
        if (copied_in_pause_) {
          copied_in_pause_ = false;
          phase_ = Phase::kBulkDone;
        }
        break;
    }
  }

 private:
  enum class Phase {
    kShort,     // the WAL is below kCheckpointPages
    kDue,       // it is not: the thread waits for a pause to copy it whole
    kBulk,      // the thread copies what the WAL holds (or is woken to)
    kBulkDone,  // the bulk is copied; a pause, or a commit at kRestPages, copies the rest
    kRest,      // the rest was copied; the next commit starts the WAL over
  };

  Checkpointer(Connection conn, CheckpointObserver observer)
      : conn_(std::move(conn)), observer_(std::move(observer)) {
    thread_ = std::thread([this] {
      common::NameThread("rf-checkpoint");
      Loop();
    });
  }

  struct PassResult {
    double seconds = 0;
    bool ok = false;
    bool whole = false;  // every frame the WAL held was copied
  };
  // One PASSIVE checkpoint of `db`'s WAL.
  static PassResult Pass(sqlite3* db, const char* name) {
    const auto start = std::chrono::steady_clock::now();
    int log = -1, copied = -1;
    const int rc = sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
    return {std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
            rc == SQLITE_OK, rc == SQLITE_OK && log >= 0 && copied == log};
  }
  // Tells the observer of a pass once the phase it leads to is set (so that a commit
  // that follows the report meets that phase), with mu_ released.
  void ReportLocked(const char* pass, PassResult r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!observer_) return;
    mu_.Unlock();
    observer_(pass, r.seconds, r.ok);
    mu_.Lock();
  }

  // A PASSIVE checkpoint on the store's own connection `db`. SQLite runs one checkpoint
  // at a time (a PASSIVE one that finds another running does nothing), so it waits for
  // a background one that is running to end, and holds the next one off until it
  // returns: the WAL is then copied whole and starts over at the next commit.
  void RunInlineLocked(sqlite3* db, const char* name, const char* pass)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    while (running_) idle_.Wait(&mu_);
    running_ = true;
    mu_.Unlock();
    const PassResult r = Pass(db, name);
    mu_.Lock();
    running_ = false;
    idle_.SignalAll();
    if (phase_ == Phase::kBulk) wake_.Signal();
    ReportLocked(pass, r);
  }

  // Whether the phase's next pass waits for a pause: a due checkpoint, or the rest
  // after the bulk.
  bool AwaitsPauseLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return phase_ == Phase::kDue || phase_ == Phase::kBulkDone;
  }
  // Whether the thread has a pass to run now: the bulk, or one that waits for a pause
  // once commits have paused for kQuietTime.
  bool ReadyLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (running_) return false;
    if (phase_ == Phase::kBulk) return true;
    return AwaitsPauseLocked() && absl::Now() - last_commit_ >= kQuietTime;
  }

  void Loop() {
    absl::MutexLock lock(&mu_);
    for (;;) {
      while (!ReadyLocked() && !stop_) {
        if (!running_ && AwaitsPauseLocked()) {
          wake_.WaitWithDeadline(&mu_, last_commit_ + kQuietTime);
        } else {
          wake_.Wait(&mu_);
        }
      }
      if (stop_) return;
      const bool in_pause = phase_ != Phase::kBulk;
      const absl::Time last_commit = last_commit_;
      running_ = true;
      mu_.Unlock();
      // A failure leaves the rest to the next pass (or commit); commits go on either way.
      const PassResult r = Pass(conn_.db(), "main");
      mu_.Lock();
      running_ = false;
      idle_.SignalAll();
      if (in_pause) {
        // Copied whole with no commit meanwhile: the next commit starts the WAL over.
        // Else what came meanwhile (or what a reader kept) is the rest, as after a bulk.
        if (AwaitsPauseLocked()) {
          copied_in_pause_ = r.whole && last_commit_ == last_commit;
          phase_ = copied_in_pause_ ? Phase::kRest : Phase::kBulkDone;
        }
        ReportLocked("pause", r);
      } else {
        if (phase_ == Phase::kBulk) phase_ = Phase::kBulkDone;
        ReportLocked("background", r);
      }
    }
  }

  Connection conn_;  // used by the thread only
  const CheckpointObserver observer_;
  absl::Mutex mu_;
  absl::CondVar wake_;
  absl::CondVar idle_;  // running_ turned false
  Phase phase_ ABSL_GUARDED_BY(mu_) = Phase::kShort;
  bool running_ ABSL_GUARDED_BY(mu_) = false;  // a checkpoint, background or inline
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time last_commit_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool copied_in_pause_ ABSL_GUARDED_BY(mu_) = false;  // kRest was set by a pause's pass
  std::thread thread_;
};

class SqliteJobStore final : public JobStore {
 public:
  static absl::StatusOr<std::unique_ptr<JobStore>> Open(const std::string& path,
                                                        CheckpointObserver observer) {
    if (path.empty()) {
      return absl::InvalidArgumentError(
          "job store path is empty; give a file such as "
          "/var/lib/reelfarm/jobs.db");
    }
    sqlite3* raw = nullptr;
    // NOMUTEX: calls are serialised by mu_. The VFS writes a commit's WAL frames in one
    // call before its sync (scheduler/sqlite_wal_vfs.h; synchronous=FULL, set in Init).
    int rc = sqlite3_open_v2(path.c_str(), &raw,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             WalCoalescingVfs());
    Connection conn(path, DbPtr(raw));
    if (rc != SQLITE_OK) return conn.Error(rc, "open");
    auto store = absl::WrapUnique(new SqliteJobStore(std::move(conn)));
    RETURN_IF_ERROR(store->Init(std::move(observer)));
    return std::unique_ptr<JobStore>(std::move(store));
  }

  absl::StatusOr<int64_t> CreateJob(const Job& job, const std::vector<Task>& tasks) override {
    ASSIGN_OR_RETURN(const JobRow r, ToRow(job));
    absl::MutexLock lock(&mu_);
    int64_t id = 0;
    const absl::Status status = InTransaction(
        conn_, /*write=*/true, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::Status {
          Call job_row(conn_, insert_job_.get());
          job_row.Bind(r.spec, r.input_info, r.state, r.error, r.created_unix_ms, r.started_unix_ms,
                       r.finished_unix_ms);
          RETURN_IF_ERROR(job_row.Step("insert job").status());
          id = sqlite3_last_insert_rowid(conn_.db());
          for (const Task& t : tasks) {
            Task with_id = t;
            with_id.job_id = id;
            RETURN_IF_ERROR(InsertTask(with_id));
          }
          return absl::OkStatus();
        });
    if (!status.ok()) return status;
    return id;
  }

  absl::Status Commit(const std::vector<Write>& writes) override {
    absl::MutexLock lock(&mu_);
    return InTransaction(conn_, /*write=*/true,
                         [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::Status {
                           for (const Write& w : writes) {
                             switch (w.kind) {
                               case Write::Kind::kInsertJob:
                                 RETURN_IF_ERROR(InsertJobWithId(w.job));
                                 break;
                               case Write::Kind::kUpdateJob:
                                 RETURN_IF_ERROR(WriteJob(w.job));
                                 break;
                               case Write::Kind::kInsertTask:
                                 RETURN_IF_ERROR(InsertTask(w.task));
                                 break;
                               case Write::Kind::kUpdateTask:
                                 RETURN_IF_ERROR(WriteTask(w.task));
                                 break;
                               case Write::Kind::kDeleteJob:
                                 RETURN_IF_ERROR(DeleteJob(w.job.id));
                                 break;
                             }
                           }
                           return absl::OkStatus();
                         });
  }

  absl::StatusOr<Snapshot> LoadAll() override {
    absl::MutexLock lock(&mu_);
    Snapshot snapshot;
    // One read transaction: both tables from the same snapshot.
    const absl::Status status =
        InTransaction(conn_, /*write=*/false, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          RETURN_IF_ERROR(ReadAll(conn_, select_jobs_.get(), &JobFromRow, &snapshot.jobs));
          RETURN_IF_ERROR(ReadAll(conn_, select_tasks_.get(), &TaskFromRow, &snapshot.tasks));
          // AUTOINCREMENT's high-water mark outlives deleted jobs.
          ASSIGN_OR_RETURN(const std::string seq,
                           QueryText("SELECT seq FROM sqlite_sequence WHERE name = 'jobs'"));
          int64_t last = 0;
          if (absl::SimpleAtoi(seq, &last)) snapshot.next_job_id = last + 1;
          return absl::OkStatus();
        });
    if (!status.ok()) return status;
    return snapshot;
  }

  // LoadAll's read, with each task row converted straight into the sink's slot. The
  // tasks are read in table order (no index walk), one row buffer reused throughout.
  absl::Status Load(LoadSink& sink) override {
    absl::MutexLock lock(&mu_);
    return InTransaction(conn_, /*write=*/false, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      Call jobs(conn_, select_jobs_.get());
      for (;;) {
        ASSIGN_OR_RETURN(const bool row, jobs.Step("load jobs"));
        if (!row) break;
        ASSIGN_OR_RETURN(Job job, JobFromRow(conn_, jobs));
        Call count(conn_, count_tasks_.get());
        count.Bind(job.id);
        ASSIGN_OR_RETURN(const bool counted, count.Step("count tasks"));
        sink.AddJob(std::move(job), counted ? static_cast<int>(count.ColumnInt(0)) : 0);
      }
      Call tasks(conn_, scan_tasks_.get());
      TaskRow r;
      for (;;) {
        ASSIGN_OR_RETURN(const bool row, tasks.Step("load tasks"));
        if (!row) break;
        Task* slot = sink.TaskSlot(tasks.ColumnInt(0), static_cast<int>(tasks.ColumnInt(1)));
        if (slot == nullptr) continue;
        ReadTaskRow(tasks, r);
        RETURN_IF_ERROR(FromRow(r, conn_.path(), slot));
      }
      ASSIGN_OR_RETURN(const std::string seq,
                       QueryText("SELECT seq FROM sqlite_sequence WHERE name = 'jobs'"));
      int64_t last = 0;
      sink.SetNextJobId(absl::SimpleAtoi(seq, &last) ? last + 1 : 0);
      return absl::OkStatus();
    });
  }

 private:
  explicit SqliteJobStore(Connection conn) : conn_(std::move(conn)) {}

  absl::Status InsertJobWithId(const Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ASSIGN_OR_RETURN(const JobRow r, ToRow(job));
    Call row(conn_, insert_job_with_id_.get());
    row.Bind(r.id, r.spec, r.input_info, r.state, r.error, r.created_unix_ms, r.started_unix_ms,
             r.finished_unix_ms);
    return row.Step(absl::StrCat("insert job ", job.id)).status();
  }

  absl::Status WriteJob(const Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ASSIGN_OR_RETURN(const JobRow r, ToRow(job));
    Call call(conn_, update_job_.get());
    call.Bind(r.spec, r.input_info, r.state, r.error, r.created_unix_ms, r.started_unix_ms,
              r.finished_unix_ms, r.id);
    return CheckUpdated(call, absl::StrCat("job ", job.id));
  }

  absl::Status InsertTask(const Task& t) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ASSIGN_OR_RETURN(const TaskRow r, ToRow(t));
    Call row(conn_, insert_task_.get());
    row.Bind(r.job_id, r.index, r.kind, r.frame_begin, r.frame_end, r.state, r.attempts, r.workers,
             r.error, r.model_digest, r.seconds, r.errors, r.lease_id, r.output_digest, r.qc,
             r.pictures);
    return row.Step(absl::StrCat("insert task ", t.job_id, "/", t.index)).status();
  }

  absl::Status WriteTask(const Task& t) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ASSIGN_OR_RETURN(const TaskRow r, ToRow(t));
    Call call(conn_, update_task_.get());
    call.Bind(r.state, r.attempts, r.workers, r.error, r.model_digest, r.seconds, r.errors,
              r.lease_id, r.output_digest, r.qc, r.pictures, r.job_id, r.index);
    return CheckUpdated(call, absl::StrCat("task ", t.job_id, "/", t.index));
  }

  // The job's tasks, then the job; NOT_FOUND when there is no such job.
  absl::Status DeleteJob(int64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Call tasks(conn_, delete_tasks_.get());
    tasks.Bind(id);
    RETURN_IF_ERROR(tasks.Step(absl::StrCat("delete tasks of job ", id)).status());
    Call job(conn_, delete_job_.get());
    job.Bind(id);
    return CheckUpdated(job, absl::StrCat("job ", id));
  }

  // Writes the WAL file out to kWalLayoutBytes of zeros while it holds no frames, as
  // PostgreSQL zero-fills a WAL segment before use. SQLite starts the WAL over from its
  // beginning after each complete checkpoint and never shortens it, so commits then
  // write over blocks the file already has: the COMMIT's fdatasync flushes the frames
  // alone, not the file's new length and blocks too (on ext4, about half the sync's
  // time; otherwise the first ~1,000 pages after each start pay it). A WAL whose header
  // is zeros holds no frames to SQLite (its recovery stops at the header). Done only
  // after a TRUNCATE checkpoint emptied it, under the write lock; anything else (another
  // connection reading or writing) leaves the WAL as it is.
  absl::Status LayOutWal() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    int wal_frames = -1, checkpointed = -1;
    if (sqlite3_wal_checkpoint_v2(conn_.db(), "main", SQLITE_CHECKPOINT_TRUNCATE, &wal_frames,
                                  &checkpointed) != SQLITE_OK ||
        wal_frames != 0) {
      return absl::OkStatus();
    }
    return InTransaction(conn_, /*write=*/true, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      sqlite3_file* wal = nullptr;
      if (sqlite3_file_control(conn_.db(), "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal) !=
              SQLITE_OK ||
          wal == nullptr || wal->pMethods == nullptr) {
        return absl::OkStatus();
      }
      sqlite3_int64 size = -1;
      int rc = wal->pMethods->xFileSize(wal, &size);
      if (rc != SQLITE_OK) return conn_.Error(rc, "size the WAL");
      if (size != 0) return absl::OkStatus();  // written since the checkpoint
      // 64 KiB a write: the unix VFS writes at most 128 KiB in one call.
      const std::vector<char> zeros(64 << 10, 0);
      for (int64_t at = 0; at < kWalLayoutBytes; at += static_cast<int64_t>(zeros.size())) {
        const int n = static_cast<int>(
            std::min<int64_t>(static_cast<int64_t>(zeros.size()), kWalLayoutBytes - at));
        rc = wal->pMethods->xWrite(wal, zeros.data(), n, at);
        if (rc != SQLITE_OK) return conn_.Error(rc, "lay out the WAL");
      }
      rc = wal->pMethods->xSync(wal, SQLITE_SYNC_NORMAL);  // its length and blocks too
      if (rc != SQLITE_OK) return conn_.Error(rc, "sync the laid-out WAL");
      return absl::OkStatus();
    });
  }

  // Steps an UPDATE of one row; NOT_FOUND when it matched none.
  absl::Status CheckUpdated(Call& call, const std::string& row) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    RETURN_IF_ERROR(call.Step(absl::StrCat("update ", row)).status());
    if (sqlite3_changes(conn_.db()) > 0) return absl::OkStatus();
    return absl::NotFoundError(absl::StrCat(row, " is not in job store '", conn_.path(), "'"));
  }

  absl::Status Init(CheckpointObserver observer) {
    absl::MutexLock lock(&mu_);
    if (sqlite3_db_readonly(conn_.db(), "main") == 1) {
      return conn_.Error(SQLITE_READONLY, "open for writing");
    }
    sqlite3_extended_result_codes(conn_.db(), 1);
    int rc = sqlite3_busy_timeout(conn_.db(), kBusyTimeoutMs);
    if (rc != SQLITE_OK) return conn_.Error(rc, "set busy timeout");
    ASSIGN_OR_RETURN(const std::string mode, QueryText("PRAGMA journal_mode=WAL"));
    if (mode != "wal") {
      return absl::UnavailableError(
          absl::StrCat("job store '", conn_.path(), "': journal mode is '", mode,
                       "', not 'wal'; give a file on a local filesystem"));
    }
    RETURN_IF_ERROR(conn_.Exec("PRAGMA synchronous=FULL", "set synchronous"));
    RETURN_IF_ERROR(conn_.Exec("PRAGMA foreign_keys=ON", "enable foreign keys"));
    RETURN_IF_ERROR(Migrate());
    RETURN_IF_ERROR(LayOutWal());
    // Checkpoints in the background instead of inside a COMMIT (this hook replaces
    // SQLite's auto-checkpoint).
    ASSIGN_OR_RETURN(checkpointer_, Checkpointer::Start(conn_.path(), std::move(observer)));
    sqlite3_wal_hook(conn_.db(), &OnWalCommit, checkpointer_.get());
    const std::pair<StmtPtr*, const char*> statements[] = {
        {&insert_job_,
         "INSERT INTO jobs(spec, input_info, state, error, created_unix_ms, "
         "started_unix_ms, finished_unix_ms) VALUES(?, ?, ?, ?, ?, ?, ?)"},
        {&insert_job_with_id_,
         "INSERT INTO jobs(id, spec, input_info, state, error, created_unix_ms, "
         "started_unix_ms, finished_unix_ms) VALUES(?, ?, ?, ?, ?, ?, ?, ?)"},
        {&insert_task_,
         "INSERT INTO tasks(job_id, idx, kind, frame_begin, frame_end, state, "
         "attempts, workers, error, model_digest, seconds, errors, lease_id, "
         "output_digest, qc, pictures) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"},
        {&update_job_,
         "UPDATE jobs SET spec = ?, input_info = ?, state = ?, error = ?, "
         "created_unix_ms = ?, started_unix_ms = ?, finished_unix_ms = ? WHERE id = ?"},
        {&update_task_,
         "UPDATE tasks SET state = ?, attempts = ?, workers = ?, error = ?, "
         "model_digest = ?, seconds = ?, errors = ?, lease_id = ?, output_digest = ?, "
         "qc = ?, pictures = ? WHERE job_id = ? AND idx = ?"},
        {&delete_tasks_, "DELETE FROM tasks WHERE job_id = ?"},
        {&delete_job_, "DELETE FROM jobs WHERE id = ?"},
        {&select_jobs_,
         "SELECT id, spec, input_info, state, error, created_unix_ms, "
         "started_unix_ms, finished_unix_ms FROM jobs ORDER BY id"},
        {&select_tasks_,
         "SELECT job_id, idx, kind, frame_begin, frame_end, state, attempts, "
         "workers, error, model_digest, seconds, errors, lease_id, output_digest, qc, pictures "
         "FROM tasks "
         "ORDER BY job_id, idx"},
        {&scan_tasks_,
         "SELECT job_id, idx, kind, frame_begin, frame_end, state, attempts, "
         "workers, error, model_digest, seconds, errors, lease_id, output_digest, qc, pictures "
         "FROM tasks"},
        {&count_tasks_, "SELECT COALESCE(MAX(idx) + 1, 0) FROM tasks WHERE job_id = ?"},
    };
    for (const auto& [slot, sql] : statements) {
      ASSIGN_OR_RETURN(*slot, conn_.Prepare(sql));
    }
    return absl::OkStatus();
  }

  // After each commit, with the WAL's length in pages.
  static int OnWalCommit(void* checkpointer, sqlite3* db, const char* name, int pages) {
    static_cast<Checkpointer*>(checkpointer)->AfterCommit(db, name, pages);
    return SQLITE_OK;
  }

  // The first column of the first row of `sql` as text ("" when no row).
  absl::StatusOr<std::string> QueryText(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ASSIGN_OR_RETURN(StmtPtr stmt, conn_.Prepare(sql));
    Call call(conn_, stmt.get());
    ASSIGN_OR_RETURN(const bool row, call.Step(sql));
    return row ? call.ColumnText(0) : std::string();
  }

  // Brings the schema to the newest version, all steps in one transaction.
  absl::Status Migrate() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return InTransaction(
        conn_, /*write=*/true, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::Status {
          RETURN_IF_ERROR(
              conn_.Exec("CREATE TABLE IF NOT EXISTS schema_version("
                         "version INTEGER PRIMARY KEY, applied_unix_ms INTEGER NOT NULL)",
                         "create schema_version"));
          ASSIGN_OR_RETURN(const std::string text,
                           QueryText("SELECT COALESCE(MAX(version), 0) FROM schema_version"));
          int64_t current = 0;
          const int64_t latest = static_cast<int64_t>(std::size(kMigrations));
          if (!absl::SimpleAtoi(text, &current) || current > latest) {
            return absl::FailedPreconditionError(
                absl::StrCat("job store '", conn_.path(), "': schema version '", text,
                             "' is not one this build knows (up to ", latest,
                             "); run a newer reelfarm or give another file"));
          }
          for (int64_t v = current + 1; v <= latest; ++v) {
            const std::string what = absl::StrCat("migrate schema to version ", v);
            RETURN_IF_ERROR(conn_.Exec(kMigrations[v - 1], what));
            RETURN_IF_ERROR(
                conn_.Exec(absl::StrCat("INSERT INTO schema_version VALUES(", v,
                                        ", CAST((julianday('now') - 2440587.5) * 86400000 "
                                        "AS INTEGER))"),
                           what));
          }
          return absl::OkStatus();
        });
  }

  absl::Mutex mu_;
  // Before the connection, whose WAL hook points at it: stopped after it closes.
  std::unique_ptr<Checkpointer> checkpointer_;
  // Before the statements, so that they are finalized before it closes.
  Connection conn_ ABSL_GUARDED_BY(mu_);
  StmtPtr insert_job_ ABSL_GUARDED_BY(mu_);
  StmtPtr insert_job_with_id_ ABSL_GUARDED_BY(mu_);
  StmtPtr insert_task_ ABSL_GUARDED_BY(mu_);
  StmtPtr update_job_ ABSL_GUARDED_BY(mu_);
  StmtPtr update_task_ ABSL_GUARDED_BY(mu_);
  StmtPtr delete_tasks_ ABSL_GUARDED_BY(mu_);
  StmtPtr delete_job_ ABSL_GUARDED_BY(mu_);
  StmtPtr select_jobs_ ABSL_GUARDED_BY(mu_);
  StmtPtr select_tasks_ ABSL_GUARDED_BY(mu_);
  StmtPtr scan_tasks_ ABSL_GUARDED_BY(mu_);
  StmtPtr count_tasks_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<std::unique_ptr<JobStore>> OpenSqliteJobStore(const std::string& path,
                                                             CheckpointObserver observer) {
  return SqliteJobStore::Open(path, std::move(observer));
}

}  // namespace reelfarm::scheduler
