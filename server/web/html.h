// Text helpers of the monitor's pages: escaping for HTML and URLs, and the short forms
// of durations and states shown in tables. Pure functions.
#pragma once

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace reelfarm::server::web {

// `text` safe in HTML text and in a quoted attribute value: & < > " ' escaped.
std::string HtmlEscape(absl::string_view text);

// `text` percent-encoded for a URL query value or path segment (RFC 3986 unreserved
// characters kept).
std::string UrlEncode(absl::string_view text);

// The percent-decoding of `text` ('+' is a space, as forms send it).
std::string UrlDecode(absl::string_view text);

// "2h 05m", "3m 20s", "12s", "0.25s"; "—" when `seconds` < 0 (unknown).
std::string FormatDuration(double seconds);

// Age of `unix_ms` at `now_unix_ms`: FormatDuration of the difference.
std::string FormatAge(int64_t unix_ms, int64_t now_unix_ms);

}  // namespace reelfarm::server::web
