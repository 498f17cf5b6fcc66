// Transport security shared by the server, the workers and reelctl: TLS credentials
// from PEM files (mutual TLS when a client certificate is given), plaintext only when
// asked for, and the bearer token every client call carries.
#pragma once

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>

#include "common/status.h"

namespace reelfarm::common {

struct ServerTlsOptions {
  std::string cert_file;  // PEM certificate chain of the server
  std::string key_file;   // PEM private key of the server
  // PEM CAs that sign client certificates (mutual TLS). A client that presents a
  // certificate must present one these CAs signed; presenting one is optional unless
  // `require_client_cert` (the WorkerService can still demand one, see AuthPolicy).
  std::string client_ca_file;
  bool require_client_cert = false;
  bool insecure = false;  // plaintext; the caller logs a warning
};

// TLS server credentials, or plaintext when `insecure`. INVALID_ARGUMENT when neither
// a certificate and key nor `insecure` are given; NOT_FOUND naming an unreadable file.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerTlsOptions& options);

struct ClientTlsOptions {
  std::string ca_file;    // PEM CAs trusted for the server (default: the system's)
  std::string cert_file;  // client certificate (mutual TLS), with key_file
  std::string key_file;
  std::string server_name;  // name to check in the server's certificate (default: host)
  bool insecure = false;    // plaintext
};

// A channel to `target` with TLS (or plaintext when `insecure`) whose every call sends
// "authorization: Bearer <token>" when `token` is not empty.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& target,
                                                           const ClientTlsOptions& tls,
                                                           const std::string& token,
                                                           grpc::ChannelArguments args = {});

// Whether a call failed on a connection that did not fail: gRPC 1.51 (Debian 12's)
// reads errno a few calls after a non-blocking TCP connect, so an attempt that was
// still in progress now and then reads as failed with errno 2 (grpc/grpc#35064):
// UNAVAILABLE "failed to connect to all addresses; last error: UNKNOWN:
// ipv4:127.0.0.1:7700: No such file or directory". A TCP connect never fails with
// ENOENT, so a client may call again once, waiting for the channel (wait_for_ready):
// nothing reached the server. A refused or unreachable server reads otherwise.
bool IsSpuriousConnectFailure(const grpc::Status& st);

// The whole of a small file (certificates, keys, tokens); `what` names it in errors.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path, const std::string& what);

// A token read from `path` (surrounding whitespace removed).
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

}  // namespace reelfarm::common
