// Progress display for reelctl: one line per job, redrawn in place with a bar on a
// terminal, plain lines (printed when they change) otherwise, or JSON events.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "reelfarm/v1/jobs.grpc.pb.h"

namespace reelfarm::cli {

const char* StateName(v1::JobState s);
bool IsTerminal(v1::JobState s);
// "1h02m", "3m05s", "12s"; "?" when negative (unknown).
std::string Duration(double seconds);
// "job 12 running  [######....]  45.0%  frames 43/96  tasks 1/5  31.2 fps  ETA 2s  1 failed"
// (the bar only when `bar`).
std::string ProgressLine(const v1::Job& job, bool bar);

enum class Display { kTerminal, kLines, kJson };

// Follows `ids` until every job ends, drawing on `out`. Returns the final snapshot of
// each job (in `ids` order); `status` gets the first stream error, if any.
std::vector<v1::Job> WatchJobs(v1::JobService::Stub& stub, const std::vector<int64_t>& ids,
                               Display display, FILE* out, grpc::Status* status);

}  // namespace reelfarm::cli
