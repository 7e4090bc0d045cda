// ConfigMaps, Secrets, RuntimeClasses, services and service-account tokens through the fake API
// server (and the static pod directory's objects): decoding
// (base64 secrets, binaryData), per-object list + watch with change notices, the Node
// authorizer, idle watches dropped, token reuse until 80 % of its lifetime, and what stands in
// while the API server is away.
#include "agent/kube/object_source.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <thread>

#include "agent/core/api_json.h"
#include "tests/fakes/fake_object_source.h"
#include "tests/kube/fixture.h"

namespace nodelet::kube {
namespace {

using nlohmann::json;

// The change notices of a source, as the agent would get them.
class Changes {
 public:
  explicit Changes(ApiObjectSource& src) : src_(src) {
    src.setOnChange([this](const std::string& key) {
      std::lock_guard g(mu_);
      keys_.push_back(key);
      cv_.notify_all();
    });
  }
  ~Changes() { src_.setOnChange(nullptr); }
  // The notices so far, once there is one (10 s at most).
  std::vector<std::string> first() {
    std::unique_lock l(mu_);
    cv_.wait_for(l, std::chrono::seconds(10), [&] { return !keys_.empty(); });  // NOLINT(real-time)
    return keys_;
  }

 private:
  ApiObjectSource& src_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> keys_;
};

class ObjectSourceTest : public ApiFixture {
 protected:
  // A pod bound to this node with these volumes: the Node authorizer lets it read them.
  void usingPod(json volumes) {
    api_->create(
        "pods", "default",
        {{"metadata", {{"name", "user" + std::to_string(++pods_)}}},
         {"spec",
          {{"nodeName", "n1"}, {"volumes", std::move(volumes)}, {"containers", json::array()}}}});
  }
  int pods_{0};
  api::Pod boundPod() {
    json p = api_->create("pods", "default",
                          {{"metadata", {{"name", "app"}}},
                           {"spec", {{"nodeName", "n1"}, {"containers", json::array()}}}});
    auto pod = api::decodePod(p.dump());
    EXPECT_TRUE(pod) << pod.error().message;
    return *pod;
  }
};

TEST_F(ObjectSourceTest, ConfigMapsAndSecretsAreListedOnceThenWatchedLikeTheKubelets) {
  api_->create(
      "configmaps", "default",
      {{"metadata", {{"name", "c"}}}, {"data", {{"a", "1"}}}, {"binaryData", {{"b", "AAE="}}}});
  api_->create("secrets", "default",
               {{"metadata", {{"name", "s"}}}, {"data", {{"pw", "c2VjcmV0"}}}});
  usingPod({{{"name", "c"}, {"configMap", {{"name", "c"}}}},
            {{"name", "s"}, {"secret", {{"secretName", "s"}}}},
            {{"name", "m"}, {"configMap", {{"name", "missing"}}}}});
  ApiObjectSource src(*client_, clock_);
  Changes changes(src);
  auto cm = src.configMap("default", "c");
  ASSERT_TRUE(cm && *cm) << (cm ? "absent" : cm.error().message);
  EXPECT_EQ((*cm)->at("a"), "1");
  EXPECT_EQ((*cm)->at("b"), std::string("\0\1", 2));
  EXPECT_EQ((**src.secret("default", "s")).at("pw"), "secret");
  auto missing = src.configMap("default", "missing");
  ASSERT_TRUE(missing);
  EXPECT_FALSE(*missing) << "a referenced object that does not exist (yet)";
  auto lists = sent("GET", "/api/v1/namespaces/default/configmaps");
  ASSERT_GE(lists.size(), 1u);
  EXPECT_NE(lists[0].query.find("fieldSelector=metadata.name=c"), std::string::npos)
      << lists[0].query;
  EXPECT_NE(lists[0].query.find("resourceVersion=0"), std::string::npos) << lists[0].query;
  EXPECT_TRUE(sent("GET", "/api/v1/namespaces/default/configmaps/c").empty()) << "no GETs";

  // Watched: an edit arrives without another list, and the pods using it are told.
  for (int i = 0; i < 500 && api_->openWatches() < 3; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // NOLINT(real-time)
  ASSERT_EQ(api_->openWatches(), 3u);
  const size_t before = sent("GET", "/api/v1/namespaces/default/configmaps").size();
  api_->put("configmaps", "default", {{"metadata", {{"name", "c"}}}, {"data", {{"a", "2"}}}});
  ASSERT_EQ(changes.first(), std::vector<std::string>{"configmaps/default/c"});
  EXPECT_EQ((**src.configMap("default", "c")).at("a"), "2");
  auto watches = sent("GET", "/api/v1/namespaces/default/configmaps");
  EXPECT_EQ(watches.size(), before) << "read from the watch, not listed again";
  bool long_watch = false;
  for (const auto& w : watches)
    long_watch = long_watch || (w.query.find("watch=true") != std::string::npos &&
                                w.query.find("&timeout=") != std::string::npos);
  EXPECT_TRUE(long_watch) << "object watches carry timeout= like client-go informers";
}

TEST_F(ObjectSourceTest, TheNodeAuthorizerRefusesObjectsNoPodOfThisNodeUses) {
  api_->create("configmaps", "default", {{"metadata", {{"name", "other"}}}});
  ApiObjectSource src(*client_, clock_);
  auto r = src.configMap("default", "other");
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(ErrorCode::PermissionDenied)) << r.error().message;
  EXPECT_NE(r.error().message.find("no relationship found between node 'n1'"), std::string::npos)
      << r.error().message;
  EXPECT_EQ(src.watching(), 0u) << "a refused object is not kept";
}

TEST_F(ObjectSourceTest, ObjectsNoPodReadsForAWhileAreNoLongerWatched) {
  api_->create("configmaps", "default", {{"metadata", {{"name", "a"}}}});
  api_->create("configmaps", "default", {{"metadata", {{"name", "b"}}}});
  usingPod({{{"name", "a"}, {"configMap", {{"name", "a"}}}},
            {{"name", "b"}, {"configMap", {{"name", "b"}}}}});
  clock_.setAutoAdvance(false);  // the idle rule reads the clock: keep it still
  ApiObjectSource src(*client_, clock_, std::chrono::seconds(5), std::chrono::minutes(5));
  ASSERT_TRUE(src.configMap("default", "a"));
  EXPECT_EQ(src.watching(), 1u);
  clock_.advance(std::chrono::minutes(6));
  ASSERT_TRUE(src.configMap("default", "b"));
  EXPECT_EQ(src.watching(), 1u) << "a was idle for 6 minutes";
  ASSERT_TRUE(src.configMap("default", "a")) << "and is listed again when read again";
  EXPECT_EQ(src.watching(), 2u);
}

TEST_F(ObjectSourceTest, TokensAreReusedUntil80PercentOfTheirLifetime) {
  api::Pod pod = boundPod();
  ApiObjectSource src(*client_, clock_);
  auto t1 = src.serviceAccountToken(pod, "", 3600);
  ASSERT_TRUE(t1) << t1.error().message;
  auto reqs = sent("POST", "/api/v1/namespaces/default/serviceaccounts/default/token");
  ASSERT_EQ(reqs.size(), 1u);
  json body = json::parse(reqs[0].body);
  EXPECT_EQ(body["spec"]["expirationSeconds"], 3600);
  EXPECT_EQ(body["spec"]["boundObjectRef"]["uid"], pod.metadata.uid);
  EXPECT_EQ(body["spec"]["boundObjectRef"]["kind"], "Pod");
  clock_.advance(std::chrono::minutes(47));  // 78 %
  EXPECT_EQ(src.serviceAccountToken(pod, "", 3600)->token, t1->token);
  clock_.advance(std::chrono::minutes(2));  // 82 %
  auto t2 = src.serviceAccountToken(pod, "", 3600);
  ASSERT_TRUE(t2);
  EXPECT_NE(t2->token, t1->token);
  EXPECT_EQ(api_->tokensIssued(), 2u);
}

TEST_F(ObjectSourceTest, WhatWasLastSeenStandsInDuringAnOutage) {
  api_->create("configmaps", "default", {{"metadata", {{"name", "c"}}}, {"data", {{"a", "1"}}}});
  usingPod({{{"name", "c"}, {"configMap", {{"name", "c"}}}}});
  ApiObjectSource src(*client_, clock_);
  ASSERT_TRUE(src.configMap("default", "c"));
  api_->goDown();
  clock_.advance(std::chrono::minutes(55));
  auto cm = src.configMap("default", "c");
  ASSERT_TRUE(cm && *cm);
  EXPECT_EQ((*cm)->at("a"), "1");
  EXPECT_FALSE(src.configMap("default", "never-read"));
  ASSERT_TRUE(api_->comeBack());
}

// Without watches running beside it (their back-off moves this test's simulated clock).
TEST_F(ObjectSourceTest, AValidTokenStandsInDuringAnOutage) {
  api::Pod pod = boundPod();
  ApiObjectSource src(*client_, clock_);
  auto token = src.serviceAccountToken(pod, "", 3600);
  ASSERT_TRUE(token);
  api_->goDown();
  clock_.advance(std::chrono::minutes(55));  // past 80 % of its lifetime, still valid
  auto again = src.serviceAccountToken(pod, "", 3600);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->token, token->token);
  ASSERT_TRUE(api_->comeBack());
}

TEST_F(ObjectSourceTest, NodeRestrictionRefusesTokensForPodsElsewhere) {
  json other = api_->create("pods", "default",
                            {{"metadata", {{"name", "elsewhere"}}},
                             {"spec", {{"nodeName", "n2"}, {"containers", json::array()}}}});
  ApiObjectSource src(*client_, clock_);
  auto r = src.serviceAccountToken(*api::decodePod(other.dump()), "", 3600);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(ErrorCode::PermissionDenied)) << r.error().message;
}

