// nodelet as a user runs it: the binary, a directory of manifests, the rig's real containerd.
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <fstream>
#include <random>
#include <set>

#include "tests/common/free_port.h"
#include "tests/common/raw_client.h"
#include "tests/common/websocket.h"
#include "tests/e2e/nodelet_process.h"

namespace nodelet::e2e {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

std::string image() { return env("NODELET_E2E_APP_IMAGE", "localhost/nodelet/busybox:1.35"); }

// A pod whose containers are given as YAML list items (already indented by 2).
std::string podYaml(const std::string& name, const std::string& spec) {
  return "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name + "\nspec:\n" + spec;
}
std::string container(const std::string& name, const std::string& script,
                      const std::string& extra = "") {
  return "  - name: " + name + "\n    image: " + image() + "\n    command: [\"sh\", \"-c\", \"" +
         script + "\"]\n" + extra;
}
// PID 1 must trap TERM or every stop costs the whole grace period.
const std::string kIdle = "trap 'exit 0' TERM; while true; do sleep 1 & wait $!; done";

class NodeletE2eTest : public ::testing::Test {
 protected:
  void SetUp() override { NODELET_REQUIRE_RIG(); }
  void TearDown() override {
    if (HasFailure() && n_) std::fprintf(stderr, "---- nodelet log ----\n%s\n", n_->log().c_str());
  }
  NodeletProcess& start() {
    n_ = std::make_unique<NodeletProcess>();
    n_->start();
    return *n_;
  }
  std::unique_ptr<NodeletProcess> n_;
};

TEST_F(NodeletE2eTest, RunsAWebPodReachableOnItsHostPort) {
  auto& n = start();
  const int port = 20000 + static_cast<int>(std::random_device{}() % 20000);
  n.write(
      "web.yaml",
      podYaml("web",
              "  containers:\n" +
                  container(
                      "httpd",
                      "trap 'exit 0' TERM; mkdir -p /www; echo hello-$(NODE) > /www/index.html; "
                      "httpd -f -p 80 -h /www & wait",
                      "    env: [{name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}]\n"
                      "    ports: [{containerPort: 80, hostPort: " +
                          std::to_string(port) + ", hostIP: 127.0.0.1}]\n")));
  ASSERT_TRUE(waitFor([&] { return n.phase("web") == "Running"; }, seconds(20))) << n.phase("web");
  httplib::Client http("127.0.0.1", port);
  http.set_connection_timeout(1);
  std::string body;
  EXPECT_TRUE(waitFor(
      [&] {
        auto r = http.Get("/");
        if (r && r->status == 200) body = r->body;
        return !body.empty();
      },
      seconds(10)));
  EXPECT_EQ(body, "hello-" + n.node() + "\n");
  auto pod = *n.pod("web");
  const std::string ip = pod["status"]["podIP"];
  EXPECT_TRUE(ip.starts_with("10.86.")) << ip;
  EXPECT_EQ(pod["status"]["qosClass"], "BestEffort");
  EXPECT_EQ(pod["metadata"]["annotations"]["kubernetes.io/config.source"], "file");
  // The container log is where the kubelet puts it, in CRI format.
  const auto log = n.logs() /
                   ("default_web-" + n.node() + "_" + pod["metadata"]["uid"].get<std::string>()) /
                   "httpd" / "0.log";
  EXPECT_TRUE(std::filesystem::exists(log)) << log;
}

TEST_F(NodeletE2eTest, ACrashingContainerRestartsAtOnceThenBacksOff) {
  auto& n = start();
  n.write("crash.yaml", podYaml("crash", "  containers:\n" +
                                             container("app", "echo crashing; sleep 0.3; exit 3")));
  // First exit: restarted at once (restartCount 1).
  ASSERT_TRUE(waitFor(
      [&] {
        auto c = n.container("crash", "app");
        return c && c->value("restartCount", 0) >= 1;
      },
      seconds(20)));
  // Second exit: back-off 10 s: CrashLoopBackOff with the last exit code, no restart meanwhile.
  ASSERT_TRUE(waitFor(
      [&] {
        auto c = n.container("crash", "app");
        return c && (*c)["state"].contains("waiting") &&
               (*c)["state"]["waiting"]["reason"] == "CrashLoopBackOff";
      },
      seconds(20)))
      << n.container("crash", "app")->dump();
  auto c = *n.container("crash", "app");
  EXPECT_EQ(c["restartCount"], 1);
  EXPECT_EQ(c["lastState"]["terminated"]["exitCode"], 3);
  EXPECT_EQ(c["lastState"]["terminated"]["reason"], "Error");
  EXPECT_NE(c["state"]["waiting"]["message"].get<std::string>().find(
                "back-off 10s restarting failed container=app"),
            std::string::npos);
  EXPECT_EQ(n.phase("crash"), "Running");
}

TEST_F(NodeletE2eTest, RestartPoliciesOnFailureAndNever) {
  auto& n = start();
  n.write("ok.yaml", podYaml("ok", "  restartPolicy: OnFailure\n  containers:\n" +
                                       container("app", "exit 0")));
  n.write("fails.yaml",
          podYaml("fails", "  restartPolicy: Never\n  containers:\n" + container("app", "exit 1")));
  n.write("retry.yaml", podYaml("retry", "  restartPolicy: OnFailure\n  containers:\n" +
                                             container("app", "sleep 0.2; exit 1")));
  EXPECT_TRUE(waitFor([&] { return n.phase("ok") == "Succeeded"; }, seconds(20))) << n.phase("ok");
  EXPECT_TRUE(waitFor([&] { return n.phase("fails") == "Failed"; }, seconds(20)))
      << n.phase("fails");
  EXPECT_TRUE(waitFor(
      [&] {
        auto c = n.container("retry", "app");
        return c && c->value("restartCount", 0) >= 1;
      },
      seconds(20)));
  EXPECT_EQ(n.container("ok", "app")->value("restartCount", -1), 0);
  EXPECT_EQ(n.container("fails", "app")->value("restartCount", -1), 0);
  // Completed pods stop their sandbox but keep their status.
  EXPECT_TRUE(waitFor(
      [&] {
        for (const auto& s : n.sandboxes())
          if (s.metadata.name == "ok-" + n.node() && s.state == cri::SandboxState::Ready)
            return false;
        return true;
      },
      seconds(10)));
}

TEST_F(NodeletE2eTest, InitContainersRunInOrderBeforeTheApp) {
  auto& n = start();
  n.write("init.yaml",
          podYaml("init", "  initContainers:\n" +
                              container("first", "echo -n 1 >> /work/order",
                                        "    volumeMounts: [{name: w, mountPath: /work}]\n") +
                              container("second", "echo -n 2 >> /work/order",
                                        "    volumeMounts: [{name: w, mountPath: /work}]\n") +
                              "  containers:\n" +
                              container("app", "echo order=$(cat /work/order); " + kIdle,
                                        "    volumeMounts: [{name: w, mountPath: /work}]\n") +
                              "  volumes: [{name: w, emptyDir: {}}]\n"));
  ASSERT_TRUE(waitFor([&] { return n.running("init", "app"); }, seconds(20)));
  for (const char* c : {"first", "second"}) {
    auto s = n.container("init", c);
    ASSERT_TRUE(s);
    EXPECT_EQ((*s)["state"]["terminated"]["reason"], "Completed") << c;
  }
  const auto uid = (*n.pod("init"))["metadata"]["uid"].get<std::string>();
  const auto log = n.logs() / ("default_init-" + n.node() + "_" + uid) / "app" / "0.log";
  std::string content;
  EXPECT_TRUE(waitForFileContaining(log.string(), "order=", content));
  EXPECT_NE(content.find("stdout F order=12"), std::string::npos) << content;
}

TEST_F(NodeletE2eTest, StaticPodsUseConfigMapsAndSecretsFromTheirDirectory) {
  auto& n = start();
  n.write("cfg.yaml",
          "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {greeting: hello}\n");
  n.write("pw.yaml",
          "apiVersion: v1\nkind: Secret\nmetadata: {name: pw}\nstringData: {password: s3cret}\n");
  n.write("reader.yaml",
          podYaml("reader",
                  "  containers:\n" +
                      container("app",
                                "echo secret=$SECRET; trap 'exit 0' TERM; while true; do echo "
                                "greeting=$(cat /etc/app/greeting); sleep 0.2 & wait $!; done",
                                "    env: [{name: SECRET, valueFrom: {secretKeyRef: {name: pw, "
                                "key: password}}}]\n"
                                "    volumeMounts: [{name: conf, mountPath: /etc/app}]\n") +
                      "  volumes: [{name: conf, configMap: {name: cfg}}]\n"));
  ASSERT_TRUE(waitFor([&] { return n.running("reader", "app"); }, seconds(20)));
  const auto uid = (*n.pod("reader"))["metadata"]["uid"].get<std::string>();
  const auto log = n.logs() / ("default_reader-" + n.node() + "_" + uid) / "app" / "0.log";
  std::string content;
  ASSERT_TRUE(waitForFileContaining(log.string(), "greeting=hello", content)) << content;
  EXPECT_NE(content.find("secret=s3cret"), std::string::npos) << content;
  // An edit of the ConfigMap's manifest shows up in the running container, without a restart.
  n.write("cfg.yaml",
          "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {greeting: bye}\n");
  EXPECT_TRUE(waitForFileContaining(log.string(), "greeting=bye", content)) << content;
  auto c = n.container("reader", "app");
  ASSERT_TRUE(c);
  EXPECT_EQ((*c)["restartCount"], 0);
}

TEST_F(NodeletE2eTest, ContainerLogsOverTheNodeServerAndAFollowThatEndsWithTheContainer) {
  const int port = testing::freeLocalPort();
  n_ = std::make_unique<NodeletProcess>();
  auto& n = *n_;
  n.start("address: 127.0.0.1\nport: " + std::to_string(port) +
          "\nauthentication: {anonymous: {enabled: true}}\nauthorization: {mode: AlwaysAllow}\n");
  // Counts to 3 slowly, then exits: a follow sees every line and ends with the container.
  // (stdout and stderr reach the log through two pipes: only time orders them.)
  n.write("talk.yaml", podYaml("talk", "  restartPolicy: Never\n  containers:\n" +
                                           container("app",
                                                     "echo one; sleep 0.3; echo two >&2; sleep 2; "
                                                     "echo three")));
  ASSERT_TRUE(waitFor([&] { return n.running("talk", "app"); }, seconds(20)));
  httplib::SSLClient c("127.0.0.1", port);
  c.enable_server_certificate_verification(false);  // self-signed, made by nodelet
  c.set_read_timeout(20, 0);
  const std::string path = "/containerLogs/default/talk-" + n.node() + "/app";
  std::string followed;
  auto r = c.Get(path + "?follow=true", [&](const char* data, size_t len) {
    followed.append(data, len);
    return true;
  });
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(followed, "one\ntwo\nthree\n") << "both streams, in order, to the end";
  auto tail = c.Get(path + "?tailLines=1&timestamps=true");
  ASSERT_TRUE(tail);
  EXPECT_TRUE(tail->body.ends_with(" three\n")) << tail->body;
  EXPECT_EQ(tail->body.find("two"), std::string::npos) << tail->body;
  auto missing = c.Get("/containerLogs/default/nope/app");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  // The link log shippers read: <pod>_<namespace>_<container>-<id>.log -> the CRI log.
  const auto status = n.container("talk", "app");
  ASSERT_TRUE(status);
  std::string id = (*status)["containerID"];
  id = id.substr(id.find("://") + 3);
  const auto link = n.logLinks() / ("talk-" + n.node() + "_default_app-" + id + ".log");
  ASSERT_TRUE(std::filesystem::is_symlink(link)) << link;
  EXPECT_EQ(readFile(link.string()), readFile(std::filesystem::read_symlink(link).string()));
  // Gone with its container.
  n.remove("talk.yaml");
  EXPECT_TRUE(waitFor([&] { return !std::filesystem::exists(link); }, seconds(20)));
}

TEST_F(NodeletE2eTest, StatsSummaryHasNumbersForARunningPod) {
  const int port = testing::freeLocalPort();
  n_ = std::make_unique<NodeletProcess>();
  auto& n = *n_;
  n.start("address: 127.0.0.1\nport: " + std::to_string(port) +
          "\nauthentication: {anonymous: {enabled: true}}\nauthorization: {mode: AlwaysAllow}\n");
  n.write("idle.yaml", podYaml("idle", "  containers:\n" + container("app", kIdle)));
  ASSERT_TRUE(waitFor([&] { return n.running("idle", "app"); }, seconds(20)));
  httplib::SSLClient c("127.0.0.1", port);
  c.enable_server_certificate_verification(false);
  nlohmann::json doc;
  const std::string pod = "idle-" + n.node();
  // The runtime's stats lag the container's start a little.
  ASSERT_TRUE(waitFor(
      [&] {
        auto r = c.Get("/stats/summary");
        if (!r || r->status != 200) return false;
        doc = nlohmann::json::parse(r->body, nullptr, false);
        for (const auto& p : doc.value("pods", nlohmann::json::array()))
          if (p["podRef"]["name"] == pod && !p["containers"].empty() &&
              p["containers"][0].contains("memory"))
            return true;
        return false;
      },
      seconds(20)))
      << doc.dump();
  EXPECT_EQ(doc["node"]["nodeName"], n.node());
  EXPECT_GT(doc["node"]["cpu"]["usageCoreNanoSeconds"].get<uint64_t>(), 0u);
  EXPECT_GT(doc["node"]["memory"]["workingSetBytes"].get<uint64_t>(), 0u);
  for (const auto& p : doc["pods"]) {
    if (p["podRef"]["name"] != pod) continue;
    EXPECT_EQ(p["containers"][0]["name"], "app");
    EXPECT_GT(p["containers"][0]["memory"]["workingSetBytes"].get<uint64_t>(), 0u) << p.dump();
    EXPECT_TRUE(p["containers"][0]["cpu"].contains("usageCoreNanoSeconds")) << p.dump();
  }
  auto resource = c.Get("/metrics/resource");
  ASSERT_TRUE(resource);
  EXPECT_NE(resource->body.find("container_memory_working_set_bytes{container=\"app\","
                                "namespace=\"default\",pod=\"" +
                                pod + "\"}"),
            std::string::npos)
      << resource->body;
}

// Collects a channel-protocol WebSocket's messages (channel -> data) until the runtime closes it,
// `enough` holds, or 50 messages.
std::map<int, std::string> channels(
    testing::WebSocketClient& ws,
    const std::function<bool(std::map<int, std::string>&)>& enough = nullptr) {
  std::map<int, std::string> got;
  for (int i = 0; i < 50; ++i) {
    auto m = ws.next();
    if (!m || m->opcode == 8) break;  // gone, or a close frame
    if (m->payload.empty()) continue;
    got[static_cast<uint8_t>(m->payload[0])] += m->payload.substr(1);
    if (enough && enough(got)) break;
  }
  return got;
}

TEST_F(NodeletE2eTest, ExecAttachAndPortForwardReachTheContainerThroughTheNodeServer) {
  const int port = testing::freeLocalPort();
  n_ = std::make_unique<NodeletProcess>();
  auto& n = *n_;
  n.start("address: 127.0.0.1\nport: " + std::to_string(port) +
          "\nauthentication: {anonymous: {enabled: true}}\nauthorization: {mode: AlwaysAllow}\n");
  n.write("web.yaml",
          podYaml("web", "  containers:\n" +
                             container("app",
                                       "trap 'exit 0' TERM; mkdir -p /www; echo served > "
                                       "/www/index.html; httpd -f -p 8080 -h /www & "
                                       "while true; do echo tick; sleep 1 & wait $!; done")));
  ASSERT_TRUE(waitFor([&] { return n.running("web", "app"); }, seconds(20)));
  const std::string pod = "/default/web-" + n.node();
  // exec, as `kubectl exec` drives it: both output streams, then the exit code on channel 3.
  {
    testing::RawClient c;
    ASSERT_TRUE(c.connect(port));
    testing::WebSocketClient ws(c);
    const std::string head = ws.open(
        "/exec" + pod +
            "/app?command=sh&command=-c&command=echo%20out%3B%20echo%20err%20%3E%262%3B%20exit%203"
            "&output=1&error=1",
        "v4.channel.k8s.io");
    ASSERT_TRUE(head.starts_with("HTTP/1.1 101 ")) << head;
    EXPECT_NE(head.find("Sec-WebSocket-Protocol: v4.channel.k8s.io"), std::string::npos) << head;
    auto got = channels(ws);
    EXPECT_EQ(got[1], "out\n");
    EXPECT_EQ(got[2], "err\n");
    const auto status = nlohmann::json::parse(got[3], nullptr, false);
    EXPECT_EQ(status.value("reason", ""), "NonZeroExitCode") << got[3];
    EXPECT_EQ(status["details"]["causes"][0]["message"], "3") << got[3];
  }
  // stdin reaches the command.
  {
    testing::RawClient c;
    ASSERT_TRUE(c.connect(port));
    testing::WebSocketClient ws(c);
    const std::string head = ws.open("/exec" + pod +
                                         "/app?command=sh&command=-c&command=read%20x%3B%20echo%20"
                                         "got%3A%24x&input=1&output=1",
                                     "v4.channel.k8s.io");
    ASSERT_TRUE(head.starts_with("HTTP/1.1 101 ")) << head;
    ASSERT_TRUE(ws.send(0, "abc\n"));
    auto got = channels(ws);
    EXPECT_EQ(got[1], "got:abc\n");
    EXPECT_EQ(nlohmann::json::parse(got[3], nullptr, false).value("status", ""), "Success")
        << got[3];
  }
  // attach: the running PID 1's output, live.
  {
    testing::RawClient c;
    ASSERT_TRUE(c.connect(port));
    testing::WebSocketClient ws(c);
    const std::string head = ws.open("/attach" + pod + "/app?output=1", "v4.channel.k8s.io");
    ASSERT_TRUE(head.starts_with("HTTP/1.1 101 ")) << head;
    auto got = channels(ws, [](auto& g) { return g[1].find("tick\n") != std::string::npos; });
    EXPECT_NE(got[1].find("tick\n"), std::string::npos);
  }
  // port-forward: the port announced on both of its channels, then an HTTP exchange with httpd.
  {
    testing::RawClient c;
    ASSERT_TRUE(c.connect(port));
    testing::WebSocketClient ws(c);
    const std::string head = ws.open("/portForward" + pod + "?port=8080", "v4.channel.k8s.io");
    ASSERT_TRUE(head.starts_with("HTTP/1.1 101 ")) << head;
    const std::string port_bytes("\x90\x1f", 2);  // 8080, little-endian
    auto announced = channels(ws, [](auto& g) { return g[0].size() >= 2 && g[1].size() >= 2; });
    EXPECT_EQ(announced[0], port_bytes);
    EXPECT_EQ(announced[1], port_bytes);
    ASSERT_TRUE(ws.send(0, "GET /index.html HTTP/1.0\r\n\r\n"));
    auto got = channels(ws, [](auto& g) { return g[0].find("served") != std::string::npos; });
    EXPECT_NE(got[0].find(" 200 OK\r\n"), std::string::npos) << got[0];
    EXPECT_NE(got[0].find("served\n"), std::string::npos) << got[0];
  }
  // /run: the command's output as the body.
  httplib::SSLClient c("127.0.0.1", port);
  c.enable_server_certificate_verification(false);
  auto run = c.Post("/run" + pod + "/app?cmd=cat%20/www/index.html", "", "text/plain");
  ASSERT_TRUE(run) << httplib::to_string(run.error());
  EXPECT_EQ(run->status, 200);
  EXPECT_EQ(run->body, "served\n");
}

TEST_F(NodeletE2eTest, LogRotationKeepsAFastWriterAtTheLimit) {
  n_ = std::make_unique<NodeletProcess>();
  auto& n = *n_;
  n.start("containerLogMaxSize: 10Ki\ncontainerLogMaxFiles: 3\ncontainerLogMonitorInterval: 3s\n");
  // About 40 KB/s into the CRI log: a 10 KiB limit is outgrown between any two checks.
  n.write("chatty.yaml",
          podYaml("chatty", "  containers:\n" +
                                container("app",
                                          "trap 'exit 0' TERM; while true; do yes "
                                          "0123456789012345678901234567890123456789 | head -n 25; "
                                          "sleep 0.05; done")));
  ASSERT_TRUE(waitFor([&] { return n.running("chatty", "app"); }, seconds(20)));
  std::filesystem::path dir;
  for (const auto& e : std::filesystem::directory_iterator(n.logs()))
    if (e.path().filename().string().starts_with("default_chatty-")) dir = e.path() / "app";
  ASSERT_FALSE(dir.empty());
  // Watch for 12 s (four checks): never more than containerLogMaxFiles files, the live one never
  // more than the limit plus what one interval writes, rotations keep coming, and the older
  // rotated files are compressed (the newest stays plain, as the kubelet leaves it).
  std::set<std::string> rotated;
  uintmax_t largest = 0;
  size_t most_files = 0;
  const auto until = std::chrono::steady_clock::now() + seconds(12);           // NOLINT(real-time)
  for (int i = 0; i < 120 && std::chrono::steady_clock::now() < until; ++i) {  // NOLINT(real-time)
    size_t files = 0;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
      const std::string name = e.path().filename().string();
      if (name.ends_with(".tmp")) continue;  // a compression in progress
      ++files;
      if (name == "0.log")
        largest = std::max(largest, e.file_size(ec));
      else
        rotated.insert(name);
    }
    most_files = std::max(most_files, files);
    std::this_thread::sleep_for(milliseconds(100));  // NOLINT(real-time)
  }
  EXPECT_LE(most_files, 3u);
  EXPECT_GE(rotated.size(), 3u) << "rotated at several checks";
  EXPECT_TRUE(std::any_of(rotated.begin(), rotated.end(),
                          [](const std::string& r) { return r.ends_with(".gz"); }));
  EXPECT_LT(largest, 10u * 1024 + 3 * 80 * 1024) << "10 KiB plus at most 3 s at ~40 KB/s";
  EXPECT_GT(largest, 10u * 1024) << "the writer outgrew the limit between checks, as expected";
}

