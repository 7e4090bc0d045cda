#pragma once
// Time comes only from a Clock. RealClock (real_clock.cc) is the only code allowed to read the
// system clocks or to block on real time; tests use tests/common/simulated_clock.h.
#include <chrono>
#include <condition_variable>
#include <mutex>

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
