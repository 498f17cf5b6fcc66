// Job files for `reelctl submit -f`: YAML or JSON holding one job spec, a list of them,
// or {jobs: [...]}. Each job takes every JobSpec field (snake_case or camelCase), and a
// generate spec its wedge axes as lists of the single fields (`steps: [5, 20]`,
// `sampler: [euler, ddim]`, `guidance_scale`/`guidance`, `prompt`) and seeds as
// ranges ("1-8"); `depends_on` may name other jobs of the file as well as give job
// ids. `${VAR}` and `${VAR:-default}` are expanded from the environment before
// parsing, and `--set key.path=value` overrides a field in every job.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "reelfarm/v1/jobs.pb.h"

namespace reelfarm::cli {

struct FileJob {
  std::string name;                // the spec's name, or "job<N>"
  v1::JobSpec spec;                // depends_on holds only the ids given as ids
  std::vector<std::string> after;  // names of jobs of the file it depends on
};

// The jobs in an order where each comes after the jobs it names. INVALID_ARGUMENT with
// the file, the job and the field for a malformed file, an unknown field, an unset
// variable, an unknown or circular dependency.
absl::StatusOr<std::vector<FileJob>> LoadJobFile(
    const std::string& path, const std::vector<std::string>& sets,
    const std::function<const char*(const std::string&)>& getenv);

// The same for the text of a job file; `source` names it in messages. Never throws,
// whatever the text (fuzzed: fuzz/job_spec_fuzz.cc).
absl::StatusOr<std::vector<FileJob>> ParseJobText(
    const std::string& text, const std::string& source, const std::vector<std::string>& sets,
    const std::function<const char*(const std::string&)>& getenv);

// Expands ${VAR} and ${VAR:-default}; INVALID_ARGUMENT naming an unset variable.
absl::StatusOr<std::string> ExpandVariables(
    const std::string& text, const std::function<const char*(const std::string&)>& getenv);

// Seeds one job may list: the server's default --max-tasks-per-job, since every seed
// is at least one take. A longer list is refused before it is sent.
inline constexpr int64_t kMaxSeeds = 100000;

// Seeds for `reelctl submit generate --seeds`: "7", "1-8" (inclusive), "1,5,9-12".
// INVALID_ARGUMENT naming the part that is not a number or a range, or the range or
// list that holds more than kMaxSeeds seeds.
absl::StatusOr<std::vector<int64_t>> ParseSeeds(const std::string& text);

// "256x256" -> {256, 256}; INVALID_ARGUMENT unless WIDTHxHEIGHT with positive numbers.
absl::StatusOr<std::pair<int, int>> ParseSize(const std::string& text);

}  // namespace reelfarm::cli
