// TLS bootstrapping against the fake API server: a bootstrap token gets a node client
// certificate through a CertificateSigningRequest, the kubeconfig is written the kubelet's way,
// a valid one is kept, a restart finds its request again, a denial or a timeout is an error.
#include "agent/client_certificates.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "agent/core/base64.h"
#include "agent/kube/kubeconfig.h"
#include "tests/common/simulated_clock.h"
#include "tests/common/temp_dir.h"
#include "tests/common/test_pki.h"
#include "tests/fakes/fake_apiserver.h"

namespace nodelet::agent {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class ClientBootstrapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    api_ = std::make_unique<testing::FakeApiServer>(dir_.str() + "/pki", server_clock_);
    if (!api_->ok()) GTEST_SKIP() << "fake API server could not start (openssl missing?)";
    o_.bootstrap_kubeconfig = api_->writeTokenKubeconfig(
        dir_.str() + "/bootstrap.conf", "abcdef.0123456789abcdef", "system:bootstrap:abcdef");
    o_.kubeconfig = dir_.str() + "/etc/kubelet.conf";
    o_.cert_dir = dir_.str() + "/certs";
    o_.node_name = "n1";
    o_.client.max_retries = 1;
  }
  // Runs the bootstrap on a thread (it waits for the CSR to be issued).
  void start() {
    done_.reset();
    thread_ = std::jthread([this](std::stop_token st) {
      Status s = bootstrapClientCertificate(o_, clock_, st);
      std::lock_guard g(mu_);
      done_ = std::move(s);
    });
  }
  Status finish() {
    thread_.join();
    std::lock_guard g(mu_);
    return *done_;
  }
  // The CSR the bootstrap created, once it is there.
  std::optional<json> pendingCsr() {
    for (int i = 0; i < 500; ++i) {
      auto all = api_->list("certificatesigningrequests");
      if (!all.empty()) return all[0];
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // NOLINT(real-time)
    }
    return std::nullopt;
  }
  size_t posts() {
    size_t n = 0;
    for (const auto& r : api_->requests())
      n += r.method == "POST" && r.path.ends_with("/certificatesigningrequests");
    return n;
  }

  testing::TempDir dir_;
  testing::SimulatedClock server_clock_;
  // openssl signs with the real time: the bootstrap's clock starts there too.
  testing::SimulatedClock clock_{std::chrono::system_clock::now()};  // NOLINT(real-time)
  std::unique_ptr<testing::FakeApiServer> api_;
  ClientBootstrapOptions o_;
  std::jthread thread_;
  std::mutex mu_;
  std::optional<Status> done_;
};