TEST_F(NodeletE2eTest, SidecarsStartBeforeAndStopAfterTheApp) {
  auto& n = start();
  n.write("side.yaml",
          podYaml("side", "  initContainers:\n" +
                              container("proxy", "touch /shared/up; " + kIdle,
                                        "    restartPolicy: Always\n    volumeMounts: [{name: s, "
                                        "mountPath: /shared}]\n") +
                              "  containers:\n" +
                              container("app", "test -f /shared/up && echo saw-sidecar; " + kIdle,
                                        "    volumeMounts: [{name: s, mountPath: /shared}]\n") +
                              "  volumes: [{name: s, emptyDir: {}}]\n"));
  ASSERT_TRUE(
      waitFor([&] { return n.running("side", "app") && n.running("side", "proxy"); }, seconds(20)));
  const auto uid = (*n.pod("side"))["metadata"]["uid"].get<std::string>();
  std::string content;
  EXPECT_TRUE(waitForFileContaining(
      (n.logs() / ("default_side-" + n.node() + "_" + uid) / "app" / "0.log").string(),
      "saw-sidecar", content))
      << content;
  // Removal: the app stops before the sidecar.
  const auto before = n.containers();
  n.remove("side.yaml");
  ASSERT_TRUE(waitFor([&] { return n.sandboxes().empty(); }, seconds(30)));
  EXPECT_NE(n.log().find("Stopping container app"), std::string::npos);
  const auto app_stop = n.log().find("Stopping container app");
  const auto proxy_stop = n.log().find("Stopping container proxy");
  ASSERT_NE(proxy_stop, std::string::npos);
  EXPECT_LT(app_stop, proxy_stop);
}

