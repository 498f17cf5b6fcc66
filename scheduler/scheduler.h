// Scheduler: the farm's brain. Owns the in-memory view of jobs, tasks, workers and
// leases; makes every change durable through a CommitQueue (group commit into the
// JobStore) and acknowledges nothing before it is committed. No gRPC here: server/
// adapts the API to these calls.
//
// Policy, in order: a task goes only to a worker that has its model, every tag the job
// requires, free memory for the model's estimate and room for it (a free slot, or a
// place among the assignments it holds ahead: WorkerInfo::prefetch); among the jobs that
// fit, the highest priority wins; among equal priorities, the project furthest below
// its weighted share of the running tasks (and under its cap); then the oldest job.
// A task that failed on a worker (its lease expired there included) goes to another
// one when another can take it, and to that worker again only when none can.
// Health: a lease expires only when its worker sent nothing for a whole lease
// (heartbeats have their own thread, so a busy worker still sends them). From its first
// expired lease a worker is unhealthy: it gets no new work until it heartbeats again.
//
// Thread-safety: every public method may be called from any thread.
// Leases: each lease id is a fencing token, unique across restarts. A result, progress
// report or heartbeat under a lease that is not current is refused.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/synchronization/mutex.h"
#include "common/status.h"
#include "scheduler/clock.h"
#include "scheduler/commit_queue.h"
#include "scheduler/events.h"
#include "scheduler/job.h"
#include "scheduler/job_store.h"

namespace reelfarm::scheduler {

struct ProjectPolicy {
  double weight = 1.0;     // share of running tasks relative to other projects
  int max_running = 0;     // cap on concurrent tasks (0: none)
  int64_t max_queued = 0;  // admission: queued tasks (0: the global per-project limit)
};

struct SchedulerOptions {
  int64_t lease_ms = 20'000;     // a lease not renewed for this long expires
  int64_t heartbeat_ms = 2'000;  // what workers are told to use
  // Admission: 0 means unlimited.
  int64_t max_queued_tasks = 0;
  int64_t max_queued_tasks_per_project = 0;
  std::map<std::string, ProjectPolicy> projects;  // others get ProjectPolicy{}
  // Leader's epoch (PostgreSQL active/standby; 0: a single server): lease ids then
  // carry it in their high bits (LeaseEpoch), above every id of earlier epochs.
  int64_t lease_epoch = 0;
};

// Lease ids of an epoch e > 0 are e << kLeaseEpochShift plus a counter.
inline constexpr int kLeaseEpochShift = 40;
inline int64_t LeaseEpoch(uint64_t lease_id) {
  return static_cast<int64_t>(lease_id >> kLeaseEpochShift);
}

struct WorkerInfo {
  std::string name;
  int slots = 1;
  // Assignments held per slot beyond the running one (prefetch): the worker may hold
  // slots × (1 + prefetch) leases and starts a held one as soon as a slot frees.
  int prefetch = 0;
  std::vector<std::string> models;
  std::map<std::string, std::string> tags;
  int64_t memory_bytes = 0;          // 0: unknown, no memory check
  std::vector<std::string> devices;  // "cpu", "cuda:0", ... (shown, not scheduled on)
};

struct Lease {
  uint64_t id = 0;
  int64_t job_id = 0;
  int task_index = 0;
  std::string worker;
  int64_t leased_ms = 0;
  int64_t deadline_ms = 0;
  int attempt = 0;
  // Prefetched: the worker holds it until a slot frees and has not started it. Its
  // worker's oldest held lease starts when one of its running leases ends (as the
  // worker starts its held assignments in the order it got them).
  bool held = false;
};

// What a worker is sent: the lease, its task, and what it needs to run it.
struct Assignment {
  Lease lease;
  Task task;
  JobSpec spec;
  MediaInfo input_info;
  std::string segment;                       // CHUNK: segment to write (relative path)
  std::vector<std::string> segments;         // ASSEMBLE: the segments, in order
  std::vector<std::string> segment_digests;  // ASSEMBLE: each chunk's output_digest
  std::vector<int64_t> segment_frames;       // ASSEMBLE: each chunk's frame count
  std::string provenance_json;               // ASSEMBLE, TAKE: what the farm knows of the job
  Take take;                                 // TAKE: the take's resolved values
  // ASSEMBLE: each chunk's TaskQc.median_difference (0: not measured).
  std::vector<double> segment_median_differences;
};

// What the worker reports when a task ends.
struct TaskOutcome {
  bool ok = false;
  std::string error;
  bool retryable = true;
  double seconds = 0;
  std::string model_digest;
  std::string output_digest;  // CHUNK: what it published ("sha256:HEX")
  TaskQc qc;                  // what it measured of its output
  std::string thumbnail;      // pictures it made (see Task)
  std::string preview;
};

// A job with its tasks and progress, as clients see it.
struct JobView {
  Job job;
  std::vector<Task> tasks;
  std::vector<int64_t> task_frames_done;  // per task, current attempt
  std::vector<bool> task_held;            // per task: leased, held by a worker, not started
  int64_t frames_total = 0;
  int64_t frames_done = 0;
  int tasks_total = 0;
  int tasks_done = 0;
  double fps = 0;
  double eta_seconds = -1;
};

struct WorkerView {
  WorkerInfo info;
  std::vector<Lease> leases;
  int64_t tasks_done = 0;
  bool draining = false;
  // Unhealthy: a lease of it expired and it has not sent a heartbeat since.
  bool unhealthy = false;
  int64_t unhealthy_since_ms = 0;
  int leases_expired = 0;        // since its last heartbeat
  std::string unhealthy_reason;  // the last expiry, e.g. "lease 7 (job 3 task 2) expired: ..."
};

// Relative path of the segment that chunk `index` of `job_id` writes under `lease_id`.
// Each lease writes its own file, and assembly reads the one of the lease whose result
// was accepted: a zombie worker that finishes late never overwrites what counts.
std::string SegmentPath(int64_t job_id, int index, uint64_t lease_id);

class Scheduler final {
 public:
  // Loads the store's state. Tasks that were leased keep their lease for one lease
  // duration, so that their workers can reconnect and finish them.
  // `events` (optional, not owned) must outlive the scheduler.
  static absl::StatusOr<std::unique_ptr<Scheduler>> Create(JobStore* store, Clock* clock,
                                                           SchedulerOptions options,
                                                           SchedulerEvents* events = nullptr);
  ~Scheduler();

