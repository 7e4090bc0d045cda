// Probes against real containers: readiness follows an HTTP endpoint, a failing liveness probe
// restarts the container, a startup probe that never succeeds kills it, TCP probes connect.
#include <gtest/gtest.h>

#include "tests/common/health_server.h"
#include "tests/e2e/nodelet_process.h"

namespace nodelet::e2e {
namespace {

using std::chrono::seconds;

std::string image() { return env("NODELET_E2E_APP_IMAGE", "localhost/nodelet/busybox:1.35"); }
const char* kWeb =
    "trap 'exit 0' TERM; mkdir -p /www; echo ok > /www/ready; httpd -f -p 80 -h /www & wait";
const char* kIdle = "trap 'exit 0' TERM; while true; do sleep 1 & wait $!; done";

std::string pod(const std::string& name, const std::string& script, const std::string& probes) {
  return "apiVersion: v1\nkind: Pod\nmetadata: {name: " + name +
         "}\nspec:\n  terminationGracePeriodSeconds: 5\n"
         "  containers:\n  - name: app\n    image: " +
         image() + "\n    command: [\"sh\", \"-c\", \"" + script +
         "\"]\n    ports: [{name: http, containerPort: 80}]\n" + probes;
}

class ProbesE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    NODELET_REQUIRE_RIG();
    // hostNetwork pods probe the node IP: keep it on loopback, where the test's servers are.
    n_.extra_args = {"--node-ip=127.0.0.1"};
    n_.start();
  }
  void TearDown() override {
    if (HasFailure()) std::fprintf(stderr, "---- nodelet log ----\n%s\n", n_.log().c_str());
  }
  bool ready(const std::string& name) {
    auto c = n_.container(name, "app");
    return c && c->value("ready", false);
  }
  std::string condition(const std::string& name, const std::string& type) {
    auto p = n_.pod(name);
    if (!p) return "";
    for (const auto& c : (*p)["status"].value("conditions", nlohmann::json::array()))
      if (c["type"] == type) return c["status"];
    return "";
  }
  int restarts(const std::string& name) {
    auto c = n_.container(name, "app");
    return c ? c->value("restartCount", 0) : 0;
  }
  std::string runningId(const std::string& name) {
    for (const auto& c : n_.containers())
      if (c.state == cri::ContainerState::Running &&
          c.labels.at("io.kubernetes.pod.name") == name + "-" + n_.node())
        return c.id;
    return "";
  }
  NodeletProcess n_;
};

TEST_F(ProbesE2eTest, ReadinessFollowsAnHttpEndpoint) {
  n_.write("web.yaml", pod("web", kWeb,
                           "    readinessProbe: {httpGet: {path: /ready, port: http}, "
                           "periodSeconds: 1, failureThreshold: 1}\n"));
  ASSERT_TRUE(waitFor([&] { return n_.running("web", "app"); }, seconds(20)));
  EXPECT_TRUE(
      waitFor([&] { return ready("web") && condition("web", "Ready") == "True"; }, seconds(10)));
  // Take the endpoint away: NotReady; bring it back: Ready again. Nothing restarts.
  const std::string id = runningId("web");
  ASSERT_TRUE(n_.runtime().execSync(id, {"rm", "/www/ready"}, seconds(5)));
  EXPECT_TRUE(
      waitFor([&] { return !ready("web") && condition("web", "Ready") == "False"; }, seconds(10)));
  EXPECT_NE(n_.log().find("Readiness probe failed: HTTP probe failed with statuscode: 404"),
            std::string::npos);
  ASSERT_TRUE(n_.runtime().execSync(id, {"sh", "-c", "echo ok > /www/ready"}, seconds(5)));
  EXPECT_TRUE(
      waitFor([&] { return ready("web") && condition("web", "Ready") == "True"; }, seconds(10)));
  EXPECT_EQ(restarts("web"), 0);
}