TEST_F(ObjectSourceTest, RuntimeClassesAreReadAndWatchedClusterWide) {
  api_->create("runtimeclasses", "", {{"metadata", {{"name", "gvisor"}}}, {"handler", "runsc"}});
  ApiObjectSource src(*client_, clock_);
  Changes changes(src);
  auto h = src.runtimeHandler("gvisor");
  ASSERT_TRUE(h && *h) << (h ? "absent" : h.error().message);
  EXPECT_EQ(**h, "runsc");
  auto missing = src.runtimeHandler("kata");
  ASSERT_TRUE(missing) << missing.error().message;
  EXPECT_FALSE(*missing);
  auto lists = sent("GET", "/apis/node.k8s.io/v1/runtimeclasses");
  ASSERT_GE(lists.size(), 2u);
  EXPECT_NE(lists[0].query.find("fieldSelector=metadata.name=gvisor"), std::string::npos)
      << lists[0].query;
  // Watched: a RuntimeClass created later is seen without another list, and said.
  for (int i = 0; i < 500 && api_->openWatches() < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // NOLINT(real-time)
  ASSERT_EQ(api_->openWatches(), 2u);
  const size_t before = sent("GET", "/apis/node.k8s.io/v1/runtimeclasses").size();
  api_->create("runtimeclasses", "", {{"metadata", {{"name", "kata"}}}, {"handler", "kata-qemu"}});
  ASSERT_EQ(changes.first(), std::vector<std::string>{"runtimeclasses//kata"});
  EXPECT_EQ(**src.runtimeHandler("kata"), "kata-qemu");
  EXPECT_EQ(sent("GET", "/apis/node.k8s.io/v1/runtimeclasses").size(), before);
}

TEST(StaticObjectSourceTest, RuntimeClassesFromTheDirectoryThenTheApiServerElseTheDefault) {
  testing::FakeObjectSource cluster;
  cluster.runtime_classes["gvisor"] = "runsc";
  StaticObjectSource with_cluster(&cluster);
  with_cluster.replace({{"runtimeclasses//gvisor", {{"handler", "runsc-local"}}},
                        {"runtimeclasses//fast", {{"handler", "crun"}}}});
  EXPECT_EQ(**with_cluster.runtimeHandler("gvisor"), "runsc-local") << "the directory's first";
  EXPECT_EQ(**with_cluster.runtimeHandler("fast"), "crun");
  EXPECT_FALSE(*with_cluster.runtimeHandler("kata")) << "the API server's answer: none";
  cluster.runtime_classes["kata"] = "kata-qemu";
  EXPECT_EQ(**with_cluster.runtimeHandler("kata"), "kata-qemu");

  StaticObjectSource standalone;
  standalone.replace({{"runtimeclasses//fast", {{"handler", "crun"}}}});
  EXPECT_EQ(**standalone.runtimeHandler("fast"), "crun");
  auto none = standalone.runtimeHandler("kata");
  ASSERT_TRUE(none && *none);
  EXPECT_EQ(**none, "") << "no API server: the default handler, as the kubelet's";
}

}  // namespace
}  // namespace nodelet::kube
