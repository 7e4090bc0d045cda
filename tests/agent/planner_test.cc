// computePodActions, table-driven: the pod as wanted, the runtime as it is, what to do.
#include "agent/planner.h"

#include <gtest/gtest.h>

#include "agent/labels.h"
#include "tests/common/pods.h"

namespace nodelet::agent {
namespace {

using testing::podFromYaml;

const MonoTime kNow = MonoTime(std::chrono::hours(100));
const SysTime kNowSys = SysTime(std::chrono::seconds(1'700'000'000));
int64_t nsAgo(std::chrono::seconds s) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>((kNowSys - s).time_since_epoch())
      .count();
}

// A compact way to describe the runtime: sandbox "s<attempt>" ready or not, containers by name.
struct C {
  std::string name;
  cri::ContainerState state;
  int32_t exit_code{0};
  std::string sandbox{"s0"};
  int32_t restarts{0};
  std::string type{"app"};
  bool stale_hash{false};
  std::chrono::seconds finished_ago{std::chrono::seconds(1)};
};

PodRuntimeStatus runtime(const api::Pod& pod, std::vector<std::pair<std::string, bool>> sandboxes,
                         std::vector<C> cs) {
  PodRuntimeStatus st;
  st.uid = pod.metadata.uid;
  int64_t t = 1000;
  for (auto& [id, ready] : sandboxes)
    st.sandboxes.push_back({id,
                            static_cast<uint32_t>(id[1] - '0'),
                            ready ? cri::SandboxState::Ready : cri::SandboxState::NotReady,
                            t--,
                            "10.0.0.1",
                            {}});
  t = 1000;
  for (const auto& c : cs) {
    RuntimeContainer rc;
    rc.status.id = c.name + "-" + std::to_string(c.restarts) + "@" + c.sandbox;
    rc.status.name = c.name;
    rc.status.state = c.state;
    rc.status.exit_code = c.exit_code;
    rc.status.created_at = t--;
    rc.status.finished_at = c.state == cri::ContainerState::Exited ? nsAgo(c.finished_ago) : 0;
    rc.sandbox_id = c.sandbox;
    rc.restart_count = c.restarts;
    rc.type = c.type;
    const api::Container* spec = api::findContainer(pod.spec, c.name);
    rc.hash = c.stale_hash || !spec ? "stale" : labels::hashString(spec->hash);
    st.containers.push_back(rc);
  }
  return st;
}

PodActions plan(const api::Pod& pod, const PodRuntimeStatus& st, const Backoff* b = nullptr) {
  return computePodActions(pod, st, {kNow, kNowSys, b});
}

const char* kOneApp = "  containers: [{name: app, image: x}]\n";
const char* kTwoInits =
    "  initContainers: [{name: i1, image: x}, {name: i2, image: x}]\n  containers: [{name: app, "
    "image: x}]\n";
const char* kSidecar =
    "  initContainers: [{name: side, image: x, restartPolicy: Always}, {name: i1, image: x}]\n"
    "  containers: [{name: app, image: x}]\n";
using S = cri::ContainerState;

TEST(PlannerTest, NewPodCreatesSandboxAndStartsApps) {
  auto pod = podFromYaml(kOneApp);
  auto a = plan(pod, runtime(pod, {}, {}));
  EXPECT_TRUE(a.create_sandbox);
  EXPECT_FALSE(a.kill_pod);
  EXPECT_EQ(a.attempt, 0u);
  EXPECT_EQ(a.containers_to_start, (std::vector<std::string>{"app"}));
}

TEST(PlannerTest, InitContainersRunOneAtATimeInOrder) {
  auto pod = podFromYaml(kTwoInits);
  struct Case {
    const char* name;
    std::vector<C> containers;
    std::vector<std::string> init_to_start;
    std::vector<std::string> apps_to_start;
  } cases[] = {
      {"first running", {{"i1", S::Running}}, {}, {}},
      {"first done", {{"i1", S::Exited, 0}}, {"i2"}, {}},
      {"both done", {{"i2", S::Exited, 0}, {"i1", S::Exited, 0}}, {}, {"app"}},
      {"first failed: restarted", {{"i1", S::Exited, 1}}, {"i1"}, {}},
  };
  for (const auto& c : cases) {
    auto a = plan(pod, runtime(pod, {{"s0", true}}, c.containers));
    EXPECT_FALSE(a.create_sandbox) << c.name;
    EXPECT_EQ(a.init_to_start, c.init_to_start) << c.name;
    EXPECT_EQ(a.containers_to_start, c.apps_to_start) << c.name;
  }
  auto fresh = plan(pod, runtime(pod, {}, {}));
  EXPECT_TRUE(fresh.create_sandbox);
  EXPECT_EQ(fresh.init_to_start, (std::vector<std::string>{"i1"}));
  EXPECT_TRUE(fresh.containers_to_start.empty());
}

TEST(PlannerTest, EphemeralContainersStartOnceEvenDuringInitAndNeverAgain) {
  auto pod = podFromYaml(std::string(kTwoInits) +
                         "  ephemeralContainers: [{name: debugger, image: x, "
                         "targetContainerName: app}]\n");
  struct Case {
    const char* name;
    std::vector<C> containers;
    std::vector<std::string> ephemeral;
  } cases[] = {
      {"added while an init container runs", {{"i1", S::Running}}, {"debugger"}},
      {"running", {{"debugger", S::Running, 0, "s0", 0, "ephemeral"}, {"i1", S::Running}}, {}},
      {"exited: never restarted",
       {{"debugger", S::Exited, 1, "s0", 0, "ephemeral"},
        {"app", S::Running},
        {"i2", S::Exited, 0},
        {"i1", S::Exited, 0}},
       {}},
  };
  for (const auto& c : cases) {
    auto a = plan(pod, runtime(pod, {{"s0", true}}, c.containers));
    EXPECT_EQ(a.ephemeral_to_start, c.ephemeral) << c.name;
    EXPECT_TRUE(a.containers_to_kill.empty()) << c.name;
  }
  // No sandbox yet: the pod starts as usual, the debugger on a later sync.
  EXPECT_TRUE(plan(pod, runtime(pod, {}, {})).ephemeral_to_start.empty());
  // A pod that ran to completion starts nothing, debuggers included.
  auto done = podFromYaml(
      "  restartPolicy: Never\n  containers: [{name: app, image: x}]\n"
      "  ephemeralContainers: [{name: debugger, image: x}]\n");
  auto a = plan(done, runtime(done, {{"s0", true}}, {{"app", S::Exited, 0}}));
  EXPECT_TRUE(a.pod_done);
  EXPECT_TRUE(a.ephemeral_to_start.empty());
}

TEST(PlannerTest, AFailedInitContainerFailsANeverPod) {
  auto pod = podFromYaml(std::string(kTwoInits) + "  restartPolicy: Never\n");
  auto a = plan(pod, runtime(pod, {{"s0", true}}, {{"i1", S::Exited, 2}}));
  EXPECT_TRUE(a.pod_done);
  EXPECT_TRUE(a.init_to_start.empty());
  EXPECT_TRUE(a.containers_to_start.empty());
}

TEST(PlannerTest, RestartPolicyDecidesWhatRunsAgain) {
  struct Case {
    const char* policy;
    int32_t exit_code;
    bool restart;
    bool done;
  } cases[] = {
      {"Always", 0, true, false},    {"Always", 1, true, false}, {"OnFailure", 0, false, true},
      {"OnFailure", 1, true, false}, {"Never", 0, false, true},  {"Never", 1, false, true},
  };
  for (const auto& c : cases) {
    auto pod = podFromYaml(std::string(kOneApp) + "  restartPolicy: " + c.policy + "\n");
    auto a = plan(pod, runtime(pod, {{"s0", true}}, {{"app", S::Exited, c.exit_code}}));
    EXPECT_EQ(!a.containers_to_start.empty(), c.restart) << c.policy << " exit " << c.exit_code;
    EXPECT_EQ(a.pod_done, c.done) << c.policy << " exit " << c.exit_code;
  }
}

TEST(PlannerTest, ARunningUnchangedPodIsLeftAlone) {
  auto pod = podFromYaml(kSidecar);
  auto a = plan(pod, runtime(pod, {{"s0", true}},
                             {{"app", S::Running},
                              {"i1", S::Exited, 0, "s0", 0, "init"},
                              {"side", S::Running, 0, "s0", 0, "sidecar"}}));
  EXPECT_EQ(a, PodActions{.sandbox_id = "s0"});
}

TEST(PlannerTest, AChangedContainerSpecIsRestarted) {
  auto pod = podFromYaml(kOneApp);
  C app{"app", S::Running};
  app.stale_hash = true;
  auto a = plan(pod, runtime(pod, {{"s0", true}}, {app}));
  ASSERT_EQ(a.containers_to_kill.size(), 1u);
  EXPECT_EQ(a.containers_to_kill[0].name, "app");
  EXPECT_NE(a.containers_to_kill[0].message.find("definition changed"), std::string::npos);
  EXPECT_EQ(a.containers_to_start, (std::vector<std::string>{"app"}));
}

TEST(PlannerTest, ACrashLoopBacksOff) {
  auto pod = podFromYaml(kOneApp);
  Backoff b(std::chrono::seconds(10), std::chrono::seconds(300));
  C app{"app", S::Exited, 1};
  app.restarts = 1;
  app.finished_ago = std::chrono::seconds(3);
  const auto st = runtime(pod, {{"s0", true}}, {app});
  // No back-off recorded yet: the first restart is immediate.
  EXPECT_EQ(plan(pod, st, &b).containers_to_start, (std::vector<std::string>{"app"}));
  // After that restart (recorded at the exit), the next exit 3 s ago waits 7 s more.
  b.next(backoffKey(pod, pod.spec.containers[0]), kNow - std::chrono::seconds(3));
  auto a = plan(pod, st, &b);
  EXPECT_TRUE(a.containers_to_start.empty());
  ASSERT_TRUE(a.waiting.contains("app"));
  EXPECT_EQ(a.waiting["app"].reason, "CrashLoopBackOff");
  EXPECT_EQ(a.waiting["app"].message,
            "back-off 10s restarting failed container=app pod=web_default(uid-1)");
  ASSERT_TRUE(a.requeue_after);
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::seconds>(*a.requeue_after).count(), 7);
}

TEST(PlannerTest, AFailedLivenessProbeKillsAndTheRestartPolicyDecides) {
  struct Case {
    const char* policy;
    bool restart;
  } cases[] = {{"Always", true}, {"OnFailure", true}, {"Never", false}};
  for (const auto& c : cases) {
    auto pod = podFromYaml(std::string(kOneApp) + "  restartPolicy: " + c.policy + "\n");
    const std::map<std::string, Unhealthy> unhealthy = {
        {"app-0@s0", {"Container app failed liveness probe, will be restarted", 7}}};
    auto a = computePodActions(pod, runtime(pod, {{"s0", true}}, {{"app", S::Running}}),
                               {kNow, kNowSys, nullptr, &unhealthy});
    ASSERT_EQ(a.containers_to_kill.size(), 1u) << c.policy;
    EXPECT_EQ(a.containers_to_kill[0].message,
              "Container app failed liveness probe, will be restarted");
    EXPECT_EQ(a.containers_to_kill[0].grace_seconds, 7)
        << "the probe's terminationGracePeriodSeconds";
    EXPECT_EQ(!a.containers_to_start.empty(), c.restart) << c.policy;
  }
}

TEST(PlannerTest, AContainerKilledByItsProbeAgainSoonWaitsOutItsBackoff) {
  auto pod = podFromYaml(kOneApp);
  Backoff b(std::chrono::seconds(10), std::chrono::seconds(300));
  C prev{"app", S::Exited, 137};
  prev.finished_ago = std::chrono::seconds(2);
  C now{"app", S::Running};
  now.restarts = 1;
  const auto st = runtime(pod, {{"s0", true}}, {now, prev});
  b.next(backoffKey(pod, pod.spec.containers[0]), kNow - std::chrono::seconds(2));
  const std::map<std::string, Unhealthy> unhealthy = {
      {st.containers[0].status.id, {"probe failed", std::nullopt}}};
  auto a = computePodActions(pod, st, {kNow, kNowSys, &b, &unhealthy});
  ASSERT_EQ(a.containers_to_kill.size(), 1u);
  EXPECT_TRUE(a.containers_to_start.empty()) << "the restart waits for the back-off";
  EXPECT_TRUE(a.requeue_after);
}

TEST(PlannerTest, ADeadSandboxIsRecreatedWithTheNextAttempt) {
  auto pod = podFromYaml(kOneApp);
  auto a = plan(pod, runtime(pod, {{"s2", false}}, {{"app", S::Exited, 137, "s2"}}));
  EXPECT_TRUE(a.kill_pod);
  EXPECT_TRUE(a.create_sandbox);
  EXPECT_EQ(a.attempt, 3u);
  EXPECT_EQ(a.containers_to_start, (std::vector<std::string>{"app"}));
}

TEST(PlannerTest, ANeverPodWhoseSandboxDiedIsDone) {
  auto pod = podFromYaml(std::string(kOneApp) + "  restartPolicy: Never\n");
  auto a = plan(pod, runtime(pod, {{"s0", false}}, {{"app", S::Exited, 0}}));
  EXPECT_FALSE(a.create_sandbox);
  EXPECT_TRUE(a.pod_done);
}

TEST(PlannerTest, SidecarsStartInOrderAndMustRunBeforeTheNextInit) {
  auto pod = podFromYaml(kSidecar);
  EXPECT_EQ(plan(pod, runtime(pod, {}, {})).init_to_start, (std::vector<std::string>{"side"}));
  EXPECT_EQ(plan(pod, runtime(pod, {{"s0", true}}, {{"side", S::Running, 0, "s0", 0, "sidecar"}}))
                .init_to_start,
            (std::vector<std::string>{"i1"}));
  // A sidecar that died after initialisation restarts without blocking the app.
  auto a = plan(pod, runtime(pod, {{"s0", true}},
                             {{"app", S::Running},
                              {"i1", S::Exited, 0, "s0", 0, "init"},
                              {"side", S::Exited, 1, "s0", 0, "sidecar"}}));
  EXPECT_EQ(a.init_to_start, (std::vector<std::string>{"side"}));
  EXPECT_TRUE(a.containers_to_start.empty());
}

TEST(PlannerTest, ACompletedPodStopsItsSidecars) {
  auto pod = podFromYaml(std::string(kSidecar) + "  restartPolicy: Never\n");
  auto a = plan(pod, runtime(pod, {{"s0", true}},
                             {{"app", S::Exited, 0},
                              {"i1", S::Exited, 0, "s0", 0, "init"},
                              {"side", S::Running, 0, "s0", 0, "sidecar"}}));
  EXPECT_TRUE(a.pod_done);
  ASSERT_EQ(a.containers_to_kill.size(), 1u);
  EXPECT_EQ(a.containers_to_kill[0].name, "side");
}

TEST(PlannerTest, ACreatedButNeverStartedContainerIsReplaced) {
  auto pod = podFromYaml(kOneApp);
  auto a = plan(pod, runtime(pod, {{"s0", true}}, {{"app", S::Created}}));
  ASSERT_EQ(a.containers_to_kill.size(), 1u);
  EXPECT_EQ(a.containers_to_start, (std::vector<std::string>{"app"}));
}

TEST(PlannerTest, ContainersLeftInAnOldSandboxAreStopped) {
  auto pod = podFromYaml(kOneApp);
  auto a = plan(pod, runtime(pod, {{"s1", true}, {"s0", false}}, {{"app", S::Running, 0, "s0"}}));
  ASSERT_EQ(a.containers_to_kill.size(), 1u);
  EXPECT_EQ(a.containers_to_kill[0].id, "app-0@s0");
}

TEST(BackoffTest, DoublesUpToTheMaximumAndResetsAfterQuietTime) {
  Backoff b(std::chrono::seconds(10), std::chrono::seconds(300));
  const std::string k = "k";
  MonoTime t = kNow;
  EXPECT_FALSE(b.inBackoffSince(k, t, t)) << "the first restart is immediate";
  std::vector<int64_t> seen;
  for (int i = 0; i < 7; ++i) {
    b.next(k, t);
    seen.push_back(std::chrono::duration_cast<std::chrono::seconds>(b.current(k)).count());
    EXPECT_TRUE(b.inBackoffSince(k, t, t + std::chrono::seconds(1)));
    t += b.current(k);
    EXPECT_FALSE(b.inBackoffSince(k, t - b.current(k), t)) << "waited long enough";
  }
  EXPECT_EQ(seen, (std::vector<int64_t>{10, 20, 40, 80, 160, 300, 300}));
  // Ten minutes without an exit: the next restart starts from 10 s again.
  t += std::chrono::minutes(11);
  b.next(k, t);
  EXPECT_EQ(b.current(k), std::chrono::seconds(10));
  EXPECT_EQ(b.remaining(k, t, t + std::chrono::seconds(4)), std::chrono::seconds(6));
  b.gc(t + std::chrono::hours(1));
  EXPECT_EQ(b.current(k), Duration::zero());
}

TEST(BackoffTest, SeedContinuesACrashLoopAfterARestartOfNodelet) {
  Backoff b(std::chrono::seconds(10), std::chrono::seconds(300));
  b.seed("k", 3, kNow);
  EXPECT_EQ(b.current("k"), std::chrono::seconds(40));
  b.seed("k", 1, kNow);  // an existing entry wins
  EXPECT_EQ(b.current("k"), std::chrono::seconds(40));
  b.seed("j", 9, kNow);
  EXPECT_EQ(b.current("j"), std::chrono::seconds(300));
}

}  // namespace
}  // namespace nodelet::agent
