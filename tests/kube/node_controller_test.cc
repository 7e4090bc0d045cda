// Node registration, status and Lease against the fake API server, with a simulated clock.
#include "agent/kube/node_controller.h"

#include <gtest/gtest.h>

#include "agent/kube/strategic_patch.h"
#include "tests/kube/fixture.h"

namespace nodelet::kube {
namespace {

using nlohmann::json;

NodeFacts facts() {
  NodeFacts f;
  f.name = "n1";
  f.capacity = {{"cpu", "2"}, {"memory", "24684084Ki"}, {"pods", "110"}};
  f.allocatable = {{"cpu", "2"}, {"memory", "24581684Ki"}, {"pods", "110"}};
  f.addresses = {{"InternalIP", "10.0.0.5"}, {"Hostname", "n1"}};
  f.node_info = {{"kubeletVersion", "v1.32.0"}, {"containerRuntimeVersion", "containerd://1.6.20"}};
  return f;
}

class NodeControllerTest : public ApiFixture {
 protected:
  std::unique_ptr<NodeController> make() {
    NodeControllerOptions o;
    o.node_name = "n1";
    o.labels = {{"kubernetes.io/hostname", "n1"}, {"kubernetes.io/os", "linux"}};
    o.taints = {{"dedicated", "x", "NoSchedule"}};
    return std::make_unique<NodeController>(
        *client_, clock_, o, [this] { return facts_; },
        [this](const std::string&, const std::string& reason, const std::string&) {
          events_.push_back(reason);
        });
  }
  NodeFacts facts_ = facts();
  std::vector<std::string> events_;
};

TEST_F(NodeControllerTest, RegistersTheFullNode) {
  auto nc = make();
  ASSERT_TRUE(nc->registerNode());
  auto node = api_->get("nodes", "", "n1");
  ASSERT_TRUE(node);
  EXPECT_EQ((*node)["metadata"]["labels"]["kubernetes.io/os"], "linux");
  EXPECT_EQ(
      (*node)["metadata"]["annotations"]["volumes.kubernetes.io/controller-managed-attach-detach"],
      "true");
  EXPECT_EQ((*node)["spec"]["taints"][0],
            (json{{"key", "dedicated"}, {"value", "x"}, {"effect", "NoSchedule"}}));
  const json& st = (*node)["status"];
  EXPECT_EQ(st["capacity"]["pods"], "110");
  EXPECT_EQ(st["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
  ASSERT_EQ(st["conditions"].size(), 4u);
  EXPECT_EQ(st["conditions"][3]["type"], "Ready");
  EXPECT_EQ(st["conditions"][3]["reason"], "KubeletReady");
  EXPECT_EQ(st["conditions"][3]["message"], "kubelet is posting ready status");
  EXPECT_EQ(st["conditions"][0]["reason"], "KubeletHasSufficientMemory");
  EXPECT_EQ(nc->nodeUid(), (*node)["metadata"]["uid"]);
  EXPECT_EQ(events_, (std::vector<std::string>{"NodeHasSufficientMemory", "NodeHasNoDiskPressure",
                                               "NodeHasSufficientPID", "NodeReady"}));
}

TEST_F(NodeControllerTest, ThePodCidrTheControllerManagerAssignsIsHandedOn) {
  std::vector<std::string> cidrs;
  NodeControllerOptions o;
  o.node_name = "n1";
  o.on_pod_cidr = [&](const std::string& c) { cidrs.push_back(c); };
  NodeController nc(
      *client_, clock_, o, [this] { return facts_; }, nullptr);
  ASSERT_TRUE(nc.registerNode());
  EXPECT_TRUE(cidrs.empty());
  json node = *api_->get("nodes", "", "n1");
  node["spec"]["podCIDR"] = "10.244.3.0/24";
  api_->put("nodes", "", node);
  ASSERT_TRUE(nc.updateStatus(false));  // nothing to report: the Node is read for its CIDR
  EXPECT_EQ(cidrs, (std::vector<std::string>{"10.244.3.0/24"}));
}

TEST_F(NodeControllerTest, AnExistingNodeIsReconciled) {
  api_->create(
      "nodes", "",
      {{"metadata", {{"name", "n1"}, {"labels", {{"kubernetes.io/os", "windows"}, {"team", "a"}}}}},
       {"status", {{"conditions", json::array()}}}});
  auto nc = make();
  ASSERT_TRUE(nc->registerNode());
  auto node = api_->get("nodes", "", "n1");
  EXPECT_EQ((*node)["metadata"]["labels"]["kubernetes.io/os"], "linux");
  EXPECT_EQ((*node)["metadata"]["labels"]["team"], "a");  // others' labels stay
  EXPECT_EQ(sent("POST", "/api/v1/nodes").back().code, 409);
  // The status follows with the first update.
  auto r = nc->updateStatus(false);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(*r);
  EXPECT_EQ(readyStatus((*api_->get("nodes", "", "n1"))["status"]), "True");
}

TEST_F(NodeControllerTest, StatusIsSentOnlyWhenSomethingChangedOrTheReportIsDue) {
  auto nc = make();
  ASSERT_TRUE(nc->registerNode());
  auto r = nc->updateStatus(false);  // registration carried this very status: nothing to send
  ASSERT_TRUE(r);
  EXPECT_FALSE(*r);
  clock_.advance(std::chrono::seconds(10));
  r = nc->updateStatus(false);
  ASSERT_TRUE(r);
  EXPECT_FALSE(*r) << "only heartbeats changed: nothing to send";
  facts_.not_ready =
      "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
      "message:x";
  clock_.advance(std::chrono::seconds(10));
  api_->clearRequests();
  r = nc->updateStatus(false);
  ASSERT_TRUE(r);
  EXPECT_TRUE(*r);
  auto patches = sent("PATCH", "/api/v1/nodes/n1/status");
  ASSERT_EQ(patches.size(), 1u);
  EXPECT_EQ(patches[0].content_type, "application/strategic-merge-patch+json");
  json body = json::parse(patches[0].body);
  EXPECT_EQ(body["status"]["$setElementOrder/conditions"].size(), 4u);
  const json node = *api_->get("nodes", "", "n1");
  const json& ready = node["status"]["conditions"][3];
  EXPECT_EQ(ready["status"], "False");
  EXPECT_EQ(ready["reason"], "KubeletNotReady");
  EXPECT_EQ(events_.back(), "NodeNotReady");
  // After nodeStatusReportFrequency (5 min ±50 %) a heartbeat-only status goes out.
  clock_.advance(std::chrono::minutes(8));
  r = nc->updateStatus(false);
  ASSERT_TRUE(r);
  EXPECT_TRUE(*r);
}

TEST_F(NodeControllerTest, TransitionTimeChangesOnlyWhenStatusFlips) {
  json prev = nodeStatus(facts(), json::object(), SysTime(std::chrono::seconds(1000)));
  json same = nodeStatus(facts(), prev, SysTime(std::chrono::seconds(2000)));
  EXPECT_EQ(same["conditions"][3]["lastTransitionTime"],
            prev["conditions"][3]["lastTransitionTime"]);
  EXPECT_NE(same["conditions"][3]["lastHeartbeatTime"], prev["conditions"][3]["lastHeartbeatTime"]);
  EXPECT_FALSE(statusChanged(prev, same));
  NodeFacts bad = facts();
  bad.not_ready = "x";
  json flipped = nodeStatus(bad, prev, SysTime(std::chrono::seconds(3000)));
  EXPECT_NE(flipped["conditions"][3]["lastTransitionTime"],
            prev["conditions"][3]["lastTransitionTime"]);
  EXPECT_TRUE(statusChanged(prev, flipped));
  NodeFacts missing = facts();
  missing.capacity.erase("pods");
  EXPECT_EQ(nodeStatus(missing, prev, SysTime())["conditions"][3]["message"],
            "missing node capacity for resources: pods");
}

// The real kubelet's periodic report (../shared/spec/recorded/node-status-patches.json, phase 2):
// only lastHeartbeatTime of each condition, with $setElementOrder/conditions.
TEST_F(NodeControllerTest, AHeartbeatOnlyPatchHasTheRecordedShape) {
  const json before = nodeStatus(facts(), json::object(), SysTime(std::chrono::seconds(1000)));
  const json after = nodeStatus(facts(), before, SysTime(std::chrono::seconds(1300)));
  const json patch =
      twoWayMergePatch({{"status", before}}, {{"status", after}}, PatchSchema::node());
  const std::string hb = after["conditions"][0]["lastHeartbeatTime"];
  const json want =
      json::parse(R"({"status":{"$setElementOrder/conditions":[{"type":"MemoryPressure"},
      {"type":"DiskPressure"},{"type":"PIDPressure"},{"type":"Ready"}],"conditions":[
      {"lastHeartbeatTime":"HB","type":"MemoryPressure"},{"lastHeartbeatTime":"HB","type":"DiskPressure"},
      {"lastHeartbeatTime":"HB","type":"PIDPressure"},{"lastHeartbeatTime":"HB","type":"Ready"}]}})");
  json expected = want;
  for (auto& c : expected["status"]["conditions"]) c["lastHeartbeatTime"] = hb;
  EXPECT_EQ(patch, expected);
}

TEST_F(NodeControllerTest, LeaseIsCreatedThenRenewedWithItsResourceVersion) {
  auto nc = make();
  ASSERT_TRUE(nc->registerNode());
  ASSERT_TRUE(nc->renewLease());
  auto lease = api_->get("leases", "kube-node-lease", "n1");
  ASSERT_TRUE(lease);
  EXPECT_EQ((*lease)["spec"]["holderIdentity"], "n1");
  EXPECT_EQ((*lease)["spec"]["leaseDurationSeconds"], 40);
  const std::string renew = (*lease)["spec"]["renewTime"];
  EXPECT_EQ(renew.size(), std::string("2026-01-02T03:04:05.123456Z").size()) << renew;
  EXPECT_EQ((*lease)["metadata"]["ownerReferences"][0]["kind"], "Node");
  EXPECT_EQ((*lease)["metadata"]["ownerReferences"][0]["uid"], nc->nodeUid());
  clock_.advance(std::chrono::seconds(10));
  ASSERT_TRUE(nc->renewLease());
  auto puts = sent("PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1");
  ASSERT_EQ(puts.size(), 1u);
  EXPECT_EQ(puts[0].code, 200);
  EXPECT_NE((*api_->get("leases", "kube-node-lease", "n1"))["spec"]["renewTime"], renew);
}

TEST_F(NodeControllerTest, LeaseConflictIsResolvedByReadingAgain) {
  auto nc = make();
  ASSERT_TRUE(nc->registerNode());
  ASSERT_TRUE(nc->renewLease());
  // Someone else writes the Lease: our copy's resourceVersion is stale.
  auto lease = *api_->get("leases", "kube-node-lease", "n1");
  api_->put("leases", "kube-node-lease", lease);
  ASSERT_TRUE(nc->renewLease());
  auto puts = sent("PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1");
  ASSERT_EQ(puts.size(), 2u);
  EXPECT_EQ(puts[0].code, 409);
  EXPECT_EQ(puts[1].code, 200);
}

TEST_F(NodeControllerTest, RunRegistersAndLeasesAtOnceAndRetriesThroughAnOutage) {
  api_->failNext("POST", "/api/v1/nodes", 503, 3);
  auto nc = make();
  std::jthread t([&](std::stop_token st) { nc->run(st); });
  // Bounded wait for the Lease (the loop creates it right after registering). The clock is
  // simulated and jumps over every back-off, so this takes a few round trips of real time.
  for (int i = 0; i < 5000 && !api_->get("leases", "kube-node-lease", "n1"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // NOLINT(real-time): a real socket
  t.request_stop();
  t.join();
  EXPECT_TRUE(nc->registered());
  EXPECT_TRUE(api_->get("leases", "kube-node-lease", "n1"));
  EXPECT_EQ(events_.front(), "Starting");
  EXPECT_EQ(sent("POST", "/api/v1/nodes").size(), 4u);  // 503 twice, once more, then 201
}

}  // namespace
}  // namespace nodelet::kube