TEST_F(ClientBootstrapTest, ATokenGetsANodeCertificateAndTheKubeletsKubeconfig) {
  start();
  auto csr = pendingCsr();
  ASSERT_TRUE(csr);
  const std::string name = (*csr)["metadata"]["name"];
  EXPECT_TRUE(name.starts_with("node-csr-")) << name;
  EXPECT_EQ((*csr)["spec"]["signerName"], "kubernetes.io/kube-apiserver-client-kubelet");
  EXPECT_EQ((*csr)["spec"]["usages"], json({"digital signature", "client auth"}));
  EXPECT_EQ((*csr)["spec"]["username"], "system:bootstrap:abcdef") << "asked with the token";
  // The request: O=system:nodes, CN=system:node:n1.
  auto request = base64Decode((*csr)["spec"]["request"].get<std::string>());
  ASSERT_TRUE(request);
  {
    std::ofstream(dir_.str() + "/req.pem") << *request;
    FILE* p = ::popen(("openssl req -noout -subject -in " + dir_.str() + "/req.pem").c_str(), "r");
    ASSERT_TRUE(p);
    char buf[256] = {};
    const size_t n = std::fread(buf, 1, sizeof buf - 1, p);
    ::pclose(p);
    EXPECT_NE(std::string(buf, n).find("O = system:nodes, CN = system:node:n1"), std::string::npos)
        << buf;
  }
  ASSERT_TRUE(api_->issueCsr(name));
  auto s = finish();
  ASSERT_TRUE(s) << s.error().message;

  // The kubelet's files: a dated PEM (certificate, then key; 0600), the current symlink, no key
  // left aside, and a kubeconfig naming that symlink for both.
  const fs::path current = fs::path(o_.cert_dir) / "kubelet-client-current.pem";
  ASSERT_TRUE(fs::is_symlink(current));
  const std::string target = fs::read_symlink(current).string();
  EXPECT_TRUE(target.starts_with("kubelet-client-") && target.ends_with(".pem")) << target;
  struct stat st {};
  ASSERT_EQ(::stat(current.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_FALSE(fs::exists(fs::path(o_.cert_dir) / "kubelet-client.key.tmp"));
  auto kc = kube::loadKubeconfig(o_.kubeconfig);
  ASSERT_TRUE(kc) << kc.error().message;
  EXPECT_EQ(kc->server, api_->url());
  EXPECT_FALSE(kc->ca_pem.empty()) << "the bootstrap kubeconfig's CA, inline";
  EXPECT_TRUE(kc->token.empty());
  EXPECT_TRUE(bootstrap::certificatesValid(kc->client_cert_pem, clock_.systemNow()));
  EXPECT_NE(kc->client_key_pem.find("PRIVATE KEY"), std::string::npos);

  // The API server takes it as the node: a client with it registers nothing yet but reads.
  kube::Client node(*kc, clock_);
  auto r = node.get("/api/v1/nodes/n1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, 404) << r->body;
  EXPECT_EQ(api_->requests().back().user, "system:node:n1");

  // A second start keeps the valid kubeconfig: no request at all.
  const size_t before = api_->requests().size();
  EXPECT_TRUE(bootstrapClientCertificate(o_, clock_, {}));
  EXPECT_EQ(api_->requests().size(), before);
}

TEST_F(ClientBootstrapTest, TheBootstrapTokenCanOnlyAskForCertificates) {
  auto kc = kube::loadKubeconfig(o_.bootstrap_kubeconfig);
  ASSERT_TRUE(kc);
  kube::Client boot(*kc, clock_, o_.client);
  auto r = boot.get("/api/v1/nodes");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, 403);
  EXPECT_NE(r->message().find("User \"system:bootstrap:abcdef\" cannot list resource \"nodes\""),
            std::string::npos)
      << r->body;
}

TEST_F(ClientBootstrapTest, ARestartWhileWaitingWaitsForTheSameRequest) {
  start();
  auto csr = pendingCsr();
  ASSERT_TRUE(csr);
  const std::string name = (*csr)["metadata"]["name"];
  thread_.request_stop();
  auto s = finish();
  ASSERT_FALSE(s);
  EXPECT_TRUE(s.error().is(ErrorCode::Cancelled)) << s.error().message;
  EXPECT_TRUE(fs::exists(fs::path(o_.cert_dir) / "kubelet-client.key.tmp")) << "kept for the retry";
  // Again: the same key, so the same name; the server says it exists, and it is ours.
  start();
  for (int i = 0; i < 500 && posts() < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // NOLINT(real-time)
  ASSERT_EQ(posts(), 2u);
  ASSERT_TRUE(api_->issueCsr(name));
  s = finish();
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(api_->list("certificatesigningrequests").size(), 1u);
}

TEST_F(ClientBootstrapTest, ADeniedRequestIsAnErrorWithTheReason) {
  start();
  auto csr = pendingCsr();
  ASSERT_TRUE(csr);
  ASSERT_TRUE(api_->denyCsr((*csr)["metadata"]["name"], "not this node"));
  auto s = finish();
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message,
            "certificate signing request is denied, reason: AdminDenied, message: not this node");
  EXPECT_FALSE(fs::exists(o_.kubeconfig));
}

TEST_F(ClientBootstrapTest, NoAnswerWithinTheTimeoutIsAnError) {
  o_.timeout = std::chrono::minutes(5);
  start();
  ASSERT_TRUE(pendingCsr());
  bool finished = false;
  for (int i = 0; i < 200 && !finished; ++i) {
    clock_.advance(std::chrono::minutes(1));
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // NOLINT(real-time)
    std::lock_guard g(mu_);
    finished = done_.has_value();
  }
  auto s = finish();
  ASSERT_FALSE(s);
  EXPECT_TRUE(s.error().is(ErrorCode::DeadlineExceeded)) << s.error().message;
}

// rotateCertificates: a node renews its own client certificate with its current identity.
class ClientRotationTest : public ClientBootstrapTest {
 protected:
  void SetUp() override {
    ClientBootstrapTest::SetUp();
    if (IsSkipped()) return;
    auto kc = kube::loadKubeconfig(api_->writeNodeKubeconfig(dir_.str() + "/node.conf", "n1"));
    ASSERT_TRUE(kc) << kc.error().message;
    kc_ = *kc;
    client_ = std::make_unique<kube::Client>(kc_, clock_, o_.client);
  }
  std::unique_ptr<ClientCertificateRotator> rotator(uint64_t seed = 7) {
    return std::make_unique<ClientCertificateRotator>(
        *client_, clock_, o_.cert_dir, "n1", kc_.client_cert_pem,
        [this](const std::string& cert, const std::string& key) {
          std::lock_guard g(mu_);
          rotated_.emplace_back(cert, key);
          client_->setClientCertificate(cert, key);
        },
        seed);
  }
  size_t rotations() {
    std::lock_guard g(mu_);
    return rotated_.size();
  }
  kube::KubeConfig kc_;
  std::unique_ptr<kube::Client> client_;
  std::vector<std::pair<std::string, std::string>> rotated_;
};

TEST_F(ClientRotationTest, DueBetween70And90PercentOfTheLifetime) {
  const auto v = bootstrap::validity(kc_.client_cert_pem);
  ASSERT_TRUE(v);
  const auto lifetime = v->second - v->first;
  std::set<SysTime> seen;
  for (uint64_t seed = 1; seed <= 50; ++seed) {
    auto due = rotator(seed)->due();
    ASSERT_TRUE(due);
    EXPECT_GE(*due, v->first + lifetime * 7 / 10);
    EXPECT_LE(*due, v->first + lifetime * 9 / 10);
    seen.insert(*due);
  }
  EXPECT_GT(seen.size(), 40u) << "jittered, so that nodes do not all renew at once";
}

TEST_F(ClientRotationTest, ARenewalAsksAsTheNodeWithANewKeyAndSwitchesTheClient) {
  auto r = rotator();
  std::optional<Status> result;
  std::jthread t([&](std::stop_token st) {
    Status s = r->rotate(st);
    std::lock_guard g(mu_);
    result = std::move(s);
  });
  auto csr = pendingCsr();
  ASSERT_TRUE(csr);
  const std::string name = (*csr)["metadata"]["name"];
  EXPECT_TRUE(name.starts_with("csr-") && name.size() == 9) << "generateName csr-: " << name;
  EXPECT_EQ((*csr)["spec"]["username"], "system:node:n1") << "asked with the current identity";
  EXPECT_EQ((*csr)["spec"]["signerName"], "kubernetes.io/kube-apiserver-client-kubelet");
  ASSERT_TRUE(api_->issueCsr(name));
  t.join();
  ASSERT_TRUE(result && *result) << (result ? result->error().message : "no result");
  ASSERT_EQ(rotations(), 1u);
  const auto& [cert, key] = rotated_[0];
  EXPECT_NE(cert, kc_.client_cert_pem);
  EXPECT_NE(key, kc_.client_key_pem) << "a new key";
  std::ifstream in(o_.cert_dir + "/kubelet-client-current.pem");
  std::stringstream stored;
  stored << in.rdbuf();
  EXPECT_EQ(stored.str(), cert + key);
  // The client now presents it: the API server still sees the node.
  auto reply = client_->get("/api/v1/nodes/n1");
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->code, 404);
  EXPECT_EQ(api_->requests().back().user, "system:node:n1");
}

TEST_F(ClientRotationTest, TheClientPresentsTheCertificateItIsGiven) {
  // A certificate from a CA the API server does not trust: the TLS handshake fails (the API
  // server verifies a client certificate when one is given), and the retries back off on the
  // simulated clock.
  clock_.setAutoAdvance(true);
  testing::TestPki other(dir_.str() + "/other-ca");
  other.issue("stranger", "/CN=system:node:n1/O=system:nodes");
  ASSERT_TRUE(other.ok());
  auto before = client_->get("/api/v1/nodes/n1");
  ASSERT_TRUE(before) << before.error().message;
  EXPECT_EQ(before->code, 404);
  client_->setClientCertificate(other.read("stranger.crt"), other.read("stranger.key"));
  auto r = client_->get("/api/v1/nodes/n1");
  ASSERT_FALSE(r) << "answered " << r->code;
  EXPECT_TRUE(r.error().is(ErrorCode::Unavailable)) << r.error().message;
  // And back: the node's own certificate works again.
  client_->setClientCertificate(kc_.client_cert_pem, kc_.client_key_pem);
  auto again = client_->get("/api/v1/nodes/n1");
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->code, 404);
}

