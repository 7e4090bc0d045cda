#pragma once
// The Node object as the kubelet builds it: the initial object for registration and the status
// it reports (capacity/allocatable, conditions with the kubelet's reasons and messages,
// addresses, nodeInfo, daemonEndpoints, images). Pure functions of NodeFacts and the time, so
// every setter is unit-tested; gathering the facts is the agent's job.
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "agent/core/clock.h"
#include "agent/core/pod.h"

namespace nodelet::kube {

struct NodeImage {
  std::vector<std::string> names;  // repo digests, then repo tags
  uint64_t size_bytes{0};
};

struct NodeFacts {
  std::string name;
  std::map<std::string, std::string> capacity;  // cpu, memory, pods, ephemeral-storage, hugepages-*
  std::map<std::string, std::string>
      allocatable;  // capacity minus reservations and eviction thresholds
  std::vector<std::pair<std::string, std::string>> addresses;  // (type, address)
  std::map<std::string, std::string> node_info;                // nodeInfo's JSON keys
  int32_t kubelet_port{10250};
  std::vector<NodeImage> images;
  // Why the node is not ready ("" = ready): the runtime's or its network's condition, as the
  // kubelet words it.
  std::string not_ready;
  bool memory_pressure{false};
  bool disk_pressure{false};
  bool pid_pressure{false};
};

using Taint = api::Taint;

// The Node for POST /api/v1/nodes: labels, the attach/detach annotation, taints, full status.
nlohmann::json initialNode(const NodeFacts& facts, const std::map<std::string, std::string>& labels,
                           const std::vector<Taint>& taints, SysTime now);

// The status to report now. Conditions keep their lastTransitionTime from `previous` (the
// server's current status) unless their status flips; lastHeartbeatTime is `now`.
nlohmann::json nodeStatus(const NodeFacts& facts, const nlohmann::json& previous, SysTime now);

// Whether two statuses differ in anything but heartbeat times (the kubelet's test for sending a
// status before nodeStatusReportFrequency has passed).
bool statusChanged(const nlohmann::json& old_status, const nlohmann::json& new_status);

// The Ready condition's status ("True"/"False") in a status, "" if absent.
std::string readyStatus(const nlohmann::json& status);

// "containerd://1.6.20" from CRI's runtime name and version ("1.6.20~ds1"): the kubelet keeps
// only the leading numeric version when the string is not strict semver.
std::string runtimeVersionString(const std::string& runtime_name, const std::string& version);

}  // namespace nodelet::kube
