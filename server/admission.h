// Admission: the one way a job spec is checked before the scheduler takes it. The API's
// message is converted once (convert.cc); the limits, the model's defaults, the input
// probe and the tasks-per-job limit then run on the domain spec. SubmitJob, its dry run
// (validate_only), the activation of a job that waited for its input (a dependency's
// output) and the monitor all go through Admit(), so the same spec gets the same status
// and message whichever way it comes.
//
// Admit() reads files (the input, the outputs) and the model path: call it off gRPC's
// callback threads (JobServiceImpl runs it on its own executor).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_manifest.h"
#include "common/storage.h"
#include "reelfarm/v1/jobs.pb.h"
#include "scheduler/scheduler.h"
#include "server/probe_cache.h"

namespace reelfarm::server {

struct Limits {
  int max_width = 8192;
  int max_height = 8192;
  int64_t max_frames = 1'000'000;
  int64_t max_spec_bytes = 64 * 1024;  // serialized JobSpec
  size_t max_string_length = 1024;     // name, project, paths, model, tags, request id
  int max_requirements = 64;           // worker tags a job may require
  int max_depends_on = 1000;
  int64_t max_tasks_per_job = 100'000;
  int max_generate_steps = 200;  // sampler steps a generate take may ask for
};

// A spec the farm takes, as the scheduler gets it.
struct AdmittedJob {
  // Defaults filled in (the model's for generate jobs), memory_bytes set from the
  // model's estimate when its manifest gives one.
  scheduler::JobSpec spec;
  // What its tasks are made from: the probed input of an upscale job, the frames a
  // generate job makes; empty when the input is the output of a job in depends_on that
  // has not succeeded yet (the job is admitted again when it has: ActivateWaitingJobs).
  std::optional<scheduler::MediaInfo> input;
};

class Admission {
 public:
  // `sched` is read for the models workers advertise and for dependencies; borrowed,
  // like `storage`; both must outlive this.
  // `on_probe_lookup(hit)` is told of each lookup of an input in the probe cache.
  Admission(const scheduler::Scheduler* sched, const common::Storage* storage,
            std::vector<std::string> model_path, Limits limits,
            std::function<void(bool hit)> on_probe_lookup = nullptr);

  const Limits& limits() const { return limits_; }
  // Inputs probed so far, by file identity (submits of a known input do no media I/O).
  const ProbeCache& probe_cache() const { return *probe_cache_; }

  // The request's spec as the client sent it: its size, and its strings' lengths and
  // characters (INVALID_ARGUMENT naming the field); then converted once to the domain
  // spec, with the API's defaults (convert.cc). Nothing is probed.
  absl::StatusOr<scheduler::JobSpec> FromRequest(const v1::JobSpec& spec) const;

  // kSubmit: a new job (SubmitJob, its dry run, the monitor). kActivation: a job that
  // waited for a dependency to make its input, admitted again now that it has; its
  // model passed at submit and is taken even when no worker that has it is connected.
  enum class Stage { kSubmit, kActivation };

  // Checks `spec` and fills its defaults: priority, attempts, tags, the model (and its
  // scale, or a generate job's model defaults and ranges), paths beneath the storage
  // root, the output format, the input (probed, against the size and frame limits),
  // the tasks it makes against --max-tasks-per-job, and the outputs it would replace.
  // Every error names the field and the value, and what to give.
  //
  // `needs_media_io`: when given, Admit does no media I/O (it still stats and opens
  // paths). Where it would (an input not in the probe cache, an image sequence, a
  // generate job's models, an OCIO config), it sets *needs_media_io and returns
  // UNAVAILABLE at once; the caller then admits the spec again where blocking is fine.
  absl::StatusOr<AdmittedJob> Admit(scheduler::JobSpec spec, Stage stage = Stage::kSubmit,
                                    bool* needs_media_io = nullptr) const;

 private:
  absl::Status CheckStrings(const v1::JobSpec& spec) const;
  absl::Status AdmitUpscale(scheduler::JobSpec& spec, Stage stage,
                            std::optional<scheduler::MediaInfo>* input, bool* needs_media_io) const;
  // `input`: u.input resolved (Storage::ResolveJobPath).
  absl::StatusOr<scheduler::MediaInfo> ProbeInput(const scheduler::UpscaleSpec& u,
                                                  const std::filesystem::path& input,
                                                  bool* needs_media_io) const;
  absl::Status CheckTaskCount(const scheduler::JobSpec& spec,
                              const scheduler::MediaInfo& input) const;

  const scheduler::Scheduler* const sched_;
  const common::Storage* const storage_;
  const std::vector<std::string> model_path_;
  const Limits limits_;
  // Filled by the const Admit(); thread-safe. Held by pointer so Admission stays movable.
  std::unique_ptr<ProbeCache> probe_cache_;
  // The packages on model_path_, read again only when they change.
  std::unique_ptr<common::ModelPackageCache> model_packages_;
};

}  // namespace reelfarm::server
