#include "server/auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_security.h"

namespace reelfarm::server {
namespace {

constexpr size_t kMaxTokens = 10'000;
constexpr size_t kMaxTokenLength = 4096;

std::string Sha256(absl::string_view text) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), md);
  return std::string(reinterpret_cast<const char*>(md), sizeof(md));
}

bool FromHex(const std::string& hex, std::string* out) {
  if (hex.size() != 2 * SHA256_DIGEST_LENGTH) return false;
  out->clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    int v = 0;
    for (size_t k = i; k < i + 2; ++k) {
      const char c = hex[k];
      int d = c >= '0' && c <= '9'   ? c - '0'
              : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                     : -1;
      if (d < 0) return false;
      v = v * 16 + d;
    }
    out->push_back(static_cast<char>(v));
  }
  return true;
}

bool ParseRole(const std::string& s, Role* role) {
  if (s == "admin")
    *role = Role::kAdmin;
  else if (s == "submitter")
    *role = Role::kSubmitter;
  else if (s == "viewer")
    *role = Role::kViewer;
  else if (s == "worker")
    *role = Role::kWorker;
  else
    return false;
  return true;
}

bool SameStat(const struct stat& a, const struct stat& b) {
  return a.st_ino == b.st_ino && a.st_dev == b.st_dev && a.st_size == b.st_size &&
         a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec;
}

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kAdmin:
      return "admin";
    case Role::kSubmitter:
      return "submitter";
    case Role::kViewer:
      return "viewer";
    case Role::kWorker:
      return "worker";
  }
  return "?";
}

bool Principal::CanSee(const std::string& project) const {
  return role == Role::kAdmin || role == Role::kViewer ||
         (role == Role::kSubmitter && projects.count(project) > 0);
}

bool Principal::CanControl(const std::string& project) const {
  return role == Role::kAdmin || (role == Role::kSubmitter && projects.count(project) > 0);
}

absl::StatusOr<std::vector<TokenEntry>> ParseTokens(const std::string& yaml_text) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("not YAML: ", e.what()));
  }
  if (!root.IsMap() || !root["tokens"] || !root["tokens"].IsSequence()) {
    return absl::InvalidArgumentError("give a map with a list `tokens:` of entries");
  }
  std::vector<TokenEntry> out;
  std::set<std::string> digests;
  int i = 0;
  try {
    for (const YAML::Node& n : root["tokens"]) {
      ++i;
      if (out.size() >= kMaxTokens) {
        return absl::InvalidArgumentError(absl::StrCat("more than ", kMaxTokens, " tokens"));
      }
      const std::string where = absl::StrCat("tokens entry ", i);
      if (!n.IsMap()) return absl::InvalidArgumentError(where + " is not a map");
      TokenEntry e;
      e.name = n["name"] ? n["name"].as<std::string>() : absl::StrCat("token", i);
      const std::string role = n["role"] ? n["role"].as<std::string>() : "";
      if (!ParseRole(role, &e.role)) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, " ('", e.name, "'): role '", role,
                         "'; give admin, submitter, viewer or worker"));
      }
      if (n["projects"]) {
        if (!n["projects"].IsSequence()) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, " ('", e.name, "'): projects is a list, e.g. [sh010, feature]"));
        }
        for (const YAML::Node& p : n["projects"]) e.projects.insert(p.as<std::string>());
      }
      if (e.role == Role::kSubmitter && e.projects.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, " ('", e.name, "'): a submitter needs projects: [...]"));
      }
      if (n["token"]) {
        const std::string token = n["token"].as<std::string>();
        if (token.size() < 16 || token.size() > kMaxTokenLength) {
          return absl::InvalidArgumentError(absl::StrCat(
              where, " ('", e.name, "'): a token has 16 to ", kMaxTokenLength, " characters"));
        }
        e.sha256 = Sha256(token);
      } else if (n["sha256"]) {
        if (!FromHex(n["sha256"].as<std::string>(), &e.sha256)) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, " ('", e.name, "'): sha256 is 64 hex digits"));
        }
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat(where, " ('", e.name, "'): give token: or sha256:"));
      }
      if (!digests.insert(e.sha256).second) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, " ('", e.name, "'): the same token is given twice"));
      }
      out.push_back(std::move(e));
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("tokens entry ", i, ": ", e.what()));
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Authenticator>> Authenticator::Create(
    const std::string& tokens_file) {
  std::unique_ptr<Authenticator> a(new Authenticator(tokens_file));
  if (a->enabled()) {
    absl::MutexLock lock(&a->mu_);
    RETURN_IF_ERROR(a->LoadLocked(true));
  }
  return a;
}

