// NameThread: names the calling thread as `top -H`, `ps -T`, gdb and perf show it.
//
// The farm's own threads are named "rf-..." (the kernel keeps 15 bytes), so that an
// operator looking at a busy server or worker can tell the dispatcher from the
// committer, and a decoder from an encoder; unnamed threads show the program's name.
#pragma once

#include <pthread.h>

namespace reelfarm::common {

// `name`: at most 15 characters (a longer one is refused by the kernel, and the
// thread keeps its old name).
inline void NameThread(const char* name) { pthread_setname_np(pthread_self(), name); }

}  // namespace reelfarm::common
