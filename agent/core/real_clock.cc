#include "agent/core/clock.h"

namespace nodelet {

MonoTime RealClock::monotonicNow() const { return std::chrono::steady_clock::now(); }
SysTime RealClock::systemNow() const { return std::chrono::system_clock::now(); }

void RealClock::waitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                          MonoTime deadline) {
  cv.wait_until(lock, deadline);
}

RealClock& RealClock::instance() {
  static RealClock clock;
  return clock;
}

}  // namespace nodelet
