// The agent end to end against the fake CRI: static pods in, sandboxes and containers out,
// crash loops, removal, adoption after a restart, orphans, and what is never touched.
// No real time: the simulated clock moves, the workers are waited for.
#include "agent/agent.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <fstream>

#include "agent/core/api_json.h"
#include "agent/kube/object_source.h"
#include "agent/labels.h"
#include "agent/node_shutdown.h"
#include "tests/common/free_port.h"
#include "tests/common/simulated_clock.h"
#include "tests/common/temp_dir.h"
#include "tests/fakes/fake_object_source.h"
#include "tests/fakes/fake_runtime_service.h"

namespace nodelet::agent {
namespace {

const char* kWeb = R"yaml(apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: app
    image: localhost/nodelet/busybox:1.35
    command: ["sh", "-c", "echo $(GREETING) from $(POD_NAME)"]
    env:
    - {name: GREETING, value: hello}
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - {name: ESCAPED, value: "$$(GREETING)"}
)yaml";

const char* kSidecar = R"(apiVersion: v1
kind: Pod
metadata: {name: job}
spec:
  initContainers:
  - {name: side, image: localhost/nodelet/busybox:1.35, restartPolicy: Always}
  containers:
  - {name: app, image: localhost/nodelet/busybox:1.35}
)";

class AgentTest : public ::testing::Test {
 protected:
  AgentTest() {
    images_.addImage("localhost/nodelet/busybox:1.35");
    opts_.node_name = "node-1";
    opts_.root_dir = (dir_.path() / "root").string();
    opts_.pod_logs_dir = (dir_.path() / "logs").string();
    opts_.node_ip = "192.0.2.1";
    start();
  }
  void start() {
    agent_.reset();
    runtime_ = std::make_unique<RuntimeManager>(rt_, images_, clock_, events_, opts_);
    AgentOptions ao;
    ao.node_ip = "192.0.2.1";
    ao.max_pods = max_pods_;
    ao.watch_exits = false;
    agent_ = std::make_unique<Agent>(*runtime_, statuses_, events_, clock_, ao);
  }
  // A new agent on the same runtime manager with these options (no exit watching: the fake's
  // containers have no processes).
  void restartAgent(AgentOptions ao) {
    agent_.reset();
    ao.watch_exits = false;
    agent_ = std::make_unique<Agent>(*runtime_, statuses_, events_, clock_, ao);
  }
  staticpods::StaticPod manifest(const std::string& text, const std::string& file = "/m/web.yaml") {
    auto sp = staticpods::parseManifest(text, {"node-1", file, clock_.systemNow()});
    EXPECT_TRUE(sp) << sp.error().message;
    return *sp;
  }
  void apply(std::vector<staticpods::StaticPod> pods) {
    staticpods::FileSnapshot s;
    s.pods = std::move(pods);
    agent_->onFileSnapshot(s);
    settle();
  }
  void settle() {  // relist and let the workers finish, a few rounds
    for (int i = 0; i < 3; ++i) {
      agent_->workers().waitIdle();
      agent_->relist();
      agent_->workers().tick();
    }
    agent_->workers().waitIdle();
  }
  std::vector<cri::ContainerStatus> running() {
    std::vector<cri::ContainerStatus> out;
    for (const auto& c : rt_.containers())
      if (c.state == cri::ContainerState::Running) out.push_back(c);
    return out;
  }
  api::PodStatus status(const std::string& uid) {
    return statuses_.podStatus(uid).value_or(api::PodStatus{});
  }
  bool hasEvent(const std::string& reason, const std::string& message) {
    for (const auto& e : events_.events())
      if (e.reason == reason && e.message.find(message) != std::string::npos) return true;
    return false;
  }

  testing::TempDir dir_;
  testing::SimulatedClock clock_;
  testing::FakeRuntimeService rt_{clock_};
  testing::FakeImageService images_;
  LocalEventRecorder events_{clock_};
  StatusManager statuses_;
  RuntimeManagerOptions opts_;
  int32_t max_pods_{110};
  std::unique_ptr<RuntimeManager> runtime_;
  std::unique_ptr<Agent> agent_;
};

TEST_F(AgentTest, RunsAStaticPodTheWayTheKubeletDoes) {
  auto web = manifest(kWeb);
  apply({web});
  auto sbs = rt_.sandboxes();
  ASSERT_EQ(sbs.size(), 1u);
  const auto& l = sbs[0].labels;
  EXPECT_EQ(l.at("io.kubernetes.pod.name"), "web-node-1");
  EXPECT_EQ(l.at("io.kubernetes.pod.namespace"), "default");
  EXPECT_EQ(l.at("io.kubernetes.pod.uid"), web.pod.metadata.uid);
  EXPECT_EQ(sbs[0].annotations.at("kubernetes.io/config.source"), "file");
  auto sbc = rt_.sandboxConfig(sbs[0].id);
  ASSERT_TRUE(sbc);
  EXPECT_EQ(sbc->hostname, "web-node-1");
  EXPECT_EQ(sbc->log_directory, opts_.pod_logs_dir + "/default_web-node-1_" + web.pod.metadata.uid);
  EXPECT_TRUE(std::filesystem::is_directory(sbc->log_directory))
      << "nodelet creates the pod log directory";
  EXPECT_EQ(sbc->cgroup_parent, "/kubepods/besteffort/pod" + web.pod.metadata.uid);

  auto run = running();
  ASSERT_EQ(run.size(), 1u);
  EXPECT_EQ(run[0].annotations.at("io.kubernetes.container.restartCount"), "0");
  EXPECT_EQ(run[0].labels.at("io.kubernetes.container.name"), "app");
  const auto cfg = rt_.containerConfigs().at(run[0].id);
  EXPECT_EQ(cfg.log_path, "app/0.log");
  EXPECT_EQ(cfg.command, (std::vector<std::string>{"sh", "-c", "echo hello from web-node-1"}));
  const auto env = cfg.envs;
  EXPECT_NE(std::find(env.begin(), env.end(),
                      std::pair<std::string, std::string>{"ESCAPED", "$(GREETING)"}),
            env.end());
  EXPECT_FALSE(cfg.security.masked_paths.empty())
      << "unprivileged containers get the default masked paths";
  bool hosts = false;
  for (const auto& m : cfg.mounts) hosts = hosts || m.container_path == "/etc/hosts";
  EXPECT_TRUE(hosts);

  auto st = status(web.pod.metadata.uid);
  EXPECT_EQ(st.phase, "Running");
  EXPECT_EQ(st.pod_ip, "10.86.0.2");
  EXPECT_TRUE(hasEvent("Pulled", "already present on machine"));
  EXPECT_TRUE(hasEvent("Created", "Created container: app"));
  EXPECT_TRUE(hasEvent("Started", "Started container app"));
  // Nothing pulls an image that is present.
  auto calls = images_.calls();
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "PullImage"), 0);
}

