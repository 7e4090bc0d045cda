// The API client against the fake API server over real TLS on 127.0.0.1: authentication, typed
// errors, retries (with Retry-After), the rate limit, watch streaming, and the kubeconfig.
#include "agent/kube/client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

#include "agent/kube/kubeconfig.h"
#include "tests/common/simulated_clock.h"
#include "tests/common/temp_dir.h"
#include "tests/fakes/fake_apiserver.h"

namespace nodelet::kube {
namespace {

using nlohmann::json;
using testing::FakeApiServer;
using testing::SimulatedClock;
using testing::TempDir;

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    client_clock_.setAutoAdvance(true);
    api_ = std::make_unique<FakeApiServer>(dir_.str() + "/pki", server_clock_);
    if (!api_->ok()) GTEST_SKIP() << "fake API server could not start (openssl missing?)";
  }
  std::unique_ptr<Client> nodeClient(const std::string& node, ClientOptions o = {}) {
    auto kc =
        loadKubeconfig(api_->writeNodeKubeconfig(dir_.str() + "/" + node + ".kubeconfig", node));
    EXPECT_TRUE(kc) << kc.error().message;
    return std::make_unique<Client>(*kc, client_clock_, o);
  }

  TempDir dir_;
  SimulatedClock server_clock_;
  SimulatedClock client_clock_;
  std::unique_ptr<FakeApiServer> api_;
};

TEST_F(ClientTest, ClientCertificateAuthenticatesAsTheNode) {
  auto c = nodeClient("n1");
  auto r = c->request("POST", "/api/v1/nodes", json{{"metadata", {{"name", "n1"}}}}.dump());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->code, 201) << r->body;
  auto reqs = api_->requests();
  ASSERT_FALSE(reqs.empty());
  EXPECT_EQ(reqs.back().user, "system:node:n1");
}

TEST_F(ClientTest, BearerTokenAuthenticatesAndAWrongOneIs401) {
  auto kc =
      loadKubeconfig(api_->writeTokenKubeconfig(dir_.str() + "/t.kubeconfig", "s3cret", "admin"));
  ASSERT_TRUE(kc);
  Client good(*kc, client_clock_);
  auto r = good.get("/api/v1/nodes");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, 200);
  kc->token = "wrong";
  Client bad(*kc, client_clock_);
  r = bad.get("/api/v1/nodes");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, 401);
  EXPECT_EQ(r->reason(), "Unauthorized");
}

TEST_F(ClientTest, UntrustedServerCertificateIsAnErrorUnlessInsecure) {
  auto kc = loadKubeconfig(api_->writeNodeKubeconfig(dir_.str() + "/k", "n1"));
  ASSERT_TRUE(kc);
  kc->ca_pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  ClientOptions o;
  o.max_retries = 0;
  Client wrong_ca(*kc, client_clock_, o);
  EXPECT_FALSE(wrong_ca.get("/api/v1/nodes"));
  kc->insecure_skip_tls_verify = true;
  Client insecure(*kc, client_clock_, o);
  auto r = insecure.get("/api/v1/nodes/n1");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->code, 404);
}

TEST_F(ClientTest, ErrorRepliesCarryTheStatusReason) {
  auto c = nodeClient("n1");
  auto r = c->get("/api/v1/nodes/missing");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, 404);
  EXPECT_EQ(r->reason(), "NotFound");
  EXPECT_EQ(r->message(), "nodes \"missing\" not found");
  EXPECT_TRUE(r->toError("get node").is(ErrorCode::NotFound));
  ASSERT_TRUE(c->request("POST", "/api/v1/nodes", json{{"metadata", {{"name", "n1"}}}}.dump()));
  r = c->request("POST", "/api/v1/nodes", json{{"metadata", {{"name", "n1"}}}}.dump());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, 409);
  EXPECT_EQ(r->reason(), "AlreadyExists");
}

TEST_F(ClientTest, RetriesServerErrorsWithBackoffAndHonoursRetryAfter) {
  auto c = nodeClient("n1");
  api_->failNext("GET", "/api/v1/nodes", 500, 2);
  const MonoTime t0 = client_clock_.monotonicNow();
  auto r = c->get("/api/v1/nodes");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, 200);
  // 100 ms then 200 ms of back-off, in simulated time.
  EXPECT_EQ(client_clock_.monotonicNow() - t0, std::chrono::milliseconds(300));

  api_->failNext("GET", "/api/v1/nodes", 429, 1, 3);
  const MonoTime t1 = client_clock_.monotonicNow();
  r = c->get("/api/v1/nodes");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, 200);
  EXPECT_GE(client_clock_.monotonicNow() - t1, std::chrono::seconds(3));
}