absl::Status Authenticator::LoadLocked(bool initial) {
  struct stat st {};
  if (::stat(tokens_file_.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("tokens file '", tokens_file_, "' cannot be read"));
  }
  last_stat_ = st;
  ASSIGN_OR_RETURN(std::string text, common::ReadSmallFile(tokens_file_, "tokens file"));
  auto parsed = ParseTokens(text);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokens file '", tokens_file_, "': ", parsed.status().message()));
  }
  entries_ = std::move(*parsed);
  spdlog::info("tokens {} file={} entries={}", initial ? "loaded" : "reloaded", tokens_file_,
               entries_.size());
  return absl::OkStatus();
}

void Authenticator::MaybeReloadLocked() {
  const auto now = std::chrono::steady_clock::now();
  if (now - last_check_ < std::chrono::seconds(1)) return;
  last_check_ = now;
  struct stat st {};
  if (::stat(tokens_file_.c_str(), &st) != 0 || SameStat(st, last_stat_)) return;
  absl::Status s = LoadLocked(false);
  if (!s.ok()) {
    last_stat_ = st;  // logged once per change
    spdlog::error("{}; the tokens loaded before stay in force", std::string(s.message()));
  }
}

void Authenticator::AddToken(const std::string& name, Role role, const std::string& token) {
  absl::MutexLock lock(&mu_);
  TokenEntry e;
  e.name = name;
  e.role = role;
  e.sha256 = Sha256(token);
  extra_.push_back(std::move(e));
}

absl::StatusOr<Principal> Authenticator::Authenticate(const grpc::ServerContextBase& ctx) {
  Principal p;
  if (auto auth = ctx.auth_context()) {
    p.has_client_cert = auth->IsPeerAuthenticated();
  }
  if (!enabled()) {
    p.name = "anonymous";
    p.role = Role::kAdmin;
    return p;
  }
  const auto& md = ctx.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) {
    return absl::UnauthenticatedError(
        "no token: send 'authorization: Bearer <token>' (reelctl --token or "
        "REELFARM_TOKEN; worker --token-file)");
  }
  const absl::string_view value(it->second.data(), it->second.size());
  if (!absl::StartsWith(value, "Bearer ") || value.size() > kMaxTokenLength + 7) {
    return absl::UnauthenticatedError("the authorization metadata is not 'Bearer <token>'");
  }
  absl::StatusOr<Principal> known = AuthenticateToken(value.substr(7));
  if (known.ok()) known->has_client_cert = p.has_client_cert;
  return known;
}

absl::StatusOr<Principal> Authenticator::AuthenticateToken(absl::string_view token) {
  Principal p;
  if (!enabled()) {
    p.name = "anonymous";
    p.role = Role::kAdmin;
    return p;
  }
  if (token.size() > kMaxTokenLength) {
    return absl::UnauthenticatedError("the token is not recognised; check it or ask for one");
  }
  const std::string digest = Sha256(token);
  absl::MutexLock lock(&mu_);
  MaybeReloadLocked();
  // Every entry is compared, so the time taken does not say which one matched.
  const TokenEntry* match = nullptr;
  for (const auto* list : {&entries_, &extra_}) {
    for (const TokenEntry& e : *list) {
      if (CRYPTO_memcmp(e.sha256.data(), digest.data(), digest.size()) == 0) match = &e;
    }
  }
  if (match == nullptr) {
    return absl::UnauthenticatedError("the token is not recognised; check it or ask for one");
  }
  p.name = match->name;
  p.role = match->role;
  p.projects = match->projects;
  return p;
}

absl::Status RequireRole(const Principal& p, std::initializer_list<Role> roles,
                         const std::string& what) {
  for (Role r : roles) {
    if (p.role == r) return absl::OkStatus();
  }
  std::string allowed;
  for (Role r : roles) absl::StrAppend(&allowed, allowed.empty() ? "" : ", ", RoleName(r));
  return absl::PermissionDeniedError(absl::StrCat("'", p.name, "' (", RoleName(p.role),
                                                  ") may not ", what, "; that needs ", allowed));
}

}  // namespace reelfarm::server