TEST_F(AgentTest, ACrashingContainerRestartsWithBackoff) {
  auto web = manifest(kWeb);
  apply({web});
  const auto first = running().at(0).id;
  rt_.exitContainer(first, 1);
  settle();
  auto run = running();
  ASSERT_EQ(run.size(), 1u) << "the first restart is immediate";
  EXPECT_NE(run[0].id, first);
  EXPECT_EQ(run[0].annotations.at("io.kubernetes.container.restartCount"), "1");
  EXPECT_EQ(run[0].attempt, 1u);
  EXPECT_EQ(status(web.pod.metadata.uid).container_statuses.at(0).restart_count, 1);

  rt_.exitContainer(run[0].id, 1);
  settle();
  EXPECT_TRUE(running().empty()) << "the second restart waits 10 s";
  auto st = status(web.pod.metadata.uid);
  ASSERT_TRUE(st.container_statuses.at(0).state.waiting);
  EXPECT_EQ(st.container_statuses[0].state.waiting->reason, "CrashLoopBackOff");
  clock_.advance(std::chrono::seconds(9));
  settle();
  EXPECT_TRUE(running().empty());
  clock_.advance(std::chrono::seconds(1));
  settle();
  ASSERT_EQ(running().size(), 1u);
  EXPECT_EQ(running()[0].annotations.at("io.kubernetes.container.restartCount"), "2");
  // Dead containers beyond the newest per name are collected.
  EXPECT_LE(rt_.containers().size(), 2u);
}

TEST_F(AgentTest, ARemovedManifestStopsAndRemovesThePod) {
  auto web = manifest(kWeb);
  apply({web});
  ASSERT_EQ(running().size(), 1u);
  apply({});
  EXPECT_TRUE(rt_.sandboxes().empty());
  EXPECT_TRUE(rt_.containers().empty());
  EXPECT_FALSE(statuses_.podStatus(web.pod.metadata.uid));
  EXPECT_TRUE(hasEvent("Killing", "Stopping container app"));
  EXPECT_FALSE(
      std::filesystem::exists(opts_.pod_logs_dir + "/default_web-node-1_" + web.pod.metadata.uid));
}

TEST_F(AgentTest, AManifestPutBackWhileItsPodStopsStartsThePodAgain) {
  auto web = manifest(kWeb);
  apply({web});
  ASSERT_EQ(running().size(), 1u);
  const std::string first = running()[0].id;
  // Removed, and put back unchanged (same UID) while the old pod still stops: the runtime
  // fails the first sandbox stop, so the removal takes another second.
  rt_.injectError("StopPodSandbox", Error{ErrorCode::Unavailable, "runtime busy"});
  apply({});
  apply({web});
  EXPECT_EQ(agent_->metrics().restarted_pods["true"], 0);
  clock_.advance(std::chrono::seconds(1));
  settle();
  ASSERT_EQ(running().size(), 1u) << "started again once the removal was done";
  EXPECT_NE(running()[0].id, first);
  EXPECT_EQ(agent_->metrics().restarted_pods["true"], 1);
  EXPECT_TRUE(statuses_.podStatus(web.pod.metadata.uid));
}

TEST_F(AgentTest, ContainerLogLinksComeAndGoWithTheirContainers) {
  opts_.container_log_links_dir = (dir_.path() / "containers").string();
  // A link an earlier run left for a container that is gone, and one that is not ours.
  std::filesystem::create_directories(opts_.container_log_links_dir);
  std::filesystem::create_symlink(opts_.pod_logs_dir + "/x/app/0.log",
                                  opts_.container_log_links_dir + "/old_default_app-dead.log");
  std::filesystem::create_symlink("/elsewhere/0.log",
                                  opts_.container_log_links_dir + "/other_default_app-x.log");
  start();
  auto web = manifest(kWeb);
  apply({web});
  auto run = running();
  ASSERT_EQ(run.size(), 1u);
  const std::string link =
      opts_.container_log_links_dir + "/web-node-1_default_app-" + run[0].id + ".log";
  ASSERT_TRUE(std::filesystem::is_symlink(link));
  EXPECT_EQ(std::filesystem::read_symlink(link).string(),
            opts_.pod_logs_dir + "/default_web-node-1_" + web.pod.metadata.uid + "/app/0.log");
  EXPECT_FALSE(
      std::filesystem::is_symlink(opts_.container_log_links_dir + "/old_default_app-dead.log"))
      << "an earlier run's link to a container that is gone";
  EXPECT_TRUE(
      std::filesystem::is_symlink(opts_.container_log_links_dir + "/other_default_app-x.log"))
      << "not nodelet's: left alone";
  apply({});
  EXPECT_FALSE(std::filesystem::is_symlink(link));
}

TEST_F(AgentTest, AnEditedManifestReplacesThePod) {
  auto v1 = manifest(kWeb);
  apply({v1});
  std::string edited = kWeb;
  edited.replace(edited.find("value: hello"), 12, "value: howdy");
  auto v2 = manifest(edited);
  ASSERT_NE(v1.pod.metadata.uid, v2.pod.metadata.uid);
  apply({v2});
  auto sbs = rt_.sandboxes();
  ASSERT_EQ(sbs.size(), 1u);
  EXPECT_EQ(sbs[0].labels.at("io.kubernetes.pod.uid"), v2.pod.metadata.uid);
  ASSERT_EQ(running().size(), 1u);
  EXPECT_EQ(rt_.containerConfigs().at(running()[0].id).command.back(),
            "echo howdy from web-node-1");
}

