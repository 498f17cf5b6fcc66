// Scheduler: the farm's brain. Owns the in-memory view of jobs, tasks, workers and
// leases; makes every change durable through JobStore before it is visible or
// acknowledged. No gRPC here: server/ adapts the API to these calls.
//
// Thread-safety: every public method may be called from any thread.
// Leases: each lease id is a fencing token, unique for the life of the process (and
// never below any id handed out before a restart). A result, progress report or
// heartbeat under a lease that is not current is refused.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/status.h"
#include "scheduler/clock.h"
#include "scheduler/events.h"
#include "scheduler/job.h"
#include "scheduler/job_store.h"

namespace reelfarm::scheduler {

struct SchedulerOptions {
  int64_t lease_ms = 20'000;      // a lease not renewed for this long expires
  int64_t heartbeat_ms = 2'000;   // what workers are told to use
  int max_tasks_per_job = 100'000;
};

struct WorkerInfo {
  std::string name;
  int slots = 1;
  std::vector<std::string> models;
};

struct Lease {
  uint64_t id = 0;
  int64_t job_id = 0;
  int task_index = 0;
  std::string worker;
  int64_t leased_ms = 0;
  int64_t deadline_ms = 0;
  int attempt = 0;
};

// What a worker is sent: the lease, its task, and what it needs to run it.
struct Assignment {
  Lease lease;
  Task task;
  JobSpec spec;
  MediaInfo input_info;
  std::string segment;                // CHUNK: segment to write (relative path)
  std::vector<std::string> segments;  // ASSEMBLE: the segments, in order
  std::string provenance_json;        // ASSEMBLE: what the farm knows of the job
};

// What the worker reports when a task ends.
struct TaskOutcome {
  bool ok = false;
  std::string error;
  bool retryable = true;
  double seconds = 0;
  std::string model_digest;
};

// A job with its tasks and progress, as clients see it.
struct JobView {
  Job job;
  std::vector<Task> tasks;
  std::vector<int64_t> task_frames_done;  // per task, current attempt
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
};

// Relative path of chunk `index`'s segment for `job_id`.
std::string SegmentPath(int64_t job_id, int index);

class Scheduler final {
 public:
  // Loads the store's state. Tasks that were leased when the process stopped go back
  // to the queue (their workers will be re-leased on reconnect).
  // `events` (optional, not owned) must outlive the scheduler.
  static absl::StatusOr<std::unique_ptr<Scheduler>> Create(JobStore* store, Clock* clock,
                                                           SchedulerOptions options,
                                                           SchedulerEvents* events = nullptr);

  const SchedulerOptions& options() const { return options_; }

  // Splits the job into tasks and commits it; returns the committed job.
  absl::StatusOr<JobView> Submit(JobSpec spec, MediaInfo input_info);
  absl::StatusOr<JobView> GetJob(int64_t job_id) const;
  // Newest first; `states` empty means all.
  std::vector<JobView> ListJobs(const std::vector<JobState>& states, int limit) const;
  // Cancels a job that has not ended; its leases are revoked (see TakeRevoked).
  absl::StatusOr<JobView> Cancel(int64_t job_id);

  // Workers.
  void RegisterWorker(const WorkerInfo& info);
  // The worker is gone: its leases are released and their tasks queued again.
  void UnregisterWorker(const std::string& name);
  std::vector<WorkerView> ListWorkers() const;
  std::vector<std::string> KnownModels() const;

  // The next task for `worker`, if it has a free slot and a task fits it.
  std::optional<Assignment> LeaseNext(const std::string& worker);
  // Renews `worker`'s leases among `lease_ids`; returns those that are not current.
  std::vector<uint64_t> Heartbeat(const std::string& worker,
                                  const std::vector<uint64_t>& lease_ids);
  absl::Status ReportProgress(const std::string& worker, uint64_t lease_id,
                              int64_t frames_done);
  // Records a task's outcome. FAILED_PRECONDITION if the lease is not current
  // (fencing); the result is then dropped.
  absl::Status Complete(const std::string& worker, uint64_t lease_id,
                        const TaskOutcome& outcome);
  // Expires leases past their deadline; their tasks are queued again (or fail the
  // job past max attempts). Returns the expired leases, which are also revoked.
  std::vector<Lease> ExpireLeases();
  // Leases taken away from live workers since the last call (job cancelled or failed,
  // lease expired): the server tells each worker to stop.
  std::vector<Lease> TakeRevoked();

  // Counts for gauges, taken at scrape time.
  struct Stats {
    struct ProjectCounts {
      int64_t tasks_queued = 0;   // pending and ready to lease
      int64_t tasks_running = 0;  // leased
      int64_t jobs_active = 0;    // not terminal
    };
    std::map<std::string, ProjectCounts> projects;
    int64_t workers_idle = 0;
    int64_t workers_busy = 0;
  };
  Stats GetStats() const;

  // Change notification: `version()` grows on every change; WaitForChange returns
  // when it differs from `seen` or after `timeout_ms`.
  uint64_t version() const;
  uint64_t WaitForChange(uint64_t seen, int64_t timeout_ms) const;

 private:
  struct JobEntry {
    Job job;
    std::vector<Task> tasks;
    std::vector<int64_t> progress;     // frames done by the current attempt
    std::vector<uint64_t> lease_of;    // current lease per task, 0 if none
    std::vector<int64_t> ready_since;  // when each task last went back to the queue
  };
  struct WorkerEntry {
    WorkerInfo info;
    int64_t tasks_done = 0;
    bool connected = true;
  };

  Scheduler(JobStore* store, Clock* clock, SchedulerOptions options,
            SchedulerEvents* events)
      : store_(store), clock_(clock), options_(options), events_(events ? events : &no_events_) {}

  JobView ViewLocked(const JobEntry& e) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int ActiveLeasesLocked(const std::string& worker) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Index of the next task of `e` that may be leased, or -1.
  int NextTaskLocked(const JobEntry& e) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Assignment MakeAssignmentLocked(const JobEntry& e, int index, const Lease& lease) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends the attempt under `lease_id` as failed: queue again or fail the job.
  absl::Status FailAttemptLocked(uint64_t lease_id, const std::string& error,
                                 bool retryable)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends the job in `state`; revokes its other leases.
  absl::Status FinishJobLocked(JobEntry& e, JobState state, const std::string& error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void BumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  JobStore* const store_;
  Clock* const clock_;
  const SchedulerOptions options_;
  SchedulerEvents no_events_;
  SchedulerEvents* const events_;

  mutable absl::Mutex mu_;
  mutable absl::CondVar changed_;
  uint64_t version_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_lease_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<int64_t, JobEntry> jobs_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<uint64_t, Lease> leases_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, WorkerEntry> workers_ ABSL_GUARDED_BY(mu_);
  std::vector<Lease> revoked_ ABSL_GUARDED_BY(mu_);
};

}  // namespace reelfarm::scheduler
