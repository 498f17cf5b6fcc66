#include "server/job_service.h"

#include <fcntl.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <filesystem>
#include <map>
#include <optional>

#include <spdlog/spdlog.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/model_manifest.h"
#include "scheduler/wedge.h"
#include "server/convert.h"
#include "server/generate_spec.h"
#include "worker/media/media.h"
#include "worker/media/output_format.h"

namespace reelfarm::server {
namespace fs = std::filesystem;

namespace {

grpc::ServerUnaryReactor* FinishWith(grpc::CallbackServerContext* ctx, const absl::Status& st) {
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpc(st));
  return reactor;
}

// Answers the call with `expr`'s status and returns, when it is not OK.
#define RETURN_FINISH_IF_ERROR(ctx, expr)         \
  do {                                            \
    ::absl::Status _st = (expr);                  \
    if (!_st.ok()) return FinishWith((ctx), _st); \
  } while (0)

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Probes the input (a movie, or an image sequence when its name has a frame pattern)
// and narrows it to the spec's frame range. Errors name upscale.input and the frames.
absl::StatusOr<media::VideoInfo> ProbeInput(const v1::UpscaleSpec& u, const fs::path& input,
                                            const common::Storage& storage) {
  const fs::path& root = storage.root();
  const int64_t first = u.has_first_frame() ? u.first_frame() : -1;
  const int64_t last = u.has_last_frame() ? u.last_frame() : -1;
  if ((u.has_first_frame() && first < 0) || (u.has_last_frame() && last < 0) ||
      (first >= 0 && last >= 0 && last < first)) {
    return absl::InvalidArgumentError(
        absl::StrCat("upscale.first_frame/last_frame ", first, "-", last,
                     " is not a frame range; give 0 <= first_frame <= last_frame"));
  }
  const bool sequence = media::HasFramePattern(u.input());
  if (!sequence && !fs::exists(input)) {
    return absl::NotFoundError(absl::StrCat(
        "upscale.input '", u.input(), "' not found under the storage root '", root.string(), "'"));
  }
  // Opened beneath the root (no symbolic link out, even one made since Resolve()) and
  // read through /proc/self/fd.
  absl::StatusOr<common::UniqueFd> fd =
      sequence ? storage.OpenDirBeneath(input.parent_path(), false, "upscale.input")
               : storage.OpenBeneath(input, O_RDONLY, "upscale.input");
  if (!fd.ok()) return fd.status();
  absl::StatusOr<media::VideoInfo> info =
      sequence
          ? media::ProbeImageSequence(fd->path() + "/" + input.filename().string(), first, last)
          : media::ProbeVideo(fd->path());
  if (!info.ok()) {
    // Named as the job names it, not as /proc/self/fd/N.
    const std::string folder = input.parent_path().lexically_relative(root).string();
    info = common::NameFdPath(info.status(), *fd, sequence ? folder : u.input());
  }
  if (!info.ok()) {
    return absl::Status(info.status().code(),
                        absl::StrCat("upscale.input '", u.input(), "': ", info.status().message()));
  }
  if (!sequence && (first >= 0 || last >= 0)) {
    const int64_t begin = std::max<int64_t>(first, 0);
    const int64_t end = last >= 0 ? last + 1 : info->frame_count;
    if (end > info->frame_count || begin >= end) {
      return absl::InvalidArgumentError(absl::StrCat(
          "upscale.first_frame/last_frame ", begin, "-", end - 1, " is outside upscale.input '",
          u.input(), "', which has frames 0-", info->frame_count - 1, "; give a range inside it"));
    }
    info->first_frame = begin;
    info->frame_count = end - begin;
  }
  return info;
}

// A write stream refused before it starts (authentication, access): it finishes at
// once with `status`. Deleted by gRPC after OnDone.
template <typename T>
class RefusedWriter final : public grpc::ServerWriteReactor<T> {
 public:
  explicit RefusedWriter(const absl::Status& status) { this->Finish(ToGrpc(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

// One WatchJob stream. PollWatchers() sends it an event when its job changed; after
// the event with a terminal state it finishes. Deleted by gRPC after OnDone.
class JobWatcher final : public grpc::ServerWriteReactor<v1::JobEvent> {
 public:
  JobWatcher(JobServiceImpl* service, int64_t job_id) : service_(service), job_id_(job_id) {}

  // Called under the service's watchers_mu_.
  void Poll(const scheduler::Scheduler& sched) {
    absl::MutexLock lock(&mu_);
    if (writing_ || finished_) return;
    if (cancelled_ || sent_terminal_) {
      finished_ = true;
      Finish(cancelled_ ? grpc::Status::CANCELLED : grpc::Status::OK);
      return;
    }
    absl::StatusOr<scheduler::JobView> v = sched.GetJob(job_id_);
    if (!v.ok()) {
      finished_ = true;
      Finish(ToGrpc(v.status()));
      return;
    }
    const bool terminal = scheduler::IsTerminal(v->job.state);
    const auto key = std::make_tuple(v->job.state, v->frames_done, v->tasks_done);
    const int64_t now = NowMs();
    const bool changed = !sent_any_ || key != last_key_;
    // State changes go out at once; frame progress at most 5 times a second, and a
    // keep-alive every 2 s so a client sees fps/ETA move.
    const bool due = !sent_any_ || terminal || std::get<0>(key) != std::get<0>(last_key_) ||
                     (changed && now - last_sent_ms_ >= 200) || now - last_sent_ms_ >= 2000;
    if (!due) return;
    event_.Clear();
    *event_.mutable_job() = ToProto(*v);
    event_.mutable_job()->clear_tasks();
    last_key_ = key;
    last_sent_ms_ = now;
    sent_any_ = true;
    sent_terminal_ = terminal;
    writing_ = true;
    StartWrite(&event_);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) cancelled_ = true;
  }
  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
  }
  void OnDone() override {
    service_->RemoveWatcher(this);
    delete this;
  }
  void Close() {
    absl::MutexLock lock(&mu_);
    if (!writing_ && !finished_) {
      finished_ = true;
      Finish({grpc::StatusCode::UNAVAILABLE, "server shutting down"});
    }
  }

 private:
  JobServiceImpl* const service_;
  const int64_t job_id_;
  absl::Mutex mu_;
  v1::JobEvent event_ ABSL_GUARDED_BY(mu_);  // the write in flight
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool sent_any_ ABSL_GUARDED_BY(mu_) = false;
  bool sent_terminal_ ABSL_GUARDED_BY(mu_) = false;
  std::tuple<scheduler::JobState, int64_t, int> last_key_ ABSL_GUARDED_BY(mu_);
  int64_t last_sent_ms_ ABSL_GUARDED_BY(mu_) = 0;
};

// One GetTaskLogs stream. Each Poll() reads the lines appended since the last one and
// writes them, one TaskLogLines per write; without `follow` (or once the job has ended)
// it finishes after sending what there was. Deleted by gRPC after OnDone.
class TaskLogStreamer final : public grpc::ServerWriteReactor<v1::TaskLogLines> {
 public:
  TaskLogStreamer(JobServiceImpl* service, const v1::GetTaskLogsRequest& req)
      : service_(service),
        job_id_(req.job_id()),
        task_(req.has_task_index() ? std::optional<int>(req.task_index()) : std::nullopt),
        follow_(req.follow()) {}

  // Called under the service's watchers_mu_.
  void Poll(const scheduler::Scheduler& sched, const TaskLogStore& logs) {
    absl::MutexLock lock(&mu_);
    if (writing_ || finished_) return;
    if (cancelled_) {
      FinishLocked(grpc::Status::CANCELLED);
      return;
    }
    absl::StatusOr<scheduler::JobView> v = sched.GetJob(job_id_);
    if (!v.ok()) {
      FinishLocked(ToGrpc(v.status()));
      return;
    }
    if (task_ && (*task_ < 0 || *task_ >= v->tasks_total)) {
      FinishLocked(ToGrpc(absl::InvalidArgumentError(
          absl::StrCat("task_index ", *task_, ": job ", job_id_, " has tasks 0..",
                       v->tasks_total - 1, "; give one of them or leave it out for all"))));
      return;
    }
    // The state is read before the files: workers send a task's lines before its
    // result, so once the job has ended every line is already in the files.
    const bool ended = scheduler::IsTerminal(v->job.state);
    for (auto& chunk : logs.ReadNew(job_id_, task_, &offsets_, 1000)) {
      v1::TaskLogLines m;
      m.set_task_index(chunk.task_index);
      for (auto& line : chunk.lines) m.add_lines(std::move(line));
      pending_.push_back(std::move(m));
    }
    if (!follow_ || ended) last_read_ = true;
    WriteNextLocked();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      cancelled_ = true;
      pending_.clear();
      return;
    }
    WriteNextLocked();
  }
  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
  }
  void OnDone() override {
    service_->RemoveLogStreamer(this);
    delete this;
  }
  void Close() {
    absl::MutexLock lock(&mu_);
    if (!writing_) FinishLocked({grpc::StatusCode::UNAVAILABLE, "server shutting down"});
  }