TEST_F(AgentTest, ARestartedAgentAdoptsRunningPods) {
  auto web = manifest(kWeb);
  apply({web});
  const auto id = running().at(0).id;
  start();  // a new nodelet process: nothing in memory
  rt_.clearCalls();
  apply({web});
  EXPECT_EQ(rt_.countCalls("RunPodSandbox"), 0u);
  EXPECT_EQ(rt_.countCalls("CreateContainer"), 0u);
  EXPECT_EQ(rt_.countCalls("StopContainer"), 0u);
  ASSERT_EQ(running().size(), 1u);
  EXPECT_EQ(running()[0].id, id);
  EXPECT_EQ(status(web.pod.metadata.uid).phase, "Running");
}

TEST_F(AgentTest, OrphansAreRemovedButForeignContainersAreNeverTouched) {
  auto web = manifest(kWeb);
  apply({web});
  const std::string foreign =
      rt_.addForeignSandbox({"other", "u-x", "default", 0}, {{"app", "theirs"}});
  rt_.addForeignContainer(foreign, "theirs", {}, cri::ContainerState::Running);
  start();
  apply({});  // the manifest is gone while nodelet was down
  agent_->housekeeping();
  settle();
  auto sbs = rt_.sandboxes();
  ASSERT_EQ(sbs.size(), 1u);
  EXPECT_EQ(sbs[0].id, foreign) << "only the foreign sandbox is left";
  EXPECT_EQ(running().size(), 1u);
}

TEST_F(AgentTest, SidecarsStartFirstAndStopLast) {
  auto job = manifest(kSidecar, "/m/job.yaml");
  apply({job});
  std::vector<std::string> started;
  for (const auto& [id, cfg] : rt_.containerConfigs()) started.push_back(cfg.name);
  EXPECT_EQ(started.size(), 2u);
  EXPECT_EQ(running().size(), 2u);
  apply({});
  EXPECT_EQ(rt_.stoppedNames(), (std::vector<std::string>{"app", "side"}));
}

TEST_F(AgentTest, ImagePullPolicies) {
  std::string never = kWeb;
  never.replace(never.find("    command:"), 0, "    imagePullPolicy: Never\n");
  never.replace(never.find("localhost/nodelet/busybox:1.35"), 30, "localhost/absent:1");
  auto p = manifest(never);
  apply({p});
  auto st = status(p.pod.metadata.uid);
  ASSERT_TRUE(st.container_statuses.at(0).state.waiting);
  EXPECT_EQ(st.container_statuses[0].state.waiting->reason, "ErrImageNeverPull");
  EXPECT_TRUE(hasEvent("ErrImageNeverPull", "is not present with pull policy of Never"));

  std::string always = kWeb;
  always.replace(always.find("    command:"), 0, "    imagePullPolicy: Always\n");
  auto q = manifest(always, "/m/always.yaml");
  apply({q});
  auto calls = images_.calls();
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "PullImage"), 1);
}

TEST_F(AgentTest, PodsBeyondMaxPodsAreRejected) {
  max_pods_ = 1;
  start();
  auto a = manifest(kWeb, "/m/a.yaml");
  std::string second = kWeb;
  second.replace(second.find("name: web"), 9, "name: two");
  auto b = manifest(second, "/m/b.yaml");
  apply({a, b});
  EXPECT_EQ(rt_.sandboxes().size(), 1u);
  auto rejected = status(b.pod.metadata.uid).phase == "Failed" ? b : a;
  EXPECT_EQ(status(rejected.pod.metadata.uid).reason, "OutOfpods");
}

TEST_F(AgentTest, ARuntimeClassChoosesTheSandboxsHandlerAndAMissingOneWaits) {
  testing::FakeObjectSource objects;
  objects.runtime_classes["gvisor"] = "runsc";
  opts_.static_objects = &objects;
  rt_.setRuntimeHandlers({"", "runc", "runsc"});
  start();
  auto with_class = [&](const std::string& name, const std::string& rc) {
    std::string text = kWeb;
    text.replace(text.find("name: web"), 9, "name: " + name);
    text.replace(text.find("  containers:"), 0, "  runtimeClassName: " + rc + "\n");
    return manifest(text, "/m/" + name + ".yaml");
  };
  apply({with_class("sandboxed", "gvisor"), with_class("waiting", "kata"), manifest(kWeb)});
  std::map<std::string, std::string> handlers;  // pod name -> handler
  for (const auto& sb : rt_.sandboxes()) handlers[sb.metadata.name] = sb.runtime_handler;
  EXPECT_EQ(handlers, (std::map<std::string, std::string>{{"sandboxed-node-1", "runsc"},
                                                          {"web-node-1", ""}}));
  EXPECT_TRUE(
      hasEvent("FailedCreatePodSandBox",
               "Failed to create pod sandbox: runtimeclass.node.k8s.io \"kata\" not found"));
  // The RuntimeClass appears (a watch said so): the pod waiting for it starts at once.
  objects.runtime_classes["kata"] = "runc";
  agent_->onObjectChanged("runtimeclasses//kata", /*static_pods=*/false);
  settle();
  handlers.clear();
  for (const auto& sb : rt_.sandboxes()) handlers[sb.metadata.name] = sb.runtime_handler;
  EXPECT_EQ(handlers["waiting-node-1"], "runc");
  EXPECT_EQ(running().size(), 3u);
}

