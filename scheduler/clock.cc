#include "scheduler/clock.h"

#include <chrono>

namespace reelfarm::scheduler {
namespace {

class SystemClock final : public Clock {
 public:
  int64_t NowMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

}  // namespace

Clock& RealClock() {
  static SystemClock* clock = new SystemClock;
  return *clock;
}

}  // namespace reelfarm::scheduler