 private:
  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || finished_) return;
    if (!pending_.empty()) {
      current_ = std::move(pending_.front());
      pending_.pop_front();
      writing_ = true;
      StartWrite(&current_);
    } else if (last_read_) {
      FinishLocked(grpc::Status::OK);
    }
  }
  void FinishLocked(const grpc::Status& st) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    Finish(st);
  }

  JobServiceImpl* const service_;
  const int64_t job_id_;
  const std::optional<int> task_;
  const bool follow_;
  absl::Mutex mu_;
  std::map<int, uint64_t> offsets_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::TaskLogLines> pending_ ABSL_GUARDED_BY(mu_);
  v1::TaskLogLines current_ ABSL_GUARDED_BY(mu_);  // the write in flight
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool last_read_ ABSL_GUARDED_BY(mu_) = false;
};

JobServiceImpl::JobServiceImpl(scheduler::Scheduler* sched, const common::Storage* storage,
                               std::vector<std::string> model_path, Limits limits,
                               ServerMetrics* metrics, const TaskLogStore* task_logs,
                               Authenticator* auth)
    : sched_(sched),
      storage_(storage),
      model_path_(std::move(model_path)),
      limits_(limits),
      metrics_(metrics),
      task_logs_(task_logs),
      auth_(auth) {}

