// CallbackThreadHold: serves every gRPC call of the process from one of gRPC's callback
// threads by keeping the others busy.
//
// gRPC 1.51 runs the callback API's handlers (all of reelfarm's services, health
// included) on a pool of "nexting" threads, at least two, that all poll the process's
// one epoll set. The thread that polls hands the poller's role to another on every event
// (a futex wake), and a reply's completion wakes the other back (an eventfd write), so a
// request waits for one or two wakes of another thread; on a virtual machine a wake of
// an idle vCPU costs tens of microseconds. One thread that polls, runs the handler and
// answers needs none: a durable unary call answers 60-120 µs sooner that way
// (benchmarks/grpc_model_bench.cc), a SubmitJob 8-16 % sooner, and the dispatch rates
// are unchanged (benchmarks/: submit, dispatch).
//
// So the server makes one call to itself (in process, with a token only it knows) per
// callback thread beyond the first, to kMethod; its handler runs on a callback
// thread and keeps it until Release(). Holds are counted across the process: however
// many servers a process runs, one callback thread is always left to serve (and to run
// the callbacks of the process's clients). A call to kMethod that is not one of the
// holds (no token, or not on a callback thread, or none left to hold) is answered at
// once as an unknown method.
//
// Only for a server whose handlers wait on nothing slower than a local sync (the SQLite
// store): with PostgreSQL, a handler's commit waits on the network, and one held-up
// thread would hold up every call, so gRPC's pool is left as it is.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <grpcpp/client_context.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/server.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace reelfarm::server {

class CallbackThreadHold {
 public:
  static constexpr char kMethod[] = "/reelfarm.internal.v1.Serving/HoldCallbackThread";
  static constexpr char kTokenKey[] = "x-reelfarm-hold-token";

  CallbackThreadHold();
  ~CallbackThreadHold();  // Release()
  CallbackThreadHold(const CallbackThreadHold&) = delete;
  CallbackThreadHold& operator=(const CallbackThreadHold&) = delete;

  // Makes the hold calls to `server` (started, and serving kMethod through a callback
  // generic service that calls HoldCall()), and waits until they are held or answered,
  // at most `wait`. Returns how many threads it holds.
  int Start(grpc::Server* server, absl::Duration wait);
  // Called by the generic service for each call it gets: when the call is one of this
  // hold's (kMethod, with its token), keeps the calling thread until Release() and
  // returns true (answer the call OK then); otherwise returns false at once.
  bool HoldCall(const grpc::GenericCallbackServerContext& ctx);
  // Lets the held threads go and waits until the hold calls have ended.
  void Release();

  // gRPC's callback threads in this process ("nexting_thread"), counted at Start().
  int callback_threads() const;

 private:
  struct Call {
    grpc::ClientContext ctx;
    grpc::ByteBuffer request;
    grpc::ByteBuffer response;
  };

  // HoldCall() for a call to kMethod that was sent `token`.
  bool Hold(const std::string& token);

  const std::string token_;
  // The hold calls (Start() only; they live until Release() has seen them end).
  std::vector<std::unique_ptr<Call>> calls_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<grpc::GenericStub> stub_;
  mutable absl::Mutex mu_;
  absl::CondVar changed_;
  int held_ ABSL_GUARDED_BY(mu_) = 0;
  int calls_open_ ABSL_GUARDED_BY(mu_) = 0;  // hold calls made and not yet answered
  int callback_threads_ ABSL_GUARDED_BY(mu_) = 0;
  bool released_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace reelfarm::server