TEST_F(AgentTest, LifecycleHooksRunAsTheKubeletsAndFailWithItsMessages) {
  clock_.setAutoAdvance(true);  // a sleep hook waits on the clock
  // An HTTP endpoint for the hooks, on the "pod IP".
  httplib::Server http;
  std::atomic<int> hits{0};
  http.Get("/hook", [&](const httplib::Request&, httplib::Response& res) {
    ++hits;
    res.status = 500;  // any answer will do for a hook
  });
  const int port = http.bind_to_any_port("127.0.0.1");
  std::jthread serve([&] { http.listen_after_bind(); });
  rt_.setSandboxIp("127.0.0.1");
  const int closed = testing::freeLocalPort();
  auto pod = [&](const std::string& name, const std::string& lifecycle) {
    return manifest("apiVersion: v1\nkind: Pod\nmetadata: {name: " + name +
                        "}\nspec:\n  containers:\n  - name: app\n    image: "
                        "localhost/nodelet/busybox:1.35\n    lifecycle:\n" +
                        lifecycle,
                    "/m/" + name + ".yaml");
  };
  rt_.scriptExec("sh -c exit 3", {"out", "err", 3});
  auto http_ok = pod(
      "http-ok", "      postStart: {httpGet: {path: /hook, port: " + std::to_string(port) + "}}\n");
  auto http_down =
      pod("http-down",
          "      postStart: {httpGet: {path: /hook, port: " + std::to_string(closed) + "}}\n");
  auto exec_fails = pod("exec-fails", "      postStart: {exec: {command: [sh, -c, exit 3]}}\n");
  auto stops = pod("stops", "      preStop: {sleep: {seconds: 7}}\n");
  apply({http_ok, http_down, exec_fails, stops});
  EXPECT_EQ(hits.load(), 1);
  EXPECT_TRUE(
      hasEvent("FailedPostStartHook",
               "HTTP lifecycle hook (/hook) for Container \"app\" in Pod \"http-down-node-1_"
               "default(" +
                   http_down.pod.metadata.uid +
                   ")\" failed - error: Get \"http://"
                   "127.0.0.1:" +
                   std::to_string(closed) + "/hook\""));
  EXPECT_TRUE(hasEvent("FailedPostStartHook",
                       "Exec lifecycle hook ([sh -c exit 3]) for Container \"app\" in Pod "
                       "\"exec-fails-node-1_default(" +
                           exec_fails.pod.metadata.uid +
                           ")\" failed - error: command 'sh -c exit 3' exited with 3: err, "
                           "message: \"outerr\""));
  const auto st = status(exec_fails.pod.metadata.uid);
  ASSERT_FALSE(st.container_statuses.empty());
  ASSERT_TRUE(st.container_statuses[0].state.waiting);
  EXPECT_EQ(st.container_statuses[0].state.waiting->reason, "PostStartHookError");
  // preStop sleep: nodelet waits (the image needs no sleep binary), then stops the container.
  rt_.clearCalls();
  const MonoTime before = clock_.monotonicNow();
  apply({http_ok, http_down});
  EXPECT_GE(clock_.monotonicNow() - before, std::chrono::seconds(7));
  EXPECT_EQ(rt_.countCalls("ExecSync"), 0u);
  EXPECT_GE(rt_.countCalls("StopContainer"), 1u);
  http.stop();
}

TEST_F(AgentTest, APrivateImageIsPulledWithTheMatchingPullSecretCredentials) {
  testing::FakeObjectSource objects;
  objects.secrets["default/regcred"] = {
      {".dockerconfigjson",
       R"({"auths":{"registry.example.com/app":{"username":"stale","password":"old"},)"
       R"("registry.example.com":{"username":"robot","password":"s3cret"},)"
       R"("quay.example.com":{"username":"elsewhere","password":"x"}}})"}};
  opts_.static_objects = &objects;
  start();
  images_.requireAuth("registry.example.com/app:1", "robot", "s3cret");
  auto p = manifest(
      "apiVersion: v1\nkind: Pod\nmetadata: {name: private}\nspec:\n"
      "  imagePullSecrets: [{name: missing}, {name: regcred}]\n"
      "  containers: [{name: app, image: registry.example.com/app:1}]\n");
  apply({p});
  // The more specific key first (its stale credentials fail), then the registry's.
  EXPECT_EQ(images_.pullUsers(), (std::vector<std::string>{"stale", "robot"}));
  EXPECT_EQ(running().size(), 1u);
  EXPECT_TRUE(hasEvent("FailedToRetrieveImagePullSecret",
                       "Unable to retrieve some image pull secrets (missing); attempting to pull "
                       "the image may not succeed."));
  // Without the Secret the pull is anonymous, and refused as the registry refuses it.
  objects.secrets.clear();
  auto q = manifest(
      "apiVersion: v1\nkind: Pod\nmetadata: {name: nocreds}\nspec:\n"
      "  imagePullSecrets: [{name: regcred}]\n"
      "  containers: [{name: app, image: registry.example.com/app:1, imagePullPolicy: Always}]\n",
      "/m/nocreds.yaml");
  apply({p, q});
  EXPECT_EQ(images_.pullUsers().back(), "");
  EXPECT_TRUE(hasEvent("Failed", "401 Unauthorized"));
}

TEST_F(AgentTest, ARuntimeErrorIsRetried) {
  rt_.injectError("RunPodSandbox", Error{ErrorCode::Unknown, "cni not ready"});
  auto web = manifest(kWeb);
  apply({web});
  EXPECT_TRUE(rt_.sandboxes().empty());
  EXPECT_TRUE(hasEvent("FailedCreatePodSandBox", "cni not ready"));
  clock_.advance(std::chrono::seconds(2));
  settle();
  EXPECT_EQ(running().size(), 1u);
}

}  // namespace
}  // namespace nodelet::agent

namespace nodelet::agent {
namespace {

// Pods from the API server: they run beside static pods, a deleted one is stopped within its
// grace period and reported finished, and the orphan rule waits for every source.
class ApiSourceTest : public AgentTest {
 protected:
  void startCluster() {
    agent_.reset();
    runtime_ = std::make_unique<RuntimeManager>(rt_, images_, clock_, events_, opts_);
    AgentOptions ao;
    ao.node_ip = "192.0.2.1";
    ao.watch_exits = false;
    ao.sources = {"file", "api"};
    ao.on_pod_terminated = [this](const std::string& uid) { terminated_.push_back(uid); };
    agent_ = std::make_unique<Agent>(*runtime_, statuses_, events_, clock_, ao);
  }
  api::Pod apiPod(const std::string& name, const std::string& uid) {
    auto p = api::decodePod(
        R"({"metadata":{"name":")" + name + R"(","namespace":"default","uid":")" + uid +
        R"("},"spec":{"nodeName":"node-1","terminationGracePeriodSeconds":30,)"
        R"("containers":[{"name":"c","image":"localhost/nodelet/busybox:1.35"}]}})");
    EXPECT_TRUE(p) << p.error().message;
    p->metadata.annotations["kubernetes.io/config.source"] = "api";
    return *p;
  }
  std::vector<std::string> terminated_;
};

