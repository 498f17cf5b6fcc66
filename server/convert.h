// The one place where API messages and scheduler domain types meet.
#pragma once

#include <grpcpp/support/status.h>

#include "reelfarm/v1/jobs.pb.h"
#include "reelfarm/v1/workers.pb.h"
#include "scheduler/scheduler.h"

namespace reelfarm::server {

v1::JobState ToProto(scheduler::JobState s);
scheduler::JobState FromProto(v1::JobState s);
v1::Job ToProto(const scheduler::JobView& v);
v1::TaskQc ToProto(const scheduler::TaskQc& q);
v1::Assignment ToProto(const scheduler::Assignment& a);
v1::Worker ToProto(const scheduler::WorkerView& w);
scheduler::TaskOutcome FromProto(const v1::TaskResult& r);

// Copies the spec with the API's defaults (common/job_defaults.h) applied; does not
// validate (Admission does, admission.h).
scheduler::JobSpec FromProto(const v1::JobSpec& spec);

// Status conversion: absl's codes are gRPC's.
grpc::Status ToGrpc(const absl::Status& s);

}  // namespace reelfarm::server
