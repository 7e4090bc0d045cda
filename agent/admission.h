#pragma once
// The kubelet's pod admission checks that look at the node rather than at other pods
// (lifecycle.predicateAdmitHandler): the pod's kubernetes.io/os label and spec.os, its node
// selector and required node affinity, and (API pods only) the node's NoExecute taints. The
// checks against other pods (resources, the pod limit, host ports) are the Agent's; all of them
// run in the kubelet's order, and the first failure is the one reported.
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/pod.h"

namespace nodelet::agent {

// The node as admission sees it: the API server's Node when there is one, else the Node
// nodelet would register (its labels and registerWithTaints), as the kubelet's initial node.
struct AdmissionNode {
  std::string name;
  std::map<std::string, std::string> labels;
  std::vector<api::Taint> taints;
};

struct AdmissionFailure {
  std::string reason;   // the pod's status.reason and the event's
  std::string message;  // the event's; the status says "Pod was rejected: " + this
};

// PodOSSelectorNodeLabelDoesNotMatch, then PodOSNotSupported: checked before anything else.
// (nodelet runs on Linux only, so the node's label is "linux" whatever the Node says, as the
// kubelet's check assumes its own GOOS.)
std::optional<AdmissionFailure> checkOperatingSystem(const api::Pod& pod);
// NodeAffinity: nodeSelector and requiredDuringSchedulingIgnoredDuringExecution.
std::optional<AdmissionFailure> checkNodeAffinity(const api::Pod& pod, const AdmissionNode& node);
// TaintToleration: a NoExecute taint the pod does not tolerate. Static pods are not checked.
std::optional<AdmissionFailure> checkTaints(const api::Pod& pod, const AdmissionNode& node);

// The scheduling helpers behind them.
bool matchesNodeSelectorTerms(const std::vector<api::NodeSelectorTerm>& terms,
                              const AdmissionNode& node);
bool toleratesTaint(const api::Toleration& t, const api::Taint& taint);

// The Node object's labels and spec.taints.
AdmissionNode admissionNodeFromJson(const std::string& name, const nlohmann::json& node);

}  // namespace nodelet::agent
