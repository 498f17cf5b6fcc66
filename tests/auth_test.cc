// Tokens files, roles and the authenticator, without processes (a ServerContext with
// metadata set through gRPC's test spouse).
#include <openssl/sha.h>
#include <catch2/catch.hpp>

#include <fstream>
#include <thread>

#include <grpcpp/server_context.h>
#include <grpcpp/test/server_context_test_spouse.h>

#include "server/auth.h"
#include "tests/testing/fixtures.h"

namespace reelfarm::server {
namespace {

std::string HexSha256(const std::string& text) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), md);
  std::string hex;
  static const char* kHex = "0123456789abcdef";
  for (unsigned char b : md) {
    hex.push_back(kHex[b >> 4]);
    hex.push_back(kHex[b & 15]);
  }
  return hex;
}

absl::StatusOr<Principal> As(Authenticator& auth, const std::string& authorization) {
  grpc::ServerContext ctx;
  grpc::testing::ServerContextTestSpouse spouse(&ctx);
  if (!authorization.empty()) spouse.AddClientMetadata("authorization", authorization);
  return auth.Authenticate(ctx);
}

}  // namespace

TEST_CASE("tokens files: roles, projects, hashed tokens and their errors", "[unit][auth]") {
  auto ok = ParseTokens(
      "tokens:\n"
      "  - {name: a, role: admin, token: aaaaaaaaaaaaaaaa}\n"
      "  - {name: s, role: submitter, projects: [x, y], token: ssssssssssssssss}\n"
      "  - {name: w, role: worker, sha256: " +
      HexSha256("wwwwwwwwwwwwwwww") + "}\n");
  REQUIRE(ok.ok());
  REQUIRE(ok->size() == 3);
  CHECK((*ok)[1].role == Role::kSubmitter);
  CHECK((*ok)[1].projects == std::set<std::string>{"x", "y"});

  const auto error = [](const std::string& text) {
    auto r = ParseTokens(text);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
    return std::string(r.status().message());
  };
  CHECK(error("tokens: [{name: a, role: emperor, token: aaaaaaaaaaaaaaaa}]").find("emperor") !=
        std::string::npos);
  CHECK(error("tokens: [{name: s, role: submitter, token: ssssssssssssssss}]")
            .find("needs projects") != std::string::npos);
  CHECK(error("tokens: [{name: a, role: admin, token: short}]").find("16 to") != std::string::npos);
  CHECK(error("tokens: [{name: a, role: admin}]").find("token: or sha256:") != std::string::npos);
  CHECK(error("tokens: [{name: a, role: admin, sha256: xyz}]").find("64 hex") != std::string::npos);
  CHECK(error("tokens:\n - {role: admin, token: aaaaaaaaaaaaaaaa}\n"
              " - {role: viewer, token: aaaaaaaaaaaaaaaa}\n")
            .find("twice") != std::string::npos);
  CHECK(error("tokens: {a: 1}").find("list") != std::string::npos);
  CHECK(error("[").find("not YAML") != std::string::npos);
  CHECK(error("tokens: [{name: [1, 2], role: admin, token: aaaaaaaaaaaaaaaa}]").size() > 0);
}

TEST_CASE("principals: what each role may see and control", "[unit][auth]") {
  Principal sub{"s", Role::kSubmitter, {"x"}};
  CHECK(sub.CanSee("x"));
  CHECK(sub.CanControl("x"));
  CHECK_FALSE(sub.CanSee("y"));
  CHECK_FALSE(sub.CanControl("y"));
  Principal viewer{"v", Role::kViewer, {}};
  CHECK(viewer.CanSee("y"));
  CHECK_FALSE(viewer.CanControl("y"));
  Principal worker{"w", Role::kWorker, {}};
  CHECK_FALSE(worker.CanSee("y"));
  CHECK_FALSE(worker.CanControl("y"));
  Principal admin{"a", Role::kAdmin, {}};
  CHECK(admin.CanControl("y"));
  CHECK(RequireRole(viewer, {Role::kAdmin, Role::kSubmitter}, "cancel jobs").code() ==
        absl::StatusCode::kPermissionDenied);
  CHECK(RequireRole(admin, {Role::kAdmin}, "drain workers").ok());
}

TEST_CASE("the authenticator: bearer tokens, unknown ones, reloads", "[unit][auth]") {
  testing::TempDir dir;
  const auto path = dir.path() / "tokens.yaml";
  std::ofstream(path) << "tokens: [{name: alice, role: submitter, projects: [x], "
                         "token: alice-0123456789abcdef}]\n";
  auto auth = Authenticator::Create(path.string());
  REQUIRE(auth.ok());
  auto alice = As(**auth, "Bearer alice-0123456789abcdef");
  REQUIRE(alice.ok());
  CHECK(alice->name == "alice");
  CHECK(alice->projects == std::set<std::string>{"x"});
  CHECK(As(**auth, "").status().code() == absl::StatusCode::kUnauthenticated);
  CHECK(As(**auth, "Bearer nope").status().code() == absl::StatusCode::kUnauthenticated);
  CHECK(As(**auth, "alice-0123456789abcdef").status().code() == absl::StatusCode::kUnauthenticated);
  CHECK(As(**auth, "Bearer alice-0123456789abcdeF").status().code() ==
        absl::StatusCode::kUnauthenticated);
  // A token added in the process (local workers).
  (*auth)->AddToken("local", Role::kWorker, "local-0123456789abcdef");
  CHECK(As(**auth, "Bearer local-0123456789abcdef")->role == Role::kWorker);

  // Changed on disk: read again (at most once a second).
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  std::ofstream(path) << "tokens: [{name: bob, role: viewer, token: bob-0123456789abcdef}]\n";
  CHECK(As(**auth, "Bearer bob-0123456789abcdef")->name == "bob");
  CHECK(As(**auth, "Bearer alice-0123456789abcdef").status().code() ==
        absl::StatusCode::kUnauthenticated);
  // Broken on disk: the tokens before stay.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  std::ofstream(path) << "tokens: [{name: bob";
  CHECK(As(**auth, "Bearer bob-0123456789abcdef").ok());

  // Without a tokens file every caller is an admin.
  auto open = Authenticator::Create("");
  REQUIRE(open.ok());
  CHECK(As(**open, "")->role == Role::kAdmin);
  CHECK(Authenticator::Create((dir.path() / "missing.yaml").string()).status().code() ==
        absl::StatusCode::kNotFound);
}

}  // namespace reelfarm::server