TEST_F(ProbesE2eTest, AFailingLivenessProbeRestartsTheContainer) {
  n_.write("live.yaml", pod("live", std::string("touch /tmp/alive; ") + kIdle,
                            "    livenessProbe: {exec: {command: [test, -f, /tmp/alive]}, "
                            "periodSeconds: 1, failureThreshold: 2}\n"));
  ASSERT_TRUE(waitFor([&] { return n_.running("live", "app"); }, seconds(20)));
  const std::string first = runningId("live");
  ASSERT_TRUE(n_.runtime().execSync(first, {"rm", "/tmp/alive"}, seconds(5)));
  EXPECT_TRUE(
      waitFor([&] { return restarts("live") == 1 && n_.running("live", "app"); }, seconds(20)));
  EXPECT_NE(runningId("live"), first);
  EXPECT_NE(n_.log().find("Container app failed liveness probe, will be restarted"),
            std::string::npos);
  EXPECT_NE(n_.log().find("Liveness probe failed"), std::string::npos);
  auto c = *n_.container("live", "app");
  EXPECT_TRUE(c["lastState"].contains("terminated")) << c.dump();
}

TEST_F(ProbesE2eTest, AStartupProbeThatNeverSucceedsKillsTheContainer) {
  n_.write("slow.yaml",
           pod("slow", kIdle,
               "    startupProbe: {exec: {command: [\"false\"]}, periodSeconds: 1, "
               "failureThreshold: 2}\n"
               "    readinessProbe: {exec: {command: [\"true\"]}, periodSeconds: 1}\n"));
  ASSERT_TRUE(waitFor([&] { return n_.running("slow", "app"); }, seconds(20)));
  auto c = n_.container("slow", "app");
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->value("started", true)) << "not started until the startup probe succeeds";
  EXPECT_FALSE(c->value("ready", true));
  EXPECT_TRUE(waitFor([&] { return restarts("slow") >= 1; }, seconds(20)));
  EXPECT_NE(n_.log().find("Container app failed startup probe, will be restarted"),
            std::string::npos);
}

TEST_F(ProbesE2eTest, TcpProbesConnect) {
  n_.write("tcp.yaml", pod("tcp", kWeb,
                           "    readinessProbe: {tcpSocket: {port: 80}, periodSeconds: 1}\n"
                           "    livenessProbe: {tcpSocket: {port: http}, periodSeconds: 1}\n"));
  EXPECT_TRUE(waitFor([&] { return ready("tcp"); }, seconds(20)));
  auto c = *n_.container("tcp", "app");
  EXPECT_TRUE(c.value("started", false));
  EXPECT_EQ(restarts("tcp"), 0);
}

TEST_F(ProbesE2eTest, ReadinessDoesNotFlapAcrossARestartOfNodelet) {
  n_.write("steady.yaml",
           pod("steady", kWeb,
               "    readinessProbe: {httpGet: {path: /ready, port: 80}, periodSeconds: 1}\n"));
  ASSERT_TRUE(waitFor([&] { return ready("steady"); }, seconds(20)));
  n_.stop(SIGKILL);
  n_.start();
  // Watch the reported status from the restart on: it must never say not-ready.
  bool flapped = false, adopted = false;
  waitFor(
      [&] {
        auto c = n_.container("steady", "app");
        if (c && !c->value("ready", false)) flapped = true;
        adopted = adopted || n_.log().find("added") != std::string::npos;
        return flapped;
      },
      seconds(4), std::chrono::milliseconds(10));
  EXPECT_TRUE(adopted);
  EXPECT_FALSE(flapped) << "a ready container was reported not ready after the restart";
  EXPECT_TRUE(ready("steady"));
}

TEST_F(ProbesE2eTest, AGrpcProbeFollowsTheHealthServer) {
  testing::HealthServer health;  // on 127.0.0.1, built for this test
  n_.write("grpc.yaml",
           "apiVersion: v1\nkind: Pod\nmetadata: {name: grpc}\nspec:\n  hostNetwork: true\n"
           "  terminationGracePeriodSeconds: 5\n  containers:\n  - name: app\n    image: " +
               image() + "\n    command: [\"sh\", \"-c\", \"" + kIdle +
               "\"]\n"
               "    readinessProbe: {grpc: {port: " +
               std::to_string(health.port()) + "}, periodSeconds: 1, failureThreshold: 1}\n");
  EXPECT_TRUE(waitFor([&] { return ready("grpc"); }, seconds(20)));
  health.set("", ::grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  EXPECT_TRUE(waitFor([&] { return !ready("grpc"); }, seconds(10)));
  EXPECT_NE(
      n_.log().find("Readiness probe failed: service unhealthy (responded with \"NOT_SERVING\")"),
      std::string::npos);
  health.set("", ::grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_TRUE(waitFor([&] { return ready("grpc"); }, seconds(10)));
}

}  // namespace
}  // namespace nodelet::e2e
