#pragma once
// Time comes only from a Clock. RealClock (real_clock.cc) is the only code allowed to read the
// system clocks or to block on real time; tests use tests/common/simulated_clock.h.
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stop_token>

namespace nodelet {

using MonoTime = std::chrono::steady_clock::time_point;
using SysTime = std::chrono::system_clock::time_point;
using Duration = std::chrono::nanoseconds;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual MonoTime monotonicNow() const = 0;
  virtual SysTime systemNow() const = 0;
  // Blocks on `cv` until notified or until `deadline` on this clock has passed. Spurious
  // wake-ups are allowed; callers re-check their predicate. The simulated clock returns at once
  // when the deadline has passed in simulated time, so loops built on it never sleep in tests.
  virtual void waitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                         MonoTime deadline) = 0;

  // Sleeps until `deadline` on this clock, or until `stop` is requested. Returns false when
  // stopped. (Back-off waits, hook sleeps: anything with nothing else to wake it.)
  bool sleepUntil(MonoTime deadline, std::stop_token stop = {}) {
    std::mutex mu;
    std::condition_variable cv;
    std::stop_callback wake(stop, [&] {
      std::lock_guard g(mu);
      cv.notify_all();
    });
    std::unique_lock l(mu);
    while (!stop.stop_requested() && monotonicNow() < deadline) waitUntil(cv, l, deadline);
    return !stop.stop_requested();
  }
};

class RealClock final : public Clock {
 public:
  // nodelet::Clock
  MonoTime monotonicNow() const override;
  SysTime systemNow() const override;
  void waitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                 MonoTime deadline) override;

  static RealClock& instance();
};

}  // namespace nodelet
