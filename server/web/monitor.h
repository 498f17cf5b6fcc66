// The farm monitor: the web front end of reelfarm-server (--web-listen). It serves
// server-rendered pages (jobs, job, wedge contact sheet, workers), Server-Sent Events
// for live progress, thumbnails of published outputs, and the actions of the token
// roles (cancel, pause, resume, retry, drain). It is a second front end beside gRPC
// and goes through the same service: every read and every change is a JobService call
// on the server's in-process channel, carrying the signed-in user's token, so
// authentication, project scopes and checks are the ones gRPC clients get.
//
// Threads: cpp-httplib serves each connection on a pool of `threads`; an open event
// stream holds one thread for as long as the page is open, so at most threads - 8 event
// streams are served at once (more get 503 and the browser retries). One poller thread
// feeds the jobs page's streams from ListJobs; a job page's stream is a WatchJob call.
#pragma once

#include <memory>
#include <string>

#include <grpcpp/channel.h>

#include "absl/status/statusor.h"
#include "common/storage.h"
#include "server/auth.h"

namespace reelfarm::server::web {

struct WebOptions {
  std::string listen = "127.0.0.1:7780";  // HOST:PORT; port 0 picks a free one
  // HTTPS with this PEM certificate and key (the gRPC port's); plaintext when empty.
  std::string cert_file;
  std::string key_file;
  int threads = 128;      // HTTP threads; each open event stream holds one
  std::string cache_dir;  // thumbnails (made when needed)
  int poll_ms = 500;      // how often the jobs page's streams are fed
};

class WebMonitor {
 public:
  // Listens and serves until Stop(). `auth` and `storage` are borrowed and must outlive
  // this; `channel` reaches the server's JobService.
  static absl::StatusOr<std::unique_ptr<WebMonitor>> Start(const WebOptions& options,
                                                           std::shared_ptr<grpc::Channel> channel,
                                                           Authenticator* auth,
                                                           const common::Storage* storage);
  virtual ~WebMonitor() = default;
  WebMonitor(const WebMonitor&) = delete;
  WebMonitor& operator=(const WebMonitor&) = delete;

  virtual int port() const = 0;
  // "http://HOST:PORT" (or https).
  virtual std::string url() const = 0;
  // Ends the event streams and stops serving; waits for the threads. Idempotent.
  virtual void Stop() = 0;

 protected:
  WebMonitor() = default;
};

}  // namespace reelfarm::server::web
