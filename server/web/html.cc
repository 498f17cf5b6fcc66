#include "server/web/html.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

namespace reelfarm::server::web {

std::string HtmlEscape(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string UrlEncode(absl::string_view text) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string UrlDecode(absl::string_view text) {
  const auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+') {
      out += ' ';
    } else if (text[i] == '%' && i + 2 < text.size() && hex(text[i + 1]) >= 0 &&
               hex(text[i + 2]) >= 0) {
      out += static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2]));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

std::string FormatDuration(double seconds) {
  if (!(seconds >= 0) || std::isinf(seconds)) return "\xE2\x80\x94";  // em dash
  char buf[64];
  if (seconds < 1) {
    std::snprintf(buf, sizeof(buf), "%.2fs", seconds);
  } else if (seconds < 60) {
    std::snprintf(buf, sizeof(buf), "%.0fs", seconds);
  } else if (seconds < 3600) {
    const int64_t s = static_cast<int64_t>(seconds);
    std::snprintf(buf, sizeof(buf), "%lldm %02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else if (seconds < 86400 * 2) {
    const int64_t m = static_cast<int64_t>(seconds / 60);
    std::snprintf(buf, sizeof(buf), "%lldh %02lldm", static_cast<long long>(m / 60),
                  static_cast<long long>(m % 60));
  } else {
    std::snprintf(buf, sizeof(buf), "%.0fd", seconds / 86400);
  }
  return buf;
}

std::string FormatAge(int64_t unix_ms, int64_t now_unix_ms) {
  if (unix_ms <= 0) return FormatDuration(-1);
  return FormatDuration(static_cast<double>(std::max<int64_t>(0, now_unix_ms - unix_ms)) / 1000);
}

}  // namespace reelfarm::server::web
