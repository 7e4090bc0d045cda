#pragma once
// The pod startup latency SLI as the kubelet measures it (kubelet_pod_start_sli_duration_seconds
// and kubelet_pod_start_total_duration_seconds): from the pod's creationTimestamp to the moment a
// watch delivers the pod with every container running, minus the time spent pulling its images
// (first pull started to last pull finished). Only pods first seen before the node acknowledged
// them (no status.startTime yet) are measured, once each; terminal pods are dropped. Static pods
// never come back from a watch, so this is cluster mode's metric.
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "agent/core/clock.h"
#include "agent/core/metrics.h"
#include "agent/core/pod.h"

namespace nodelet::agent {

class PodStartupTracker {
 public:
  explicit PodStartupTracker(Clock& clock) : clock_(clock) {}

  // The pod as the API server's watch delivered it, now.
  void observedOnWatch(const api::Pod& pod);
  // nodelet computed this status for the pod (before the API server has it).
  void statusUpdated(const std::string& uid, const api::PodStatus& status);
  void imagePullStarted(const std::string& uid);
  void imagePullFinished(const std::string& uid);
  void forget(const std::string& uid);

  struct Histograms {
    metrics::Histogram sli{metrics::kPodStartupBuckets};
    metrics::Histogram total{metrics::kPodStartupBuckets};
  };
  Histograms histograms() const;

 private:
  struct State {
    std::optional<SysTime> first_pull_started;
    std::optional<SysTime> last_pull_finished;
    std::optional<SysTime> running;  // when nodelet first computed "every container running"
    bool recorded{false};
  };

  Clock& clock_;
  mutable std::mutex mu_;
  std::map<std::string, State> pods_;
  Histograms h_;
};

// Every container of the status is running with a start time (the SLI's "started"; a pod with no
// container statuses yet counts as started, as it does for the kubelet).
bool allContainersStarted(const api::PodStatus& status);

}  // namespace nodelet::agent