TEST_F(ClientTest, GivesUpAfterMaxRetriesAndReturnsTheLastReply) {
  ClientOptions o;
  o.max_retries = 2;
  auto c = nodeClient("n1", o);
  api_->failNext("*", "/api/v1/nodes", 503, 10);
  const size_t before = api_->requests().size();
  auto r = c->get("/api/v1/nodes");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, 503);
  EXPECT_EQ(api_->requests().size() - before, 3u);
}

TEST_F(ClientTest, ConnectionRefusedIsUnavailableAfterRetries) {
  ClientOptions o;
  o.max_retries = 1;
  auto c = nodeClient("n1", o);
  api_->goDown();
  auto r = c->get("/api/v1/nodes");
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(ErrorCode::Unavailable)) << r.error().message;
  ASSERT_TRUE(api_->comeBack());
  r = c->get("/api/v1/nodes");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->code, 200);
}

TEST_F(ClientTest, AStalledServerTimesOutAndIsRetried) {
  ClientOptions o;
  o.timeout = std::chrono::milliseconds(200);
  o.max_retries = 0;
  auto c = nodeClient("n1", o);
  api_->stall(std::chrono::milliseconds(600));
  auto r = c->get("/api/v1/nodes");
  EXPECT_FALSE(r);
  api_->stall(Duration::zero());
  r = c->get("/api/v1/nodes");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->code, 200);
}

TEST_F(ClientTest, RateLimitSpacesRequestsBeyondTheBurst) {
  ClientOptions o;
  o.qps = 10;
  o.burst = 2;
  auto c = nodeClient("n1", o);
  const MonoTime t0 = client_clock_.monotonicNow();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(c->get("/api/v1/nodes"));
  // 2 from the burst, then 3 at 10/s.
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(client_clock_.monotonicNow() - t0)
                .count(),
            300);
}

TEST_F(ClientTest, WatchStreamsEventsLineByLine) {
  auto c = nodeClient("n1");
  // A watch from a resourceVersion replays everything after it: no race with the writes below.
  const std::string from = api_->resourceVersion();
  api_->create("pods", "default", {{"metadata", {{"name", "a"}}}, {"spec", {{"nodeName", "n1"}}}});
  api_->create("pods", "default",
               {{"metadata", {{"name", "other"}}}, {"spec", {{"nodeName", "n2"}}}});
  api_->create("pods", "default", {{"metadata", {{"name", "b"}}}, {"spec", {{"nodeName", "n1"}}}});
  api_->remove("pods", "default", "b", 0);
  std::vector<json> events;
  auto end = c->stream(
      "/api/v1/pods?watch=true&resourceVersion=" + from + "&fieldSelector=spec.nodeName%3Dn1",
      [&](std::string_view line) {
        events.push_back(json::parse(line));
        return events.size() < 3;
      },
      {}, std::chrono::seconds(20));
  ASSERT_TRUE(end) << end.error().message;
  ASSERT_EQ(events.size(), 3u) << end->code << " " << end->body;
  EXPECT_EQ(events[0]["type"], "ADDED");
  EXPECT_EQ(events[0]["object"]["metadata"]["name"], "a");
  EXPECT_EQ(events[1]["object"]["metadata"]["name"], "b");
  EXPECT_EQ(events[2]["type"], "DELETED");
  EXPECT_EQ(events[2]["object"]["metadata"]["name"], "b");
}

TEST_F(ClientTest, WatchEndsWhenTheServerDropsIt) {
  auto c = nodeClient("n1");
  std::atomic<bool> ended{false};
  std::jthread watcher([&] {
    auto end = c->stream(
        "/api/v1/pods?watch=true&fieldSelector=spec.nodeName%3Dn1&resourceVersion=" +
            api_->resourceVersion(),
        [](std::string_view) { return true; }, {}, std::chrono::seconds(20));
    EXPECT_TRUE(end);
    ended = true;
  });
  // Bounded: the server may see the watch only after the TLS handshake.
  for (int i = 0; i < 500 && api_->openWatches() == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // NOLINT(real-time): a real socket
  api_->dropWatches();
  watcher.join();
  EXPECT_TRUE(ended);
}

TEST_F(ClientTest, WatchFromACompactedVersionGetsAnExpiredErrorEvent) {
  auto c = nodeClient("n1");
  api_->create("pods", "default", {{"metadata", {{"name", "a"}}}, {"spec", {{"nodeName", "n1"}}}});
  const std::string old = api_->resourceVersion();
  api_->create("pods", "default", {{"metadata", {{"name", "b"}}}, {"spec", {{"nodeName", "n1"}}}});
  api_->compact();
  std::vector<json> events;
  auto end = c->stream(
      "/api/v1/pods?watch=true&resourceVersion=" + old + "&fieldSelector=spec.nodeName%3Dn1",
      [&](std::string_view line) {
        events.push_back(json::parse(line));
        return true;
      },
      {}, std::chrono::seconds(20));
  ASSERT_TRUE(end);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["type"], "ERROR");
  EXPECT_EQ(events[0]["object"]["code"], 410);
  EXPECT_EQ(events[0]["object"]["reason"], "Expired");
  auto list = c->get("/api/v1/pods?fieldSelector=spec.nodeName%3Dn1&resourceVersion=" + old +
                     "&resourceVersionMatch=Exact");
  ASSERT_TRUE(list);
  EXPECT_EQ(list->code, 410);
}

