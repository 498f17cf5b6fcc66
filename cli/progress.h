// Progress display for reelctl: one line per job, redrawn in place with a bar on a
// terminal, plain lines (printed when they change) otherwise, or JSON events.
#pragma once

#include <cstdio>
#include <functional>
#include <memory>
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

// Where a watch reads from: called with nullptr for the first stream of each job, and
// with the status of a stream that ended before its job did; returns the stub to
// (re)open the stream on, or nullptr to give up with that status. reelctl's moves to
// the leader after a failover. Called from several threads at once.
using WatchStubs = std::function<std::shared_ptr<v1::JobService::Stub>(const grpc::Status* failed)>;

// Follows `ids` until every job ends, drawing on `out`. Returns the final snapshot of
// each job (in `ids` order); `status` gets the first error a stream was given up on.
std::vector<v1::Job> WatchJobs(const WatchStubs& stubs, const std::vector<int64_t>& ids,
                               Display display, FILE* out, grpc::Status* status);

}  // namespace reelfarm::cli
