// SqliteJobStore's WAL checkpoints, which run mostly on their own connection and thread
// rather than inside a COMMIT: the WAL is copied into the database file while the store
// is open, it starts over under commits back to back (so it stays bounded however much
// is committed), and a reopen sees every commit;
// it is laid out on disk at open, so that commits write over it. The VFS that gathers a
// commit's WAL writes into one (scheduler/sqlite_wal_vfs.h) has every committed frame in
// the file when a commit returns.
#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "scheduler/job_store.h"
#include "scheduler/sqlite_wal_vfs.h"
#include "tests/testing/fixtures.h"

namespace reelfarm::scheduler {
namespace {

using reelfarm::testing::TempDir;
using W = JobStore::Write;

constexpr int64_t kPage = 4096;  // SQLite's default page size

int64_t FileSize(const std::filesystem::path& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : 0;
}

// One job of about 4 pages (its spec), with one task.
std::vector<W> BigJob(int64_t id) {
  Job job;
  job.id = id;
  job.spec.name = std::string(15000, static_cast<char>('a' + id % 26));
  Task t;
  t.job_id = id;
  t.index = 0;
  return {{W::Kind::kInsertJob, job, {}}, {W::Kind::kInsertTask, {}, t}};
}

std::unique_ptr<JobStore> Open(const std::string& path) {
  absl::StatusOr<std::unique_ptr<JobStore>> store = OpenSqliteJobStore(path);
  INFO(store.status().ToString());
  REQUIRE(store.ok());
  return std::move(store).value();
}

// A store opened as the server opens it, counting its checkpoint passes by kind
// ("failed" for one that failed).
class CountingStore {
 public:
  explicit CountingStore(const std::filesystem::path& db) {
    absl::StatusOr<std::unique_ptr<JobStore>> opened =
        OpenSqliteJobStore(db.string(), [this](const char* pass, double, bool ok) {
          std::lock_guard<std::mutex> lock(mu_);
          ++passes_[ok ? pass : "failed"];
        });
    INFO(opened.status().ToString());
    REQUIRE(opened.ok());
    store_ = std::move(opened).value();
  }
  JobStore* operator->() const { return store_.get(); }
  void Close() { store_.reset(); }
  int passes(const std::string& pass) const {
    std::lock_guard<std::mutex> lock(mu_);
    const auto it = passes_.find(pass);
    return it == passes_.end() ? 0 : it->second;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, int> passes_;
  std::unique_ptr<JobStore> store_;  // last: closed (its checkpointer joined) first
};

TEST_CASE("SqliteJobStore checkpoints the WAL in the background while it is open",
          "[unit][store]") {
  TempDir dir;
  const std::filesystem::path db = dir.path() / "jobs.db";
  std::unique_ptr<JobStore> store = Open(db.string());
  const int64_t before = FileSize(db);
  // Some 7,000 pages (8 or 9 a commit, with the tables' and page 1's): past the
  // checkpoint threshold (2,500) twice, below the length at which a commit would
  // checkpoint itself (10,000).
  constexpr int kJobs = 800;
  for (int64_t id = 1; id <= kJobs; ++id) REQUIRE(store->Commit(BigJob(id)).ok());
  // The jobs' pages reach the database file with the store still open, written by the
  // checkpointer (SQLite's own auto-checkpoint is off): under these commits back to
  // back, the background pass copies the bulk once the WAL holds 3,000 pages, the commit
  // that finds 3,500 the rest, and the WAL starts over (every 400 jobs or so); in the
  // pause after the last commit, the checkpointer copies what is due. So at least the
  // first 400 jobs' pages (each job's name fills three) are in the file; what is not
  // stays in the WAL (the reopen below reads it from there).
  const int64_t want = before + 400 * 3 * kPage;
  for (int i = 0; i < 200 && FileSize(db) < want; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(FileSize(db) >= want);
  store.reset();
  store = Open(db.string());
  auto snap = store->LoadAll();
  REQUIRE(snap.ok());
  CHECK(snap->jobs.size() == kJobs);
  CHECK(snap->tasks.size() == kJobs);
}

TEST_CASE("SqliteJobStore keeps the WAL bounded by starting it over under commits back to back",
          "[unit][store]") {
  // Under commits back to back, a background checkpoint pass always ends with a commit
  // or two it has not copied, so passes that ran again and again never let the WAL start
  // over: it grew to the 10,000 pages at which a commit checkpoints it itself, with two
  // syncs a pass beside every commit's own. The commit after the background pass copies
  // those itself (once the WAL holds 3,500 pages), and the WAL starts over at the next
  // one: it never holds much more than that.
  TempDir dir;
  const std::filesystem::path db = dir.path() / "jobs.db";
  const std::filesystem::path wal = dir.path() / "jobs.db-wal";
  CountingStore store(db);
  // Some 35,000 pages committed in all: a WAL never checkpointed would hold them all.
  constexpr int kJobs = 4000;
  int64_t largest = 0;
  for (int64_t id = 1; id <= kJobs; ++id) {
    REQUIRE(store->Commit(BigJob(id)).ok());
    largest = std::max(largest, FileSize(wal));
  }
  INFO("largest WAL: " << largest / (kPage + 24) << " frames");
  // Within 7,500 frames, a frame being a page and a 24-byte header after the WAL's
  // 32-byte header (the file is laid out for 5,000 at open and grows only past that):
  // room for 4,500 pages committed while the background pass copies 3,000.
  CHECK(largest <= 32 + 7500 * (kPage + 24));
  CHECK(largest > 0);
  {
    // One background pass and one commit's pass for the rest each time the WAL filled to
    // 3,500 pages (ten or so times here: a commit writes 8 or 9 pages with the tables'
    // and page 1's), where passes chasing commits ran about one for every two commits
    // past the first 2,500 pages; none at the bound (10,000 pages).
    // A pause in the loop (a slow moment of the machine) lets the checkpointer copy the
    // WAL whole instead ("pause"), without a background pass or a commit's.
    INFO("background " << store.passes("background") << ", rest " << store.passes("rest")
                       << ", pause " << store.passes("pause"));
    CHECK(store.passes("background") + store.passes("pause") >= 1);
    CHECK(store.passes("background") <= 40);
    CHECK(store.passes("rest") <= store.passes("background"));
    // The last pass may end after all.
    CHECK(store.passes("rest") + store.passes("pause") >= store.passes("background") - 1);
    CHECK(store.passes("limit") == 0);
    CHECK(store.passes("failed") == 0);
  }
  // Every commit survives a reopen.
  store.Close();
  std::unique_ptr<JobStore> reopened = Open(db.string());
  auto snap = reopened->LoadAll();
  REQUIRE(snap.ok());
  CHECK(snap->jobs.size() == kJobs);
  CHECK(snap->jobs.back().spec.name == std::string(15000, static_cast<char>('a' + kJobs % 26)));
}

TEST_CASE("SqliteJobStore copies the WAL whole in a pause of commits, off every commit's path",
          "[unit][store]") {
  // Submits come in bursts. A checkpoint due in a burst (the WAL past 2,500 pages, not
  // yet at the 3,000 at which the bulk is copied beside the commits) waits for the pause
  // after it: the checkpointer copies the WAL whole then, on its own thread, and the next
  // commit starts the WAL over. No commit copies anything.
  TempDir dir;
  const std::filesystem::path db = dir.path() / "jobs.db";
  const std::filesystem::path wal = dir.path() / "jobs.db-wal";
  CountingStore store(db);
  const auto await_pause = [&](int n) {
    for (int i = 0; i < 200 && store.passes("pause") < n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  };
  const int64_t laid = FileSize(wal);
  const int64_t before = FileSize(db);
  // A burst of some 2,600-2,900 pages (8 or 9 a commit): due, below the bulk's 3,000.
  constexpr int kBurst = 320;
  int64_t id = 0;
  for (int i = 0; i < kBurst; ++i) REQUIRE(store->Commit(BigJob(++id)).ok());
  await_pause(1);
  CHECK(store.passes("pause") == 1);
  // The jobs' pages are in the database file (each job's name fills three).
  CHECK(FileSize(db) >= before + kBurst * 3 * kPage);
  // The next burst starts the WAL over: had it not, its pages would add up past the
  // bulk's and the rest's lengths, and a background pass and a commit's would run.
  for (int i = 0; i < kBurst; ++i) REQUIRE(store->Commit(BigJob(++id)).ok());
  await_pause(2);
  CHECK(store.passes("pause") == 2);
  CHECK(store.passes("background") == 0);
  CHECK(store.passes("rest") == 0);
  CHECK(store.passes("limit") == 0);
  CHECK(store.passes("failed") == 0);
  CHECK(FileSize(wal) == laid);  // written over, never grown
  store.Close();
  std::unique_ptr<JobStore> reopened = Open(db.string());
  auto snap = reopened->LoadAll();
  REQUIRE(snap.ok());
  REQUIRE(snap->jobs.size() == static_cast<size_t>(id));
  CHECK(snap->jobs.back().spec.name == std::string(15000, static_cast<char>('a' + id % 26)));
}

TEST_CASE("SqliteJobStore lays out the WAL at open and commits write over it, losing none",
          "[unit][store]") {
  TempDir dir;
  const std::filesystem::path db = dir.path() / "jobs.db";
  const std::filesystem::path wal = dir.path() / "jobs.db-wal";
  std::unique_ptr<JobStore> store = Open(db.string());
  // Laid out before the first commit: room for 5,000 frames (twice the background
  // checkpoint's threshold).
  const int64_t laid = FileSize(wal);
  CHECK(laid >= 5000 * (kPage + 24));
  // About 400 pages: each commit writes over the laid-out file, which does not grow.
  for (int64_t id = 1; id <= 100; ++id) {
    REQUIRE(store->Commit(BigJob(id)).ok());
    REQUIRE(FileSize(wal) == laid);
  }
  // A second store opened on the file while the first's commits are still in the WAL:
  // they are checkpointed before the WAL is laid out again, and both go on committing.
  std::unique_ptr<JobStore> second = Open(db.string());
  REQUIRE(store->Commit(BigJob(101)).ok());
  REQUIRE(second->Commit(BigJob(102)).ok());
  store.reset();
  second.reset();
  store = Open(db.string());
  auto snap = store->LoadAll();
  REQUIRE(snap.ok());
  REQUIRE(snap->jobs.size() == 102);
  for (int64_t id = 1; id <= 102; ++id) {
    CHECK(snap->jobs[id - 1].id == id);
    CHECK(snap->jobs[id - 1].spec.name == std::string(15000, static_cast<char>('a' + id % 26)));
  }
}

using Db = std::unique_ptr<sqlite3, int (*)(sqlite3*)>;

Db OpenDb(const std::filesystem::path& path, const char* vfs) {
  sqlite3* raw = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs);
  Db db(raw, &sqlite3_close);
  REQUIRE(rc == SQLITE_OK);
  return db;
}

void Exec(sqlite3* db, const std::string& sql) {
  INFO(sql << ": " << sqlite3_errmsg(db));
  REQUIRE(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
}

TEST_CASE("SqliteJobStore's WAL starts over again once a reader that held it goes away",
          "[unit][store]") {
  // What an operator may do: read state.db with another program (a sqlite3 shell, a
  // backup) while the server commits. A reader's snapshot keeps the checkpoints from
  // copying past it, so the WAL cannot start over and grows; once the reader is gone,
  // the commit that finds the WAL at its bound (10,000 pages) copies it whole, and the
  // background pass and the commit after it take over again.
  TempDir dir;
  const std::filesystem::path db = dir.path() / "jobs.db";
  const std::filesystem::path wal = dir.path() / "jobs.db-wal";
  CountingStore store(db);
  int64_t id = 0;
  {
    Db reader = OpenDb(db, nullptr);
    Exec(reader.get(), "BEGIN");
    Exec(reader.get(), "SELECT count(*) FROM jobs");  // holds this snapshot until COMMIT
    // Some 7,000 pages: past the background pass's 3,000, below the bound.
    for (int i = 0; i < 800; ++i) REQUIRE(store->Commit(BigJob(++id)).ok());
    Exec(reader.get(), "COMMIT");
  }
  int background_before = 0;
  {
    CHECK(store.passes("limit") == 0);
    background_before = store.passes("background") + store.passes("pause");
  }
  // Some 18,000 pages more, with nobody reading.
  int64_t largest = 0;
  for (int i = 0; i < 2000; ++i) {
    REQUIRE(store->Commit(BigJob(++id)).ok());
    largest = std::max(largest, FileSize(wal));
  }
  INFO("largest WAL: " << largest / (kPage + 24) << " frames");
  CHECK(largest <= 32 + (10000 + 64) * (kPage + 24));
  {
    INFO("background " << store.passes("background") << " (" << background_before
                       << " while read), rest " << store.passes("rest") << ", limit "
                       << store.passes("limit"));
    CHECK(store.passes("limit") == 1);
    // The WAL started over after the bound and filled to 3,000 pages again, more than
    // once: the background passes resumed.
    CHECK(store.passes("background") + store.passes("pause") >= background_before + 2);
    CHECK(store.passes("failed") == 0);
  }
  store.Close();
  std::unique_ptr<JobStore> reopened = Open(db.string());
  auto snap = reopened->LoadAll();
  REQUIRE(snap.ok());
  CHECK(snap->jobs.size() == static_cast<size_t>(id));
}

// Row `i`'s value: its length varies from a few bytes to past the VFS's 64 KiB gathering
// limit (a write that large goes straight through), and its bytes depend on i.
std::string Value(int i) {
  const size_t sizes[] = {7, 3000, 12000, 200000, 40};
  std::string v(sizes[i % 5], '\0');
  for (size_t k = 0; k < v.size(); ++k) v[k] = static_cast<char>((i * 131 + k * 7) % 251);
  return v;
}

TEST_CASE("the WAL-gathering VFS has every committed frame in the file when a commit returns",
          "[unit][store]") {
  REQUIRE(WalCoalescingVfs() != nullptr);
  TempDir dir;
  const std::filesystem::path path = dir.path() / "t.db";
  Db db = OpenDb(path, WalCoalescingVfs());
  Exec(db.get(), "PRAGMA journal_mode=WAL");
  Exec(db.get(), "PRAGMA synchronous=FULL");
  Exec(db.get(), "PRAGMA wal_autocheckpoint=0");  // the frames stay in the WAL
  Exec(db.get(), "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB NOT NULL)");
  sqlite3_stmt* raw = nullptr;
  REQUIRE(sqlite3_prepare_v2(db.get(), "INSERT INTO t(id, v) VALUES(?, ?)", -1, &raw, nullptr) ==
          SQLITE_OK);
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> insert(raw, &sqlite3_finalize);
  for (int i = 1; i <= 25; ++i) {
    CAPTURE(i);
    // One transaction of one or two rows.
    Exec(db.get(), "BEGIN IMMEDIATE");
    for (int row : {i, 1000 + i}) {
      if (row > 1000 && i % 3 != 0) continue;
      const std::string v = Value(row);
      sqlite3_bind_int(insert.get(), 1, row);
      sqlite3_bind_blob(insert.get(), 2, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
      REQUIRE(sqlite3_step(insert.get()) == SQLITE_DONE);
      sqlite3_reset(insert.get());
    }
    Exec(db.get(), "COMMIT");
    // The files as they are now, with the connection still open (its memory is not on
    // disk), read with SQLite's own VFS: every committed row is there.
    const std::filesystem::path copy = dir.path() / ("copy" + std::to_string(i));
    std::filesystem::create_directory(copy);
    std::filesystem::copy_file(path, copy / "t.db");
    std::filesystem::copy_file(path.string() + "-wal", copy / "t.db-wal");
    Db seen = OpenDb(copy / "t.db", nullptr);
    sqlite3_stmt* q = nullptr;
    REQUIRE(sqlite3_prepare_v2(seen.get(), "SELECT id, v FROM t ORDER BY id", -1, &q, nullptr) ==
            SQLITE_OK);
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> rows(q, &sqlite3_finalize);
    std::vector<int> ids;
    while (sqlite3_step(rows.get()) == SQLITE_ROW) {
      const int id = sqlite3_column_int(rows.get(), 0);
      const auto* bytes = static_cast<const char*>(sqlite3_column_blob(rows.get(), 1));
      const std::string v(bytes, static_cast<size_t>(sqlite3_column_bytes(rows.get(), 1)));
      CHECK(v == Value(id));
      ids.push_back(id);
    }
    std::vector<int> want;
    for (int k = 1; k <= i; ++k) want.push_back(k);
    for (int k = 3; k <= i; k += 3) want.push_back(1000 + k);
    std::sort(want.begin(), want.end());
    CHECK(ids == want);
  }
}

}  // namespace
}  // namespace reelfarm::scheduler
