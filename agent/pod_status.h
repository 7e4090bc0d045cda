#pragma once
// The pod's status as the kubelet computes it (generateAPIPodStatus / getPhase): phase,
// conditions, container states with the kubelet's reasons, restart counts, IPs, start time and
// QoS class. Pure: everything it needs is passed in.
#include <map>
#include <string>

#include "agent/core/pod.h"
#include "agent/planner.h"
#include "agent/runtime_pod.h"

namespace nodelet::agent {

struct StatusInput {
  const api::Pod* pod{nullptr};
  const PodRuntimeStatus* runtime{nullptr};
  // Why containers are not running (from the last sync): CrashLoopBackOff, ErrImagePull, ...
  const std::map<std::string, Waiting>* waiting{nullptr};
  const api::PodStatus* previous{nullptr};  // transition times and start time carry over
  std::string runtime_name{"containerd"};   // containerID prefix: containerd://<id>
  std::string host_ip;
  SysTime now;
  // Readiness per container name (probes); absent = ready when running.
  const std::map<std::string, bool>* readiness{nullptr};
  // Started per container name (startup probes); absent = started when running.
  const std::map<std::string, bool>* started{nullptr};
  // The pod was told to terminate (deleted) and nothing of it runs any more: its phase is
  // final (Succeeded when every container exited 0, else Failed), whatever its restart policy.
  bool pod_terminal{false};
};

api::PodStatus computePodStatus(const StatusInput& in);
std::string qosClass(const api::PodSpec& spec);
// Whether every regular init container has completed in the current sandbox.
bool initDone(const api::Pod& pod, const PodRuntimeStatus& rt);

}  // namespace nodelet::agent
