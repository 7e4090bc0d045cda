// Cluster mode end to end: the nodelet binary with --kubeconfig against the fake API server
// (tests/fakes) and the rig's real containerd. The node registers and turns Ready with a Lease,
// pods bound to it run and their status reaches the API, deletion, mirror pods, a 410 on the
// watch, an API outage (with a nodelet restart in the middle) that loses nothing, and kubectl.
#include <gtest/gtest.h>
#include <httplib.h>

#include <array>
#include <cstdio>
#include <fstream>

#include "agent/core/clock.h"
#include "tests/common/free_port.h"
#include "tests/e2e/nodelet_process.h"
#include "tests/fakes/fake_apiserver.h"

namespace nodelet::e2e {
namespace {

using nlohmann::json;
using std::chrono::seconds;

std::string image() { return env("NODELET_E2E_APP_IMAGE", "localhost/nodelet/busybox:1.35"); }
const std::string kIdle = "trap 'exit 0' TERM; while true; do sleep 1 & wait $!; done";

json apiPod(const std::string& name, const std::string& node, const std::string& script = kIdle) {
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"name", name}, {"namespace", "default"}}},
          {"spec",
           {{"nodeName", node},
            {"terminationGracePeriodSeconds", 10},
            {"containers",
             {{{"name", "app"}, {"image", image()}, {"command", {"sh", "-c", script}}}}}}}};
}

std::string conditionStatus(const json& obj, const std::string& type) {
  for (const auto& c : obj["status"].value("conditions", json::array()))
    if (c.value("type", "") == type) return c.value("status", "");
  return "";
}

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  std::array<char, 4096> buf{};
  while (size_t n = std::fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
  ::pclose(p);
  return out;
}

class ClusterE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    NODELET_REQUIRE_RIG();
    api_ = std::make_unique<testing::FakeApiServer>(dir_.str() + "/pki", RealClock::instance());
    ASSERT_TRUE(api_->ok()) << "fake API server did not start";
    n_ = std::make_unique<NodeletProcess>();
    const std::string kc = api_->writeNodeKubeconfig(dir_.str() + "/kubeconfig", n_->node());
    n_->extra_args = {"--kubeconfig=" + kc};
  }
  void TearDown() override {
    if (HasFailure() && n_) std::fprintf(stderr, "---- nodelet log ----\n%s\n", n_->log().c_str());
  }
  void start() { n_->start("nodeStatusUpdateFrequency: 1s\n"); }
  std::optional<json> node() { return api_->get("nodes", "", n_->node()); }
  std::optional<json> pod(const std::string& name) { return api_->get("pods", "default", name); }
  bool podRunningReady(const std::string& name) {
    auto p = pod(name);
    return p && (*p)["status"].value("phase", "") == "Running" &&
           conditionStatus(*p, "Ready") == "True";
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::FakeApiServer> api_;
  std::unique_ptr<NodeletProcess> n_;
};

TEST_F(ClusterE2eTest, NodeRegistersTurnsReadyAndHoldsALease) {
  start();
  ASSERT_TRUE(
      waitFor([&] { return node() && conditionStatus(*node(), "Ready") == "True"; }, seconds(20)));
  ASSERT_TRUE(waitFor(
      [&] { return api_->get("leases", "kube-node-lease", n_->node()).has_value(); }, seconds(5)));
  const json nd = *node();
  const json& info = nd["status"]["nodeInfo"];
  EXPECT_EQ(info["containerRuntimeVersion"].get<std::string>().rfind("containerd://", 0), 0u)
      << info;
  EXPECT_EQ(info["operatingSystem"], "linux");
  EXPECT_FALSE(info["bootID"].get<std::string>().empty());
  EXPECT_EQ(nd["metadata"]["labels"]["kubernetes.io/hostname"], n_->node());
  EXPECT_EQ(nd["status"]["capacity"]["pods"], "110");
  EXPECT_TRUE(nd["status"]["allocatable"].contains("memory"));
  // Node events went to the API server.
  ASSERT_TRUE(waitFor(
      [&] {
        for (const auto& e : api_->list("events"))
          if (e["reason"] == "NodeReady" && e["involvedObject"]["name"] == n_->node()) return true;
        return false;
      },
      seconds(10)));
  // Registration, then the Lease within a second (the kubelet takes ~10 s).
  std::optional<MonoTime> registered, leased;
  for (const auto& r : api_->requests()) {
    if (r.method == "POST" && r.path == "/api/v1/nodes" && r.code == 201) registered = r.at;
    if (r.method == "POST" && r.path.ends_with("/leases") && r.code == 201) leased = r.at;
  }
  ASSERT_TRUE(registered && leased);
  EXPECT_LT(*leased - *registered, std::chrono::seconds(1));
  auto lease = *api_->get("leases", "kube-node-lease", n_->node());
  EXPECT_EQ(lease["metadata"]["ownerReferences"][0]["uid"], nd["metadata"]["uid"]);
}

