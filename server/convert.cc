#include "server/convert.h"

#include <filesystem>

#include "common/job_defaults.h"
#include "media/output_format.h"

namespace reelfarm::server {
namespace s = scheduler;

v1::JobState ToProto(s::JobState st) {
  switch (st) {
    case s::JobState::kQueued:
      return v1::JOB_STATE_QUEUED;
    case s::JobState::kRunning:
      return v1::JOB_STATE_RUNNING;
    case s::JobState::kSucceeded:
      return v1::JOB_STATE_SUCCEEDED;
    case s::JobState::kFailed:
      return v1::JOB_STATE_FAILED;
    case s::JobState::kCancelled:
      return v1::JOB_STATE_CANCELLED;
    case s::JobState::kPaused:
      return v1::JOB_STATE_PAUSED;
    case s::JobState::kWaiting:
      return v1::JOB_STATE_WAITING;
  }
  return v1::JOB_STATE_UNSPECIFIED;
}

s::JobState FromProto(v1::JobState st) {
  switch (st) {
    case v1::JOB_STATE_RUNNING:
      return s::JobState::kRunning;
    case v1::JOB_STATE_SUCCEEDED:
      return s::JobState::kSucceeded;
    case v1::JOB_STATE_FAILED:
      return s::JobState::kFailed;
    case v1::JOB_STATE_CANCELLED:
      return s::JobState::kCancelled;
    case v1::JOB_STATE_PAUSED:
      return s::JobState::kPaused;
    case v1::JOB_STATE_WAITING:
      return s::JobState::kWaiting;
    default:
      return s::JobState::kQueued;
  }
}

static v1::TaskState ToProto(s::TaskState st) {
  switch (st) {
    case s::TaskState::kPending:
      return v1::TASK_STATE_PENDING;
    case s::TaskState::kLeased:
      return v1::TASK_STATE_LEASED;
    case s::TaskState::kSucceeded:
      return v1::TASK_STATE_SUCCEEDED;
    case s::TaskState::kFailed:
      return v1::TASK_STATE_FAILED;
    case s::TaskState::kCancelled:
      return v1::TASK_STATE_CANCELLED;
  }
  return v1::TASK_STATE_UNSPECIFIED;
}

static v1::TaskKind ToProto(s::TaskKind k) {
  switch (k) {
    case s::TaskKind::kChunk:
      return v1::TASK_KIND_CHUNK;
    case s::TaskKind::kAssemble:
      return v1::TASK_KIND_ASSEMBLE;
    case s::TaskKind::kTake:
      return v1::TASK_KIND_TAKE;
  }
  return v1::TASK_KIND_UNSPECIFIED;
}

static v1::GenerateTake ToProto(const s::GenerateTake& t) {
  v1::GenerateTake out;
  if (t.seed) out.set_seed(*t.seed);
  if (t.prompt) out.set_prompt(*t.prompt);
  if (t.steps) out.set_steps(*t.steps);
  if (t.guidance_scale) out.set_guidance_scale(static_cast<float>(*t.guidance_scale));
  if (t.sampler) out.set_sampler(*t.sampler);
  return out;
}

static s::GenerateTake FromProto(const v1::GenerateTake& t) {
  s::GenerateTake out;
  if (t.has_seed()) out.seed = t.seed();
  if (t.has_prompt()) out.prompt = t.prompt();
  if (t.has_steps()) out.steps = t.steps();
  if (t.has_guidance_scale()) out.guidance_scale = t.guidance_scale();
  if (t.has_sampler()) out.sampler = t.sampler();
  return out;
}

static v1::GenerateTake ToProto(const s::Take& t) {
  v1::GenerateTake out;
  out.set_seed(t.seed);
  out.set_prompt(t.prompt);
  out.set_steps(t.steps);
  out.set_guidance_scale(static_cast<float>(t.guidance_scale));
  out.set_sampler(t.sampler);
  return out;
}

static v1::GenerateSpec ToProto(const s::GenerateSpec& g) {
  v1::GenerateSpec out;
  out.set_model(g.model);
  out.set_prompt(g.prompt);
  out.set_negative_prompt(g.negative_prompt);
  for (int64_t seed : g.seeds) out.add_seeds(seed);
  out.set_steps(g.steps);
  out.set_guidance_scale(static_cast<float>(g.guidance_scale));
  out.set_sampler(g.sampler);
  out.set_width(g.width);
  out.set_height(g.height);
  out.set_frames(g.frames);
  out.set_fps(g.fps);
  out.set_output(g.output);
  for (const auto& p : g.prompts) out.add_prompts(p);
  for (double gs : g.guidance_scales) out.add_guidance_scales(static_cast<float>(gs));
  for (int st : g.step_counts) out.add_step_counts(st);
  for (const auto& sa : g.samplers) out.add_samplers(sa);
  for (const auto& t : g.takes) *out.add_takes() = ToProto(t);
  out.set_init(g.init);
  out.set_strength(static_cast<float>(g.strength));
  out.mutable_format()->set_codec(g.codec);
  out.mutable_format()->set_preset(g.preset);
  out.mutable_format()->set_pix_fmt(g.pix_fmt);
  out.set_overwrite(g.overwrite);
  out.set_crf(g.crf);
  return out;
}

static v1::UpscaleSpec ToProto(const s::UpscaleSpec& u) {
  v1::UpscaleSpec out;
  out.set_input(u.input);
  out.set_output(u.output);
  out.set_model(u.model);
  out.set_scale(u.scale);
  out.set_chunk_frames(u.chunk_frames);
  out.set_overwrite(u.overwrite);
  out.set_crf(u.crf);
  out.mutable_format()->set_codec(u.codec);
  out.mutable_format()->set_preset(u.preset);
  out.mutable_format()->set_pix_fmt(u.pix_fmt);
  if (u.first_frame >= 0) out.set_first_frame(u.first_frame);
  if (u.last_frame >= 0) out.set_last_frame(u.last_frame);
  out.set_colorspace_in(u.colorspace_in);
  out.set_colorspace_out(u.colorspace_out);
  out.set_ocio_config(u.ocio_config);
  out.set_qc(u.qc);
  return out;
}

static v1::JobSpec ToProto(const s::JobSpec& spec) {
  v1::JobSpec out;
  out.set_name(spec.name);
  out.set_project(spec.project);
  out.set_priority(spec.priority);
  out.set_max_attempts(spec.max_attempts);
  out.set_request_id(spec.request_id);
  for (int64_t d : spec.depends_on) out.add_depends_on(d);
  for (const auto& [k, v] : spec.requirements) (*out.mutable_requirements())[k] = v;
  for (const std::string& url : spec.webhooks) out.add_webhooks(url);
  if (spec.is_generate()) {
    *out.mutable_generate() = ToProto(spec.generate);
  } else {
    *out.mutable_upscale() = ToProto(spec.upscale);
  }
  return out;
}

static v1::MediaInfo ToProto(const s::MediaInfo& m) {
  v1::MediaInfo out;
  out.set_width(m.width);
  out.set_height(m.height);
  out.set_frame_count(m.frame_count);
  out.set_fps_num(m.fps_num);
  out.set_fps_den(m.fps_den);
  out.set_codec(m.codec);
  out.set_pixel_format(m.pixel_format);
  out.set_colour_primaries(m.colour_primaries);
  out.set_colour_transfer(m.colour_transfer);
  out.set_colour_matrix(m.colour_matrix);
  out.set_colour_range(m.colour_range);
  out.set_has_audio(m.has_audio);
  out.set_first_frame(m.first_frame);
  out.set_coded_frames(m.coded_frames);
  out.set_held_frames(m.held_frames);
  out.set_dropped_frames(m.dropped_frames);
  out.set_tail_cut_frames(m.tail_cut_frames);
  out.set_rotation(m.rotation);
  return out;
}

v1::Job ToProto(const s::JobView& v) {
  v1::Job out;
  out.set_id(v.job.id);
  *out.mutable_spec() = ToProto(v.job.spec);
  out.set_state(ToProto(v.job.state));
  out.set_error(v.job.error);
  *out.mutable_input_info() = ToProto(v.job.input_info);
  out.set_frames_total(v.frames_total);
  out.set_frames_done(v.frames_done);
  out.set_tasks_total(v.tasks_total);
  out.set_tasks_done(v.tasks_done);
  out.set_fps(v.fps);
  out.set_eta_seconds(v.eta_seconds);
  out.set_created_unix_ms(v.job.created_unix_ms);
  out.set_started_unix_ms(v.job.started_unix_ms);
  out.set_finished_unix_ms(v.job.finished_unix_ms);
  out.set_output(v.job.spec.is_generate() ? v.job.spec.generate.output : v.job.spec.upscale.output);
  out.set_owner(v.job.spec.owner);
  for (size_t i = 0; i < v.tasks.size(); ++i) {
    const s::Task& t = v.tasks[i];
    v1::Task* pt = out.add_tasks();
    pt->set_index(t.index);
    pt->set_kind(ToProto(t.kind));
    pt->set_frame_begin(t.frame_begin);
    pt->set_frame_end(t.frame_end);
    if (t.kind == s::TaskKind::kChunk && t.state == s::TaskState::kSucceeded &&
        !media::HasFramePattern(v.job.spec.upscale.output)) {
      pt->set_segment(s::SegmentPath(v.job.id, t.index, t.lease_id));
    }
    pt->set_state(ToProto(t.state));
    pt->set_attempts(t.attempts);
    pt->set_worker(t.workers.empty() ? "" : t.workers.back());
    for (const auto& w : t.workers) pt->add_workers(w);
    for (const auto& err : t.errors) pt->add_errors(err);
    pt->set_error(t.error);
    if (t.qc.measured) *pt->mutable_qc() = ToProto(t.qc);
    pt->set_thumbnail(t.thumbnail);
    pt->set_preview(t.preview);
    if (i < v.task_frames_done.size()) {
      pt->set_frames_done(t.state == s::TaskState::kSucceeded ? t.frames() : v.task_frames_done[i]);
    }
    pt->set_held(i < v.task_held.size() && v.task_held[i]);
  }
  return out;
}

v1::TaskQc ToProto(const s::TaskQc& q) {
  v1::TaskQc out;
  out.set_measured(q.measured);
  out.set_frames(q.frames);
  out.set_nan_inf_samples(q.nan_inf_samples);
  out.set_black_frames(q.black_frames);
  out.set_clipped_low_fraction(q.clipped_low_fraction);
  out.set_clipped_high_fraction(q.clipped_high_fraction);
  out.set_median_difference(q.median_difference);
  for (double d : q.seam_differences) out.add_seam_differences(d);
  for (const auto& f : q.flags) out.add_flags(f);
  return out;
}

v1::Assignment ToProto(const s::Assignment& a) {
  v1::Assignment out;
  out.set_job_id(a.lease.job_id);
  out.set_task_index(a.lease.task_index);
  out.set_lease_id(a.lease.id);
  out.set_lease_deadline_unix_ms(a.lease.deadline_ms);
  out.set_kind(ToProto(a.task.kind));
  if (a.task.kind == s::TaskKind::kTake) {
    *out.mutable_generate() = ToProto(a.spec.generate);
    *out.mutable_take() = ToProto(a.take);
    out.set_take_name(a.take.name);
    out.set_take_output(a.take.output);
  } else {
    *out.mutable_upscale() = ToProto(a.spec.upscale);
  }
  *out.mutable_input_info() = ToProto(a.input_info);
  out.set_frame_begin(a.task.frame_begin);
  out.set_frame_end(a.task.frame_end);
  out.set_segment(a.segment);
  for (const auto& seg : a.segments) out.add_segments(seg);
  for (const auto& d : a.segment_digests) out.add_segment_digests(d);
  for (int64_t n : a.segment_frames) out.add_segment_frames(n);
  for (double d : a.segment_median_differences) out.add_segment_median_differences(d);
  out.set_provenance_json(a.provenance_json);
  out.set_attempt(a.lease.attempt);
  return out;
}

v1::Worker ToProto(const s::WorkerView& w) {
  v1::Worker out;
  out.set_name(w.info.name);
  out.set_state(w.unhealthy  ? "unhealthy"
                : w.draining ? (w.leases.empty() ? "drained" : "draining")
                             : (w.leases.empty() ? "idle" : "busy"));
  if (w.unhealthy) {
    out.set_unhealthy_since_unix_ms(w.unhealthy_since_ms);
    out.set_leases_expired(w.leases_expired);
    out.set_unhealthy_reason(w.unhealthy_reason);
  }
  for (const auto& [k, v] : w.info.tags) (*out.mutable_tags())[k] = v;
  out.set_memory_bytes(w.info.memory_bytes);
  out.set_slots(w.info.slots);
  out.set_prefetch(w.info.prefetch);
  for (const auto& m : w.info.models) out.add_models(m);
  for (const auto& d : w.info.devices) out.add_devices(d);
  for (const auto& l : w.leases) {
    out.add_current_tasks(std::to_string(l.job_id) + "/" + std::to_string(l.task_index));
  }
  out.set_tasks_done(w.tasks_done);
  return out;
}

s::TaskOutcome FromProto(const v1::TaskResult& r) {
  s::TaskOutcome o;
  o.ok = r.ok();
  o.error = r.error();
  o.retryable = r.retryable();
  o.seconds = r.seconds();
  o.model_digest = r.model_digest();
  o.output_digest = r.output_digest();
  if (r.has_qc()) {
    const v1::TaskQc& q = r.qc();
    o.qc.measured = q.measured();
    o.qc.frames = q.frames();
    o.qc.nan_inf_samples = q.nan_inf_samples();
    o.qc.black_frames = q.black_frames();
    o.qc.clipped_low_fraction = q.clipped_low_fraction();
    o.qc.clipped_high_fraction = q.clipped_high_fraction();
    o.qc.median_difference = q.median_difference();
    o.qc.seam_differences.assign(q.seam_differences().begin(), q.seam_differences().end());
    o.qc.flags.assign(q.flags().begin(), q.flags().end());
  }
  o.thumbnail = r.thumbnail();
  o.preview = r.preview();
  return o;
}

static s::GenerateSpec GenerateFromProto(const v1::GenerateSpec& g) {
  s::GenerateSpec out;
  out.model = g.model();
  out.prompt = g.prompt();
  out.negative_prompt = g.negative_prompt();
  out.seeds.assign(g.seeds().begin(), g.seeds().end());
  out.steps = g.steps();
  out.guidance_scale = g.guidance_scale();
  out.sampler = g.sampler();
  out.width = g.width();
  out.height = g.height();
  out.frames = g.frames();
  out.fps = g.fps();
  out.output = g.output();
  out.prompts.assign(g.prompts().begin(), g.prompts().end());
  out.guidance_scales.assign(g.guidance_scales().begin(), g.guidance_scales().end());
  out.step_counts.assign(g.step_counts().begin(), g.step_counts().end());
  out.samplers.assign(g.samplers().begin(), g.samplers().end());
  for (const auto& t : g.takes()) out.takes.push_back(FromProto(t));
  out.init = g.init();
  out.strength = g.strength();
  out.codec = g.format().codec();
  out.preset = g.format().preset();
  out.pix_fmt = g.format().pix_fmt();
  out.overwrite = g.overwrite();
  out.crf = g.has_crf() ? g.crf() : common::kDefaultCrf;
  return out;
}

s::JobSpec FromProto(const v1::JobSpec& spec) {
  s::JobSpec out;
  const v1::UpscaleSpec& u = spec.upscale();
  if (spec.has_generate()) {
    out.generate = GenerateFromProto(spec.generate());
    // Default name: the output's stem ("gen/sh010.####.png" -> "sh010").
    const std::string file = std::filesystem::path(out.generate.output).filename().string();
    out.name = spec.name().empty() ? file.substr(0, file.find('.')) : spec.name();
  } else {
    out.name =
        spec.name().empty() ? std::filesystem::path(u.output()).filename().string() : spec.name();
  }
  out.project = spec.project().empty() ? std::string(common::kDefaultProject) : spec.project();
  out.priority = spec.has_priority() ? spec.priority() : common::kDefaultPriority;
  out.max_attempts = spec.has_max_attempts() ? spec.max_attempts() : common::kDefaultMaxAttempts;
  out.request_id = spec.request_id();
  out.depends_on.assign(spec.depends_on().begin(), spec.depends_on().end());
  out.requirements.insert(spec.requirements().begin(), spec.requirements().end());
  out.webhooks.assign(spec.webhooks().begin(), spec.webhooks().end());
  out.upscale.input = u.input();
  out.upscale.output = u.output();
  out.upscale.model = u.model();
  out.upscale.scale = u.scale();
  out.upscale.chunk_frames = u.has_chunk_frames() ? u.chunk_frames() : common::kDefaultChunkFrames;
  out.upscale.overwrite = u.overwrite();
  out.upscale.crf = u.has_crf() ? u.crf() : common::kDefaultCrf;
  out.upscale.codec = u.format().codec();
  out.upscale.preset = u.format().preset();
  out.upscale.pix_fmt = u.format().pix_fmt();
  out.upscale.first_frame = u.has_first_frame() ? u.first_frame() : -1;
  out.upscale.last_frame = u.has_last_frame() ? u.last_frame() : -1;
  out.upscale.colorspace_in = u.colorspace_in();
  out.upscale.colorspace_out = u.colorspace_out();
  out.upscale.ocio_config = u.ocio_config();
  out.upscale.qc = u.qc();
  return out;
}

grpc::Status ToGrpc(const absl::Status& st) {
  if (st.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(st.code()), std::string(st.message()));
}

}  // namespace reelfarm::server
