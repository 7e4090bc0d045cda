#pragma once
// Crash-loop and image-pull back-off, with the kubelet's rules (flowcontrol.Backoff): the first
// restart is immediate; each further one waits twice as long (10 s, 20 s, ... 300 s); an entry
// untouched for twice the maximum (10 min) starts again from the beginning. Pure: time is passed
// in, so every rule is testable without a clock.
#include <map>
#include <mutex>
#include <string>

#include "agent/core/clock.h"

namespace nodelet::agent {

class Backoff {
 public:
  Backoff(Duration initial, Duration max) : initial_(initial), max_(max) {}

  // Whether `key` is still backing off from an event (a container's exit) at `event`.
  bool inBackoffSince(const std::string& key, MonoTime event, MonoTime now) const;
  // Time left until `key` may be retried after `event` (zero when it may be retried now).
  Duration remaining(const std::string& key, MonoTime event, MonoTime now) const;
  // Records a retry for an event at `event`: the next wait doubles, up to the maximum.
  void next(const std::string& key, MonoTime event);
  Duration current(const std::string& key) const;
  void reset(const std::string& key);
  // Re-creates an entry after a restart of nodelet, from what the runtime still shows (the
  // restart count and the last exit), unless the key already has one.
  void seed(const std::string& key, int32_t restarts, MonoTime last_exit);
  // Drops entries idle for more than twice the maximum.
  void gc(MonoTime now);

 private:
  struct Entry {
    Duration backoff;
    MonoTime last_update;
  };
  bool expired(const Entry& e, MonoTime now) const { return now - e.last_update > 2 * max_; }

  Duration initial_;
  Duration max_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;
};

}  // namespace nodelet::agent
