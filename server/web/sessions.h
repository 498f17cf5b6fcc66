// The monitor's sign-in sessions. A browser signs in with a token (auth.h); the server
// keeps the token and answers with a random session id in an HttpOnly, SameSite=Strict
// cookie. Each session has its own random CSRF token, which every page embeds in its
// forms and every POST must send back; the token itself never reaches the page.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/auth.h"

namespace reelfarm::server::web {

// `bytes` random bytes (OpenSSL RAND_bytes) as lower-case hex.
std::string RandomHex(int bytes);

struct Session {
  std::string id;
  std::string csrf;
  std::string token;  // sent as "Bearer" on the session's gRPC calls
  Principal principal;
  std::chrono::steady_clock::time_point expires;
};

class SessionStore final {
 public:
  explicit SessionStore(std::chrono::seconds ttl = std::chrono::hours(12),
                        size_t max_sessions = 10000);
  SessionStore(const SessionStore&) = delete;
  SessionStore& operator=(const SessionStore&) = delete;

  // A new session with fresh random id and CSRF token; the oldest one goes when
  // there are max_sessions. Thread-safe, like every method.
  Session Create(std::string token, Principal principal);
  // The live session `id`, if any (expired ones are removed).
  std::optional<Session> Find(absl::string_view id);
  void Remove(absl::string_view id);

 private:
  const std::chrono::seconds ttl_;
  const size_t max_sessions_;
  absl::Mutex mu_;
  std::map<std::string, Session, std::less<>> sessions_ ABSL_GUARDED_BY(mu_);
};

// Whether a change (a POST) may go on: PERMISSION_DENIED without a session, when
// `csrf` is not the session's token (compared in constant time), or when the role may
// change nothing (viewer, worker). Project scopes are the service's to check.
absl::Status CheckChange(const std::optional<Session>& session, absl::string_view csrf);

}  // namespace reelfarm::server::web
