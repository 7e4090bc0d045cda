// ConfigMaps, Secrets, services and service-account tokens through the fake API server: decoding
// (base64 secrets, binaryData), the short cache, token reuse until 80 % of its lifetime, and what
// stands in while the API server is away.
#include "agent/kube/object_source.h"

#include <gtest/gtest.h>

#include "agent/core/api_json.h"
#include "tests/kube/fixture.h"

namespace nodelet::kube {
namespace {

using nlohmann::json;

class ObjectSourceTest : public ApiFixture {
 protected:
  api::Pod boundPod() {
    json p = api_->create("pods", "default",
                          {{"metadata", {{"name", "app"}}},
                           {"spec", {{"nodeName", "n1"}, {"containers", json::array()}}}});
    auto pod = api::decodePod(p.dump());
    EXPECT_TRUE(pod) << pod.error().message;
    return *pod;
  }
};

TEST_F(ObjectSourceTest, ReadsConfigMapsAndSecretsAndCachesBriefly) {
  api_->create(
      "configmaps", "default",
      {{"metadata", {{"name", "c"}}}, {"data", {{"a", "1"}}}, {"binaryData", {{"b", "AAE="}}}});
  api_->create("secrets", "default",
               {{"metadata", {{"name", "s"}}}, {"data", {{"pw", "c2VjcmV0"}}}});
  ApiObjectSource src(*client_, clock_);
  auto cm = src.configMap("default", "c");
  ASSERT_TRUE(cm && *cm);
  EXPECT_EQ((*cm)->at("a"), "1");
  EXPECT_EQ((*cm)->at("b"), std::string("\0\1", 2));
  EXPECT_EQ((**src.secret("default", "s")).at("pw"), "secret");
  EXPECT_FALSE(*src.configMap("default", "missing"));
  const size_t gets = sent("GET", "/api/v1/namespaces/default/configmaps/c").size();
  (void)src.configMap("default", "c");
  EXPECT_EQ(sent("GET", "/api/v1/namespaces/default/configmaps/c").size(), gets) << "cached";
  clock_.advance(std::chrono::seconds(6));
  (void)src.configMap("default", "c");
  EXPECT_EQ(sent("GET", "/api/v1/namespaces/default/configmaps/c").size(), gets + 1);
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

TEST_F(ObjectSourceTest, WhatWasLastReadStandsInDuringAnOutage) {
  api_->create("configmaps", "default", {{"metadata", {{"name", "c"}}}, {"data", {{"a", "1"}}}});
  api::Pod pod = boundPod();
  ApiObjectSource src(*client_, clock_);
  ASSERT_TRUE(src.configMap("default", "c"));
  auto token = src.serviceAccountToken(pod, "", 3600);
  ASSERT_TRUE(token);
  api_->goDown();
  clock_.advance(std::chrono::minutes(55));  // cache expired, token past 80 % but valid
  auto cm = src.configMap("default", "c");
  ASSERT_TRUE(cm && *cm);
  EXPECT_EQ((*cm)->at("a"), "1");
  EXPECT_EQ(src.serviceAccountToken(pod, "", 3600)->token, token->token);
  EXPECT_FALSE(src.configMap("default", "never-read"));
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

}  // namespace
}  // namespace nodelet::kube
