#pragma once
// A Clock whose time moves only when a test says so. waitUntil never blocks on real time: a
// deadline in the past returns at once; a deadline in the future waits on the condition
// variable, which advance() notifies, so loops driven by this clock are deterministic.
#include <atomic>
#include <mutex>
#include <set>

#include "agent/core/clock.h"

namespace nodelet::testing {

class SimulatedClock final : public Clock {
 public:
  explicit SimulatedClock(SysTime start = SysTime(std::chrono::seconds(1'700'000'000)))
      : sys_start_(start) {}

  MonoTime monotonicNow() const override { return MonoTime(offset()); }
  SysTime systemNow() const override {
    return sys_start_ + std::chrono::duration_cast<SysTime::duration>(offset());
  }
  void waitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                 MonoTime deadline) override {
    if (monotonicNow() >= deadline) return;
    if (auto_advance_) {  // waits take no real time: the clock jumps to the deadline
      advance(deadline - monotonicNow());
      return;
    }
    {
      std::lock_guard g(mu_);
      waiters_.insert(&cv);
    }
    cv.wait(lock);
    std::lock_guard g(mu_);
    waiters_.erase(&cv);
  }

  // With auto-advance on, every wait moves the clock to its deadline at once: code that backs
  // off or rate-limits runs at full speed, and the test reads the simulated time it took.
  void setAutoAdvance(bool on) { auto_advance_ = on; }

  void advance(Duration d) {
    offset_ns_.fetch_add(d.count());
    std::lock_guard g(mu_);
    for (auto* cv : waiters_) cv->notify_all();
  }

 private:
  Duration offset() const { return Duration(offset_ns_.load()); }
  SysTime sys_start_;
  std::atomic<bool> auto_advance_{false};
  std::atomic<int64_t> offset_ns_{std::chrono::nanoseconds(std::chrono::hours(1)).count()};
  std::mutex mu_;
  std::set<std::condition_variable*> waiters_;
};

}  // namespace nodelet::testing
