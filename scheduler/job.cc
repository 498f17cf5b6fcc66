#include "scheduler/job.h"

#include <algorithm>

namespace reelfarm::scheduler {

bool IsTerminal(JobState s) {
  return s == JobState::kSucceeded || s == JobState::kFailed || s == JobState::kCancelled;
}

const char* ToString(JobState s) {
  switch (s) {
    case JobState::kQueued:
      return "queued";
    case JobState::kRunning:
      return "running";
    case JobState::kSucceeded:
      return "succeeded";
    case JobState::kFailed:
      return "failed";
    case JobState::kCancelled:
      return "cancelled";
    case JobState::kPaused:
      return "paused";
    case JobState::kWaiting:
      return "waiting";
  }
  return "unknown";
}

const char* ToString(TaskState s) {
  switch (s) {
    case TaskState::kPending:
      return "pending";
    case TaskState::kLeased:
      return "leased";
    case TaskState::kSucceeded:
      return "succeeded";
    case TaskState::kFailed:
      return "failed";
    case TaskState::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

std::vector<FrameRange> SplitIntoChunks(int64_t frame_count, int64_t chunk) {
  std::vector<FrameRange> out;
  if (chunk < 1) return out;
  for (int64_t b = 0; b < frame_count; b += chunk) {
    out.push_back({b, std::min(frame_count, b + chunk)});
  }
  return out;
}

}  // namespace reelfarm::scheduler
