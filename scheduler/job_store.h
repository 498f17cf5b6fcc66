// JobStore: where the scheduler's state is made durable.
//
// Contract:
//  - A call returns only after its change is committed (durable across a process
//    crash); the scheduler acknowledges nothing before that.
//  - Thread-safety: implementations are safe to call from several threads.
//  - Errors: UNAVAILABLE / INTERNAL statuses carry the backend's message; nothing
//    throws.
// Implementations: SqliteJobStore (default),
// PostgresJobStore (several servers, active/standby); for unit tests,
// tests/testing/memory_store.h's InMemoryJobStore.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "scheduler/job.h"

namespace reelfarm::scheduler {

class JobStore {
 public:
  JobStore() = default;
  JobStore(const JobStore&) = delete;
  JobStore& operator=(const JobStore&) = delete;
  virtual ~JobStore() = default;

  // Stores a new job and all its tasks in one transaction and returns the job's id
  // (assigned by the store, > 0, never reused). `job.id` and the tasks' job_id are
  // ignored on input.
  virtual absl::StatusOr<int64_t> CreateJob(const Job& job, const std::vector<Task>& tasks) = 0;

  // One change in a batch. kInsertJob carries the id chosen by the caller (above every
  // id stored so far); kInsertTask adds a task to an existing job; kDeleteJob removes
  // the job `job.id` and its tasks (retention), its id still never reused.
  struct Write {
    enum class Kind { kInsertJob, kUpdateJob, kInsertTask, kUpdateTask, kDeleteJob };
    Kind kind;
    Job job;    // kInsertJob, kUpdateJob
    Task task;  // kInsertTask, kUpdateTask
  };
  // Applies `writes` in order in one transaction: all or nothing. This is how the
  // scheduler commits in groups (one durable commit for many state changes).
  // NOT_FOUND (and nothing applied) when an update or a delete names a missing row.
  virtual absl::Status Commit(const std::vector<Write>& writes) = 0;

  // Replaces the stored state of a job (spec, input info, state, error, timestamps): a
  // Commit of one write, unless a store has something cheaper.
  virtual absl::Status UpdateJob(const Job& job) {
    return Commit({{Write::Kind::kUpdateJob, job, {}}});
  }

  // Replaces the stored state of one task (matched by job_id and index).
  virtual absl::Status UpdateTask(const Task& task) {
    return Commit({{Write::Kind::kUpdateTask, {}, task}});
  }

  // Everything, for a restart: jobs ordered by id, tasks ordered by (job_id, index).
  // `next_job_id`: above every id the store ever gave or took, deleted jobs' included
  // (0 when the store cannot say; the caller then takes the highest loaded id + 1).
  struct Snapshot {
    std::vector<Job> jobs;
    std::vector<Task> tasks;
    int64_t next_job_id = 0;
  };
  virtual absl::StatusOr<Snapshot> LoadAll() = 0;

  // The same state as LoadAll, streamed into the caller's own structures: a restart
  // then holds each task once, built in place, instead of a snapshot copy and its own.
  // Calls, all from the thread that called Load: AddJob for every job in id order (with
  // its number of tasks, i.e. its highest task index + 1), then TaskSlot for every task
  // of those jobs, in any order, then SetNextJobId once. Fill the task that TaskSlot
  // returns (a default Task), or skip the row when it returns nullptr.
  class LoadSink {
   public:
    virtual ~LoadSink() = default;
    virtual void AddJob(Job job, int task_count) = 0;
    virtual Task* TaskSlot(int64_t job_id, int index) = 0;
    virtual void SetNextJobId(int64_t next_job_id) = 0;
  };
  // The default streams LoadAll's snapshot; a store that can read rows straight into the
  // sink overrides it. One consistent read, as LoadAll's.
  virtual absl::Status Load(LoadSink& sink);
};

// Told of each WAL checkpoint a SQLite store runs, for metrics: `pass` is "background"
// (the checkpointer's own thread copying the bulk of the WAL), "rest" (the commit after
// that pass copying what was committed meanwhile) or "limit" (a commit that found the
// WAL at its bound); the seconds it took and whether SQLite returned OK. Called on the
// thread that ran the checkpoint (a commit's, for "rest" and "limit"): thread-safe and
// quick.
using CheckpointObserver = std::function<void(const char* pass, double seconds, bool ok)>;

// SQLite in WAL mode at `path` (created with its schema if missing).
absl::StatusOr<std::unique_ptr<JobStore>> OpenSqliteJobStore(const std::string& path,
                                                             CheckpointObserver observer = {});

// PostgreSQL at `url` (postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE), its schema
// created or migrated first. Connects at once: a wrong or unreachable URL fails here,
// naming it. `fence_epoch` > 0: every write checks that this epoch still leads (see
// LeaderElection) and is refused with UNAVAILABLE once another server took over.
absl::StatusOr<std::unique_ptr<JobStore>> OpenPostgresJobStore(const std::string& url,
                                                               int64_t fence_epoch = 0);

}  // namespace reelfarm::scheduler
