#pragma once
// The pure half of a pod sync: given the pod as wanted and as the runtime has it, decide what to
// do (the kubelet's computePodActions). No I/O, no clock reads: time and back-off state are
// inputs, so every rule is table-tested. RuntimeManager::syncPod carries the actions out.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/backoff.h"
#include "agent/core/pod.h"
#include "agent/runtime_pod.h"

namespace nodelet::agent {

struct ContainerToKill {
  std::string id;
  std::string name;
  std::string reason;  // for the Killing event
  std::string message;
  std::optional<int64_t> grace_seconds;  // a probe's terminationGracePeriodSeconds
  bool operator==(const ContainerToKill&) const = default;
};

struct Waiting {
  std::string reason;  // CrashLoopBackOff, PodInitializing, ...
  std::string message;
  bool operator==(const Waiting&) const = default;
};

struct PodActions {
  bool kill_pod{false};  // stop every container and the sandbox first (sandbox changed)
  bool create_sandbox{false};
  std::string sandbox_id;                        // the sandbox to use when not creating one
  uint32_t attempt{0};                           // attempt of the new sandbox
  std::vector<std::string> init_to_start;        // in order
  std::vector<std::string> containers_to_start;  // app containers
  std::vector<std::string> ephemeral_to_start;   // never run yet (they never restart)
  std::vector<ContainerToKill> containers_to_kill;
  std::map<std::string, Waiting> waiting;  // why a container is not running now
  std::optional<Duration> requeue_after;   // when to look again (back-off ending)
  // The pod has run to completion (restartPolicy Never/OnFailure): nothing will start again.
  bool pod_done{false};
  bool operator==(const PodActions&) const = default;
};

struct Unhealthy {
  std::string message;                   // "Container app failed liveness probe, will be restarted"
  std::optional<int64_t> grace_seconds;  // the probe's terminationGracePeriodSeconds, if set
  bool operator==(const Unhealthy&) const = default;
};

struct PlanContext {
  MonoTime now;
  SysTime now_system;
  const Backoff* backoff{nullptr};
  // Running containers a liveness or startup probe failed (by container id).
  const std::map<std::string, Unhealthy>* unhealthy{nullptr};
};

PodActions computePodActions(const api::Pod& pod, const PodRuntimeStatus& status,
                             const PlanContext& ctx);

// Back-off key of one container of one pod (the kubelet's stable key, hash included so a new
// spec starts a fresh back-off).
std::string backoffKey(const api::Pod& pod, const api::Container& c);
// A CRI timestamp (ns since the epoch) on the monotonic clock, given both clocks' "now".
MonoTime toMonotonic(int64_t unix_ns, MonoTime now, SysTime now_system);
// Whether a container that exited with `exit_code` should run again under `restart_policy`.
bool shouldRestart(const std::string& restart_policy, int32_t exit_code);

}  // namespace nodelet::agent