// kubeadm join's way in: a bootstrap token only. nodelet asks for a client certificate, waits
// for kube-controller-manager (here the test) to approve and sign it, writes --kubeconfig, and
// registers the node with its new identity. A restart keeps that kubeconfig.
TEST_F(ClusterE2eTest, TlsBootstrapFromATokenToARegisteredNode) {
  const std::string boot = api_->writeTokenKubeconfig(
      dir_.str() + "/bootstrap-kubelet.conf", "abcdef.0123456789abcdef", "system:bootstrap:abcdef");
  const std::string kubeconfig = dir_.str() + "/kubelet.conf";
  n_->extra_args = {"--bootstrap-kubeconfig=" + boot, "--kubeconfig=" + kubeconfig,
                    "--cert-dir=" + dir_.str() + "/node-pki"};
  start();
  std::string name;
  ASSERT_TRUE(waitFor(
      [&] {
        auto csrs = api_->list("certificatesigningrequests");
        if (!csrs.empty()) name = csrs[0]["metadata"]["name"];
        return !name.empty();
      },
      seconds(20)))
      << n_->log();
  EXPECT_FALSE(node().has_value()) << "no registration with the bootstrap token";
  ASSERT_TRUE(api_->issueCsr(name));
  ASSERT_TRUE(
      waitFor([&] { return node() && conditionStatus(*node(), "Ready") == "True"; }, seconds(20)))
      << n_->log();
  for (const auto& r : api_->requests()) {
    if (r.method == "POST" && r.path == "/api/v1/nodes") {
      EXPECT_EQ(r.user, "system:node:" + n_->node());
    }
  }
  EXPECT_TRUE(std::filesystem::exists(dir_.str() + "/node-pki/kubelet-client-current.pem"));
  // Restarted, it runs on the written kubeconfig: no second request.
  n_->stop(SIGTERM);
  start();
  ASSERT_TRUE(waitFor([&] { return n_->log().find("no bootstrap needed") != std::string::npos; },
                      seconds(10)))
      << n_->log();
  EXPECT_EQ(api_->list("certificatesigningrequests").size(), 1u);
}

TEST_F(ClusterE2eTest, APodBoundToTheNodeRunsReportsStatusAndIsDeletedGracefully) {
  const int port = testing::freeLocalPort();
  n_->start("nodeStatusUpdateFrequency: 1s\naddress: 127.0.0.1\nport: " + std::to_string(port) +
            "\nauthentication: {anonymous: {enabled: true}, webhook: {enabled: false}}\n"
            "authorization: {mode: AlwaysAllow}\n");
  api_->create("pods", "default", apiPod("app-1", n_->node()));
  ASSERT_TRUE(waitFor([&] { return podRunningReady("app-1"); }, seconds(30)))
      << pod("app-1")->dump();
  // The pod startup SLI: measured once the watch brought the Running status back.
  httplib::SSLClient metrics("127.0.0.1", port);
  metrics.enable_server_certificate_verification(false);
  std::string text;
  EXPECT_TRUE(waitFor(
      [&] {
        auto r = metrics.Get("/metrics");
        text = r ? r->body : "";
        return text.find("\nkubelet_pod_start_sli_duration_seconds_count 1\n") != std::string::npos;
      },
      seconds(10)))
      << text;
  EXPECT_NE(text.find("kubelet_node_name{node=\"" + n_->node() + "\"} 1"), std::string::npos);
  json p = *pod("app-1");
  EXPECT_TRUE(p["status"]["podIP"].get<std::string>().starts_with("10.86.")) << p["status"];
  const auto& cs = p["status"]["containerStatuses"][0];
  EXPECT_EQ(cs["containerID"].get<std::string>().rfind("containerd://", 0), 0u);
  EXPECT_TRUE(cs["ready"].get<bool>());
  EXPECT_EQ(p["status"]["qosClass"], "BestEffort");
  // Every status write carried the UID precondition and the strategic-merge content type.
  for (const auto& r : api_->requests()) {
    if (r.method != "PATCH" || r.path != "/api/v1/namespaces/default/pods/app-1/status") continue;
    EXPECT_EQ(r.content_type, "application/strategic-merge-patch+json");
    EXPECT_EQ(json::parse(r.body)["metadata"]["uid"], p["metadata"]["uid"]);
  }
  // kubectl delete --grace-period=10: stopped, final status, then removed by nodelet.
  api_->remove("pods", "default", "app-1", 10);
  ASSERT_TRUE(waitFor([&] { return !pod("app-1").has_value(); }, seconds(30)));
  EXPECT_TRUE(waitFor([&] { return n_->containers().empty(); }, seconds(10)));
  bool final_status = false, deleted = false;
  for (const auto& r : api_->requests()) {
    if (r.method == "PATCH" && r.path == "/api/v1/namespaces/default/pods/app-1/status" &&
        r.body.find("\"Succeeded\"") != std::string::npos)
      final_status = true;
    if (r.method == "DELETE" && r.path == "/api/v1/namespaces/default/pods/app-1") {
      deleted = true;
      EXPECT_TRUE(final_status) << "the final status goes out before the DELETE";
      json opts = json::parse(r.body);
      EXPECT_EQ(opts["gracePeriodSeconds"], 0);
      EXPECT_EQ(opts["preconditions"]["uid"], p["metadata"]["uid"]);
    }
  }
  EXPECT_TRUE(deleted);
}