TEST_F(ClientTest, NodeMayOnlyListItsOwnPods) {
  auto c = nodeClient("n1");
  auto r = c->get("/api/v1/pods");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, 403);
  r = c->get("/api/v1/pods?fieldSelector=spec.bogus%3Dx");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, 403);
  r = c->get("/api/v1/pods?fieldSelector=spec.nodeName%3Dn1%2Cspec.bogus%3Dx");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, 400);
  EXPECT_EQ(r->message(), "field label not supported: spec.bogus");
}

// ---- kubeconfig ----
TEST(KubeconfigTest, ResolvesTheCurrentContextAndRelativeFiles) {
  TempDir d;
  d.write("ca.crt", "CA PEM");
  d.write("sub/tok", "abc\n");
  auto kc = parseKubeconfig(R"(
apiVersion: v1
kind: Config
current-context: b
clusters:
- name: one
  cluster: {server: "https://a:1"}
- name: two
  cluster:
    server: https://10.0.0.1:6443/
    certificate-authority: ca.crt
users:
- name: u
  user:
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZ
    tokenFile: sub/tok
contexts:
- name: a
  context: {cluster: one, user: u}
- name: b
  context: {cluster: two, user: u}
)",
                            d.str());
  ASSERT_TRUE(kc) << kc.error().message;
  EXPECT_EQ(kc->server, "https://10.0.0.1:6443");
  EXPECT_EQ(kc->ca_pem, "CA PEM");
  EXPECT_EQ(kc->client_cert_pem, "CERT");
  EXPECT_EQ(kc->client_key_pem, "KEY");
  EXPECT_EQ(kc->token_file, d.str() + "/sub/tok");
}

TEST(KubeconfigTest, ErrorsNameTheField) {
  struct Case {
    const char* text;
    const char* want;
  } cases[] = {
      {"current-context: x\ncontexts: []\n", "current-context: no context named \"x\""},
      {"clusters: []\n", "current-context: not set"},
      {"current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\nclusters: [{name: k, "
       "cluster: {}}]\n",
       "clusters[k].cluster.server: not set"},
      {"current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\nclusters: [{name: k, "
       "cluster: {server: "
       "\"ftp://x\"}}]\n",
       "is not an http(s) URL"},
      {"current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\nclusters: "
       "[{name: k, cluster: "
       "{server: \"https://x\", certificate-authority: /nonexistent/ca}}]\nusers: [{name: u, user: "
       "{}}]\n",
       "clusters[k].cluster.certificate-authority: cannot read /nonexistent/ca"},
      {"current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\nclusters: "
       "[{name: k, cluster: "
       "{server: \"https://x\"}}]\nusers: [{name: u, user: {client-certificate-data: Q0VSVA==}}]\n",
       "client-certificate and client-key must be given together"},
      {"current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\nclusters: "
       "[{name: k, cluster: "
       "{server: \"https://x\"}}]\nusers: [{name: u, user: {tokenFile: /nonexistent/t}}]\n",
       "users[u].user.tokenFile: cannot read"},
  };
  for (const auto& c : cases) {
    auto kc = parseKubeconfig(c.text, "");
    ASSERT_FALSE(kc) << c.text;
    EXPECT_NE(kc.error().message.find(c.want), std::string::npos) << kc.error().message;
  }
}

TEST(KubeconfigTest, Base64WithAndWithoutPadding) {
  EXPECT_EQ(*base64Decode("aGVsbG8="), "hello");
  EXPECT_EQ(*base64Decode("aGVsbG8"), "hello");
  EXPECT_EQ(*base64Decode("aGVs\nbG8h"), "hello!");
  EXPECT_FALSE(base64Decode("!!!!"));
}

}  // namespace
}  // namespace nodelet::kube