  const SchedulerOptions& options() const { return options_; }

  // Takes the job and commits it. `spec` and `input_info` come from the server's
  // admission (server/admission.h), which checked the spec's values, the input and the
  // tasks it makes; the scheduler checks what it holds: the queue limits and the
  // dependencies. `input_info` is empty when the input is the output
  // of a job in depends_on: its tasks are made once that job succeeds (see
  // JobsToActivate). A spec with a request_id already seen in its project returns the
  // first job. RESOURCE_EXHAUSTED past a queue limit; NOT_FOUND for an unknown
  // dependency; FAILED_PRECONDITION for one that already failed.
  absl::StatusOr<JobView> Submit(JobSpec spec, std::optional<MediaInfo> input_info);
  // Whether a job was submitted with `request_id` in `project`: Submit then returns it
  // whatever the spec, so the server answers a retried submit without admitting it
  // again (its outputs may exist by now).
  bool KnowsRequest(const std::string& project, const std::string& request_id) const;
  // Every check of Submit, and the job with the tasks it would make; nothing is kept.
  absl::StatusOr<JobView> DryRun(JobSpec spec, std::optional<MediaInfo> input_info);
  absl::StatusOr<JobView> GetJob(int64_t job_id) const;
  struct ListFilter {
    std::vector<JobState> states;  // empty: all
    std::string project;           // empty: all
    int64_t since_unix_ms = 0;     // created at or after
    int limit = 100;               // 0: no limit
  };
  // Newest first.
  std::vector<JobView> ListJobs(const ListFilter& filter) const;
  std::vector<JobView> ListJobs(const std::vector<JobState>& states, int limit) const {
    return ListJobs(ListFilter{states, "", 0, limit});
  }

