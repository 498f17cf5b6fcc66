#include "server/web/sessions.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <utility>
#include <vector>

namespace reelfarm::server::web {

std::string RandomHex(int bytes) {
  std::vector<unsigned char> raw(bytes);
  if (RAND_bytes(raw.data(), bytes) != 1) return "";
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char b : raw) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

SessionStore::SessionStore(std::chrono::seconds ttl, size_t max_sessions)
    : ttl_(ttl), max_sessions_(max_sessions) {}

Session SessionStore::Create(std::string token, Principal principal) {
  Session s;
  s.id = RandomHex(32);
  s.csrf = RandomHex(32);
  s.token = std::move(token);
  s.principal = std::move(principal);
  s.expires = std::chrono::steady_clock::now() + ttl_;
  absl::MutexLock lock(&mu_);
  while (!sessions_.empty() && sessions_.size() >= max_sessions_) {
    auto oldest = sessions_.begin();
    for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
      if (it->second.expires < oldest->second.expires) oldest = it;
    }
    sessions_.erase(oldest);
  }
  sessions_[s.id] = s;
  return s;
}

std::optional<Session> SessionStore::Find(absl::string_view id) {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return std::nullopt;
  if (it->second.expires < std::chrono::steady_clock::now()) {
    sessions_.erase(it);
    return std::nullopt;
  }
  return it->second;
}

void SessionStore::Remove(absl::string_view id) {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(id);
  if (it != sessions_.end()) sessions_.erase(it);
}

absl::Status CheckChange(const std::optional<Session>& session, absl::string_view csrf) {
  if (!session.has_value()) {
    return absl::PermissionDeniedError("not signed in: sign in with a token first");
  }
  if (csrf.size() != session->csrf.size() || session->csrf.empty() ||
      CRYPTO_memcmp(csrf.data(), session->csrf.data(), csrf.size()) != 0) {
    return absl::PermissionDeniedError(
        "the request's CSRF token is missing or not this session's; reload the page and try "
        "again");
  }
  return RequireRole(session->principal, {Role::kAdmin, Role::kSubmitter},
                     "change jobs or workers");
}

}  // namespace reelfarm::server::web
