#include "agent/pod_startup.h"

#include "agent/core/log.h"

namespace nodelet::agent {

bool allContainersStarted(const api::PodStatus& status) {
  for (const auto& c : status.container_statuses)
    if (!c.state.running || !c.state.running->started_at) return false;
  return true;
}

void PodStartupTracker::observedOnWatch(const api::Pod& pod) {
  const SysTime now = clock_.systemNow();
  std::lock_guard g(mu_);
  const std::string& uid = pod.metadata.uid;
  if (pod.status.phase == "Succeeded" || pod.status.phase == "Failed") {
    pods_.erase(uid);
    return;
  }
  auto it = pods_.find(uid);
  if (it == pods_.end()) {
    // Only pods the node had not acknowledged yet: their whole start is ours to measure.
    if (!pod.status.start_time) pods_.emplace(uid, State{});
    return;
  }
  State& s = it->second;
  if (!s.running || s.recorded || !allContainersStarted(pod.status)) return;
  if (!pod.metadata.creation_timestamp) return;
  const double total =
      std::chrono::duration<double>(now - *pod.metadata.creation_timestamp).count();
  double pulling = 0;
  if (s.first_pull_started && s.last_pull_finished)
    pulling = std::chrono::duration<double>(*s.last_pull_finished - *s.first_pull_started).count();
  h_.sli.observeSeconds(total - pulling);
  h_.total.observeSeconds(total);
  s.recorded = true;
  NODELET_LOG(debug, Agent, "pod {}: started in {:.3f} s ({:.3f} s without image pulls)",
              pod.fullName(), total, total - pulling);
}

void PodStartupTracker::statusUpdated(const std::string& uid, const api::PodStatus& status) {
  const SysTime now = clock_.systemNow();
  std::lock_guard g(mu_);
  auto it = pods_.find(uid);
  if (it == pods_.end() || it->second.recorded || it->second.running) return;
  if (allContainersStarted(status)) it->second.running = now;
}

void PodStartupTracker::imagePullStarted(const std::string& uid) {
  const SysTime now = clock_.systemNow();
  std::lock_guard g(mu_);
  auto it = pods_.find(uid);
  if (it != pods_.end() && !it->second.first_pull_started) it->second.first_pull_started = now;
}

void PodStartupTracker::imagePullFinished(const std::string& uid) {
  const SysTime now = clock_.systemNow();
  std::lock_guard g(mu_);
  auto it = pods_.find(uid);
  if (it != pods_.end()) it->second.last_pull_finished = now;
}

void PodStartupTracker::forget(const std::string& uid) {
  std::lock_guard g(mu_);
  pods_.erase(uid);
}

PodStartupTracker::Histograms PodStartupTracker::histograms() const {
  std::lock_guard g(mu_);
  return h_;
}

}  // namespace nodelet::agent
