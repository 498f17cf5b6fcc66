#include "server/retention.h"

#include <spdlog/spdlog.h>

#include <filesystem>

namespace reelfarm::server {

absl::StatusOr<scheduler::Scheduler::PurgeResult> PurgeJobs(
    scheduler::Scheduler& sched, const common::Storage& storage, const TaskLogStore& logs,
    const scheduler::Scheduler::PurgeRequest& request, const std::string& why) {
  ASSIGN_OR_RETURN(scheduler::Scheduler::PurgeResult result, sched.Purge(request));
  if (request.dry_run) return result;
  for (const scheduler::Job& job : result.purged) {
    const absl::Status st = logs.RemoveJob(job.id);
    if (!st.ok()) spdlog::warn("job={} {}", job.id, std::string(st.message()));
    const std::filesystem::path scratch = storage.root() / common::Storage::JobScratchDir(job.id);
    std::error_code ec;
    std::filesystem::remove_all(storage.root() / common::Storage::JobPicturesDir(job.id), ec);
    std::filesystem::remove_all(scratch, ec);
    if (ec) {
      spdlog::warn("job={} cannot remove its scratch '{}': {}", job.id, scratch.string(),
                   ec.message());
    }
    spdlog::info("job purged job={} state={} finished_unix_ms={} by={}", job.id,
                 scheduler::ToString(job.state), job.finished_unix_ms, why);
  }
  for (const auto& [id, reason] : result.kept) {
    spdlog::debug("job kept job={} by={}: {}", id, why, reason);
  }
  return result;
}

}  // namespace reelfarm::server
