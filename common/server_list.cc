#include "common/server_list.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace reelfarm::common {

absl::StatusOr<ServerList> ServerList::Parse(const std::string& text) {
  std::vector<std::string> addresses;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    const std::string address(absl::StripAsciiWhitespace(part));
    if (address.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "server list '", text, "' has an empty address; give HOST:PORT[,HOST:PORT...]"));
    }
    if (std::find(addresses.begin(), addresses.end(), address) == addresses.end()) {
      addresses.push_back(address);
    }
  }
  return ServerList(std::move(addresses));
}

const std::string& ServerList::Next(const std::string& leader_hint) {
  if (leader_hint.empty()) {
    current_ = (current_ + 1) % addresses_.size();
    return current();
  }
  auto it = std::find(addresses_.begin(), addresses_.end(), leader_hint);
  if (it == addresses_.end()) it = addresses_.insert(addresses_.end(), leader_hint);
  current_ = static_cast<size_t>(it - addresses_.begin());
  return current();
}

}  // namespace reelfarm::common
