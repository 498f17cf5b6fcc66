// LD_PRELOAD shim: makes the first CONNECT_ENOENT (default 1) TCP connects of a process
// fail with errno 2 (ENOENT) after the real connect ran, as gRPC 1.51 sometimes reads
// them (grpc/grpc#35064: errno read a few calls after a non-blocking connect that was
// in progress). The connection itself proceeds in the kernel; the caller drops it.
// UDP connects (gRPC's address sorting) and other families are left alone.
#include <dlfcn.h>
#include <errno.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdlib>

namespace {

using ConnectFn = int (*)(int, const struct sockaddr*, socklen_t);

std::atomic<int> left{-1};  // -1: not read from the environment yet

bool TakeOne() {
  int n = left.load();
  if (n < 0) {
    const char* env = std::getenv("CONNECT_ENOENT");
    int wanted = env != nullptr ? std::atoi(env) : 1;
    left.compare_exchange_strong(n, wanted < 0 ? 0 : wanted);
    n = left.load();
  }
  while (n > 0) {
    if (left.compare_exchange_weak(n, n - 1)) return true;
  }
  return false;
}

}  // namespace

extern "C" int connect(int fd, const struct sockaddr* addr, socklen_t len) {
  static const auto real = reinterpret_cast<ConnectFn>(dlsym(RTLD_NEXT, "connect"));
  const int rc = real(fd, addr, len);
  int type = 0;
  socklen_t type_len = sizeof(type);
  if (addr != nullptr && (addr->sa_family == AF_INET || addr->sa_family == AF_INET6) &&
      getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_len) == 0 && type == SOCK_STREAM &&
      TakeOne()) {
    errno = ENOENT;
    return -1;
  }
  return rc;
}