TEST_F(NodeletE2eTest, AnEditedManifestReplacesThePodAndARemovedOneIsCleanedUp) {
  auto& n = start();
  n.write("web.yaml", podYaml("web", "  containers:\n" + container("app", "echo v1; " + kIdle)));
  ASSERT_TRUE(waitFor([&] { return n.running("web", "app"); }, seconds(20)));
  const std::string uid1 = (*n.pod("web"))["metadata"]["uid"];
  n.write("web.yaml", podYaml("web", "  containers:\n" + container("app", "echo v2; " + kIdle)));
  ASSERT_TRUE(waitFor(
      [&] {
        auto p = n.pod("web");
        return p && (*p)["metadata"]["uid"] != uid1 && n.running("web", "app");
      },
      seconds(20)));
  EXPECT_TRUE(waitFor([&] { return n.sandboxes().size() == 1; }, seconds(10)))
      << "the old pod's sandbox is removed";
  n.remove("web.yaml");
  EXPECT_TRUE(waitFor([&] { return n.sandboxes().empty() && !n.pod("web"); }, seconds(20)));
  EXPECT_TRUE(waitFor([&] { return std::filesystem::is_empty(n.logs()); }, seconds(5)))
      << "pod log directories are removed";
}

TEST_F(NodeletE2eTest, AKilledNodeletAdoptsItsPodsWithoutRestartingThem) {
  auto& n = start();
  n.write("a.yaml", podYaml("a", "  containers:\n" + container("app", kIdle)));
  n.write("b.yaml", podYaml("b", "  initContainers:\n" + container("init", "true") +
                                     "  containers:\n" + container("app", kIdle)));
  ASSERT_TRUE(waitFor([&] { return n.running("a", "app") && n.running("b", "app"); }, seconds(20)));
  const auto before = n.containerIds();
  n.stop(SIGKILL);
  n.start();
  // Give the new process time to list, sync and settle; nothing may be created or stopped.
  ASSERT_TRUE(waitFor([&] { return n.log().find("added") != std::string::npos; }, seconds(10)));
  bool changed = false;
  waitFor(
      [&] {
        changed = n.containerIds() != before;
        return changed;
      },
      seconds(3));
  EXPECT_FALSE(changed) << "containers were recreated after a nodelet restart";
  EXPECT_TRUE(n.running("a", "app") && n.running("b", "app"));
  EXPECT_EQ(n.container("a", "app")->value("restartCount", -1), 0);
}