  // Control. Each returns the job after the change is committed.
  absl::StatusOr<JobView> Cancel(int64_t job_id);
  absl::StatusOr<JobView> Pause(int64_t job_id);
  absl::StatusOr<JobView> Resume(int64_t job_id);
  absl::StatusOr<JobView> SetPriority(int64_t job_id, int priority);
  // Queues the failed and cancelled tasks of a failed or cancelled job again.
  absl::StatusOr<JobView> Retry(int64_t job_id);

  // Retention (scheduler/retention.cc): forgets ended jobs (succeeded, failed,
  // cancelled) that ended at least `older_than_ms` ago by the clock, deleting them
  // from the store. Never one that a job that has not ended depends on (depends_on).
  // `job_ids` empty: every such job; else only these (NOT_FOUND, nothing purged, when
  // one is unknown). `dry_run`: says what it would purge and keeps everything.
  // Returns once the deletes are committed. Their task logs and scratch are the
  // caller's (the server's) to remove.
  struct PurgeRequest {
    int64_t older_than_ms = 0;
    std::vector<int64_t> job_ids;
    bool dry_run = false;
  };
  struct PurgeResult {
    std::vector<Job> purged;  // as they were, oldest end first
    // Jobs named in `job_ids` or needed by a dependent, kept, and why.
    std::vector<std::pair<int64_t, std::string>> kept;
  };
  absl::StatusOr<PurgeResult> Purge(const PurgeRequest& request);

  // Jobs whose dependencies succeeded but whose input was not there to probe at
  // submit: the server admits each again (probing its input) and calls Activate with
  // the input it found, or FailJob with the reason it refused it.
  std::vector<std::pair<int64_t, JobSpec>> JobsToActivate();
  absl::Status Activate(int64_t job_id, const MediaInfo& input_info);
  absl::Status FailJob(int64_t job_id, const std::string& error);

  // Workers. RegisterWorker returns the leases in `held` (leases the worker says it
  // still runs, after a reconnect) that are not current: the worker must stop them.
  // Leases the server thinks the worker holds but that it does not report are failed.
  std::vector<uint64_t> RegisterWorker(const WorkerInfo& info,
                                       const std::vector<uint64_t>& held = {});
  // The worker is gone: its leases are released and their tasks queued again.
  void UnregisterWorker(const std::string& name);
  // A draining worker finishes its tasks and takes no more. NOT_FOUND if unknown.
  absl::Status Drain(const std::string& name, bool drain);
  std::vector<WorkerView> ListWorkers() const;
  std::vector<std::string> KnownModels() const;

  // The next task for `worker`, if it has room (slots × (1 + prefetch) leases) and a
  // task fits it.
  std::optional<Assignment> LeaseNext(const std::string& worker);
  // Renews `worker`'s leases among `lease_ids`; returns those that are not current.
  // A heartbeat (or progress report) makes an unhealthy worker healthy again.
  std::vector<uint64_t> Heartbeat(const std::string& worker,
                                  const std::vector<uint64_t>& lease_ids);
  absl::Status ReportProgress(const std::string& worker, uint64_t lease_id, int64_t frames_done);
  // Records a task's outcome and returns once it is committed. FAILED_PRECONDITION if
  // the lease is not current (fencing); the result is then dropped.
  absl::Status Complete(const std::string& worker, uint64_t lease_id, const TaskOutcome& outcome);
  // Same, without blocking: `done` gets the answer once the outcome is committed (or
  // at once when it is refused). It runs on the commit thread: quick, no callbacks in.
  // With `next`, the room the result frees on `worker` is leased again at once (as
  // LeaseNext would) and those leases join the outcome's commit: one group-commit
  // batch, one durable write, for the result and the worker's next work. They are
  // returned in `next`, to send at once (like LeaseNext's, before they are durable).
  void CompleteAsync(const std::string& worker, uint64_t lease_id, const TaskOutcome& outcome,
                     std::function<void(const absl::Status&)> done,
                     std::vector<Assignment>* next = nullptr);
  // One result of a worker, for CompleteAllAsync.
  struct Report {
    uint64_t lease_id = 0;
    TaskOutcome outcome;
  };
  // CompleteAsync for several results of one worker at once, in order: one pass under
  // the lock and one group-commit entry. `done` runs once, with a status per report in
  // their order, when the accepted ones are committed (or at once, in this thread, when
  // every one is refused; a refused one's status is FAILED_PRECONDITION as Complete's).
  // With `next`, the room they free is leased again in the same commit (see
  // CompleteAsync).
  void CompleteAllAsync(const std::string& worker, const std::vector<Report>& reports,
                        std::function<void(const std::vector<absl::Status>&)> done,
                        std::vector<Assignment>* next = nullptr);
  // Expires leases past their deadline; their tasks are queued again (or fail the
  // job past max attempts) and their workers are unhealthy until they heartbeat.
  // Returns the expired leases, which are also revoked.
  std::vector<Lease> ExpireLeases();
  // Leases taken away from live workers since the last call (job cancelled or failed,
  // lease expired): the server tells each worker to stop.
  std::vector<Lease> TakeRevoked();

