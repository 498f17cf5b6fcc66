// Retention: ended jobs are forgotten after an age (--keep-finished) or by hand
// (JobService.PurgeJobs, `reelctl purge`): the scheduler deletes them from the store
// (Scheduler::Purge, which keeps any job that a job which has not ended depends on),
// then their task logs and scratch (Storage::JobScratchDir) are removed. Published
// outputs stay where they are.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/status.h"
#include "common/storage.h"
#include "scheduler/scheduler.h"
#include "server/task_logs.h"

namespace reelfarm::server {

// Purges as `request` says, then removes each purged job's task logs and scratch (a
// file that cannot be removed is logged; the job is gone from the store either way).
// `why` goes into the log lines ("retention", "purge by NAME").
absl::StatusOr<scheduler::Scheduler::PurgeResult> PurgeJobs(
    scheduler::Scheduler& sched, const common::Storage& storage, const TaskLogStore& logs,
    const scheduler::Scheduler::PurgeRequest& request, const std::string& why);

}  // namespace reelfarm::server
