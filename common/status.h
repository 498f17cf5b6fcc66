// Error handling shared by every component: absl::Status with gRPC's codes, and the
// RETURN_IF_ERROR / ASSIGN_OR_RETURN macros that Debian's Abseil (20220623) lacks.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define REELFARM_CONCAT_INNER(a, b) a##b
#define REELFARM_CONCAT(a, b) REELFARM_CONCAT_INNER(a, b)

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define RETURN_IF_ERROR(expr)                    \
  do {                                           \
    ::absl::Status _reelfarm_st = (expr);        \
    if (!_reelfarm_st.ok()) return _reelfarm_st; \
  } while (0)

// `lhs = value of expr` (an absl::StatusOr<T>), or return its status.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(REELFARM_CONCAT(_reelfarm_so_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()