absl::StatusOr<Principal> JobServiceImpl::Caller(grpc::CallbackServerContext* ctx,
                                                 std::initializer_list<Role> roles,
                                                 const std::string& what) const {
  ASSIGN_OR_RETURN(Principal p, auth_->Authenticate(*ctx));
  RETURN_IF_ERROR(RequireRole(p, roles, what));
  return p;
}

absl::Status JobServiceImpl::CheckJobAccess(grpc::CallbackServerContext* ctx, int64_t id,
                                            bool control, const std::string& what) const {
  ASSIGN_OR_RETURN(Principal p,
                   control ? Caller(ctx, {Role::kAdmin, Role::kSubmitter}, what)
                           : Caller(ctx, {Role::kAdmin, Role::kSubmitter, Role::kViewer}, what));
  ASSIGN_OR_RETURN(scheduler::JobView v, sched_->GetJob(id));
  const std::string& project = v.job.spec.project;
  if (control ? !p.CanControl(project) : !p.CanSee(project)) {
    return absl::PermissionDeniedError(absl::StrCat("'", p.name, "' may not ", what, " job ", id,
                                                    ": it belongs to project '", project,
                                                    "', which is not one of its projects"));
  }
  return absl::OkStatus();
}

absl::Status JobServiceImpl::CheckSpecLimits(const v1::JobSpec& spec) const {
  const auto size = static_cast<int64_t>(spec.ByteSizeLong());
  if (size > limits_.max_spec_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec is ", size, " bytes, over the limit of ", limits_.max_spec_bytes));
  }
  // Names, paths and tags are printed by reelctl, the logs and the monitor: a control
  // character (a newline, a terminal escape) in one is refused, not stored. Free text
  // (prompts) may hold newlines and tabs.
  const auto check = [&](const std::string& field, const std::string& value, bool text = false) {
    if (value.size() > limits_.max_string_length) {
      return absl::InvalidArgumentError(absl::StrCat(field, " is ", value.size(),
                                                     " characters, over the limit of ",
                                                     limits_.max_string_length));
    }
    if (value.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(field, " holds a NUL character"));
    }
    for (size_t i = 0; i < value.size(); ++i) {
      const auto c = static_cast<unsigned char>(value[i]);
      const bool c1 = c == 0xc2 && i + 1 < value.size() &&
                      static_cast<unsigned char>(value[i + 1]) >= 0x80 &&
                      static_cast<unsigned char>(value[i + 1]) <= 0x9f;  // U+0080..U+009F
      const bool allowed = text && (c == '\n' || c == '\t');
      if (((c < 0x20 || c == 0x7f) && !allowed) || c1) {
        return absl::InvalidArgumentError(absl::StrCat(
            field, " holds a control character (byte 0x", absl::Hex(c1 ? 0xc2 : c), " at offset ",
            i, "); give printable text, without newlines or terminal escapes"));
      }
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(check("name", spec.name()));
  RETURN_IF_ERROR(check("project", spec.project()));
  RETURN_IF_ERROR(check("request_id", spec.request_id()));
  if (spec.requirements_size() > limits_.max_requirements) {
    return absl::InvalidArgumentError(absl::StrCat("requirements has ", spec.requirements_size(),
                                                   " tags, over the limit of ",
                                                   limits_.max_requirements));
  }
  for (const auto& [key, value] : spec.requirements()) {
    RETURN_IF_ERROR(check("requirements key", key));
    RETURN_IF_ERROR(check(absl::StrCat("requirements['", key.substr(0, 64), "']"), value));
  }
  if (spec.depends_on_size() > limits_.max_depends_on) {
    return absl::InvalidArgumentError(absl::StrCat("depends_on has ", spec.depends_on_size(),
                                                   " jobs, over the limit of ",
                                                   limits_.max_depends_on));
  }
  if (spec.has_upscale()) {
    const v1::UpscaleSpec& u = spec.upscale();
    RETURN_IF_ERROR(check("upscale.input", u.input()));
    RETURN_IF_ERROR(check("upscale.output", u.output()));
    RETURN_IF_ERROR(check("upscale.model", u.model()));
    RETURN_IF_ERROR(check("upscale.format.codec", u.format().codec()));
    RETURN_IF_ERROR(check("upscale.format.preset", u.format().preset()));
    RETURN_IF_ERROR(check("upscale.format.pix_fmt", u.format().pix_fmt()));
  }
  if (spec.has_generate()) {
    const v1::GenerateSpec& g = spec.generate();
    RETURN_IF_ERROR(check("generate.model", g.model()));
    RETURN_IF_ERROR(check("generate.prompt", g.prompt(), true));
    RETURN_IF_ERROR(check("generate.negative_prompt", g.negative_prompt(), true));
    RETURN_IF_ERROR(check("generate.sampler", g.sampler()));
    RETURN_IF_ERROR(check("generate.output", g.output()));
    RETURN_IF_ERROR(check("generate.init", g.init()));
    RETURN_IF_ERROR(check("generate.format.codec", g.format().codec()));
    RETURN_IF_ERROR(check("generate.format.preset", g.format().preset()));
    RETURN_IF_ERROR(check("generate.format.pix_fmt", g.format().pix_fmt()));
    for (int i = 0; i < g.prompts_size(); ++i) {
      RETURN_IF_ERROR(check(absl::StrCat("generate.prompts[", i, "]"), g.prompts(i), true));
    }
    for (int i = 0; i < g.samplers_size(); ++i) {
      RETURN_IF_ERROR(check(absl::StrCat("generate.samplers[", i, "]"), g.samplers(i)));
    }
    for (int i = 0; i < g.takes_size(); ++i) {
      RETURN_IF_ERROR(
          check(absl::StrCat("generate.takes[", i, "].prompt"), g.takes(i).prompt(), true));
      RETURN_IF_ERROR(check(absl::StrCat("generate.takes[", i, "].sampler"), g.takes(i).sampler()));
    }
    // The wedge's size (its takes, one task each) is checked against
    // --max-tasks-per-job when the job is expanded.
  }
  return absl::OkStatus();
}

JobServiceImpl::~JobServiceImpl() = default;

absl::StatusOr<std::optional<scheduler::MediaInfo>> JobServiceImpl::Validate(
    v1::JobSpec& spec, int64_t* memory_bytes) const {
  if (spec.kind_case() == v1::JobSpec::KIND_NOT_SET) {
    return absl::InvalidArgumentError(
        "spec is empty: set spec.upscale (input, output, model, scale) or spec.generate "
        "(model, prompt, seeds, output)");
  }
  if (spec.has_priority() && (spec.priority() < 0 || spec.priority() > 100)) {
    return absl::InvalidArgumentError(
        absl::StrCat("priority is ", spec.priority(), "; give 0..100"));
  }
  if (spec.has_max_attempts() && (spec.max_attempts() < 1 || spec.max_attempts() > 10)) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_attempts is ", spec.max_attempts(), "; give 1..10"));
  }
  for (const auto& [key, value] : spec.requirements()) {
    if (key.empty()) {
      return absl::InvalidArgumentError(
          "requirements: a tag name is empty; give tags such as gpu=h100");
    }
  }
  if (spec.has_generate()) {
    GenerateLimits gl;
    gl.max_steps = limits_.max_generate_steps;
    gl.max_width = limits_.max_width;
    gl.max_height = limits_.max_height;
    gl.max_frames = limits_.max_frames;
    ASSIGN_OR_RETURN(
        scheduler::MediaInfo info,
        PrepareGenerate(spec.mutable_generate(), common::FindModelPackages(model_path_), gl,
                        *storage_, memory_bytes));
    return std::optional<scheduler::MediaInfo>(info);
  }
  const v1::UpscaleSpec& u = spec.upscale();
  if (u.has_chunk_frames() && u.chunk_frames() < 1) {
    return absl::InvalidArgumentError(absl::StrCat("upscale.chunk_frames is ", u.chunk_frames(),
                                                   "; give 1 or more frames per chunk"));
  }
  if (u.has_crf() && (u.crf() < 0 || u.crf() > 51)) {
    return absl::InvalidArgumentError(
        absl::StrCat("upscale.crf is ", u.crf(), "; give 0..51 (18 is visually lossless)"));
  }
  // Model: a built-in, a package on the server's model path, or one a worker has.
  std::vector<std::string> known = common::BuiltinModels();
  std::vector<common::ModelManifest> packages = common::FindModelPackages(model_path_);
  for (const auto& m : packages) known.push_back(m.name);
  for (const auto& m : sched_->KnownModels()) known.push_back(m);
  std::sort(known.begin(), known.end());
  known.erase(std::unique(known.begin(), known.end()), known.end());
  if (u.model().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("upscale.model is empty; give one of: ", absl::StrJoin(known, ", ")));
  }
  if (std::find(known.begin(), known.end(), u.model()) == known.end()) {
    return absl::NotFoundError(absl::StrCat(
        "upscale.model '", u.model(), "' not found; known models: ", absl::StrJoin(known, ", ")));
  }
  // Scale: the model's (a package's `scales`, the built-ins' BuiltinScales); a model
  // only workers have is checked by them, within the manifest's 1..8.
  const std::vector<int>& builtin_scales = common::BuiltinScales();
  std::vector<int> scales = {1, 2, 3, 4, 5, 6, 7, 8};
  if (std::find(common::BuiltinModels().begin(), common::BuiltinModels().end(), u.model()) !=
      common::BuiltinModels().end()) {
    scales = builtin_scales;
  }
  for (const auto& m : packages) {
    if (m.name != u.model()) continue;
    if (m.kind != "upscaler") {
      return absl::InvalidArgumentError(
          absl::StrCat("upscale.model '", m.name, "' is a ", m.kind,
                       " model, not an upscaler; give an upscaler (such as bicubic) or use it in a "
                       "generate job"));
    }
    scales = m.Scales();
    if (auto scaled = common::ForScale(m, u.scale()); scaled.ok()) {
      *memory_bytes = scaled->memory_bytes;
    }
  }
  if (std::find(scales.begin(), scales.end(), u.scale()) == scales.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "upscale.scale is ", u.scale(), " but model '", u.model(), "' is made for scale ",
        absl::StrJoin(scales, ", "), "; give one of those or another model"));
  }
  // Paths.
  ASSIGN_OR_RETURN(fs::path input, storage_->ResolveJobPath(u.input(), "upscale.input"));
  ASSIGN_OR_RETURN(fs::path output, storage_->ResolveJobPath(u.output(), "upscale.output"));
  ASSIGN_OR_RETURN(const media::OutputFormat format,
                   media::ResolveOutputFormat(u.output(), u.format().codec(), u.format().pix_fmt(),
                                              u.format().preset(), u.has_crf() ? u.crf() : 18));
  if (input.lexically_normal() == output.lexically_normal()) {
    return absl::InvalidArgumentError(
        absl::StrCat("upscale.output '", u.output(), "' is the input; give another path"));
  }
  if (!media::HasFramePattern(u.input()) && !fs::exists(input)) {
    // The output of a job this one depends on is probed when that job succeeds.
    for (int64_t dep : spec.depends_on()) {
      auto d = sched_->GetJob(dep);
      bool made_by_dep =
          d.ok() && !d->job.spec.is_generate() && d->job.spec.upscale.output == u.input();
      if (d.ok() && d->job.spec.is_generate()) {
        for (const auto& take : scheduler::ExpandWedge(d->job.spec.name, d->job.spec.generate)) {
          made_by_dep |= take.output == u.input();
        }
      }
      if (made_by_dep) {
        // A sequence's frames are checked when the input is known; the workers check
        // every file again when they publish.
        RETURN_IF_ERROR(CheckUpscaleOutputs(u, output, format, std::nullopt));
        return std::optional<scheduler::MediaInfo>();
      }
    }
  }
  ASSIGN_OR_RETURN(scheduler::MediaInfo mi, ProbeInput(u));
  RETURN_IF_ERROR(CheckUpscaleOutputs(u, output, format, mi));
  return std::optional<scheduler::MediaInfo>(mi);
}

