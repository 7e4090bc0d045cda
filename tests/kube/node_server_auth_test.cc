// The node server on its HTTPS port, as the API server and kubectl reach it: client
// certificates against the client CA, bearer tokens through TokenReview, authorization through
// SubjectAccessReview (all answered by the fake API server), and container logs served.
#include <gtest/gtest.h>
#include <httplib.h>

#include <fstream>

#include "agent/core/api_json.h"
#include "agent/node_auth.h"
#include "agent/pki.h"
#include "agent/server.h"
#include "tests/common/test_pki.h"
#include "tests/kube/fixture.h"

namespace nodelet::kube {
namespace {

using nlohmann::json;

class NodeServerAuthTest : public ApiFixture {
 protected:
  void SetUp() override {
    ApiFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    // Client certificates from the cluster's CA (the API server's own, for `kubectl logs`),
    // and one from a CA the node does not trust.
    testing::TestPki cluster(dir_.str() + "/pki");
    cluster.issue("apiserver-client", "/CN=kube-apiserver-kubelet-client/O=kubeadm:cluster-admins");
    testing::TestPki stranger(dir_.str() + "/stranger");
    stranger.issue("mallory", "/CN=mallory");
    certs_["mallory"] = {stranger.path("mallory.crt"), stranger.path("mallory.key")};
    certs_["apiserver-client"] = {cluster.path("apiserver-client.crt"),
                                  cluster.path("apiserver-client.key")};
    std::ofstream(dir_.str() + "/0.log") << "2026-11-26T12:00:00.000000001Z stdout F first\n"
                                            "2026-11-26T12:00:01.000000001Z stderr F last\n";
    // Real time: the client checks the certificate's validity against the real clock.
    auto serving = agent::ensureSelfSignedCert(dir_.str() + "/node-pki", "n1", {"127.0.0.1"},
                                               RealClock::instance().systemNow());
    ASSERT_TRUE(serving) << serving.error().message;
    serving_ca_ = serving->cert;
    reviewer_ = std::make_unique<agent::ApiReviewer>(*client_);
    agent::AuthOptions o;
    o.node_name = "n1";
    auth_ = std::make_unique<agent::NodeAuth>(o, reviewer_.get(), clock_);
    agent::ServerHandlers h;
    h.health = [] { return std::pair{true, std::string()}; };
    h.pods_json = [] { return std::string(R"({"kind":"PodList","apiVersion":"v1","items":[]})"); };
    h.container_log = [this](const std::string& ns, const std::string& pod, const std::string& c,
                             bool) -> Result<agent::LogTarget> {
      if (ns != "default" || pod != "web" || c != "app")
        return fail(ErrorCode::NotFound, "pod \"" + ns + "/" + pod + "\" not found");
      return agent::LogTarget{dir_.str() + "/0.log", [] { return false; }};
    };
    server_ = std::make_unique<agent::NodeServer>(h);
    agent::SecureOptions so{serving->cert, serving->key, api_->caFile(), auth_.get(), &clock_};
    auto s = server_->startSecure("127.0.0.1", 0, so);
    ASSERT_TRUE(s) << s.error().message;
  }
  void TearDown() override {
    if (server_) server_->stop();
  }
  // A client that verifies the node's serving certificate, with a client certificate or not.
  httplib::Result get(const std::string& path, const std::string& who = "",
                      const std::string& token = "", const std::string& method = "GET") {
    std::unique_ptr<httplib::SSLClient> c;
    if (who.empty()) {
      c = std::make_unique<httplib::SSLClient>("127.0.0.1", server_->securePort());
    } else {
      const auto& [crt, key] = certs_.at(who);
      c = std::make_unique<httplib::SSLClient>("127.0.0.1", server_->securePort(), crt, key);
    }
    c->set_ca_cert_path(serving_ca_.c_str());
    c->enable_server_certificate_verification(true);
    httplib::Headers headers;
    if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
    return method == "POST" ? c->Post(path, headers, "", "text/plain") : c->Get(path, headers);
  }

