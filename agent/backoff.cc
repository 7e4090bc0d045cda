#include "agent/backoff.h"

namespace nodelet::agent {

bool Backoff::inBackoffSince(const std::string& key, MonoTime event, MonoTime now) const {
  return remaining(key, event, now) > Duration::zero();
}

Duration Backoff::remaining(const std::string& key, MonoTime event, MonoTime now) const {
  std::lock_guard g(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end() || expired(it->second, now)) return Duration::zero();
  const Duration since = now - event;
  return since < it->second.backoff ? it->second.backoff - since : Duration::zero();
}

void Backoff::next(const std::string& key, MonoTime event) {
  std::lock_guard g(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end() || expired(it->second, event)) {
    entries_[key] = Entry{initial_, event};
    return;
  }
  it->second.backoff = std::min(it->second.backoff * 2, max_);
  it->second.last_update = event;
}

Duration Backoff::current(const std::string& key) const {
  std::lock_guard g(mu_);
  auto it = entries_.find(key);
  return it == entries_.end() ? Duration::zero() : it->second.backoff;
}

void Backoff::reset(const std::string& key) {
  std::lock_guard g(mu_);
  entries_.erase(key);
}

void Backoff::seed(const std::string& key, int32_t restarts, MonoTime last_exit) {
  if (restarts <= 0) return;
  std::lock_guard g(mu_);
  if (entries_.contains(key)) return;
  Duration d = initial_;
  for (int32_t i = 1; i < restarts && d < max_; ++i) d *= 2;
  entries_[key] = Entry{std::min(d, max_), last_exit};
}

void Backoff::gc(MonoTime now) {
  std::lock_guard g(mu_);
  std::erase_if(entries_, [&](const auto& kv) { return expired(kv.second, now); });
}

}  // namespace nodelet::agent