// Every file an upscale job writes (the movie, or each frame of a sequence, whose
// numbers follow the input's, and the sidecar) follows one rule: refused when it
// exists, unless the job says overwrite; a folder never.
absl::Status JobServiceImpl::CheckUpscaleOutputs(const v1::UpscaleSpec& u, const fs::path& output,
                                                 const media::OutputFormat& format,
                                                 const std::optional<scheduler::MediaInfo>& mi) {
  const char* field = "upscale.output";
  RETURN_IF_ERROR(common::CheckOutputFree(output.string() + ".json", field, u.output() + ".json",
                                          u.overwrite()));
  if (!format.image_sequence()) {
    return common::CheckOutputFree(output, field, u.output(), u.overwrite());
  }
  if (!mi.has_value()) return absl::OkStatus();
  for (int64_t i = mi->first_frame; i < mi->first_frame + mi->frame_count; ++i) {
    RETURN_IF_ERROR(common::CheckOutputFree(media::FramePath(output.string(), i), field,
                                            media::FramePath(u.output(), i), u.overwrite()));
  }
  return absl::OkStatus();
}

absl::StatusOr<scheduler::MediaInfo> JobServiceImpl::ProbeInput(const v1::UpscaleSpec& u) const {
  ASSIGN_OR_RETURN(fs::path input, storage_->ResolveJobPath(u.input(), "upscale.input"));
  absl::StatusOr<media::VideoInfo> info = server::ProbeInput(u, input, *storage_);
  if (!info.ok()) return info.status();
  const std::string& u_input = u.input();
  if (info->width > limits_.max_width || info->height > limits_.max_height) {
    return absl::FailedPreconditionError(
        absl::StrCat("upscale.input '", u_input, "' is ", info->width, "x", info->height,
                     ", over the limit of ", limits_.max_width, "x", limits_.max_height));
  }
  if (info->frame_count > limits_.max_frames) {
    return absl::FailedPreconditionError(
        absl::StrCat("upscale.input '", u_input, "' has ", info->frame_count,
                     " frames, over the limit of ", limits_.max_frames));
  }
  scheduler::MediaInfo mi;
  mi.width = info->width;
  mi.height = info->height;
  mi.frame_count = info->frame_count;
  mi.fps_num = info->fps_num;
  mi.fps_den = info->fps_den;
  mi.codec = info->codec;
  mi.pixel_format = info->pixel_format;
  mi.colour_primaries = info->colour.primaries;
  mi.colour_transfer = info->colour.transfer;
  mi.colour_matrix = info->colour.matrix;
  mi.colour_range = info->colour.range;
  mi.has_audio = info->has_audio;
  mi.first_frame = info->first_frame;
  mi.coded_frames = info->coded_frames;
  mi.held_frames = info->held_frames;
  mi.dropped_frames = info->dropped_frames;
  mi.tail_cut_frames = info->tail_cut_frames;
  return mi;
}

