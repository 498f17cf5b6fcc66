// InMemoryJobStore: the JobStore fake for unit tests. Same contract as the SQLite
// store (ids from 1, never reused; NOT_FOUND for missing rows; INVALID_ARGUMENT for a
// repeated task index), but nothing survives the object. Product binaries do not link
// it (the reelfarm_testing_store library).
#pragma once

#include <memory>

#include "scheduler/job_store.h"

namespace reelfarm::testing {

std::unique_ptr<scheduler::JobStore> NewInMemoryJobStore();

}  // namespace reelfarm::testing
