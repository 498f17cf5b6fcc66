// ServerList: the reelfarm-server addresses a worker or client was given
// ("host:port[,host:port...]": the leader and its standbys, in any order), and which
// one to talk to. A standby answers UNAVAILABLE naming the leader; the caller moves
// there (Next(hint)), else to the next address, and so follows the leader after a
// failover.
//
// Thread-safety: none (each caller keeps its own).
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace reelfarm::common {

class ServerList final {
 public:
  // INVALID_ARGUMENT for an empty list or an empty entry, naming the text.
  static absl::StatusOr<ServerList> Parse(const std::string& text);

  const std::string& current() const { return addresses_[current_]; }
  const std::vector<std::string>& addresses() const { return addresses_; }
  size_t size() const { return addresses_.size(); }
  // After a call to current() failed: moves to `leader_hint` (added to the list if it
  // is not in it), or without a hint to the next address. Returns the new current().
  const std::string& Next(const std::string& leader_hint = "");

 private:
  explicit ServerList(std::vector<std::string> addresses) : addresses_(std::move(addresses)) {}
  std::vector<std::string> addresses_;
  size_t current_ = 0;
};

}  // namespace reelfarm::common
