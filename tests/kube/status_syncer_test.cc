// Pod status to the API server, mirror pods and the final delete, against the fake API server.
#include "agent/kube/status_syncer.h"

#include <gtest/gtest.h>

#include "agent/core/api_json.h"
#include "tests/kube/fixture.h"

namespace nodelet::kube {
namespace {

using nlohmann::json;

class StatusSyncerTest : public ApiFixture {
 protected:
  void SetUp() override {
    ApiFixture::SetUp();
    if (IsSkipped()) return;
    node_ = api_->create("nodes", "", {{"metadata", {{"name", "n1"}}}});
    syncer_ = std::make_unique<StatusSyncer>(
        *client_, clock_, store_, StatusSyncerOptions{"n1"},
        [this] { return node_["metadata"]["uid"].get<std::string>(); });
  }
  // An API pod as the watch would have stored it, and nodelet's decoded copy.
  api::Pod apiPod(const std::string& name) {
    json obj = api_->create(
        "pods", "default",
        {{"metadata", {{"name", name}}},
         {"spec", {{"nodeName", "n1"}, {"containers", {{{"name", "c"}, {"image", "busybox"}}}}}}});
    store_.upsert(obj);
    auto p = api::decodePod(obj.dump());
    EXPECT_TRUE(p) << p.error().message;
    p->metadata.annotations["kubernetes.io/config.source"] = "api";
    return *p;
  }
  api::Pod staticPod(const std::string& name, const std::string& uid) {
    api::Pod p;
    p.metadata.name = name;
    p.metadata.namespace_ = "default";
    p.metadata.uid = uid;
    p.metadata.annotations = {{"kubernetes.io/config.source", "file"},
                              {"kubernetes.io/config.hash", uid}};
    p.spec.node_name = "n1";
    api::Container c;
    c.name = "web";
    c.image = "busybox";
    p.spec.containers.push_back(c);
    return p;
  }
  static api::PodStatus running() {
    api::PodStatus s;
    s.phase = "Running";
    s.pod_ip = "10.86.0.5";
    s.pod_ips = {"10.86.0.5"};
    s.conditions = {{"Ready", "True", "", "", SysTime(std::chrono::seconds(1000)), std::nullopt}};
    api::ContainerStatus cs;
    cs.name = "c";
    cs.ready = true;
    cs.state.running = api::ContainerStateRunning{SysTime(std::chrono::seconds(990))};
    s.container_statuses = {cs};
    return s;
  }

