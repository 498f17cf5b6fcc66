// SchedulerEvents: what the scheduler tells an observer (metrics, audit) as it works.
// Every method is called with the scheduler's lock held: it must be quick, must not
// block, and must not call back into the scheduler. Default implementations do nothing.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "scheduler/job.h"

namespace reelfarm::scheduler {

struct Lease;

class SchedulerEvents {
 public:
  SchedulerEvents() = default;
  SchedulerEvents(const SchedulerEvents&) = delete;
  SchedulerEvents& operator=(const SchedulerEvents&) = delete;
  virtual ~SchedulerEvents() = default;

  virtual void JobSubmitted(const Job& job) { (void)job; }
  // The job reached a terminal state.
  virtual void JobFinished(const Job& job) { (void)job; }
  // `queued_ms`: how long the task waited since it became ready.
  virtual void TaskLeased(const Job& job, const Task& task, int64_t queued_ms) {
    (void)job, (void)task, (void)queued_ms;
  }
  // An attempt ended: ok, or failed (`will_retry` if the task goes back to the queue).
  // `run_ms`: lease to outcome.
  virtual void TaskFinished(const Job& job, const Task& task, bool ok, bool will_retry,
                            int64_t run_ms) {
    (void)job, (void)task, (void)ok, (void)will_retry, (void)run_ms;
  }
  virtual void LeaseExpired(const Lease& lease) { (void)lease; }
};

}  // namespace reelfarm::scheduler