class FakeInhibitor final : public ShutdownInhibitor {
 public:
  Status start(std::function<void()> on_shutdown, Duration wanted) override {
    on_shutdown_ = std::move(on_shutdown);
    wanted_ = wanted;
    return {};
  }
  void release() override { released_ = true; }
  std::function<void()> on_shutdown_;
  Duration wanted_{};
  bool released_{false};
};

TEST_F(ApiSourceTest, AShutdownStopsRegularPodsFirstThenCriticalOnesThenLetsGo) {
  startCluster();
  agent_->onFileSnapshot([&] {
    staticpods::FileSnapshot s;
    s.pods = {manifest(kWeb)};  // static: critical
    return s;
  }());
  auto regular = apiPod("a", "uid-a");
  auto critical = apiPod("dns", "uid-dns");
  critical.spec.priority = 2'000'000'000;  // system-cluster-critical
  agent_->onApiPods({regular, critical});
  settle();
  ASSERT_EQ(running().size(), 3u);

  clock_.setAutoAdvance(true);  // the manager's waits take no real time
  FakeInhibitor inhibitor;
  std::vector<std::pair<bool, int64_t>> stopped;  // (critical, grace) in order
  NodeShutdownManager shutdown(inhibitor,
                               ShutdownHooks{[&](bool c, int64_t grace) {
                                               stopped.emplace_back(c, grace);
                                               agent_->stopPodsForShutdown(c, grace);
                                               agent_->workers().waitIdle();
                                             },
                                             [&](bool c) { return agent_->podsRunning(c); }},
                               clock_, std::chrono::seconds(30), std::chrono::seconds(10));
  ASSERT_TRUE(shutdown.start());
  EXPECT_EQ(inhibitor.wanted_, std::chrono::seconds(30));
  shutdown.onShutdown();
  EXPECT_EQ(stopped, (std::vector<std::pair<bool, int64_t>>{{false, 20}, {true, 10}}));
  EXPECT_TRUE(inhibitor.released_);
  EXPECT_TRUE(running().empty());
  for (const auto& uid : {regular.metadata.uid, critical.metadata.uid}) {
    auto st = statuses_.podStatus(uid);
    ASSERT_TRUE(st) << uid;
    EXPECT_EQ(st->phase, "Failed") << uid;
    EXPECT_EQ(st->reason, "Terminated") << uid;
    EXPECT_EQ(st->message, "Pod was terminated in response to imminent node shutdown.");
  }
  // Nothing starts them again.
  agent_->relist();
  agent_->workers().tick();
  agent_->workers().waitIdle();
  EXPECT_TRUE(running().empty());
}

TEST_F(ApiSourceTest, ApiPodsRunAndADeletedOneStopsAndIsReportedFinished) {
  std::vector<std::string> phases;  // what the API status syncer would be told
  statuses_.setListener([&](const api::Pod& p, bool removed) {
    if (!removed) phases.push_back(p.status.phase);
  });
  startCluster();
  agent_->onFileSnapshot({});
  agent_->onApiPods({apiPod("a", "uid-a")});
  settle();
  ASSERT_EQ(running().size(), 1u);
  EXPECT_EQ(status("uid-a").phase, "Running");

  api::Pod deleting = apiPod("a", "uid-a");
  deleting.metadata.deletion_timestamp = clock_.systemNow() + std::chrono::seconds(30);
  deleting.metadata.deletion_grace_period_seconds = 30;
  agent_->onApiPods({deleting});
  settle();
  EXPECT_TRUE(running().empty());
  EXPECT_EQ(terminated_, (std::vector<std::string>{"uid-a"}));
  EXPECT_TRUE(hasEvent("Killing", "Stopping container c"));
  // The kill's final status was published (the syncer sends it before the DELETE): terminal,
  // whatever the restart policy. Resyncs and relists never start it again.
  ASSERT_FALSE(phases.empty());
  EXPECT_TRUE(phases.back() == "Succeeded" || phases.back() == "Failed") << phases.back();
  agent_->relist();
  settle();
  EXPECT_TRUE(running().empty());
  // The API server removes it: the agent forgets it.
  agent_->onApiPods({});
  settle();
  EXPECT_FALSE(statuses_.podStatus("uid-a"));
}

TEST_F(ApiSourceTest, AReadinessGateSetByAControllerMakesThePodReady) {
  startCluster();
  api::Pod p = apiPod("gated", "uid-g");
  p.spec.readiness_gates = {"example.com/lb"};
  agent_->onApiPods({p});
  settle();
  auto cond = [&](const std::string& type) {
    for (const auto& c : status("uid-g").conditions)
      if (c.type == type) return c;
    return api::PodCondition{};
  };
  EXPECT_EQ(cond("ContainersReady").status, "True");
  EXPECT_EQ(cond("Ready").reason, "ReadinessGatesNotReady");
  // The load balancer controller sets its condition: a status-only change of the API pod.
  p.status.conditions = {{"example.com/lb", "True", "", "", {}, {}}};
  agent_->onApiPods({p});
  settle();
  EXPECT_EQ(cond("Ready").status, "True");
}

