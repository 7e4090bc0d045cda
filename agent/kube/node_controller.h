#pragma once
// Keeps this node's Node object and its Lease in the API server, as the kubelet does:
//   - registration: POST the full Node; on 409 AlreadyExists GET it and reconcile the labels;
//     retried with back-off (100 ms doubling to 7 s) until it succeeds;
//   - the Lease (coordination.k8s.io/v1, kube-node-lease/<node>): created right after
//     registration with an owner reference to the Node, renewed every leaseDuration/4 with a
//     little jitter, GET/POST/PUT with optimistic concurrency (409: GET and retry);
//   - status: computed every nodeStatusUpdateFrequency, sent as a strategic-merge PATCH to
//     nodes/<name>/status when something but heartbeats changed or nodeStatusReportFrequency
//     passed; NodeReady/NodeNotReady events on Ready flips.
// When the API server is away, everything keeps being computed and is sent when it returns.
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "agent/core/clock.h"
#include "agent/kube/client.h"
#include "agent/kube/node_status.h"

namespace nodelet::kube {

struct NodeControllerOptions {
  std::string node_name;
  std::map<std::string, std::string> labels;  // registered with the Node
  std::vector<Taint> taints;                  // registerWithTaints
  Duration status_update_frequency{std::chrono::seconds(10)};
  Duration status_report_frequency{std::chrono::minutes(5)};
  int32_t lease_duration_seconds{40};
  uint64_t jitter_seed{0};
  // Called (from the controller's thread) when the Node's spec.podCIDR is first seen or changes:
  // the network layer builds pod networking from it.
  std::function<void(const std::string&)> on_pod_cidr;
};

class NodeController {
 public:
  using FactsFn = std::function<NodeFacts()>;
  // (type, reason, message) of a node event: Starting, NodeReady, NodeNotReady, NodeHas...
  using EventFn = std::function<void(const std::string&, const std::string&, const std::string&)>;

  NodeController(Client& client, Clock& clock, NodeControllerOptions options, FactsFn facts,
                 EventFn events);

  // Registers, then keeps status and lease fresh until `stop`.
  void run(std::stop_token stop);
  // Recompute the status now (e.g. the runtime's readiness changed).
  void poke();
  bool registered() const;
  // The Node as the API server last returned it (null before registration).
  nlohmann::json node() const;
  // Reads the Node from the API server now; what was last seen when that fails.
  nlohmann::json refreshNode();
  std::string nodeUid() const;

  // Single steps, for tests and for run().
  Status registerNode();
  Status renewLease();
  // Returns whether a PATCH was sent.
  Result<bool> updateStatus(bool force);

 private:
  Duration jittered(Duration d, double fraction);
  void emitTransitions();
  void checkPodCidr();
  void refreshForPodCidr();

  Client& client_;
  Clock& clock_;
  NodeControllerOptions o_;
  FactsFn facts_;
  EventFn events_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool poked_{false};
  nlohmann::json node_;   // the server's copy
  nlohmann::json lease_;  // the server's copy
  std::optional<MonoTime> last_report_;
  Duration report_interval_{0};
  std::map<std::string, std::string> last_conditions_;  // type -> status last announced
  std::string pod_cidr_;
  uint64_t rng_;
};

}  // namespace nodelet::kube