TEST_F(NodeletE2eTest, ABrokenManifestIsReportedWhileGoodOnesRun) {
  auto& n = start();
  n.write("good.yaml", podYaml("good", "  containers:\n" + container("app", kIdle)));
  n.write(
      "bad.yaml",
      "apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec:\n  containers:\n  - name: app\n");
  ASSERT_TRUE(waitFor([&] { return n.running("good", "app"); }, seconds(20)));
  EXPECT_TRUE(waitFor([&] { return n.log().find("FailedStaticPodManifest") != std::string::npos; },
                      seconds(5)));
  EXPECT_NE(n.log().find("bad.yaml: spec.containers[0].image: Required value"), std::string::npos)
      << n.log();
  // Breaking the good manifest keeps its pod running as it was.
  const auto ids = n.containerIds();
  n.write(
      "good.yaml",
      "apiVersion: v1\nkind: Pod\nmetadata: {name: good}\nspec:\n  containers: [{name: app, image");
  bool changed = false;
  waitFor(
      [&] {
        changed = n.containerIds() != ids;
        return changed;
      },
      seconds(2));
  EXPECT_FALSE(changed);
  EXPECT_TRUE(n.running("good", "app"));
}

TEST_F(NodeletE2eTest, RuntimeClassesFromTheManifestDirectoryPickContainerdsHandler) {
  auto& n = start();
  // The rig's containerd knows the handler "runc" and no other.
  n.write(
      "runc-class.yaml",
      "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {name: plain}\nhandler: runc\n");
  n.write("kata-class.yaml",
          "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {name: vm}\nhandler: kata\n");
  n.write("plain.yaml",
          podYaml("plain", "  runtimeClassName: plain\n  containers:\n" + container("app", kIdle)));
  n.write("vm.yaml",
          podYaml("vm", "  runtimeClassName: vm\n  containers:\n" + container("app", kIdle)));
  n.write("nothing.yaml", podYaml("nothing", "  runtimeClassName: undefined\n  containers:\n" +
                                                 container("app", kIdle)));
  ASSERT_TRUE(waitFor([&] { return n.running("plain", "app"); }, seconds(20))) << n.log();
  // containerd's refusal of a handler it does not have, as the pod's event.
  EXPECT_TRUE(waitFor(
      [&] { return n.log().find("no runtime for \"kata\" is configured") != std::string::npos; },
      seconds(10)))
      << n.log();
  // No API server and no manifest for it: the runtime's default handler, as the kubelet's.
  EXPECT_TRUE(waitFor([&] { return n.running("nothing", "app"); }, seconds(20))) << n.log();
  EXPECT_FALSE(n.running("vm", "app"));
}

