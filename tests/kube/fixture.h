#pragma once
// A fake API server with a node client: the common set-up of the kube tests.
#include <gtest/gtest.h>

#include <memory>

#include "agent/kube/client.h"
#include "agent/kube/kubeconfig.h"
#include "tests/common/simulated_clock.h"
#include "tests/common/temp_dir.h"
#include "tests/fakes/fake_apiserver.h"

namespace nodelet::kube {

class ApiFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    clock_.setAutoAdvance(true);
    api_ = std::make_unique<testing::FakeApiServer>(dir_.str() + "/pki", server_clock_);
    if (!api_->ok()) GTEST_SKIP() << "fake API server could not start (openssl missing?)";
    auto kc = loadKubeconfig(api_->writeNodeKubeconfig(dir_.str() + "/kubeconfig", "n1"));
    ASSERT_TRUE(kc) << kc.error().message;
    ClientOptions o;
    o.max_retries = 1;
    client_ = std::make_unique<Client>(*kc, clock_, o);
  }
  // Requests of one method whose path starts with `prefix`.
  std::vector<testing::FakeApiServer::Recorded> sent(const std::string& method,
                                                     const std::string& prefix) const {
    std::vector<testing::FakeApiServer::Recorded> out;
    for (const auto& r : api_->requests())
      if (r.method == method && r.path.rfind(prefix, 0) == 0) out.push_back(r);
    return out;
  }

  testing::TempDir dir_;
  testing::SimulatedClock server_clock_;
  testing::SimulatedClock clock_;
  std::unique_ptr<testing::FakeApiServer> api_;
  std::unique_ptr<Client> client_;
};

}  // namespace nodelet::kube