TEST_F(AgentTest, HostnamesDomainsAndTheSharedProcessNamespace) {
  opts_.dns.cluster_domain = "cluster.local";
  start();
  auto pod = [&](const std::string& name, const std::string& extra) {
    return manifest("apiVersion: v1\nkind: Pod\nmetadata: {name: " + name + "}\nspec:\n" + extra +
                        "  containers:\n  - {name: app, image: localhost/nodelet/busybox:1.35}\n",
                    "/m/" + name + ".yaml");
  };
  auto web = pod("web", "  hostname: web-0\n  subdomain: nginx\n  shareProcessNamespace: true\n");
  auto fqdn = pod("fqdn", "  hostname: db-0\n  subdomain: db\n  setHostnameAsFQDN: true\n");
  auto too_long = pod("long",
                      "  hostname: a-very-long-hostname-for-a-pod\n  subdomain: "
                      "a-long-subdomain\n  setHostnameAsFQDN: true\n");
  apply({web, fqdn, too_long});
  std::map<std::string, cri::PodSandboxConfig> configs;  // by pod name
  for (const auto& sb : rt_.sandboxes())
    if (auto c = rt_.sandboxConfig(sb.id)) configs[sb.metadata.name] = *c;
  ASSERT_EQ(configs.size(), 2u);
  const auto& w = configs["web-node-1"];
  EXPECT_EQ(w.hostname, "web-0");
  EXPECT_EQ(w.security.namespaces.pid, cri::NamespaceMode::Pod);
  EXPECT_EQ(configs["fqdn-node-1"].hostname, "db-0.db.default.svc.cluster.local");
  EXPECT_EQ(configs["fqdn-node-1"].security.namespaces.pid, cri::NamespaceMode::Container);
  // Each container of the sharing pod joins the pod's PID namespace.
  std::map<std::string, cri::NamespaceMode> pid;  // container id -> mode
  for (const auto& [id, c] : rt_.containerConfigs()) pid[id] = c.security.namespaces.pid;
  size_t sharing = 0;
  for (const auto& c : rt_.containers()) {
    if (c.labels.at("io.kubernetes.pod.name") != "web-node-1") continue;
    ++sharing;
    EXPECT_EQ(pid[c.id], cri::NamespaceMode::Pod);
  }
  EXPECT_EQ(sharing, 1u);
  // /etc/hosts names the FQDN first, as the kubelet's.
  std::ifstream hosts(std::filesystem::path(opts_.root_dir) / "pods" / web.pod.metadata.uid /
                      "etc-hosts");
  std::stringstream text;
  text << hosts.rdbuf();
  EXPECT_NE(text.str().find("\tweb-0.nginx.default.svc.cluster.local\tweb-0\n"), std::string::npos)
      << text.str();
  EXPECT_TRUE(hasEvent("FailedCreatePodSandBox",
                       "failed to construct FQDN from pod hostname and cluster domain, FQDN "
                       "a-very-long-hostname-for-a-pod.a-long-subdomain.default.svc.cluster.local "
                       "is too long (64 characters is the max, 73 characters requested)"));
}

TEST_F(ApiSourceTest, KubectlDebugAddsAnEphemeralContainerThatSeesItsTarget) {
  startCluster();
  api::Pod p = apiPod("app", "uid-e");
  agent_->onApiPods({p});
  settle();
  std::string app_id;
  for (const auto& c : rt_.containers())
    if (c.name == "c") app_id = c.id;
  ASSERT_FALSE(app_id.empty());
  // kubectl debug -it app --image=busybox --target=c: the pods/ephemeralcontainers update.
  api::Container debugger;
  debugger.name = "debugger-x7";
  debugger.image = "localhost/nodelet/busybox:1.35";
  debugger.target_container_name = "c";
  debugger.stdin_ = true;
  debugger.tty = true;
  p.spec.ephemeral_containers.push_back(debugger);
  agent_->onApiPods({p});
  settle();
  std::string debug_id;
  for (const auto& [id, cfg] : rt_.containerConfigs()) {
    if (cfg.name != "debugger-x7") continue;
    debug_id = id;
    EXPECT_EQ(cfg.security.namespaces.pid, cri::NamespaceMode::Target);
    EXPECT_EQ(cfg.security.namespaces.target_id, app_id);
    EXPECT_TRUE(cfg.tty && cfg.stdin_);
  }
  ASSERT_FALSE(debug_id.empty());
  auto st = status("uid-e");
  ASSERT_EQ(st.ephemeral_container_statuses.size(), 1u);
  EXPECT_TRUE(st.ephemeral_container_statuses[0].state.running);
  EXPECT_FALSE(st.ephemeral_container_statuses[0].ready);
  EXPECT_FALSE(st.ephemeral_container_statuses[0].started.has_value());
  EXPECT_EQ(st.phase, "Running");
  // The session ends: the container stays exited, and the pod runs on.
  rt_.exitContainer(debug_id, 0);
  settle();
  clock_.advance(std::chrono::minutes(1));
  agent_->onApiPods({p});
  settle();
  size_t debuggers = 0;
  for (const auto& [id, cfg] : rt_.containerConfigs()) debuggers += cfg.name == "debugger-x7";
  EXPECT_EQ(debuggers, 1u) << "never restarted";
  st = status("uid-e");
  ASSERT_TRUE(st.ephemeral_container_statuses[0].state.terminated);
  EXPECT_EQ(st.ephemeral_container_statuses[0].state.terminated->exit_code, 0);
  EXPECT_EQ(st.phase, "Running");
}

TEST_F(ApiSourceTest, NothingIsAnOrphanUntilEverySourceHasSpoken) {
  startCluster();
  agent_->onApiPods({apiPod("a", "uid-a")});
  settle();
  ASSERT_EQ(running().size(), 1u);
  // A restart of nodelet: the file source speaks first; the API pod must not be killed.
  startCluster();
  agent_->onFileSnapshot({});
  agent_->relist();
  agent_->housekeeping();
  settle();
  EXPECT_EQ(running().size(), 1u);
  agent_->onApiPods({apiPod("a", "uid-a")});
  agent_->housekeeping();
  settle();
  EXPECT_EQ(running().size(), 1u);
  // Now gone from the API server while nodelet was away: an orphan, stopped.
  startCluster();
  agent_->onFileSnapshot({});
  agent_->onApiPods({});
  agent_->relist();
  agent_->housekeeping();
  settle();
  EXPECT_TRUE(running().empty());
}

}  // namespace
}  // namespace nodelet::agent

