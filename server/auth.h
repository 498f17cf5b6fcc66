// Who is calling and what they may do. Tokens and their roles come from a YAML file
// that is read again when it changes:
//
//   tokens:
//     - name: alice                 # shown in logs; the token itself never is
//       role: submitter             # admin | submitter | viewer | worker
//       projects: [sh010, feature]  # submitter: the projects it may submit and control
//       token: "a long random string"
//     - name: render-nodes
//       role: worker
//       sha256: "<hex SHA-256 of the token>"   # instead of token:, keeps it off disk
//
// Callers send "authorization: Bearer <token>". No or an unknown token:
// UNAUTHENTICATED; a known token outside its role or projects: PERMISSION_DENIED.
// Tokens are compared as SHA-256 digests with CRYPTO_memcmp, against every entry.
#pragma once

#include <sys/stat.h>

#include <chrono>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include <grpcpp/server_context.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/status.h"

namespace reelfarm::server {

enum class Role { kAdmin, kSubmitter, kViewer, kWorker };

const char* RoleName(Role role);

struct Principal {
  std::string name;
  Role role = Role::kViewer;
  std::set<std::string> projects;  // submitter only
  bool has_client_cert = false;    // presented a verified TLS client certificate

  // Read access to a project's jobs: admin, viewer, or a submitter of the project.
  bool CanSee(const std::string& project) const;
  // Submit and control (cancel, pause, resume, retry, priority): admin, or a
  // submitter of the project.
  bool CanControl(const std::string& project) const;
};

struct TokenEntry {
  std::string name;
  Role role = Role::kViewer;
  std::set<std::string> projects;
  std::string sha256;  // 32 raw bytes
};

// Parses a tokens file (see above). INVALID_ARGUMENT naming the entry and field.
absl::StatusOr<std::vector<TokenEntry>> ParseTokens(const std::string& yaml_text);

class Authenticator final {
 public:
  // Without a tokens file every caller is an admin (`--no-auth`, logged as a warning by
  // the caller). With one, it must parse.
  static absl::StatusOr<std::unique_ptr<Authenticator>> Create(const std::string& tokens_file);
  Authenticator(const Authenticator&) = delete;
  Authenticator& operator=(const Authenticator&) = delete;

  // Adds a token known only to this process (the local workers' token).
  void AddToken(const std::string& name, Role role, const std::string& token);
  bool enabled() const { return !tokens_file_.empty(); }

  // The caller of `ctx`, or UNAUTHENTICATED. Reads the tokens file again (at most once
  // a second) when its size, time or inode changed; a file that no longer parses is
  // logged and the tokens it had stay in force. Thread-safe.
  absl::StatusOr<Principal> Authenticate(const grpc::ServerContextBase& ctx);
  // The holder of `token` (as sent after "Bearer "), or UNAUTHENTICATED; every caller
  // is an admin without a tokens file. For front ends that take a token another way
  // (the monitor's sign-in form). Thread-safe.
  absl::StatusOr<Principal> AuthenticateToken(absl::string_view token);

 private:
  explicit Authenticator(std::string tokens_file) : tokens_file_(std::move(tokens_file)) {}
  absl::Status LoadLocked(bool initial) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeReloadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string tokens_file_;
  absl::Mutex mu_;
  std::vector<TokenEntry> entries_ ABSL_GUARDED_BY(mu_);
  std::vector<TokenEntry> extra_ ABSL_GUARDED_BY(mu_);
  struct stat last_stat_ ABSL_GUARDED_BY(mu_) = {};
  std::chrono::steady_clock::time_point last_check_ ABSL_GUARDED_BY(mu_);
};

// PERMISSION_DENIED unless `p` has one of `roles`; `what` names the call.
absl::Status RequireRole(const Principal& p, std::initializer_list<Role> roles,
                         const std::string& what);

}  // namespace reelfarm::server