  // Counts for gauges, taken at scrape time.
  struct Stats {
    struct ProjectCounts {
      int64_t tasks_queued = 0;   // pending
      int64_t tasks_running = 0;  // leased and started
      int64_t tasks_held = 0;     // leased, held by a worker that prefetched it (not started)
      int64_t jobs_active = 0;    // not terminal
    };
    std::map<std::string, ProjectCounts> projects;
    int64_t workers_idle = 0;
    int64_t workers_busy = 0;
    int64_t workers_draining = 0;
    int64_t workers_unhealthy = 0;  // counted here only, not as idle, busy or draining
    std::map<std::string, bool> worker_unhealthy;  // every connected worker
    uint64_t commit_batches = 0;
    uint64_t commit_writes = 0;
  };
  Stats GetStats() const;
  // OK while the store takes commits.
  absl::Status health();

  // Change notification: `version()` grows on every change; WaitForChange returns
  // when it differs from `seen` or after `timeout_ms`.
  uint64_t version() const;
  uint64_t WaitForChange(uint64_t seen, int64_t timeout_ms) const;

 private:
  struct JobEntry {
    Job job;
    std::vector<Task> tasks;
    std::vector<int64_t> progress;      // frames done by the current attempt
    std::vector<int64_t> ready_since;   // when each task last went back to the queue
    absl::btree_set<int> ready_chunks;  // pending chunk tasks, by index
    int chunks_total = 0;
    int chunks_succeeded = 0;
    int assemble_index = -1;
    // Its pending tasks as counted in queued_tasks_ and its project's `queued` (0 once
    // it is no longer active): RecountQueuedLocked keeps the sums without a walk.
    int64_t queued_counted = 0;
  };
  struct WorkerEntry {
    WorkerInfo info;
    int64_t tasks_done = 0;
    int64_t memory_in_use = 0;  // of every lease it holds, held ones included
    int running = 0;            // leases started (at most its slots)
    std::set<uint64_t> held;    // leases it holds for when a slot frees, oldest first
    bool draining = false;
    int leases_expired = 0;  // since the last heartbeat; > 0: unhealthy
    int64_t unhealthy_since_ms = 0;
    std::string unhealthy_reason;
  };
  struct ProjectEntry {
    int running = 0;
    int64_t leased_total = 0;
    int64_t queued = 0;  // pending tasks of its active jobs
  };
  using Writes = std::vector<JobStore::Write>;

  Scheduler(JobStore* store, Clock* clock, SchedulerOptions options, SchedulerEvents* events);