absl::StatusOr<v1::SubmitJobResponse> JobServiceImpl::DoSubmit(const v1::SubmitJobRequest& req,
                                                               const Principal& caller) {
  RETURN_IF_ERROR(CheckSpecLimits(req.spec()));
  scheduler::JobSpec spec = FromProto(req.spec());
  if (!caller.CanControl(spec.project)) {
    return absl::PermissionDeniedError(absl::StrCat("'", caller.name,
                                                    "' may not submit to project '", spec.project,
                                                    "'; set project to one of its projects"));
  }
  for (int64_t dep : req.spec().depends_on()) {
    auto d = sched_->GetJob(dep);
    if (d.ok() && !caller.CanSee(d->job.spec.project)) {
      return absl::PermissionDeniedError(absl::StrCat("depends_on: job ", dep,
                                                      " belongs to project '", d->job.spec.project,
                                                      "', which '", caller.name, "' may not see"));
    }
  }
  int64_t memory_bytes = 0;
  v1::JobSpec proto = req.spec();  // Validate fills a generate spec's model defaults
  ASSIGN_OR_RETURN(std::optional<scheduler::MediaInfo> info, Validate(proto, &memory_bytes));
  spec = FromProto(proto);
  spec.memory_bytes = memory_bytes;
  if (spec.is_generate()) RETURN_IF_ERROR(CheckTakeOutputs(spec, *storage_));
  if (info && !spec.is_generate()) {
    const int64_t chunks =
        (info->frame_count + spec.upscale.chunk_frames - 1) / spec.upscale.chunk_frames;
    if (chunks + 1 > limits_.max_tasks_per_job) {
      return absl::InvalidArgumentError(
          absl::StrCat("upscale.chunk_frames ", spec.upscale.chunk_frames, " makes ", chunks + 1,
                       " tasks of ", info->frame_count, " frames, over the limit of ",
                       limits_.max_tasks_per_job, " tasks per job; give a larger chunk_frames"));
    }
  }
  v1::SubmitJobResponse resp;
  if (req.validate_only()) {
    ASSIGN_OR_RETURN(scheduler::JobView v, sched_->DryRun(std::move(spec), info));
    *resp.mutable_job() = ToProto(v);
    return resp;
  }
  ASSIGN_OR_RETURN(scheduler::JobView v, sched_->Submit(std::move(spec), info));
  resp.set_job_id(v.job.id);
  *resp.mutable_job() = ToProto(v);
  if (v.job.spec.is_generate()) {
    spdlog::info("job submitted job={} kind=generate output={} model={} takes={} frames={}",
                 v.job.id, v.job.spec.generate.output, v.job.spec.generate.model, v.tasks_total,
                 v.frames_total);
  } else {
    spdlog::info("job submitted job={} input={} output={} model={} scale={} frames={} tasks={}",
                 v.job.id, v.job.spec.upscale.input, v.job.spec.upscale.output,
                 v.job.spec.upscale.model, v.job.spec.upscale.scale, v.frames_total, v.tasks_total);
  }
  return resp;
}

