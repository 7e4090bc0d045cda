// computePodStatus: phases, conditions and container states as the kubelet reports them.
#include "agent/pod_status.h"

#include <gtest/gtest.h>

#include "tests/common/pods.h"

namespace nodelet::agent {
namespace {

using testing::podFromYaml;
using S = cri::ContainerState;

const SysTime kNow = SysTime(std::chrono::seconds(1'700'000'000));

RuntimeContainer ctr(const std::string& name, S state, int32_t exit = 0, int32_t restarts = 0,
                     std::string sandbox = "s0", int64_t created = 100) {
  RuntimeContainer c;
  c.status.id = name + std::to_string(restarts);
  c.status.name = name;
  c.status.state = state;
  c.status.exit_code = exit;
  c.status.reason = state == S::Exited ? (exit ? "Error" : "Completed") : "";
  c.status.created_at = created;
  c.status.started_at = 1'699'999'990'000'000'000;
  c.status.finished_at = state == S::Exited ? 1'699'999'995'000'000'000 : 0;
  c.status.image_ref = "sha256:abc";
  c.sandbox_id = std::move(sandbox);
  c.restart_count = restarts;
  return c;
}

struct Fixture {
  api::Pod pod;
  PodRuntimeStatus rt;
  std::map<std::string, Waiting> waiting;
  api::PodStatus compute(const api::PodStatus* prev = nullptr) {
    StatusInput in;
    in.pod = &pod;
    in.runtime = &rt;
    in.waiting = &waiting;
    in.previous = prev;
    in.host_ip = "192.0.2.10";
    in.now = kNow;
    return computePodStatus(in);
  }
};

Fixture fixture(const std::string& spec, std::vector<RuntimeContainer> cs, bool sandbox = true) {
  Fixture f{podFromYaml(spec), {}, {}};
  if (sandbox) f.rt.sandboxes.push_back({"s0", 0, cri::SandboxState::Ready, 1, "10.86.0.5", {}});
  f.rt.containers = std::move(cs);
  return f;
}

const api::PodCondition& cond(const api::PodStatus& s, const std::string& type) {
  for (const auto& c : s.conditions)
    if (c.type == type) return c;
  static api::PodCondition none;
  ADD_FAILURE() << "no condition " << type;
  return none;
}

TEST(PodStatusTest, ARunningPod) {
  auto f = fixture("  containers: [{name: app, image: x:1}]\n", {ctr("app", S::Running)});
  auto s = f.compute();
  EXPECT_EQ(s.phase, "Running");
  EXPECT_EQ(s.pod_ip, "10.86.0.5");
  EXPECT_EQ(s.pod_ips, (std::vector<std::string>{"10.86.0.5"}));
  EXPECT_EQ(s.host_ip, "192.0.2.10");
  EXPECT_EQ(s.qos_class, "BestEffort");
  EXPECT_EQ(s.start_time, kNow);
  ASSERT_EQ(s.container_statuses.size(), 1u);
  const auto& c = s.container_statuses[0];
  EXPECT_TRUE(c.ready);
  EXPECT_EQ(c.started, true);
  EXPECT_EQ(c.container_id, "containerd://app0");
  EXPECT_EQ(c.image, "x:1");
  EXPECT_EQ(c.image_id, "sha256:abc");
  ASSERT_TRUE(c.state.running);
  std::vector<std::string> types;
  for (const auto& x : s.conditions) types.push_back(x.type + "=" + x.status);
  EXPECT_EQ(types,
            (std::vector<std::string>{"PodReadyToStartContainers=True", "Initialized=True",
                                      "Ready=True", "ContainersReady=True", "PodScheduled=True"}));
}

TEST(PodStatusTest, ReadinessGatesHoldReadyBackUntilTheirConditionsAreTrue) {
  auto f = fixture(
      "  readinessGates: [{conditionType: example.com/lb}, {conditionType: example.com/dns}]\n"
      "  containers: [{name: app, image: x:1}]\n",
      {ctr("app", S::Running)});
  auto s = f.compute();
  EXPECT_EQ(cond(s, "ContainersReady").status, "True");
  EXPECT_EQ(cond(s, "Ready").status, "False");
  EXPECT_EQ(cond(s, "Ready").reason, "ReadinessGatesNotReady");
  EXPECT_EQ(cond(s, "Ready").message,
            "corresponding condition of pod readiness gate \"example.com/lb\" does not exist., "
            "corresponding condition of pod readiness gate \"example.com/dns\" does not exist.");
  // A controller sets them on the pod (the API server's copy the pod came with).
  f.pod.status.conditions = {{"example.com/lb", "True", "", "", {}, {}},
                             {"example.com/dns", "False", "", "", {}, {}}};
  s = f.compute();
  EXPECT_EQ(cond(s, "Ready").message,
            "the status of pod readiness gate \"example.com/dns\" is not \"True\", but False");
  f.pod.status.conditions[1].status = "True";
  s = f.compute();
  EXPECT_EQ(cond(s, "Ready").status, "True");
  EXPECT_EQ(cond(s, "Ready").reason, "");
  // Unready containers speak first, as the kubelet's ContainersReady does.
  f.rt.containers = {ctr("app", S::Exited, 1)};
  EXPECT_EQ(cond(f.compute(), "Ready").reason, "ContainersNotReady");
}

TEST(PodStatusTest, PhasesFollowTheKubeletsRules) {
  struct Case {
    const char* policy;
    std::vector<RuntimeContainer> cs;
    const char* phase;
  } cases[] = {
      {"Always", {}, "Pending"},
      {"Always", {ctr("a", S::Running), ctr("b", S::Exited, 0)}, "Running"},
      {"Always", {ctr("a", S::Exited, 1), ctr("b", S::Exited, 0)}, "Running"},
      {"OnFailure", {ctr("a", S::Exited, 0), ctr("b", S::Exited, 0)}, "Succeeded"},
      {"OnFailure", {ctr("a", S::Exited, 1), ctr("b", S::Exited, 0)}, "Running"},
      {"Never", {ctr("a", S::Exited, 1), ctr("b", S::Exited, 0)}, "Failed"},
      {"Never", {ctr("a", S::Exited, 0), ctr("b", S::Exited, 0)}, "Succeeded"},
      {"Never", {ctr("a", S::Running)}, "Pending"},
  };
  for (const auto& c : cases) {
    auto f = fixture(std::string("  restartPolicy: ") + c.policy +
                         "\n  containers: [{name: a, image: x}, {name: b, image: x}]\n",
                     c.cs);
    EXPECT_EQ(f.compute().phase, c.phase) << c.policy << " with " << c.cs.size() << " containers";
  }
}

TEST(PodStatusTest, ACrashLoopShowsWaitingWithTheLastExit) {
  auto f = fixture("  containers: [{name: app, image: x}]\n", {ctr("app", S::Exited, 2, 3)});
  f.waiting["app"] = {"CrashLoopBackOff",
                      "back-off 40s restarting failed container=app pod=web_default(uid-1)"};
  auto s = f.compute();
  const auto& c = s.container_statuses[0];
  ASSERT_TRUE(c.state.waiting);
  EXPECT_EQ(c.state.waiting->reason, "CrashLoopBackOff");
  ASSERT_TRUE(c.last_state.terminated);
  EXPECT_EQ(c.last_state.terminated->exit_code, 2);
  EXPECT_EQ(c.last_state.terminated->reason, "Error");
  EXPECT_EQ(c.restart_count, 3);
  EXPECT_FALSE(c.ready);
  EXPECT_EQ(s.phase, "Running");
  EXPECT_EQ(cond(s, "Ready").status, "False");
  EXPECT_EQ(cond(s, "Ready").reason, "ContainersNotReady");
  EXPECT_EQ(cond(s, "Ready").message, "containers with unready status: [app]");
}

TEST(PodStatusTest, LastStateIsThePreviousContainer) {
  auto f =
      fixture("  containers: [{name: app, image: x}]\n",
              {ctr("app", S::Running, 0, 1, "s0", 200), ctr("app", S::Exited, 137, 0, "s0", 100)});
  auto s = f.compute();
  EXPECT_EQ(s.container_statuses[0].restart_count, 1);
  ASSERT_TRUE(s.container_statuses[0].last_state.terminated);
  EXPECT_EQ(s.container_statuses[0].last_state.terminated->exit_code, 137);
}

TEST(PodStatusTest, InitialisingPod) {
  auto f = fixture(
      "  initContainers: [{name: i1, image: x}, {name: i2, image: x}]\n  containers: [{name: app, "
      "image: x}]\n",
      {ctr("i1", S::Exited, 0)});
  auto s = f.compute();
  EXPECT_EQ(s.phase, "Pending");
  EXPECT_EQ(cond(s, "Initialized").status, "False");
  EXPECT_EQ(cond(s, "Initialized").reason, "ContainersNotInitialized");
  EXPECT_EQ(cond(s, "Initialized").message, "containers with incomplete status: [i2]");
  ASSERT_TRUE(s.container_statuses[0].state.waiting);
  EXPECT_EQ(s.container_statuses[0].state.waiting->reason, "PodInitializing");
  ASSERT_TRUE(s.init_container_statuses[0].state.terminated);
  EXPECT_EQ(s.init_container_statuses[0].state.terminated->reason, "Completed");
}

TEST(PodStatusTest, AFailedInitContainerFailsANeverPod) {
  auto f = fixture(
      "  restartPolicy: Never\n  initContainers: [{name: i1, image: x}]\n  containers: [{name: "
      "app, image: x}]\n",
      {ctr("i1", S::Exited, 1)});
  EXPECT_EQ(f.compute().phase, "Failed");
}

TEST(PodStatusTest, TerminalPhasesNeverChangeAndReadyBecomesPodCompleted) {
  auto f = fixture("  restartPolicy: Never\n  containers: [{name: app, image: x}]\n",
                   {ctr("app", S::Exited, 0)});
  auto s = f.compute();
  EXPECT_EQ(s.phase, "Succeeded");
  EXPECT_EQ(cond(s, "Ready").reason, "PodCompleted");
  f.rt.containers.clear();  // containers removed later
  EXPECT_EQ(f.compute(&s).phase, "Succeeded");
}

TEST(PodStatusTest, TransitionTimesCarryOverWhileTheStatusHolds) {
  auto f = fixture("  containers: [{name: app, image: x}]\n", {ctr("app", S::Running)});
  api::PodStatus prev = f.compute();
  for (auto& c : prev.conditions) c.last_transition_time = kNow - std::chrono::hours(1);
  prev.start_time = kNow - std::chrono::hours(2);
  auto s = f.compute(&prev);
  EXPECT_EQ(cond(s, "Ready").last_transition_time, kNow - std::chrono::hours(1));
  EXPECT_EQ(s.start_time, kNow - std::chrono::hours(2));
  f.rt.containers[0].status.state = S::Exited;
  EXPECT_EQ(cond(f.compute(&prev), "Ready").last_transition_time, kNow)
      << "a change is a new transition";
}

TEST(PodStatusTest, HostNetworkPodsReportTheNodeIp) {
  auto f = fixture("  hostNetwork: true\n  containers: [{name: app, image: x}]\n",
                   {ctr("app", S::Running)});
  EXPECT_EQ(f.compute().pod_ip, "192.0.2.10");
}

TEST(QosClassTest, FromRequestsAndLimits) {
  struct Case {
    const char* resources;
    const char* qos;
  } cases[] = {
      {"{}", "BestEffort"},
      {"{limits: {cpu: 100m, memory: 64Mi}}", "Guaranteed"},
      {"{limits: {cpu: 100m, memory: 64Mi}, requests: {cpu: 100m, memory: 64Mi}}", "Guaranteed"},
      {"{limits: {cpu: 200m, memory: 64Mi}, requests: {cpu: 100m, memory: 64Mi}}", "Burstable"},
      {"{requests: {cpu: 100m}}", "Burstable"},
      {"{limits: {memory: 1Gi}}", "Burstable"},
  };
  for (const auto& c : cases) {
    auto pod = podFromYaml(std::string("  containers: [{name: a, image: x, resources: ") +
                           c.resources + "}]\n");
    EXPECT_EQ(qosClass(pod.spec), c.qos) << c.resources;
  }
}

}  // namespace
}  // namespace nodelet::agent
