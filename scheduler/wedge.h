// Wedge expansion: a generation spec's takes, in the order of their tasks. Pure and
// deterministic, so the server (to count and name tasks, to fill assignments) and
// tests agree on which take is which.
#pragma once

#include <string>
#include <vector>

#include "scheduler/job.h"

namespace reelfarm::scheduler {

// The cartesian product prompts x seeds x guidance_scales x step_counts x samplers
// (prompts outermost), or the explicit `takes` list. An empty axis is the single value.
std::vector<Take> ExpandWedge(const std::string& job_name, const GenerateSpec& g);

// Number of takes ExpandWedge makes, without making them.
int64_t WedgeSize(const GenerateSpec& g);

// "{job_name}_take{NNN}" for the 0-based `index`.
std::string TakeName(const std::string& job_name, int index);

// The take's output: `output` with "{take}" replaced by `take_name`, or else with the
// file's stem (up to the first '.') replaced by it.
std::string TakeOutput(const std::string& output, const std::string& take_name);

}  // namespace reelfarm::scheduler