grpc::ServerUnaryReactor* JobServiceImpl::SubmitJob(grpc::CallbackServerContext* ctx,
                                                    const v1::SubmitJobRequest* req,
                                                    v1::SubmitJobResponse* resp) {
  absl::StatusOr<Principal> caller = Caller(ctx, {Role::kAdmin, Role::kSubmitter}, "submit jobs");
  absl::StatusOr<v1::SubmitJobResponse> r =
      caller.ok() ? DoSubmit(*req, *caller)
                  : absl::StatusOr<v1::SubmitJobResponse>(caller.status());
  if (!r.ok()) {
    // Accepted jobs are counted by the scheduler's JobSubmitted event.
    metrics_->SubmitRefused(r.status().code());
    spdlog::info("job refused code={}: {}", absl::StatusCodeToString(r.status().code()),
                 std::string(r.status().message()));
    return FinishWith(ctx, r.status());
  }
  *resp = std::move(*r);
  return FinishWith(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* JobServiceImpl::GetJob(grpc::CallbackServerContext* ctx,
                                                 const v1::GetJobRequest* req, v1::Job* resp) {
  RETURN_FINISH_IF_ERROR(ctx, CheckJobAccess(ctx, req->job_id(), false, "see"));
  absl::StatusOr<scheduler::JobView> v = sched_->GetJob(req->job_id());
  if (v.ok()) *resp = ToProto(*v);
  return FinishWith(ctx, v.status());
}

grpc::ServerUnaryReactor* JobServiceImpl::ListJobs(grpc::CallbackServerContext* ctx,
                                                   const v1::ListJobsRequest* req,
                                                   v1::ListJobsResponse* resp) {
  absl::StatusOr<Principal> caller =
      Caller(ctx, {Role::kAdmin, Role::kSubmitter, Role::kViewer}, "list jobs");
  if (!caller.ok()) return FinishWith(ctx, caller.status());
  if (!req->project().empty() && !caller->CanSee(req->project())) {
    return FinishWith(ctx, absl::PermissionDeniedError(absl::StrCat(
                               "'", caller->name, "' may not list project '", req->project(),
                               "', which is not one of its projects")));
  }
  scheduler::Scheduler::ListFilter filter;
  for (int s : req->states()) filter.states.push_back(FromProto(static_cast<v1::JobState>(s)));
  filter.project = req->project();
  filter.since_unix_ms = req->since_unix_ms();
  filter.limit = req->limit() > 0 ? req->limit() : 100;
  std::vector<scheduler::JobView> jobs;
  if (caller->role == Role::kSubmitter && filter.project.empty()) {
    // A submitter sees its own projects' jobs only: each project's newest, merged.
    for (const std::string& p : caller->projects) {
      filter.project = p;
      for (auto& v : sched_->ListJobs(filter)) jobs.push_back(std::move(v));
    }
    std::sort(jobs.begin(), jobs.end(), [](const auto& a, const auto& b) {
      return a.job.created_unix_ms != b.job.created_unix_ms
                 ? a.job.created_unix_ms > b.job.created_unix_ms
                 : a.job.id > b.job.id;
    });
    if (filter.limit > 0 && jobs.size() > static_cast<size_t>(filter.limit)) {
      jobs.resize(filter.limit);
    }
  } else {
    jobs = sched_->ListJobs(filter);
  }
  for (const auto& v : jobs) *resp->add_jobs() = ToProto(v);
  return FinishWith(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* JobServiceImpl::CancelJob(grpc::CallbackServerContext* ctx,
                                                    const v1::CancelJobRequest* req,
                                                    v1::Job* resp) {
  RETURN_FINISH_IF_ERROR(ctx, CheckJobAccess(ctx, req->job_id(), true, "cancel"));
  absl::StatusOr<scheduler::JobView> v = sched_->Cancel(req->job_id());
  if (v.ok()) {
    *resp = ToProto(*v);
    spdlog::info("job cancelled job={}", req->job_id());
  }
  return FinishWith(ctx, v.status());
}

grpc::ServerWriteReactor<v1::JobEvent>* JobServiceImpl::WatchJob(grpc::CallbackServerContext* ctx,
                                                                 const v1::WatchJobRequest* req) {
  absl::Status access = CheckJobAccess(ctx, req->job_id(), false, "watch");
  if (!access.ok()) return new RefusedWriter<v1::JobEvent>(access);
  auto* w = new JobWatcher(this, req->job_id());
  absl::MutexLock lock(&watchers_mu_);
  watchers_.insert(w);
  w->Poll(*sched_);
  return w;
}

grpc::ServerUnaryReactor* JobServiceImpl::ListWorkers(grpc::CallbackServerContext* ctx,
                                                      const v1::ListWorkersRequest* req,
                                                      v1::ListWorkersResponse* resp) {
  (void)req;
  RETURN_FINISH_IF_ERROR(
      ctx, Caller(ctx, {Role::kAdmin, Role::kSubmitter, Role::kViewer}, "list workers").status());
  for (const auto& w : sched_->ListWorkers()) *resp->add_workers() = ToProto(w);
  return FinishWith(ctx, absl::OkStatus());
}

namespace {
grpc::ServerUnaryReactor* FinishJob(grpc::CallbackServerContext* ctx,
                                    const absl::StatusOr<scheduler::JobView>& v, v1::Job* resp,
                                    const char* what) {
  if (v.ok()) {
    *resp = ToProto(*v);
    spdlog::info("job {} job={} state={}", what, v->job.id, scheduler::ToString(v->job.state));
  }
  return FinishWith(ctx, v.status());
}
}  // namespace

grpc::ServerUnaryReactor* JobServiceImpl::PauseJob(grpc::CallbackServerContext* ctx,
                                                   const v1::PauseJobRequest* req, v1::Job* resp) {
  RETURN_FINISH_IF_ERROR(ctx, CheckJobAccess(ctx, req->job_id(), true, "pause"));
  return FinishJob(ctx, sched_->Pause(req->job_id()), resp, "paused");
}

grpc::ServerUnaryReactor* JobServiceImpl::ResumeJob(grpc::CallbackServerContext* ctx,
                                                    const v1::ResumeJobRequest* req,
                                                    v1::Job* resp) {
  RETURN_FINISH_IF_ERROR(ctx, CheckJobAccess(ctx, req->job_id(), true, "resume"));
  return FinishJob(ctx, sched_->Resume(req->job_id()), resp, "resumed");
}

grpc::ServerUnaryReactor* JobServiceImpl::RetryJob(grpc::CallbackServerContext* ctx,
                                                   const v1::RetryJobRequest* req, v1::Job* resp) {
  RETURN_FINISH_IF_ERROR(ctx, CheckJobAccess(ctx, req->job_id(), true, "retry"));
  return FinishJob(ctx, sched_->Retry(req->job_id()), resp, "retried");
}

grpc::ServerUnaryReactor* JobServiceImpl::SetPriority(grpc::CallbackServerContext* ctx,
                                                      const v1::SetPriorityRequest* req,
                                                      v1::Job* resp) {
  RETURN_FINISH_IF_ERROR(ctx, CheckJobAccess(ctx, req->job_id(), true, "reprioritise"));
  return FinishJob(ctx, sched_->SetPriority(req->job_id(), req->priority()), resp, "reprioritised");
}

grpc::ServerUnaryReactor* JobServiceImpl::DrainWorker(grpc::CallbackServerContext* ctx,
                                                      const v1::DrainWorkerRequest* req,
                                                      v1::Worker* resp) {
  RETURN_FINISH_IF_ERROR(ctx, Caller(ctx, {Role::kAdmin}, "drain workers").status());
  absl::Status st = sched_->Drain(req->name(), req->drain());
  if (st.ok()) {
    for (const auto& w : sched_->ListWorkers()) {
      if (w.info.name == req->name()) *resp = ToProto(w);
    }
    resp->set_name(req->name());
    spdlog::info("worker {} worker={}", req->drain() ? "draining" : "undrained", req->name());
  }
  return FinishWith(ctx, st);
}

void JobServiceImpl::ActivateWaitingJobs() {
  for (const auto& [id, spec] : sched_->JobsToActivate()) {
    absl::StatusOr<scheduler::MediaInfo> info = ProbeInput(ToProto(spec.upscale));
    if (info.ok()) {
      spdlog::info("job activated job={} input={} frames={}", id, spec.upscale.input,
                   info->frame_count);
      (void)sched_->Activate(id, *info);
    } else {
      spdlog::warn("job failed job={}: {}", id, std::string(info.status().message()));
      (void)sched_->FailJob(id, std::string(info.status().message()));
    }
  }
}

grpc::ServerWriteReactor<v1::TaskLogLines>* JobServiceImpl::GetTaskLogs(
    grpc::CallbackServerContext* ctx, const v1::GetTaskLogsRequest* req) {
  absl::Status access = CheckJobAccess(ctx, req->job_id(), false, "read the logs of");
  if (!access.ok()) return new RefusedWriter<v1::TaskLogLines>(access);
  auto* s = new TaskLogStreamer(this, *req);
  absl::MutexLock lock(&watchers_mu_);
  log_streams_.insert(s);
  s->Poll(*sched_, *task_logs_);
  return s;
}

void JobServiceImpl::PollWatchers() {
  absl::MutexLock lock(&watchers_mu_);
  for (JobWatcher* w : watchers_) w->Poll(*sched_);
  for (TaskLogStreamer* s : log_streams_) s->Poll(*sched_, *task_logs_);
}

void JobServiceImpl::CloseWatchers() {
  absl::MutexLock lock(&watchers_mu_);
  for (JobWatcher* w : watchers_) w->Close();
  for (TaskLogStreamer* s : log_streams_) s->Close();
}

void JobServiceImpl::RemoveLogStreamer(TaskLogStreamer* s) {
  absl::MutexLock lock(&watchers_mu_);
  log_streams_.erase(s);
}

void JobServiceImpl::RemoveWatcher(JobWatcher* w) {
  absl::MutexLock lock(&watchers_mu_);
  watchers_.erase(w);
}

}  // namespace reelfarm::server