TEST_F(ClusterE2eTest, AStaticPodGetsAMirrorPod) {
  start();
  n_->write(
      "web.yaml",
      "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - name: web\n"
      "    image: " +
          image() + "\n    command: [\"sh\", \"-c\", \"" + kIdle + "\"]\n");
  const std::string name = "web-" + n_->node();
  ASSERT_TRUE(waitFor([&] { return podRunningReady(name); }, seconds(30)));
  json m = *pod(name);
  EXPECT_TRUE(m["metadata"]["annotations"].contains("kubernetes.io/config.mirror"));
  EXPECT_EQ(m["metadata"]["ownerReferences"][0]["kind"], "Node");
  const auto before = n_->containerIds();
  // Deleting the mirror pod does not touch the static pod: it is recreated.
  api_->remove("pods", "default", name, 0);
  ASSERT_TRUE(
      waitFor([&] { return pod(name) && (*pod(name))["metadata"]["uid"] != m["metadata"]["uid"]; },
              seconds(20)));
  EXPECT_EQ(n_->containerIds(), before);
  n_->remove("web.yaml");
  EXPECT_TRUE(waitFor([&] { return !pod(name).has_value(); }, seconds(30)));
}

TEST_F(ClusterE2eTest, AWatchBrokenBy410Recovers) {
  start();
  api_->create("pods", "default", apiPod("a", n_->node()));
  ASSERT_TRUE(waitFor([&] { return podRunningReady("a"); }, seconds(30)));
  api_->compact();
  api_->dropWatches();
  api_->create("pods", "default", apiPod("b", n_->node()));
  EXPECT_TRUE(waitFor([&] { return podRunningReady("b"); }, seconds(30)));
  EXPECT_TRUE(podRunningReady("a"));
}

// The kubelet cannot do this: with the API server away, pods keep running and restarting, a
// restart of nodelet brings them back from its checkpoint, and the status is sent when the
// server returns.
TEST_F(ClusterE2eTest, AnApiOutageLosesNothing) {
  start();
  api_->create("pods", "default",
               apiPod("crashy", n_->node(),
                      "if [ -f /tmp/x ]; then " + kIdle + "; fi; touch /tmp/x; sleep 1; exit 3"));
  ASSERT_TRUE(waitFor(
      [&] { return pod("crashy") && (*pod("crashy"))["status"].value("phase", "") == "Running"; },
      seconds(30)));
  // The checkpoint follows what a restart needs: the pod, and its phase now Running (it is
  // rewritten for such changes, not for every status update).
  EXPECT_TRUE(waitFor(
      [&] {
        std::ifstream in(n_->root() / "checkpoints" / "api-pods.json");
        const auto list = json::parse(in, nullptr, false);
        if (!list.is_object()) return false;
        for (const auto& p : list.value("items", json::array()))
          if (p["metadata"]["name"] == "crashy" && p["status"].value("phase", "") == "Running")
            return true;
        return false;
      },
      seconds(10)));
  api_->goDown();
  const auto ids_before = n_->containerIds();
  // Restart nodelet while the API server is down: the pod is not an orphan.
  n_->stop(SIGTERM);
  start();
  ASSERT_TRUE(waitFor(
      [&] {
        for (const auto& c : n_->containers())
          if (c.state == cri::ContainerState::Running) return true;
        return false;
      },
      seconds(20)));
  EXPECT_TRUE(waitFor([&] { return n_->log().find("from the checkpoint") != std::string::npos; },
                      seconds(5)));
  ASSERT_TRUE(api_->comeBack());
  // The restart that happened during the outage reaches the API server.
  EXPECT_TRUE(waitFor(
      [&] {
        auto p = pod("crashy");
        if (!p) return false;
        const auto& cs = (*p)["status"].value("containerStatuses", json::array());
        return !cs.empty() && cs[0].value("restartCount", 0) >= 1 &&
               conditionStatus(*p, "Ready") == "True";
      },
      seconds(30)))
      << pod("crashy")->dump();
  EXPECT_TRUE(
      waitFor([&] { return node() && conditionStatus(*node(), "Ready") == "True"; }, seconds(10)));
}