TEST_F(NodeletE2eTest, SigtermLeavesPodsRunning) {
  auto& n = start();
  n.write("a.yaml", podYaml("a", "  containers:\n" + container("app", kIdle)));
  ASSERT_TRUE(waitFor([&] { return n.running("a", "app"); }, seconds(20)));
  const auto ids = n.containerIds();
  n.stop(SIGTERM);
  EXPECT_NE(n.log().find("shutting down (pods keep running)"), std::string::npos);
  EXPECT_EQ(n.containerIds(), ids);
  for (const auto& c : n.containers()) EXPECT_EQ(c.state, cri::ContainerState::Running);
}

}  // namespace
}  // namespace nodelet::e2e

namespace nodelet::e2e {
namespace {

TEST_F(NodeletE2eTest, MetricsAreScrapeable) {
  n_ = std::make_unique<NodeletProcess>();
  const int port = 20000 + static_cast<int>(std::random_device{}() % 20000);
  n_->extra_args = {"--healthz-port=" + std::to_string(port)};
  n_->start();
  n_->write("one.yaml", podYaml("one", "  containers:\n" + container("app", kIdle)));
  ASSERT_TRUE(waitFor([&] { return n_->phase("one") == "Running"; }, seconds(20)));
  httplib::Client http("127.0.0.1", port);
  http.set_connection_timeout(1);
  std::string body;
  ASSERT_TRUE(waitFor(
      [&] {
        auto r = http.Get("/metrics");
        if (r && r->status == 200) body = r->body;
        return body.find("kubelet_running_pods 1\n") != std::string::npos;
      },
      seconds(10)))
      << body;
  EXPECT_NE(body.find("kubelet_pod_start_duration_seconds_count 1\n"), std::string::npos) << body;
  EXPECT_NE(body.find("kubelet_runtime_operations_duration_seconds_bucket{le="), std::string::npos);
  EXPECT_NE(body.find("kubelet_started_containers_total{container_type=\"container\"} 1\n"),
            std::string::npos);
  EXPECT_NE(body.find("process_resident_memory_bytes "), std::string::npos);
}

}  // namespace
}  // namespace nodelet::e2e