  json node_;
  ObjectStore store_;
  std::unique_ptr<StatusSyncer> syncer_;
};

TEST_F(StatusSyncerTest, PatchesStatusWithTheUidPreconditionOnlyWhenItChanged) {
  api::Pod p = apiPod("a");
  p.status = running();
  syncer_->onStatus(p);
  EXPECT_EQ(syncer_->syncOnce(), 0);
  auto patches = sent("PATCH", "/api/v1/namespaces/default/pods/a/status");
  ASSERT_EQ(patches.size(), 1u);
  EXPECT_EQ(patches[0].content_type, "application/strategic-merge-patch+json");
  json body = json::parse(patches[0].body);
  EXPECT_EQ(body["metadata"], (json{{"uid", p.metadata.uid}}));
  json server = *api_->get("pods", "default", "a");
  EXPECT_EQ(server["status"]["phase"], "Running");
  EXPECT_EQ(server["status"]["podIPs"], (json{{{"ip", "10.86.0.5"}}}));
  EXPECT_EQ(server["status"]["qosClass"], "BestEffort");  // the server's own field stays

  // The same status again: nothing sent.
  syncer_->onStatus(p);
  EXPECT_EQ(syncer_->syncOnce(), 0);
  EXPECT_EQ(sent("PATCH", "/api/v1/namespaces/default/pods/a/status").size(), 1u);

  // A change sends only the difference, conditions merged by type.
  p.status.conditions[0].status = "False";
  p.status.conditions[0].reason = "ContainersNotReady";
  syncer_->onStatus(p);
  EXPECT_EQ(syncer_->syncOnce(), 0);
  patches = sent("PATCH", "/api/v1/namespaces/default/pods/a/status");
  ASSERT_EQ(patches.size(), 2u);
  body = json::parse(patches[1].body);
  EXPECT_TRUE(body["status"].contains("$setElementOrder/conditions")) << body;
  EXPECT_FALSE(body["status"].contains("podIPs")) << body;
}

TEST_F(StatusSyncerTest, ConditionsOwnedByOthersAreKept) {
  api::Pod p = apiPod("a");
  json obj = *api_->get("pods", "default", "a");
  obj["status"]["conditions"] = {{{"type", "example.com/Gate"}, {"status", "True"}}};
  api_->put("pods", "default", obj);
  store_.upsert(*api_->get("pods", "default", "a"));
  p.status = running();
  syncer_->onStatus(p);
  EXPECT_EQ(syncer_->syncOnce(), 0);
  json server = *api_->get("pods", "default", "a");
  std::set<std::string> types;
  for (const auto& c : server["status"]["conditions"]) types.insert(c["type"]);
  EXPECT_EQ(types, (std::set<std::string>{"Ready", "example.com/Gate"}));
}

TEST_F(StatusSyncerTest, StatusIsKeptThroughAnOutageAndSentWhenTheServerReturns) {
  api::Pod p = apiPod("a");
  p.status = running();
  syncer_->onStatus(p);
  api_->goDown();
  EXPECT_EQ(syncer_->syncOnce(), 1);
  p.status.phase = "Succeeded";
  syncer_->onStatus(p);  // a newer status replaces the unsent one
  ASSERT_TRUE(api_->comeBack());
  EXPECT_EQ(syncer_->syncOnce(), 0);
  EXPECT_EQ((*api_->get("pods", "default", "a"))["status"]["phase"], "Succeeded");
}

TEST_F(StatusSyncerTest, DeletedPodGetsItsFinalStatusThenADeleteWithUidPrecondition) {
  api::Pod p = apiPod("a");
  api_->remove("pods", "default", "a", 20);  // kubectl delete --grace-period=20
  store_.upsert(*api_->get("pods", "default", "a"));
  p.status = running();
  p.status.phase = "Succeeded";
  syncer_->onStatus(p);
  syncer_->onTerminated(p.metadata.uid);
  syncer_->onRemoved(p.metadata.uid);
  EXPECT_EQ(syncer_->syncOnce(), 0);
  auto reqs = api_->requests();
  ASSERT_GE(reqs.size(), 2u);
  EXPECT_EQ(reqs[reqs.size() - 2].method, "PATCH");
  EXPECT_EQ(reqs.back().method, "DELETE");
  json opts = json::parse(reqs.back().body);
  EXPECT_EQ(opts["gracePeriodSeconds"], 0);
  EXPECT_EQ(opts["preconditions"]["uid"], p.metadata.uid);
  EXPECT_FALSE(api_->get("pods", "default", "a"));
}

TEST_F(StatusSyncerTest, StaticPodGetsAMirrorPodWithItsStatus) {
  api::Pod sp = staticPod("web-n1", "0123456789abcdef0123456789abcdef");
  sp.status = running();
  syncer_->onStatus(sp);
  EXPECT_EQ(syncer_->syncOnce(), 0);
  auto mirror = api_->get("pods", "default", "web-n1");
  ASSERT_TRUE(mirror);
  const json& md = (*mirror)["metadata"];
  EXPECT_EQ(md["annotations"]["kubernetes.io/config.mirror"], sp.metadata.uid);
  EXPECT_EQ(md["annotations"]["kubernetes.io/config.hash"], sp.metadata.uid);
  ASSERT_EQ(md["ownerReferences"].size(), 1u);
  EXPECT_EQ(md["ownerReferences"][0], (json{{"apiVersion", "v1"},
                                            {"kind", "Node"},
                                            {"name", "n1"},
                                            {"uid", node_["metadata"]["uid"]},
                                            {"controller", true}}));
  EXPECT_NE(md["uid"], sp.metadata.uid);  // the server assigns the mirror's UID
  EXPECT_EQ((*mirror)["status"]["phase"], "Running");
  // The fake enforces NodeRestriction: a node may create mirror pods only.
  EXPECT_EQ(sent("POST", "/api/v1/namespaces/default/pods").back().code, 201);

  // Deleted by someone: recreated.
  api_->remove("pods", "default", "web-n1", 0);
  store_.erase("default/web-n1");
  syncer_->wake();
  EXPECT_EQ(syncer_->syncOnce(), 0);
  EXPECT_TRUE(api_->get("pods", "default", "web-n1"));

  // The static pod goes: its mirror goes.
  syncer_->onRemoved(sp.metadata.uid);
  EXPECT_EQ(syncer_->syncOnce(), 0);
  EXPECT_FALSE(api_->get("pods", "default", "web-n1"));
}

TEST_F(StatusSyncerTest, AnEditedStaticPodReplacesItsMirror) {
  api::Pod v1 = staticPod("web-n1", "11111111111111111111111111111111");
  syncer_->onStatus(v1);
  EXPECT_EQ(syncer_->syncOnce(), 0);
  const std::string first_uid = (*api_->get("pods", "default", "web-n1"))["metadata"]["uid"];
  syncer_->onRemoved(v1.metadata.uid);
  api::Pod v2 = staticPod("web-n1", "22222222222222222222222222222222");
  syncer_->onStatus(v2);
  EXPECT_EQ(syncer_->syncOnce(), 0);
  auto mirror = api_->get("pods", "default", "web-n1");
  ASSERT_TRUE(mirror);
  EXPECT_EQ((*mirror)["metadata"]["annotations"]["kubernetes.io/config.mirror"], v2.metadata.uid);
  EXPECT_NE((*mirror)["metadata"]["uid"], first_uid);
}

TEST(MirrorPodTest, CarriesTheWholeManifestNotOnlyWhatNodeletModels) {
  api::Pod p;
  p.metadata.name = "web-n1";
  p.metadata.namespace_ = "default";
  p.metadata.uid = "abc";
  p.metadata.annotations = {{"kubernetes.io/config.hash", "abc"}};
  p.source_json =
      R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-n1","namespace":"default","uid":"abc",
    "annotations":{"kubernetes.io/config.hash":"abc"}},"spec":{"tolerations":[{"operator":"Exists","effect":"NoExecute"}],
    "containers":[{"name":"c","image":"i","readinessProbe":{"httpGet":{"port":80}}}]},"status":{"phase":"Pending"}})";
  json m = mirrorPodFor(p, "n1", "node-uid");
  EXPECT_EQ(m["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"], 80);
  EXPECT_EQ(m["spec"]["tolerations"][0]["effect"], "NoExecute");
  EXPECT_EQ(m["spec"]["nodeName"], "n1");
  EXPECT_FALSE(m.contains("status"));
  EXPECT_FALSE(m["metadata"].contains("uid"));
  EXPECT_EQ(m["metadata"]["annotations"]["kubernetes.io/config.mirror"], "abc");
  EXPECT_EQ(m["metadata"]["ownerReferences"][0]["uid"], "node-uid");
}

TEST(MirrorPodTest, ShapeFollowsTheKubelet) {
  api::Pod p;
  p.metadata.name = "web-n1";
  p.metadata.namespace_ = "default";
  p.metadata.uid = "abc";
  p.metadata.annotations = {{"kubernetes.io/config.hash", "abc"},
                            {"kubernetes.io/config.source", "file"}};
  p.status.phase = "Running";
  json m = mirrorPodFor(p, "n1", "node-uid");
  EXPECT_FALSE(m.contains("status"));
  EXPECT_FALSE(m["metadata"].contains("uid"));
  EXPECT_EQ(m["metadata"]["annotations"]["kubernetes.io/config.mirror"], "abc");
  EXPECT_EQ(m["metadata"]["annotations"]["kubernetes.io/config.source"], "file");
  EXPECT_EQ(m["spec"]["nodeName"], "n1");
}

}  // namespace
}  // namespace nodelet::kube
