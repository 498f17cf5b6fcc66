#include "server/callback_threads.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>

#include <grpc/support/cpu.h>
#include <grpcpp/client_context.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/channel_arguments.h>
#include <grpcpp/support/slice.h>
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

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

// How many callback threads gRPC 1.51 starts (CallbackAlternativeCQ in
// src/cpp/common/completion_queue_cc.cc): half the cores, at least 2 and at most 16.
int ExpectedCallbackThreads() {
  return std::clamp(static_cast<int>(gpr_cpu_num_cores()) / 2, 2, 16);
}

// The callback threads of the process once they have all named themselves: a thread
// gets its name when it starts running, which on a loaded machine can be after the
// server has started. Waits at most `wait` for the count gRPC starts; returns the count
// then (a gRPC that starts more or fewer is counted as it is).
int CountStartedCallbackThreads(absl::Duration wait) {
  const int expected = ExpectedCallbackThreads();
  const absl::Time deadline = absl::Now() + wait;
  int n = CountCallbackThreads();
  while (n < expected && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(2));
    n = CountCallbackThreads();
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
  const int threads = CountStartedCallbackThreads(wait);
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

bool CallbackThreadHold::HoldCall(const grpc::GenericCallbackServerContext& ctx) {
  if (ctx.method() != kMethod) return false;
  const auto& metadata = ctx.client_metadata();
  const auto token = metadata.find(kTokenKey);
  if (token == metadata.end()) return false;
  return Hold(std::string(token->second.data(), token->second.size()));
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