// A pod naming a RuntimeClass the API server does not have yet waits with the kubelet's event;
// once the RuntimeClass is created (read through a watch, as the kubelet's informer), the pod
// starts with its handler.
TEST_F(ClusterE2eTest, APodWaitsForItsRuntimeClassAndStartsWhenItAppears) {
  n_->start("nodeStatusUpdateFrequency: 1s\n");
  json p = apiPod("classy", n_->node());
  p["spec"]["runtimeClassName"] = "plain";
  api_->create("pods", "default", p);
  const std::string want =
      "Failed to create pod sandbox: runtimeclass.node.k8s.io \"plain\" not found";
  ASSERT_TRUE(waitFor(
      [&] {
        for (const auto& e : api_->list("events"))
          if (e["reason"] == "FailedCreatePodSandBox" && e["message"] == want) return true;
        return false;
      },
      seconds(20)))
      << n_->log();
  EXPECT_FALSE(podRunningReady("classy"));
  api_->create("runtimeclasses", "", {{"metadata", {{"name", "plain"}}}, {"handler", "runc"}});
  ASSERT_TRUE(waitFor([&] { return podRunningReady("classy"); }, seconds(20)))
      << pod("classy")->dump() << n_->log();
}

// Admission reads the API server's Node: a label an administrator just added admits a pod
// selecting it (the kubelet reads the Node again before refusing for affinity), a pod selecting
// a label the Node lacks is refused, and so is one that does not tolerate a NoExecute taint.
TEST_F(ClusterE2eTest, AdmissionChecksTheApiServersNodeLabelsAndTaints) {
  n_->start("nodeStatusUpdateFrequency: 1s\n");
  ASSERT_TRUE(waitFor([&] { return node().has_value(); }, seconds(20)));
  json nd = *node();
  nd["metadata"]["labels"]["disk"] = "ssd";
  nd["spec"]["taints"] = {{{"key", "maintenance"}, {"effect", "NoExecute"}}};
  api_->put("nodes", "", nd);
  auto with = [&](const std::string& name, json extra) {
    json p = apiPod(name, n_->node());
    p["spec"].update(extra);
    api_->create("pods", "default", p);
  };
  const json tolerate = {{{"key", "maintenance"}, {"operator", "Exists"}}};
  with("on-ssd", {{"nodeSelector", {{"disk", "ssd"}}}, {"tolerations", tolerate}});
  with("on-gpu", {{"nodeSelector", {{"gpu", "a100"}}}, {"tolerations", tolerate}});
  with("intolerant", json::object());
  auto failed = [&](const std::string& name) {
    auto p = pod(name);
    return p && (*p)["status"].value("phase", "") == "Failed" ? (*p)["status"] : json();
  };
  ASSERT_TRUE(waitFor([&] { return podRunningReady("on-ssd"); }, seconds(30))) << n_->log();
  ASSERT_TRUE(waitFor([&] { return !failed("on-gpu").is_null(); }, seconds(10)));
  EXPECT_EQ(failed("on-gpu")["reason"], "NodeAffinity");
  EXPECT_EQ(failed("on-gpu")["message"],
            "Pod was rejected: Predicate NodeAffinity failed: node(s) didn't match Pod's node "
            "affinity/selector");
  ASSERT_TRUE(waitFor([&] { return !failed("intolerant").is_null(); }, seconds(10)));
  EXPECT_EQ(failed("intolerant")["reason"], "TaintToleration");
}

