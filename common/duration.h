// Ages and durations as operators write them on command lines: "30d", "12h", "90m",
// "45s", "2w", or "0". One parser for the server's --keep-finished and reelctl's
// --older-than / --timeout.
#pragma once

#include <cstdint>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status.h"

namespace reelfarm::common {

// A whole number and one unit (s, m, h, d, w), or "0", in milliseconds;
// INVALID_ARGUMENT naming `flag` and the text otherwise.
inline absl::StatusOr<int64_t> ParseAge(absl::string_view text, absl::string_view flag) {
  const absl::string_view t = absl::StripAsciiWhitespace(text);
  const auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, " '", t,
        "' is not a duration; give a whole number and a unit: ", "45s, 90m, 12h, 30d, 2w (or 0)"));
  };
  if (t == "0") return 0;
  if (t.size() < 2) return bad();
  int64_t unit_ms = 0;
  switch (t.back()) {
    case 's':
      unit_ms = 1000;
      break;
    case 'm':
      unit_ms = 60 * 1000;
      break;
    case 'h':
      unit_ms = 3600 * 1000;
      break;
    case 'd':
      unit_ms = 24 * 3600 * 1000;
      break;
    case 'w':
      unit_ms = 7 * 24 * 3600 * 1000;
      break;
    default:
      return bad();
  }
  const absl::string_view digits = t.substr(0, t.size() - 1);
  int64_t n = 0;
  // At most about 34 years, so that no product overflows.
  if (!absl::c_all_of(digits, [](char c) { return absl::ascii_isdigit(c); }) ||
      !absl::SimpleAtoi(digits, &n) || n > (int64_t{1} << 40) / unit_ms) {
    return bad();
  }
  return n * unit_ms;
}

}  // namespace reelfarm::common
