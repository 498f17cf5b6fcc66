#include "server/callback_threads.h"

#include <pthread.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>

#include <grpcpp/client_context.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/channel_arguments.h>
#include <grpcpp/support/slice.h>
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"

namespace reelfarm::server {

namespace {

// gRPC's name for the callback API's threads (src/cpp/common/completion_queue_cc.cc).
constexpr char kCallbackThreadName[] = "nexting_thread";

// Callback threads held by every CallbackThreadHold of the process.
std::atomic<int> g_held{0};

int CountCallbackThreads() {
  namespace fs = std::filesystem;
  int n = 0;
  std::error_code ec;
  for (fs::directory_iterator it("/proc/self/task", ec), end; !ec && it != end; it.increment(ec)) {
    std::ifstream comm(it->path() / "comm");
    std::string name;
    if (std::getline(comm, name) && name == kCallbackThreadName) ++n;
  }
  return n;
}

bool OnCallbackThread() {
  char name[16] = {};
  return pthread_getname_np(pthread_self(), name, sizeof name) == 0 &&
         std::string(name) == kCallbackThreadName;
}

// Takes one of the process's callback threads beyond the first, if one is left.
bool ReserveThread(int callback_threads) {
  int held = g_held.load();
  do {
    if (held + 1 > callback_threads - 1) return false;
  } while (!g_held.compare_exchange_weak(held, held + 1));
  return true;
}

std::string NewToken() {
  std::random_device rd;
  return absl::StrCat(absl::Hex(rd(), absl::kZeroPad8), absl::Hex(rd(), absl::kZeroPad8),
                      absl::Hex(rd(), absl::kZeroPad8), absl::Hex(rd(), absl::kZeroPad8));
}

}  // namespace

CallbackThreadHold::CallbackThreadHold() : token_(NewToken()) {}

CallbackThreadHold::~CallbackThreadHold() { Release(); }

int CallbackThreadHold::Start(grpc::Server* server, absl::Duration wait) {
  const int threads = CountCallbackThreads();
  const int to_hold = threads - 1 - g_held.load();
  {
    absl::MutexLock lock(&mu_);
    callback_threads_ = threads;
    if (to_hold <= 0 || released_) return 0;
    calls_open_ = to_hold;
  }
  channel_ = server->InProcessChannel(grpc::ChannelArguments());
  stub_ = std::make_unique<grpc::GenericStub>(channel_);
  for (int i = 0; i < to_hold; ++i) {
    calls_.push_back(std::make_unique<Call>());
    Call& call = *calls_.back();
    grpc::Slice empty("");  // a message with no bytes (an unset ByteBuffer is none)
    call.request = grpc::ByteBuffer(&empty, 1);
    call.ctx.AddMetadata(kTokenKey, token_);
    stub_->UnaryCall(&call.ctx, kMethod, grpc::StubOptions(), &call.request, &call.response,
                     [this](const grpc::Status&) {
                       absl::MutexLock lock(&mu_);
                       --calls_open_;
                       changed_.SignalAll();
                     });
  }
  absl::MutexLock lock(&mu_);
  const absl::Time deadline = absl::Now() + wait;
  // Every call still open is held (the others were answered: no thread for them).
  while (held_ < calls_open_ && !changed_.WaitWithDeadline(&mu_, deadline)) {
  }
  return held_;
}

bool CallbackThreadHold::Hold(const std::string& token) {
  if (token != token_ || !OnCallbackThread()) return false;
  absl::MutexLock lock(&mu_);
  if (released_ || !ReserveThread(callback_threads_)) return false;
  ++held_;
  changed_.SignalAll();
  while (!released_) changed_.Wait(&mu_);
  --held_;
  g_held.fetch_sub(1);
  changed_.SignalAll();
  return true;
}

void CallbackThreadHold::Release() {
  absl::MutexLock lock(&mu_);
  released_ = true;
  changed_.SignalAll();
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while ((held_ > 0 || calls_open_ > 0) && !changed_.WaitWithDeadline(&mu_, deadline)) {
  }
  if (held_ > 0 || calls_open_ > 0) {
    spdlog::warn("gRPC callback threads: {} still held and {} hold calls open after release", held_,
                 calls_open_);
  }
}

int CallbackThreadHold::callback_threads() const {
  absl::MutexLock lock(&mu_);
  return callback_threads_;
}

}  // namespace reelfarm::server