// kubectl debug --target: an ephemeral container added through the API joins the target's PID
// namespace (it sees the target's shell loop), runs once, is reported, and kubectl logs reads it.
TEST_F(ClusterE2eTest, AnEphemeralContainerDebugsARunningPod) {
  const int port = testing::freeLocalPort();
  n_->start("nodeStatusUpdateFrequency: 1s\naddress: 127.0.0.1\nport: " + std::to_string(port) +
            "\nauthentication: {anonymous: {enabled: true}, webhook: {enabled: false}}\n"
            "authorization: {mode: AlwaysAllow}\n");
  api_->create("pods", "default", apiPod("app-1", n_->node()));
  ASSERT_TRUE(waitFor([&] { return podRunningReady("app-1"); }, seconds(30))) << n_->log();
  json p = *pod("app-1");
  p["spec"]["ephemeralContainers"] = {
      {{"name", "debugger"},
       {"image", image()},
       {"targetContainerName", "app"},
       {"command", {"sh", "-c", "echo debugging; ps | grep -q 'while tru[e]'"}}}};
  api_->put("pods", "default", p);
  json ecs;
  ASSERT_TRUE(waitFor(
      [&] {
        auto now = pod("app-1");
        ecs = now ? (*now)["status"].value("ephemeralContainerStatuses", json::array())
                  : json::array();
        return !ecs.empty() && ecs[0]["state"].contains("terminated");
      },
      seconds(30)))
      << ecs << n_->log();
  EXPECT_EQ(ecs[0]["name"], "debugger");
  EXPECT_EQ(ecs[0]["state"]["terminated"]["exitCode"], 0) << "it saw the target's processes";
  EXPECT_TRUE(podRunningReady("app-1"));
  httplib::SSLClient logs("127.0.0.1", port);
  logs.enable_server_certificate_verification(false);
  auto r = logs.Get("/containerLogs/default/app-1/debugger");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "debugging\n");
}

// The controller manager assigns the node a pod CIDR: nodelet writes its CNI network from it
// (into a directory of its own here, not the rig's containerd's).
TEST_F(ClusterE2eTest, ThePodCidrFromTheApiServerBecomesTheCniNetwork) {
  const std::string conf = dir_.str() + "/net.d";
  n_->extra_args.push_back("--cni-conf-dir=" + conf);
  n_->extra_args.push_back("--cni-ipam-dir=" + dir_.str() + "/ipam");
  start();
  ASSERT_TRUE(waitFor([&] { return node().has_value(); }, seconds(20)));
  json nd = *node();
  nd["spec"]["podCIDR"] = "10.244.7.0/24";
  nd["spec"]["podCIDRs"] = {"10.244.7.0/24"};
  api_->put("nodes", "", nd);
  const std::string file = conf + "/10-nodelet.conflist";
  std::string text;
  ASSERT_TRUE(waitForFileContaining(file, "10.244.7.0/24", text, seconds(20))) << n_->log();
  json c = json::parse(text);
  EXPECT_EQ(c["plugins"][0]["type"], "bridge");
  EXPECT_EQ(c["cniVersion"], "1.0.0");
}