namespace nodelet::e2e {
namespace {

// Under systemd (Type=notify, WatchdogSec): READY=1 once running, then WATCHDOG=1 pings at half
// the watchdog period while healthy. The test plays systemd's notify socket.
TEST_F(NodeletE2eTest, NotifiesSystemdAndPingsItsWatchdog) {
  testing::TempDir dir;
  const std::string sock_path = dir.str() + "/notify";
  const int sock = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(sock, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", sock_path.c_str());
  ASSERT_EQ(::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  n_ = std::make_unique<NodeletProcess>();
  n_->extra_env = {
      {"NOTIFY_SOCKET", sock_path}, {"WATCHDOG_USEC", "400000"}, {"WATCHDOG_PID", "$PID"}};
  n_->start();
  bool ready = false;
  int pings = 0;
  for (int i = 0; i < 50 && pings < 3; ++i) {  // bounded: 50 × 100 ms
    pollfd p{sock, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[512] = {};
    const ssize_t n = ::recv(sock, buf, sizeof buf - 1, 0);
    if (n <= 0) continue;
    const std::string msg(buf, static_cast<size_t>(n));
    ready = ready || msg.find("READY=1") != std::string::npos;
    if (msg.find("WATCHDOG=1") != std::string::npos) ++pings;
  }
  ::close(sock);
  EXPECT_TRUE(ready);
  EXPECT_GE(pings, 3);
}

}  // namespace
}  // namespace nodelet::e2e