  std::map<std::string, std::pair<std::string, std::string>> certs_;  // who -> (crt, key)
  std::string serving_ca_;
  std::unique_ptr<agent::ApiReviewer> reviewer_;
  std::unique_ptr<agent::NodeAuth> auth_;
  std::unique_ptr<agent::NodeServer> server_;
};

TEST_F(NodeServerAuthTest, NobodyGetsInWithoutCredentials) {
  auto r = get("/pods");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(r->body, "Unauthorized\n");
  auto stranger = get("/pods", "mallory");
  ASSERT_TRUE(stranger) << "an untrusted certificate still completes the handshake";
  EXPECT_EQ(stranger->status, 401);
  EXPECT_EQ(api_->accessReviews(), 0u);
}

TEST_F(NodeServerAuthTest, TheApiServersCertificateReadsLogsWhenTheReviewAllowsIt) {
  api_->allow("kube-apiserver-kubelet-client", "get", "proxy");
  auto r = get("/containerLogs/default/web/app?tailLines=1&timestamps=true", "apiserver-client");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->body, "2026-11-26T12:00:01.000000001Z last\n");
  auto all = get("/containerLogs/default/web/app", "apiserver-client");
  EXPECT_EQ(all->body, "first\nlast\n");
  auto missing = get("/containerLogs/default/nope/app", "apiserver-client");
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(missing->body, "pod \"default/nope\" not found\n");
  auto bad = get("/containerLogs/default/web/app?tailLines=-2", "apiserver-client");
  EXPECT_EQ(bad->status, 400);
  // The review the node asked for, as the kubelet words it.
  bool seen = false;
  for (const auto& q : api_->requests()) {
    if (q.path != "/apis/authorization.k8s.io/v1/subjectaccessreviews") continue;
    const json spec = json::parse(q.body)["spec"];
    EXPECT_EQ(spec["user"], "kube-apiserver-kubelet-client");
    EXPECT_EQ(spec["groups"], json({"kubeadm:cluster-admins", "system:authenticated"}));
    EXPECT_EQ(spec["resourceAttributes"], json({{"verb", "get"},
                                                {"version", "v1"},
                                                {"resource", "nodes"},
                                                {"subresource", "proxy"},
                                                {"name", "n1"}}));
    seen = true;
  }
  EXPECT_TRUE(seen);
  EXPECT_EQ(api_->accessReviews(), 1u) << "the answer is cached";
  // exec is a create on nodes/proxy, reviewed like everything else (this server has no streams,
  // so past authorization it is a 404).
  api_->allow("kube-apiserver-kubelet-client", "create", "proxy");
  auto exec = get("/exec/default/web/app?command=ls", "apiserver-client", "", "POST");
  EXPECT_EQ(exec->status, 404);
}

TEST_F(NodeServerAuthTest, BearerTokensAreReviewedAndDenialsExpire) {
  api_->writeTokenKubeconfig(dir_.str() + "/alice.kubeconfig", "alice-token", "alice");
  auto denied = get("/pods", "", "alice-token");
  ASSERT_TRUE(denied);
  EXPECT_EQ(denied->status, 403);
  EXPECT_EQ(denied->body, "Forbidden (user=alice, verb=get, resource=nodes, subresource=proxy)\n");
  EXPECT_EQ(get("/pods", "", "forged")->status, 401);
  api_->allow("alice", "get", "proxy");
  EXPECT_EQ(get("/pods", "", "alice-token")->status, 403) << "the denial is cached for 30 s";
  clock_.advance(std::chrono::seconds(31));
  auto ok = get("/pods", "", "alice-token");
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(json::parse(ok->body)["kind"], "PodList");
  EXPECT_EQ(get("/stats/summary", "", "alice-token")->status, 403)
      << "another subresource, another review";
}

}  // namespace
}  // namespace nodelet::kube