// What the API server hands a node: a pod with the service-account volume the ServiceAccount
// admission plugin adds (token + kube-root-ca.crt + namespace), a configMap volume, and an env
// var from a Secret. The files are there, secrets on tmpfs, and a ConfigMap edit shows up in the
// running pod without a restart.
TEST_F(ClusterE2eTest, ConfigMapSecretAndServiceAccountVolumes) {
  api_->create("configmaps", "default",
               {{"metadata", {{"name", "kube-root-ca.crt"}}}, {"data", {{"ca.crt", "FAKE CA"}}}});
  api_->create("configmaps", "default",
               {{"metadata", {{"name", "app-config"}}}, {"data", {{"greeting", "hello-v1"}}}});
  api_->create("secrets", "default",
               {{"metadata", {{"name", "app-secret"}}},
                {"data", {{"password", "bm90LWEtcmVhbC1wYXNzd29yZA=="}}}});
  api_->create("services", "default",
               {{"metadata", {{"name", "kubernetes"}}},
                {"spec",
                 {{"clusterIP", "10.96.0.1"},
                  {"ports", {{{"name", "https"}, {"port", 443}, {"protocol", "TCP"}}}}}}});
  n_->start("nodeStatusUpdateFrequency: 1s\nsyncFrequency: 2s\n");
  json p = apiPod("app-1", n_->node(),
                  "cat /var/run/secrets/kubernetes.io/serviceaccount/namespace; echo; "
                  "cat /var/run/secrets/kubernetes.io/serviceaccount/ca.crt; echo; "
                  "head -c 11 /var/run/secrets/kubernetes.io/serviceaccount/token; echo; "
                  "echo pw=$PASSWORD; echo api=$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT; "
                  "grep serviceaccount /proc/mounts | cut -d' ' -f3; "
                  "while true; do cat /etc/app/greeting; echo; sleep 1; done");
  p["spec"]["serviceAccountName"] = "default";
  p["spec"]["containers"][0]["env"] = {
      {{"name", "PASSWORD"},
       {"valueFrom", {{"secretKeyRef", {{"name", "app-secret"}, {"key", "password"}}}}}}};
  p["spec"]["containers"][0]["volumeMounts"] = {
      {{"name", "kube-api-access-abcde"},
       {"mountPath", "/var/run/secrets/kubernetes.io/serviceaccount"},
       {"readOnly", true}},
      {{"name", "config"}, {"mountPath", "/etc/app"}}};
  p["spec"]["volumes"] = json::parse(R"([
    {"name":"kube-api-access-abcde","projected":{"defaultMode":420,"sources":[
      {"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}},
      {"configMap":{"name":"kube-root-ca.crt","items":[{"key":"ca.crt","path":"ca.crt"}]}},
      {"downwardAPI":{"items":[{"path":"namespace","fieldRef":{"apiVersion":"v1","fieldPath":"metadata.namespace"}}]}}]}},
    {"name":"config","configMap":{"name":"app-config"}}])");
  api_->create("pods", "default", p);
  ASSERT_TRUE(waitFor([&] { return podRunningReady("app-1"); }, seconds(30)))
      << pod("app-1")->dump();
  json running = *pod("app-1");
  const auto logf = n_->logs() /
                    ("default_app-1_" + running["metadata"]["uid"].get<std::string>()) / "app" /
                    "0.log";
  std::string text;
  ASSERT_TRUE(waitForFileContaining(logf.string(), "hello-v1", text, seconds(20))) << text;
  EXPECT_NE(text.find(" default\n"), std::string::npos) << text;
  EXPECT_NE(text.find("FAKE CA"), std::string::npos) << text;
  EXPECT_NE(text.find("fake-token."), std::string::npos) << text;
  EXPECT_NE(text.find("pw=not-a-real-password"), std::string::npos) << text;
  EXPECT_NE(text.find("api=10.96.0.1:443"), std::string::npos) << "service links: " << text;
  EXPECT_NE(text.find(" tmpfs\n"), std::string::npos) << "the token volume is a tmpfs: " << text;
  EXPECT_GE(api_->tokensIssued(), 1u);
  // Edit the ConfigMap: the running container sees it (after a resync), no restart.
  json cm = *api_->get("configmaps", "default", "app-config");
  cm["data"]["greeting"] = "hello-v2";
  api_->put("configmaps", "default", cm);
  EXPECT_TRUE(waitForFileContaining(logf.string(), "hello-v2", text, seconds(20)));
  EXPECT_EQ((*pod("app-1"))["status"]["containerStatuses"][0]["restartCount"], 0);
}

TEST_F(ClusterE2eTest, KubectlSeesTheNodeAndItsPods) {
  if (run("command -v kubectl").empty()) GTEST_SKIP() << "kubectl is not installed";
  const std::string kc =
      api_->writeTokenKubeconfig(dir_.str() + "/admin.kubeconfig", "admin-token", "admin");
  start();
  api_->create("pods", "default", apiPod("seen", n_->node()));
  ASSERT_TRUE(waitFor([&] { return podRunningReady("seen"); }, seconds(30)));
  const std::string nodes = run("kubectl --kubeconfig=" + kc + " get nodes 2>&1");
  EXPECT_NE(nodes.find(n_->node()), std::string::npos) << nodes;
  EXPECT_NE(nodes.find("Ready"), std::string::npos) << nodes;
  const std::string pods = run("kubectl --kubeconfig=" + kc + " get pods -o wide -A 2>&1");
  std::printf("%s%s", nodes.c_str(), pods.c_str());  // for people reading the CI log
  EXPECT_NE(pods.find("seen"), std::string::npos) << pods;
  EXPECT_NE(pods.find("Running"), std::string::npos) << pods;
  EXPECT_NE(pods.find("10.86."), std::string::npos) << pods;
  EXPECT_NE(pods.find(n_->node()), std::string::npos) << pods;
}

}  // namespace
}  // namespace nodelet::e2e