TEST_F(ClientRotationTest, RunRenewsWhenDueAndWaitsForTheNext) {
  auto r = rotator();
  const auto due = r->due();
  ASSERT_TRUE(due);
  clock_.advance(std::chrono::duration_cast<Duration>(*due - clock_.systemNow()) +
                 std::chrono::minutes(1));
  std::jthread t([&](std::stop_token st) { r->run(st); });
  auto csr = pendingCsr();
  ASSERT_TRUE(csr);
  ASSERT_TRUE(api_->issueCsr((*csr)["metadata"]["name"], 5));  // valid at the advanced clock
  for (int i = 0; i < 500 && rotations() == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // NOLINT(real-time)
  EXPECT_EQ(rotations(), 1u);
  const auto next = r->due();
  ASSERT_TRUE(next);
  EXPECT_GT(*next, clock_.systemNow()) << "the next renewal is in the new certificate's future";
  t.request_stop();
  t.join();
  EXPECT_EQ(api_->list("certificatesigningrequests").size(), 1u) << "one renewal, not a loop";
}

TEST(ClientBootstrapPiecesTest, NamesKeysAndValidity) {
  auto k1 = bootstrap::newKey();
  auto k2 = bootstrap::newKey();
  ASSERT_TRUE(k1 && k2);
  EXPECT_NE(k1->find("BEGIN EC PRIVATE KEY"), std::string::npos);
  const auto a = bootstrap::csrName(*k1, "n1");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->size(), std::string("node-csr-").size() + 43) << "SHA-512/256, base64url";
  EXPECT_EQ(*bootstrap::csrName(*k1, "n1"), *a) << "a function of key and subject";
  EXPECT_NE(*bootstrap::csrName(*k1, "n2"), *a);
  EXPECT_NE(*bootstrap::csrName(*k2, "n1"), *a);
  auto req = bootstrap::makeCsr(*k1, "n1");
  ASSERT_TRUE(req);
  EXPECT_TRUE(bootstrap::sameKey(*req, *k1));
  EXPECT_FALSE(bootstrap::sameKey(*req, *k2));
  EXPECT_FALSE(bootstrap::sameKey("junk", *k1));
  EXPECT_FALSE(bootstrap::csrName("junk", "n1"));
  EXPECT_FALSE(bootstrap::certificatesValid("", SysTime{}));
  EXPECT_FALSE(bootstrap::certificatesValid(*k1, SysTime{})) << "a key is no certificate";
}

}  // namespace
}  // namespace nodelet::agent