namespace nodelet::agent {
namespace {

const char* kHostPortPod = R"(apiVersion: v1
kind: Pod
metadata: {name: NAME}
spec:
  containers:
  - name: web
    image: localhost/nodelet/busybox:1.35
    ports: [{containerPort: 80, hostPort: 8080, hostIP: HOSTIP}]
)";

std::string hostPortPod(const std::string& name, const std::string& host_ip) {
  std::string s = kHostPortPod;
  s.replace(s.find("NAME"), 4, name);
  s.replace(s.find("HOSTIP"), 6, host_ip);
  return s;
}

TEST_F(AgentTest, PodsOffTheHostNetworkWaitForTheRuntimesNetwork) {
  rt_.setNetworkReady(false);
  agent_->housekeeping();
  EXPECT_NE(agent_->networkNotReady().find("NetworkReady=false reason:NetworkPluginNotReady"),
            std::string::npos);
  auto web = manifest(kWeb);
  auto host = manifest(R"(apiVersion: v1
kind: Pod
metadata: {name: hostnet}
spec:
  hostNetwork: true
  containers: [{name: app, image: localhost/nodelet/busybox:1.35}]
)",
                       "/m/hostnet.yaml");
  apply({web, host});
  // Only the host-network pod got a sandbox; the other waits, told once why.
  ASSERT_EQ(rt_.sandboxes().size(), 1u);
  EXPECT_EQ(rt_.sandboxes()[0].labels.at("io.kubernetes.pod.name"), "hostnet-node-1");
  EXPECT_TRUE(
      hasEvent("NetworkNotReady", "network is not ready: container runtime network not ready"));
  EXPECT_EQ(status(web.pod.metadata.uid).phase, "Pending");
  // The network comes up: the waiting pod starts on its next try.
  rt_.setNetworkReady(true);
  clock_.advance(std::chrono::seconds(6));
  agent_->housekeeping();
  EXPECT_EQ(agent_->networkNotReady(), "");
  agent_->workers().tick();
  settle();
  EXPECT_EQ(rt_.sandboxes().size(), 2u);
  EXPECT_EQ(status(web.pod.metadata.uid).phase, "Running");
}

TEST_F(AgentTest, AHostPortTakenByAnotherPodIsRefusedAtAdmission) {
  auto first = manifest(hostPortPod("first", "127.0.0.1"), "/m/first.yaml");
  apply({first});
  auto clash = manifest(hostPortPod("clash", ""), "/m/clash.yaml");  // all addresses: overlaps
  auto other_ip = manifest(hostPortPod("elsewhere", "127.0.0.2"), "/m/elsewhere.yaml");
  apply({first, clash, other_ip});
  const auto s = status(clash.pod.metadata.uid);
  EXPECT_EQ(s.phase, "Failed");
  EXPECT_EQ(s.reason, "NodePorts");
  EXPECT_EQ(s.message,
            "Pod was rejected: Predicate NodePorts failed: node(s) didn't have free ports for the "
            "requested pod ports");
  EXPECT_TRUE(hasEvent("NodePorts", "Predicate NodePorts failed: node(s) didn't have free ports"));
  EXPECT_EQ(status(other_ip.pod.metadata.uid).phase, "Running");
  EXPECT_EQ(running().size(), 2u);
}

TEST_F(AgentTest, EverySandboxTheRuntimeKnowsIsReportedForLeakReclaim) {
  std::vector<std::set<std::string>> seen;
  AgentOptions ao;
  ao.on_all_sandboxes = [&](const std::set<std::string>& ids) { seen.push_back(ids); };
  restartAgent(ao);
  apply({manifest(kWeb)});
  // Someone else's sandbox counts too (another CRI client on the same network).
  cri::PodSandboxConfig other;
  other.metadata = {"other", "other-uid", "default", 0};
  ASSERT_TRUE(rt_.runPodSandbox(other, ""));
  agent_->housekeeping();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].size(), 2u);
  agent_->housekeeping();  // not again before the period
  EXPECT_EQ(seen.size(), 1u);
  clock_.advance(std::chrono::minutes(11));
  agent_->housekeeping();
  EXPECT_EQ(seen.size(), 2u);
}

}  // namespace
}  // namespace nodelet::agent

namespace nodelet::agent {
namespace {

TEST_F(AgentTest, PodsThatDoNotFitAllocatableAreRefused) {
  AgentOptions ao;
  ao.allocatable_cpu_milli = 1000;
  ao.allocatable_memory_bytes = 1 << 30;
  restartAgent(ao);
  auto pod = [&](const std::string& name, const std::string& cpu, const std::string& mem) {
    return manifest(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: " + name +
            "}\nspec:\n  containers:\n  - name: app\n    image: localhost/nodelet/busybox:1.35\n"
            "    resources: {requests: {cpu: " +
            cpu + ", memory: " + mem + "}}\n",
        "/m/" + name + ".yaml");
  };
  auto a = pod("a", "600m", "100Mi");
  auto b = pod("b", "500m", "100Mi");  // 600m + 500m > 1000m
  auto c = pod("c", "100m", "2Gi");    // memory
  auto d = pod("d", "400m", "100Mi");  // fits exactly
  apply({a, b, c, d});
  EXPECT_EQ(status(b.pod.metadata.uid).reason, "OutOfcpu");
  EXPECT_EQ(status(b.pod.metadata.uid).message,
            "Pod was rejected: Node didn't have enough resource: cpu, requested: 500, used: 600, "
            "capacity: 1000");
  EXPECT_EQ(status(c.pod.metadata.uid).reason, "OutOfmemory");
  EXPECT_EQ(status(d.pod.metadata.uid).phase, "Running");
  EXPECT_EQ(running().size(), 2u);
}

TEST_F(AgentTest, NodeAffinityIsCheckedAgainstAFreshNodeBeforeARefusal) {
  AgentOptions ao;
  // The cached Node lacks the label an administrator just added; the API server has it.
  std::vector<bool> asked;
  ao.admission_node = [&](bool fresh) {
    asked.push_back(fresh);
    AdmissionNode n{"node-1", {{"kubernetes.io/hostname", "node-1"}}, {}};
    if (fresh) n.labels["disk"] = "ssd";
    return n;
  };
  restartAgent(ao);
  auto pod = [&](const std::string& name, const std::string& selector) {
    return manifest(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: " + name + "}\nspec:\n  nodeSelector: {" +
            selector + "}\n  containers:\n  - {name: app, image: localhost/nodelet/busybox:1.35}\n",
        "/m/" + name + ".yaml");
  };
  auto plain = pod("plain", "kubernetes.io/hostname: node-1");
  apply({plain});
  EXPECT_EQ(asked, std::vector<bool>{false}) << "a match on the cached Node is enough";
  auto ssd = pod("ssd", "disk: ssd");
  auto gpu = pod("gpu", "gpu: a100");
  apply({plain, ssd, gpu});
  EXPECT_EQ(status(ssd.pod.metadata.uid).phase, "Running");
  const auto s = status(gpu.pod.metadata.uid);
  EXPECT_EQ(s.phase, "Failed");
  EXPECT_EQ(s.reason, "NodeAffinity");
  EXPECT_EQ(s.message,
            "Pod was rejected: Predicate NodeAffinity failed: node(s) didn't match Pod's node "
            "affinity/selector");
  EXPECT_TRUE(hasEvent("NodeAffinity", "Predicate NodeAffinity failed"));
  EXPECT_EQ(running().size(), 2u);
}

TEST_F(AgentTest, AdmissionReportsTheFirstFailureInTheKubeletsOrder) {
  // A pod that fails every check, then the same pod with one failure fewer each time: the reason
  // reported walks the kubelet's order (OS, pod limit, resources, node affinity, host ports).
  auto reason = [&](int32_t max_pods, const std::string& name, const std::string& extra,
                    const std::string& requests) {
    AgentOptions ao;
    ao.max_pods = max_pods;
    ao.allocatable_cpu_milli = 100;
    restartAgent(ao);
    // Admitted first (same creation time: by name), it holds the pod slot and the host port.
    auto first = manifest(hostPortPod("a-" + name, ""), "/m/a-" + name + ".yaml");
    std::string text = hostPortPod("z-" + name, "");
    text.replace(text.find("  containers:"), 0, extra);
    text += requests;
    auto pod = manifest(text, "/m/" + name + ".yaml");
    apply({first, pod});
    return status(pod.pod.metadata.uid).reason;
  };
  const std::string cpu = "    resources: {requests: {cpu: 200m}}\n";
  const std::string affinity = "  nodeSelector: {gpu: a100}\n";
  EXPECT_EQ(reason(1, "a", "  os: {name: windows}\n" + affinity, cpu), "PodOSNotSupported");
  EXPECT_EQ(reason(1, "b", affinity, cpu), "OutOfpods");
  EXPECT_EQ(reason(10, "c", affinity, cpu), "OutOfcpu");
  EXPECT_EQ(reason(10, "d", affinity, ""), "NodeAffinity");
  EXPECT_EQ(reason(10, "e", "", ""), "NodePorts");
}

}  // namespace
}  // namespace nodelet::agent

