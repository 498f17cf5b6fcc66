// Sections of the monitor's job and wedge pages that act on one job: the task log with
// follow, the before/after wipe of an upscale, and the "pick" of a wedge take (a
// follow-up upscale from an editable template). Rendering and the pure decisions behind
// them (which file holds a frame, what a pick submits); the handlers are monitor.cc's.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "reelfarm/v1/jobs.pb.h"
#include "server/web/pages.h"

namespace reelfarm::server::web {

// The job page's log: the tail the page was rendered with (`logs`), a task selector and
// "follow", which streams new lines (the job's log events) while the job runs.
std::string RenderLogSection(const v1::Job& job, const std::vector<v1::TaskLogLines>& logs);

// A frame of a file under the storage root: a movie's frame on its grid (0-based), or
// the file `number` of an image sequence.
struct FrameFile {
  std::string path;
  int64_t number = 0;
};
// Frame `frame` (the job's numbering: input_info.first_frame and on) of an upscale
// job's input. OUT_OF_RANGE outside the job's frames; INVALID_ARGUMENT for a generate.
absl::StatusOr<FrameFile> InputFrameOf(const v1::Job& job, int64_t frame);
// The same frame of its output: the published output once the job succeeded, else the
// segment of the succeeded chunk that holds it (a movie output). NOT_FOUND while it is
// not rendered (or an image sequence not yet published).
absl::StatusOr<FrameFile> OutputFrameOf(const v1::Job& job, int64_t frame);

// An upscale's before/after wipe: a frame picker and the input and output frames one
// over the other, with a divider to drag. Empty for a generate job.
std::string RenderWipeSection(const v1::Job& job);

// What a pick submits: the fields of its form, as text.
struct PickForm {
  std::string name;
  std::string model;
  std::string scale;
  std::string output;
  std::string priority;
  std::string request_id;  // the form's own, so that a form sent twice makes one job
};
// The template of a pick of `take`: bicubic x2 to an output beside the take
// ("gen/sh010_take002.mp4" -> "gen/sh010_take002_x2.mp4").
PickForm DefaultPick(const v1::Job& job, const TakeCell& take, const std::string& request_id);
// "dir/stem_x{scale}.rest" of "dir/stem.rest" (stem: the name up to its first dot).
std::string PickOutputFor(const std::string& take_output, int scale);
// The upscale of `take` that `form` asks for, in the wedge job's project.
// INVALID_ARGUMENT naming a field that is not a number; the service checks the rest.
absl::StatusOr<v1::SubmitJobRequest> PickRequest(const v1::Job& job, const TakeCell& take,
                                                 const PickForm& form);

// The wedge cell's "Pick" link, for who may submit to the job's project, once the take
// succeeded; "" otherwise.
std::string PickButton(const PageContext& ctx, const v1::Job& job, const TakeCell& take,
                       const std::string& task_state);
// The pick form of `take`; `error` (escaped) above it when a submit was refused.
// `models`: model names offered (the built-ins and what workers advertise).
std::string RenderPickPage(const PageContext& ctx, const v1::Job& job, const TakeCell& take,
                           const PickForm& form, const std::vector<std::string>& models,
                           const std::string& error);

}  // namespace reelfarm::server::web