  const ProjectPolicy& PolicyFor(const std::string& project) const;
  JobView ViewLocked(const JobEntry& e) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  JobEntry* FindLocked(int64_t job_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AddTasksLocked(JobEntry& e, std::vector<Task> tasks, Writes* w)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Brings queued_tasks_ and the project's `queued` up to date with `e`'s pending tasks
  // (none unless it is active). Called wherever those or its being active change.
  void RecountQueuedLocked(JobEntry& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static std::vector<Task> MakeTasks(const JobSpec& spec, const MediaInfo& info);
  // Queued, running or waiting, from the job's dependencies and history.
  JobState NaturalStateLocked(const JobEntry& e) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool FitsLocked(const WorkerEntry& w, const JobEntry& e) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether `worker` should leave task `t` of `e` to another: an attempt of `t` failed
  // on it and another healthy, undrained worker that has not failed it fits the job.
  bool LeaveToOtherLocked(const JobEntry& e, const Task& t, const std::string& worker) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Index of the next task of `e` for `worker`, or -1.
  int NextTaskLocked(const JobEntry& e, const std::string& worker) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Assignment MakeAssignmentLocked(const JobEntry& e, int index, const Lease& lease) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // LeaseNext without the commit: the lease's writes go to `w`.
  std::optional<Assignment> LeaseNextLocked(const std::string& worker, Writes* w)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Counts `lease` on its worker `w`: started while a slot is free, else held.
  void TakeRoomLocked(WorkerEntry& w, Lease& lease) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetTaskLocked(JobEntry& e, const Task& t, Writes* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetJobLocked(JobEntry& e, Job job, Writes* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReleaseLeaseLocked(uint64_t lease_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The worker sent a heartbeat or progress: healthy again.
  void MarkAliveLocked(const std::string& worker) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Applies one result to the state, its writes to `w`; FAILED_PRECONDITION (nothing
  // changed) when the lease is not current.
  absl::Status CompleteLocked(const std::string& worker, uint64_t lease_id,
                              const TaskOutcome& outcome, Writes* w)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends the attempt under `lease_id` as failed: queue again or fail the job.
  void FailAttemptLocked(uint64_t lease_id, const std::string& error, bool retryable, Writes* w)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends the job in `state`; revokes its leases; fails the jobs that depend on it.
  void FinishJobLocked(JobEntry& e, JobState state, const std::string& error, Writes* w)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A dependency of the jobs waiting on `job_id` succeeded: start those now ready.
  void WakeDependentsLocked(int64_t job_id, Writes* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Submit's checks and admission; `dry_run` keeps nothing. Returns the new job's id (0
  // for a dry run, or the first job's for a repeated request id) and the sequence
  // number to wait for.
  absl::StatusOr<std::pair<int64_t, uint64_t>> AdmitLocked(JobSpec spec,
                                                           std::optional<MediaInfo> info,
                                                           std::vector<Task> tasks, bool dry_run,
                                                           JobView* view)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues the writes and returns their sequence number.
  uint64_t CommitLocked(Writes w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<JobView> Durable(uint64_t seq, int64_t job_id);
  // Runs `change` on the job under the lock (NOT_FOUND for an unknown job), commits
  // what it wrote, and returns the job once that is durable.
  absl::StatusOr<JobView> ChangeJob(int64_t job_id,
                                    const std::function<absl::Status(JobEntry&, Writes*)>& change);
  void BumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether a worker may take another lease now (healthy, not draining, below its
  // slots × (1 + prefetch)); whether any may.
  static bool HasRoom(const WorkerEntry& w);
  bool AnyWorkerHasRoomLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Clock* const clock_;
  const SchedulerOptions options_;
  SchedulerEvents no_events_;
  SchedulerEvents* const events_;
  const ProjectPolicy default_policy_;

  mutable absl::Mutex mu_;
  mutable absl::CondVar changed_;
  uint64_t version_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_lease_id_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t next_job_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<int64_t, JobEntry> jobs_ ABSL_GUARDED_BY(mu_);
  std::set<int64_t> active_ ABSL_GUARDED_BY(mu_);  // jobs not in a terminal state
  // Pending tasks of active jobs (what admission limits), kept by RecountQueuedLocked.
  int64_t queued_tasks_ ABSL_GUARDED_BY(mu_) = 0;
  // Jobs that went waiting before their input was probed, and some that since left that
  // state (JobsToActivate drops those): the dispatcher looks only at these, not at
  // every active job.
  std::set<int64_t> unprobed_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, std::vector<int64_t>> dependents_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, int64_t> request_ids_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<uint64_t, Lease> leases_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, WorkerEntry> workers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, ProjectEntry> projects_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> draining_ ABSL_GUARDED_BY(mu_);  // survives reconnects
  std::vector<Lease> revoked_ ABSL_GUARDED_BY(mu_);
  // Last: destroyed first, so that it commits what is queued while the rest lives.
  std::unique_ptr<CommitQueue> commits_;
};

}  // namespace reelfarm::scheduler