namespace nodelet::agent {
namespace {

TEST_F(AgentTest, StaticPodsUseConfigMapsFromTheirDirectoryAndFollowTheirEdits) {
  kube::StaticObjectSource objects;
  opts_.static_objects = &objects;
  start();
  objects.replace({{"configmaps/default/cfg", {{"greeting", "hello"}}}});
  auto p = manifest(R"yaml(apiVersion: v1
kind: Pod
metadata: {name: cfg-user}
spec:
  volumes: [{name: conf, configMap: {name: cfg}}]
  containers:
  - name: app
    image: localhost/nodelet/busybox:1.35
    env: [{name: GREETING, valueFrom: {configMapKeyRef: {name: cfg, key: greeting}}}]
    volumeMounts: [{name: conf, mountPath: /etc/app}]
)yaml",
                    "/m/cfg-user.yaml");
  apply({p});
  auto run = running();
  ASSERT_EQ(run.size(), 1u);
  const auto file = dir_.path() / "root/pods" / p.pod.metadata.uid /
                    "volumes/kubernetes.io~configmap/conf/greeting";
  auto read = [&] {
    std::ifstream in(file);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  };
  EXPECT_EQ(read(), "hello");
  const auto env = rt_.containerConfigs().at(run[0].id).envs;
  EXPECT_NE(
      std::find(env.begin(), env.end(), std::pair<std::string, std::string>{"GREETING", "hello"}),
      env.end());
  // An edit of the ConfigMap's file: the volume follows in place, the container keeps running.
  const auto changed = objects.replace({{"configmaps/default/cfg", {{"greeting", "bye"}}}});
  ASSERT_EQ(changed, std::vector<std::string>{"configmaps/default/cfg"});
  agent_->onObjectChanged(changed[0], /*static_pods=*/true);
  agent_->workers().waitIdle();
  EXPECT_EQ(read(), "bye");
  ASSERT_EQ(running().size(), 1u);
  EXPECT_EQ(running()[0].id, run[0].id) << "not restarted";
  // Removed: the running pod keeps what it had; a new pod could not start without it.
  EXPECT_EQ(objects.replace({}), std::vector<std::string>{"configmaps/default/cfg"});
}

TEST_F(AgentTest, SubPathExprAndProcMount) {
  auto p = manifest(R"yaml(apiVersion: v1
kind: Pod
metadata: {name: paths}
spec:
  volumes: [{name: data, emptyDir: {}}]
  containers:
  - name: app
    image: localhost/nodelet/busybox:1.35
    env: [{name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
    securityContext: {procMount: Unmasked}
    volumeMounts: [{name: data, mountPath: /logs, subPathExpr: "logs/$(POD)"}]
)yaml",
                    "/m/paths.yaml");
  apply({p});
  auto run = running();
  ASSERT_EQ(run.size(), 1u);
  const auto cfg = rt_.containerConfigs().at(run[0].id);
  EXPECT_TRUE(cfg.security.masked_paths.empty()) << "procMount Unmasked";
  bool found = false;
  for (const auto& m : cfg.mounts)
    if (m.container_path == "/logs") {
      found = true;
      EXPECT_TRUE(m.host_path.ends_with("/volumes/kubernetes.io~empty-dir/data/logs/paths-node-1"))
          << m.host_path;
    }
  EXPECT_TRUE(found);
  EXPECT_FALSE(staticpods::parseManifest(R"(apiVersion: v1
kind: Pod
metadata: {name: x}
spec:
  volumes: [{name: d, emptyDir: {}}]
  containers: [{name: a, image: i, volumeMounts: [{name: d, mountPath: /d, subPath: a, subPathExpr: b}]}]
)",
                                         {"node-1", "/m/x.yaml", clock_.systemNow()}));
  EXPECT_FALSE(staticpods::parseManifest(R"(apiVersion: v1
kind: Pod
metadata: {name: x}
spec:
  containers: [{name: a, image: i, securityContext: {procMount: Sometimes}}]
)",
                                         {"node-1", "/m/x.yaml", clock_.systemNow()}));
}

}  // namespace
}  // namespace nodelet::agent
