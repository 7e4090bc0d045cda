// nodelet's overhead, measured side by side with the runtime it drives (one run, same machine):
//   1. pod start: N manifests dropped into a running nodelet -> all containers RUNNING, next to
//      the same CRI calls (RunPodSandbox, CreateContainer, StartContainer) issued directly with
//      the same parallelism, both ends seen by the same poller; nodelet's share = the difference
//      per pod (the median of paired runs).
//   2. a crashed container (SIGKILL from the host) -> its replacement RUNNING.
//   3. an edited manifest -> the new pod's container RUNNING.
//   4. nodelet's RSS and CPU while idle with 0 and with N pods.
// `bench probes` measures probes at scale; `bench cluster` measures cluster mode against the
// fake API server (watch event -> Running in the API, requests per pod, the Lease); `bench
// streams` measures exec and port-forward through the node server against the runtime's own URL.
// A benchmark, not a test: it prints numbers and asserts nothing. Run it through
// tests/bench/run.sh, which builds the release preset and starts the rig.
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <numeric>
#include <thread>

#include "agent/core/clock.h"
#include "tests/common/free_port.h"
#include "tests/common/raw_client.h"
#include "tests/common/websocket.h"
#include "tests/e2e/nodelet_process.h"
#include "tests/fakes/fake_apiserver.h"

namespace nodelet::e2e {
namespace {

using Clock = std::chrono::steady_clock;  // NOLINT(real-time): a benchmark measures real time
using std::chrono::milliseconds;

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}
std::string image() { return env("NODELET_E2E_APP_IMAGE", "localhost/nodelet/busybox:1.35"); }
const char* kIdle = "trap 'exit 0' TERM; while true; do sleep 1 & wait $!; done";

std::string manifest(const std::string& name, const std::string& marker = "") {
  return "apiVersion: v1\nkind: Pod\nmetadata: {name: " + name +
         "}\nspec:\n  terminationGracePeriodSeconds: 5\n"
         "  containers:\n  - name: app\n    image: " +
         image() + "\n    command: [\"sh\", \"-c\", \"" + kIdle +
         (marker.empty() ? "" : " # " + marker) + "\"]\n";
}

// Polls the runtime until `n` containers of this node run; returns when they do. The poll itself
// loads containerd (the direct baseline has no such load): every 2 ms for single-pod latencies,
// every 25 ms for bursts (at most 25 ms of quantisation over a second or more).
bool waitRunning(NodeletProcess& n, size_t want, std::chrono::seconds limit,
                 const std::function<bool(const cri::Container&)>& match = nullptr,
                 milliseconds every = milliseconds(2)) {
  return waitFor(
      [&] {
        size_t running = 0;
        for (const auto& c : n.containers())
          if (c.state == cri::ContainerState::Running && (!match || match(c))) ++running;
        return running >= want;
      },
      limit, every);
}

struct Usage {
  double rss_mib;
  double cpu_percent;
};
// CPU time of every thread of `pid` in ns (schedstat: exact, unlike 100 Hz ticks).
uint64_t cpuNs(pid_t pid) {
  uint64_t total = 0;
  std::error_code ec;
  for (const auto& t :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream in(t.path() / "schedstat");
    uint64_t ns = 0;
    if (in >> ns) total += ns;
  }
  return total;
}

Usage measureIdle(pid_t pid, std::chrono::seconds window) {
  const uint64_t c0 = cpuNs(pid);
  const auto start = Clock::now();
  std::this_thread::sleep_for(window);  // NOLINT(real-time)
  const uint64_t c1 = cpuNs(pid);
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  double rss = 0;
  while (std::getline(status, line))
    if (line.starts_with("VmRSS:")) rss = std::stod(line.substr(6)) / 1024.0;
  return {rss, 100.0 * static_cast<double>(c1 - c0) / 1e9 / secs};
}

// The same pods, started with CRI calls directly: the runtime's own time, the floor.
// The end is seen the way nodelet's is: by polling the runtime for RUNNING containers at the same
// interval, not when StartContainer returns (which would leave the observer's delay on nodelet's
// side only).
double directStart(cri::RuntimeService& rt, int pods, int parallel, const std::string& tag) {
  std::atomic<int> next{0};
  std::vector<std::string> sandboxes(static_cast<size_t>(pods));
  const auto t0 = Clock::now();
  double elapsed = -1;
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < parallel; ++t) {
      threads.emplace_back([&] {
        for (int i = next++; i < pods; i = next++) {
          const std::string uid = tag + "-" + std::to_string(i);
          cri::PodSandboxConfig sb;
          sb.metadata = {"direct-" + uid, uid, "default", 0};
          sb.hostname = "direct-" + std::to_string(i);
          sb.log_directory = "/var/log/nodelet-bench/" + uid;
          sb.labels = {{"nodelet-bench", tag}};
          sb.cgroup_parent =
              env("NODELET_E2E_CGROUP_PARENT", "/nodelet-rig") + "/kubepods/besteffort/pod" + uid;
          sb.dns_config =
              cri::DnsConfig{{"10.96.0.10"}, {"default.svc.cluster.local"}, {"ndots:5"}};
          sb.security.seccomp = cri::SecurityProfile{cri::SecurityProfile::Type::Unconfined, ""};
          std::filesystem::create_directories(sb.log_directory);
          // The same extra requests nodelet (and the kubelet) make: sandbox status, files to mount.
          std::ofstream(sb.log_directory + "/hosts") << "127.0.0.1\tlocalhost\n";
          std::ofstream(sb.log_directory + "/termination-log") << "";
          auto id = rt.runPodSandbox(sb, "");
          if (!id) {
            std::fprintf(stderr, "direct RunPodSandbox: %s\n", id.error().message.c_str());
            continue;
          }
          sandboxes[static_cast<size_t>(i)] = *id;
          cri::ContainerConfig c;
          c.name = "app";
          c.labels = {{"nodelet-bench", tag}};
          c.image = image();
          c.command = {"sh", "-c", kIdle};
          c.log_path = "app/0.log";
          c.mounts = {{"/etc/hosts", sb.log_directory + "/hosts"},
                      {"/dev/termination-log", sb.log_directory + "/termination-log"}};
          // The kubelet's default masked and read-only /proc paths, which nodelet sends too:
          // runc sets each up, so a fair floor includes them.
          c.security.masked_paths = cri::defaultMaskedPaths();
          c.security.readonly_paths = cri::defaultReadonlyPaths();
          c.security.seccomp = cri::SecurityProfile{cri::SecurityProfile::Type::Unconfined, ""};
          (void)rt.podSandboxStatus(*id, false);
          auto cid = rt.createContainer(*id, c, sb);
          if (cid) (void)rt.startContainer(*cid);
        }
      });
    }
    const bool done = waitFor(
        [&] {
          auto cs = rt.listContainers({.label_selector = {{"nodelet-bench", tag}}});
          size_t running = 0;
          for (const auto& c : cs.value_or(std::vector<cri::Container>{}))
            running += c.state == cri::ContainerState::Running;
          return running >= static_cast<size_t>(pods);
        },
        std::chrono::seconds(120), pods > 1 ? milliseconds(25) : milliseconds(2));
    if (done) elapsed = ms(Clock::now() - t0);
  }
  for (const auto& id : sandboxes) {
    if (id.empty()) continue;
    (void)rt.stopPodSandbox(id);
    (void)rt.removePodSandbox(id);
  }
  std::filesystem::remove_all("/var/log/nodelet-bench");
  return elapsed;
}

double nodeletStart(NodeletProcess& n, int pods, const std::string& tag) {
  const size_t already = n.containers().size();
  const auto t0 = Clock::now();
  for (int i = 0; i < pods; ++i)
    n.write(tag + std::to_string(i) + ".yaml", manifest(tag + std::to_string(i)));
  if (!waitRunning(n, already + static_cast<size_t>(pods), std::chrono::seconds(120), nullptr,
                   pods > 1 ? milliseconds(25) : milliseconds(2)))
    return -1;
  return ms(Clock::now() - t0);
}

int run() {
  if (env("NODELET_E2E_CRI_ENDPOINT").empty()) {
    std::fprintf(stderr, "bench: run through tests/bench/run.sh (needs the rig)\n");
    return 2;
  }
  const int kPods = 20, kParallel = 4;  // nodelet's worker pool has 4 threads
  NodeletProcess n;
  n.start("", 0);
  if (!waitFor([&] { return std::filesystem::exists(n.root() / "status"); },
               std::chrono::seconds(10))) {
    // The status directory appears with the first snapshot; an empty node may not write one.
  }
  std::this_thread::sleep_for(std::chrono::seconds(2));  // NOLINT(real-time): let it settle
  const Usage idle0 = measureIdle(n.pid(), std::chrono::seconds(20));

  // Warm-up (first pod pays for image unpack caches and the like), then 1 pod, then 20.
  directStart(n.runtime(), 1, 1, "warm");
  // Pairs, each a direct start next to a nodelet start: the machine's drift (other load, page
  // cache, containerd's own housekeeping) hits both halves of a pair alike, so the median of
  // the paired differences is steadier than a difference of medians.
  constexpr int kSingles = 11;
  std::vector<double> d1, n1, share1;
  for (int i = 0; i < kSingles; ++i) {
    d1.push_back(directStart(n.runtime(), 1, 1, "one" + std::to_string(i)));
    n1.push_back(nodeletStart(n, 1, "one" + std::to_string(i) + "-"));
    share1.push_back(n1.back() - d1.back());
  }
  const double direct1 = median(d1), nodelet1 = median(n1);
  // Keep one0-0 (edited below); the 20-pod measurements start from the same node as before.
  for (int i = 1; i < kSingles; ++i) n.remove("one" + std::to_string(i) + "-0.yaml");
  waitFor([&] { return n.containers().size() <= 1 && n.sandboxes().size() <= 1; },
          std::chrono::seconds(60), milliseconds(50));
  // The burst is noisy on a 2-core machine: three rounds each, alternating, medians reported.
  std::vector<double> d20, n20, share20;
  for (int round = 0; round < 3; ++round) {
    d20.push_back(directStart(n.runtime(), kPods, kParallel, "twenty" + std::to_string(round)));
    n20.push_back(nodeletStart(n, kPods, "twenty-"));
    share20.push_back((n20.back() - d20.back()) / kPods);
    if (round == 2) break;  // the last round's pods stay for what follows
    for (int i = 0; i < kPods; ++i) n.remove("twenty-" + std::to_string(i) + ".yaml");
    // Until the previous round is fully gone (sandboxes too: CNI teardown is heavy).
    waitFor([&] { return n.containers().size() <= 1 && n.sandboxes().size() <= 1; },
            std::chrono::seconds(60), milliseconds(50));
  }
  const double direct20 = median(d20), nodelet20 = median(n20);
  std::this_thread::sleep_for(std::chrono::seconds(3));  // NOLINT(real-time): let it settle
  const Usage idle20 = measureIdle(n.pid(), std::chrono::seconds(20));

  // Crash -> replacement running: SIGKILL five different pods' processes from the host.
  std::vector<double> crash;
  for (int i = 0; i < 5; ++i) {
    const std::string pod = "twenty-" + std::to_string(i) + "-" + n.node();
    std::string old_id;
    for (const auto& c : n.containers())
      if (c.state == cri::ContainerState::Running && c.labels.at("io.kubernetes.pod.name") == pod)
        old_id = c.id;
    auto st = n.runtime().containerStatus(old_id, true);
    if (!st || !st->info.contains("info")) continue;
    const int pid = nlohmann::json::parse(st->info.at("info")).value("pid", 0);
    const auto t0 = Clock::now();
    ::kill(pid, SIGKILL);
    if (waitRunning(n, 1, std::chrono::seconds(10), [&](const cri::Container& c) {
          return c.labels.at("io.kubernetes.pod.name") == pod && c.id != old_id;
        }))
      crash.push_back(ms(Clock::now() - t0));
  }

  // Edit -> the new pod running (the old one stopped first, as the kubelet does).
  std::vector<double> edit;
  for (int i = 0; i < 5; ++i) {
    const std::string name = "one0-0";
    const auto t0 = Clock::now();
    n.write("one0-0.yaml", manifest(name, "edit " + std::to_string(i)));
    std::set<std::string> before = n.containerIds();
    const std::string pod = name + "-" + n.node();
    std::string old_uid;
    for (const auto& c : n.containers())
      if (c.labels.at("io.kubernetes.pod.name") == pod && c.state == cri::ContainerState::Running)
        old_uid = c.labels.at("io.kubernetes.pod.uid");
    if (waitRunning(n, 1, std::chrono::seconds(30), [&](const cri::Container& c) {
          return c.labels.at("io.kubernetes.pod.name") == pod &&
                 c.labels.at("io.kubernetes.pod.uid") != old_uid;
        }))
      edit.push_back(ms(Clock::now() - t0));
  }

  std::printf("\n## nodelet benchmark (%s)\n\n", env("BENCH_LABEL", "this machine").c_str());
  std::printf("| measure | direct CRI | nodelet | nodelet's own share |\n|---|---:|---:|---:|\n");
  std::printf(
      "| 1 pod: manifest written -> container RUNNING, median of %d pairs | %.0f ms | %.0f ms | "
      "%.1f ms |\n",
      kSingles, direct1, nodelet1, median(share1));
  std::printf(
      "| %d pods (parallelism %d): all RUNNING, median of 3 pairs | %.0f ms | %.0f ms | %.1f ms "
      "per pod |\n",
      kPods, kParallel, direct20, nodelet20, median(share20));
  std::printf(
      "| crashed container (SIGKILL) -> replacement RUNNING, median of %zu | | %.0f ms | |\n",
      crash.size(), median(crash));
  std::printf("| edited manifest -> new pod RUNNING, median of %zu | | %.0f ms | |\n", edit.size(),
              median(edit));
  std::printf("| RSS idle, 0 pods / %d pods | | %.1f / %.1f MiB | |\n", kPods, idle0.rss_mib,
              idle20.rss_mib);
  std::printf("| CPU idle (20 s), 0 pods / %d pods | | %.3f %% / %.3f %% of a core | |\n", kPods,
              idle0.cpu_percent, idle20.cpu_percent);
  std::printf("\n1-pod samples direct / nodelet (ms):");
  for (size_t i = 0; i < d1.size(); ++i) std::printf(" %.0f/%.0f", d1[i], n1[i]);
  std::printf("\n20-pod samples direct / nodelet (ms):");
  for (size_t i = 0; i < d20.size(); ++i) std::printf(" %.0f/%.0f", d20[i], n20[i]);
  std::printf("\ncrash samples (ms):");
  for (double c : crash) std::printf(" %.0f", c);
  std::printf("\nedit samples (ms):");
  for (double e : edit) std::printf(" %.0f", e);
  std::printf("\n");
  return 0;
}

// Probes at scale: 110 pods with an HTTP readiness and a TCP liveness probe every second, next to
// 110 identical pods without probes, each set under its own nodelet, both measured over the same
// window (the difference is what the probes cost, on the same noisy machine at the same time).
int runProbes() {
  const int kPods = 110;
  const char* kWeb = "trap 'exit 0' TERM; httpd -f -p 80 -h / & wait";
  auto podYaml = [&](int i, bool probes) {
    return "apiVersion: v1\nkind: Pod\nmetadata: {name: p" + std::to_string(i) +
           "}\nspec:\n"
           "  terminationGracePeriodSeconds: 5\n  containers:\n  - name: app\n    image: " +
           image() + "\n    command: [\"sh\", \"-c\", \"" + kWeb + "\"]\n" +
           (probes
                ? "    readinessProbe: {httpGet: {path: /etc/passwd, port: 80}, periodSeconds: 1}\n"
                  "    livenessProbe: {tcpSocket: {port: 80}, periodSeconds: 1}\n"
                : "");
  };
  NodeletProcess plain, probed;
  plain.start("", 0);
  probed.start("", 0);
  for (int i = 0; i < kPods; ++i) {
    plain.write("p" + std::to_string(i) + ".yaml", podYaml(i, false));
    probed.write("p" + std::to_string(i) + ".yaml", podYaml(i, true));
  }
  const bool up = waitRunning(plain, kPods, std::chrono::seconds(300)) &&
                  waitRunning(probed, kPods, std::chrono::seconds(300));
  if (!up) {
    std::fprintf(stderr, "bench probes: pods did not all start\n");
    return 1;
  }
  // Until every probed pod is ready (its probes run), then let both settle.
  waitFor(
      [&] {
        int ready = 0;
        for (int i = 0; i < kPods; ++i) {
          auto c = probed.container("p" + std::to_string(i), "app");
          ready += c && c->value("ready", false);
        }
        return ready == kPods;
      },
      std::chrono::seconds(120), milliseconds(500));
  std::this_thread::sleep_for(std::chrono::seconds(5));  // NOLINT(real-time)
  auto ticks = [](pid_t pid) {  // utime, stime of the process (all threads), in clock ticks
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string st((std::istreambuf_iterator<char>(in)), {});
    std::istringstream rest(st.substr(st.rfind(')') + 2));
    std::string f;
    long long u = 0, k = 0;
    for (int i = 3; i <= 15; ++i) {
      rest >> f;
      if (i == 14) u = std::stoll(f);
      if (i == 15) k = std::stoll(f);
    }
    return std::pair<long long, long long>{u, k};
  };
  const uint64_t a0 = cpuNs(plain.pid()), b0 = cpuNs(probed.pid());
  const auto ta0 = ticks(plain.pid()), tb0 = ticks(probed.pid());
  const auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(30));  // NOLINT(real-time)
  const uint64_t a1 = cpuNs(plain.pid()), b1 = cpuNs(probed.pid());
  const auto ta1 = ticks(plain.pid()), tb1 = ticks(probed.pid());
  const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  auto pct = [&](long long d) { return 100.0 * static_cast<double>(d) / hz / 30.0; };
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  auto rss = [](pid_t pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line))
      if (line.starts_with("VmRSS:")) return std::stod(line.substr(6)) / 1024.0;
    return 0.0;
  };
  int ready = 0, restarts = 0;
  for (int i = 0; i < kPods; ++i) {
    auto c = probed.container("p" + std::to_string(i), "app");
    ready += c && c->value("ready", false);
    restarts += c ? c->value("restartCount", 0) : 0;
  }
  const double cpu_a = 100.0 * static_cast<double>(a1 - a0) / 1e9 / secs;
  const double cpu_b = 100.0 * static_cast<double>(b1 - b0) / 1e9 / secs;
  std::printf("\n## probes at scale (%d pods each, 30 s window, side by side)\n\n", kPods);
  std::printf(
      "| nodelet | CPU (%% of a core) | of it: user / kernel | RSS |\n|---|---:|---:|---:|\n");
  std::printf("| %d pods, no probes | %.2f %% | %.2f / %.2f %% | %.1f MiB |\n", kPods, cpu_a,
              pct(ta1.first - ta0.first), pct(ta1.second - ta0.second), rss(plain.pid()));
  std::printf(
      "| %d pods x (HTTP readiness + TCP liveness, period 1 s) = %d probes/s | %.2f %% | %.2f / "
      "%.2f %% | %.1f MiB |\n",
      kPods, 2 * kPods, cpu_b, pct(tb1.first - tb0.first), pct(tb1.second - tb0.second),
      rss(probed.pid()));
  std::printf("| added by the probes | %.2f %% | %.2f / %.2f %% | |\n", cpu_b - cpu_a,
              pct((tb1.first - tb0.first) - (ta1.first - ta0.first)),
              pct((tb1.second - tb0.second) - (ta1.second - ta0.second)));
  std::printf("\nprobed pods ready: %d/%d, restarts: %d\n", ready, kPods, restarts);
  for (int i = 0; i < kPods; ++i) {
    plain.remove("p" + std::to_string(i) + ".yaml");
    probed.remove("p" + std::to_string(i) + ".yaml");
  }
  waitFor([&] { return plain.sandboxes().empty() && probed.sandboxes().empty(); },
          std::chrono::seconds(120), milliseconds(500));
  return 0;
}

// Cluster mode: pods created in the (fake, in-process) API server, bound to nodelet's node ->
// their status Running in the API, next to the same CRI calls issued directly; how long after
// the container runs the status is written; API requests per pod start; the Lease after
// registration.
int runCluster() {
  if (env("NODELET_E2E_CRI_ENDPOINT").empty()) {
    std::fprintf(stderr, "bench: run through tests/bench/run.sh cluster (needs the rig)\n");
    return 2;
  }
  testing::TempDir dir;
  testing::FakeApiServer api(dir.str() + "/pki", RealClock::instance());
  if (!api.ok()) return 2;
  NodeletProcess n;
  n.extra_args = {"--kubeconfig=" + api.writeNodeKubeconfig(dir.str() + "/kubeconfig", n.node())};
  n.start("", 0);
  const auto started = Clock::now();
  auto ready = [&] {
    auto node = api.get("nodes", "", n.node());
    if (!node) return false;
    for (const auto& c : (*node)["status"].value("conditions", nlohmann::json::array()))
      if (c.value("type", "") == "Ready") return c.value("status", "") == "True";
    return false;
  };
  if (!waitFor(ready, std::chrono::seconds(30), milliseconds(2))) return 1;
  const double to_ready = ms(Clock::now() - started);
  std::optional<MonoTime> registered, leased;
  for (const auto& r : api.requests()) {
    if (r.method == "POST" && r.path == "/api/v1/nodes" && r.code == 201) registered = r.at;
    if (r.method == "POST" && r.path.ends_with("/leases") && r.code == 201) leased = r.at;
  }
  waitFor([&] { return api.get("leases", "kube-node-lease", n.node()).has_value(); },
          std::chrono::seconds(5));
  for (const auto& r : api.requests())
    if (r.method == "POST" && r.path.ends_with("/leases") && r.code == 201) leased = r.at;

  auto podJson = [&](const std::string& name) {
    return nlohmann::json{
        {"metadata", {{"name", name}, {"namespace", "default"}}},
        {"spec",
         {{"nodeName", n.node()},
          {"terminationGracePeriodSeconds", 5},
          {"containers",
           {{{"name", "app"}, {"image", image()}, {"command", {"sh", "-c", kIdle}}}}}}}};
  };
  auto apiRunning = [&](const std::string& name) {
    auto p = api.get("pods", "default", name);
    return p && (*p)["status"].value("phase", "") == "Running";
  };
  // One pod: the watch event -> Running in the API; and the container running (seen through
  // CRI) -> that status written.
  directStart(n.runtime(), 1, 1, "warm");
  std::vector<double> d1, a1, lag;
  for (int i = 0; i < 5; ++i) {
    d1.push_back(directStart(n.runtime(), 1, 1, "c1-" + std::to_string(i)));
    const std::string name = "one-" + std::to_string(i);
    const size_t before = n.containers().size();
    const auto t0 = Clock::now();
    api.create("pods", "default", podJson(name));
    std::optional<Clock::time_point> cri_running;
    const bool ok = waitFor(
        [&] {
          if (!cri_running) {
            size_t running = 0;
            for (const auto& c : n.containers()) running += c.state == cri::ContainerState::Running;
            if (running > before) cri_running = Clock::now();
          }
          return apiRunning(name);
        },
        std::chrono::seconds(30), milliseconds(1));
    if (!ok) continue;
    const auto t1 = Clock::now();
    a1.push_back(ms(t1 - t0));
    if (cri_running) lag.push_back(std::max(0.0, ms(t1 - *cri_running)));
  }
  // Twenty pods at once, three rounds, with the direct floor at parallelism 4 beside each.
  const int kPods = 20;
  std::vector<double> d20, a20, cpu20;
  double requests_per_pod = 0;
  std::map<std::string, int> by_verb;
  for (int round = 0; round < 3; ++round) {
    d20.push_back(directStart(n.runtime(), kPods, 4, "c20-" + std::to_string(round)));
    api.clearRequests();
    const uint64_t cpu0 = cpuNs(n.pid());
    const auto t0 = Clock::now();
    for (int i = 0; i < kPods; ++i)
      api.create("pods", "default", podJson("burst-" + std::to_string(i)));
    const bool ok = waitFor(
        [&] {
          for (int i = 0; i < kPods; ++i)
            if (!apiRunning("burst-" + std::to_string(i))) return false;
          return true;
        },
        std::chrono::seconds(120), milliseconds(5));
    if (ok) a20.push_back(ms(Clock::now() - t0));
    // Requests nodelet made for these starts (the Lease and node status excluded), after half a
    // second for trailing writes.
    const auto trailing = std::chrono::milliseconds(500);
    std::this_thread::sleep_for(trailing);  // NOLINT(real-time)
    if (ok) cpu20.push_back(static_cast<double>(cpuNs(n.pid()) - cpu0) / 1e6 / kPods);
    int count = 0;
    by_verb.clear();
    for (const auto& r : api.requests()) {
      if (r.user != "system:node:" + n.node() || r.path.find("/leases") != std::string::npos ||
          r.path.rfind("/api/v1/nodes", 0) == 0)
        continue;
      ++count;
      ++by_verb[r.method + " " + (r.path.find("/events") != std::string::npos ? "events" : "pods")];
    }
    requests_per_pod = static_cast<double>(count) / kPods;
    for (int i = 0; i < kPods; ++i) api.remove("pods", "default", "burst-" + std::to_string(i), 0);
    waitFor([&] { return n.containers().size() <= 1 && n.sandboxes().size() <= 1; },
            std::chrono::seconds(60), milliseconds(50));
  }

  std::printf("\n## nodelet cluster-mode benchmark (%s)\n\n",
              env("BENCH_LABEL", "this machine").c_str());
  std::printf("| measure | direct CRI | nodelet | target |\n|---|---:|---:|---|\n");
  std::printf("| start -> node Ready in the API | | %.0f ms | |\n", to_ready);
  if (registered && leased)
    std::printf("| registration -> Lease created | | %.0f ms | <= 1 s |\n",
                ms(*leased - *registered));
  std::printf(
      "| 1 pod: watch event -> Running in the API, median of %zu | %.0f ms | %.0f ms | <= 300 ms "
      "|\n",
      a1.size(), median(d1), median(a1));
  std::printf(
      "| container running (CRI) -> status Running written, median of %zu | | %.0f ms | <= 50 ms "
      "|\n",
      lag.size(), median(lag));
  std::printf(
      "| %d pods: watch events -> all Running in the API, median of %zu | %.0f ms | %.0f ms | <= "
      "2.5 s |\n",
      kPods, a20.size(), median(d20), median(a20));
  std::printf("| API requests per pod start (last round) | | %.1f | |\n", requests_per_pod);
  std::printf(
      "| %d pods: nodelet CPU per pod start (all its threads), median of %zu | | %.1f ms | |\n",
      kPods, cpu20.size(), median(cpu20));
  std::printf("\nrequests in the last round by kind:");
  for (const auto& [k, v] : by_verb) std::printf(" %s=%d", k.c_str(), v);
  std::printf("\n1-pod samples direct / API (ms):");
  for (size_t i = 0; i < a1.size() && i < d1.size(); ++i) std::printf(" %.0f/%.0f", d1[i], a1[i]);
  std::printf("\nstatus lag samples (ms):");
  for (double l : lag) std::printf(" %.1f", l);
  std::printf("\n20-pod samples direct / API (ms):");
  for (size_t i = 0; i < a20.size() && i < d20.size(); ++i)
    std::printf(" %.0f/%.0f", d20[i], a20[i]);
  std::printf("\n");
  return 0;
}

// `bench streams`: kubectl exec and port-forward through nodelet's node server (TLS, CRI call,
// relay), next to the same WebSocket sessions opened directly on the runtime's streaming URL
// (the CRI call included): what the relay costs on top of what it relays to.
int runStreams() {
  const int port = testing::freeLocalPort();
  NodeletProcess n;
  n.start(
      "address: 127.0.0.1\nport: " + std::to_string(port) +
          "\nauthentication: {anonymous: {enabled: true}}\nauthorization: {mode: AlwaysAllow}\n",
      0);
  constexpr int kMiB = 64;
  n.write("web.yaml",
          "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n"
          "  containers:\n  - name: app\n    image: " +
              image() +
              "\n    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; mkdir -p /www; dd "
              "if=/dev/zero of=/www/big bs=1M count=" +
              std::to_string(kMiB) +
              " 2>/dev/null; touch /www/ready; httpd -f -p 8080 -h /www & wait\"]\n");
  if (!waitRunning(n, 1, std::chrono::seconds(60))) {
    std::fprintf(stderr, "bench streams: the pod did not start\n");
    return 1;
  }
  std::string container_id, sandbox_id;
  for (const auto& c : n.containers())
    if (c.state == cri::ContainerState::Running) {
      container_id = c.id;
      sandbox_id = c.pod_sandbox_id;
    }
  const std::string pod = "/default/web-" + n.node();
  const std::string proto = "v4.channel.k8s.io";
  // Opens a WebSocket on `path` through nodelet, or on the URL the runtime gives for `req`.
  auto open = [&](testing::RawClient& c, bool via, const std::string& path,
                  const cri::StreamingRequest& req, bool exec) {
    testing::WebSocketClient ws(c);
    if (via) {
      c.connect(port, true);
      return std::pair{ws.open(path, proto), ws};
    }
    auto url = exec ? n.runtime().exec(req) : n.runtime().portForward(req);
    const std::string u = url ? *url : "http://127.0.0.1:1/";
    const size_t colon = u.find(':', 7), slash = u.find('/', 7);
    c.connect(std::stoi(u.substr(colon + 1, slash - colon - 1)), false);
    return std::pair{ws.open(u.substr(slash) + (exec ? "" : "?port=8080"), proto), ws};
  };
  auto execOnce = [&](bool via) {
    cri::StreamingRequest r;
    r.container_id = container_id;
    r.cmd = {"true"};
    r.stderr_ = false;
    const auto t0 = Clock::now();
    testing::RawClient c;
    auto [head, ws] = open(c, via, "/exec" + pod + "/app?command=true&output=1", r, true);
    const double switched = ms(Clock::now() - t0);
    for (int i = 0; i < 10; ++i) {
      auto m = ws.next();
      if (!m || m->opcode == 8 || (m->payload.size() > 1 && m->payload[0] == 3)) break;
    }
    const double took = ms(Clock::now() - t0);
    // The runtime cleans up after an exec for a while: the next one must not pay for it.
    std::this_thread::sleep_for(milliseconds(200));  // NOLINT(real-time)
    return head.starts_with("HTTP/1.1 101 ") ? std::pair{switched, took} : std::pair{-1.0, -1.0};
  };
  // Seconds to fetch /big through a port-forward (-1: it did not arrive whole).
  auto forwardOnce = [&](bool via) {
    cri::StreamingRequest r;
    r.pod_sandbox_id = sandbox_id;
    r.ports = {8080};
    testing::RawClient c;
    auto [head, ws] = open(c, via, "/portForward" + pod + "?port=8080", r, false);
    const auto t0 = Clock::now();
    ws.send(0, "GET /big HTTP/1.0\r\n\r\n");
    size_t body = 0;
    const size_t want = static_cast<size_t>(kMiB) << 20;
    for (int i = 0; i < 1'000'000 && body < want; ++i) {
      auto m = ws.next();
      if (!m || m->opcode == 8) break;
      if (m->payload.size() > 1 && m->payload[0] == 0) body += m->payload.size() - 1;
    }
    // The 2-byte port announcement and the response head ride along: close enough to `want`.
    return body >= want ? std::chrono::duration<double>(Clock::now() - t0).count() : -1.0;
  };
  waitFor([&] { return forwardOnce(false) > 0; }, std::chrono::seconds(30), milliseconds(200));
  std::vector<double> direct_exec, via_exec, paired, direct_switch, via_switch, paired_switch;
  for (int i = 0; i < 21; ++i) {
    // Alternating which goes first, in case the pause above is not enough.
    std::pair<double, double> d, v;
    if (i % 2 == 0) {
      d = execOnce(false);
      v = execOnce(true);
    } else {
      v = execOnce(true);
      d = execOnce(false);
    }
    if (d.first < 0 || v.first < 0) continue;
    direct_switch.push_back(d.first);
    via_switch.push_back(v.first);
    paired_switch.push_back(v.first - d.first);
    direct_exec.push_back(d.second);
    via_exec.push_back(v.second);
    paired.push_back(v.second - d.second);
  }
  std::vector<double> direct_rate, via_rate, cpu_per_mib;
  for (int i = 0; i < 5; ++i) {
    const double d = forwardOnce(false);
    const uint64_t c0 = cpuNs(n.pid());
    const double v = forwardOnce(true);
    const uint64_t c1 = cpuNs(n.pid());
    if (d <= 0 || v <= 0) continue;
    direct_rate.push_back(kMiB / d);
    via_rate.push_back(kMiB / v);
    cpu_per_mib.push_back(static_cast<double>(c1 - c0) / 1e6 / kMiB);
  }
  if (paired.empty() || via_rate.empty()) {
    std::fprintf(stderr, "bench streams: no complete sample\n%s\n", n.log().c_str());
    return 1;
  }
  std::printf("| measure | direct (runtime URL) | through nodelet |\n|---|---:|---:|\n");
  std::printf(
      "| exec: request -> 101 Switching Protocols (CRI Exec included), median of %zu | %.1f ms | "
      "%.1f ms |\n",
      paired.size(), median(direct_switch), median(via_switch));
  std::printf("| exec: nodelet's share of that, median of paired differences | | %.1f ms |\n",
              median(paired_switch));
  std::printf("| exec `true`: request -> exit status, median of %zu | %.1f ms | %.1f ms |\n",
              paired.size(), median(direct_exec), median(via_exec));
  std::printf("| exec `true`: nodelet's share, median of paired differences | | %.1f ms |\n",
              median(paired));
  std::printf("| port-forward, %d MiB over HTTP, median of %zu | %.0f MiB/s | %.0f MiB/s |\n", kMiB,
              via_rate.size(), median(direct_rate), median(via_rate));
  std::printf("| port-forward: nodelet CPU per MiB relayed | | %.2f ms |\n", median(cpu_per_mib));
  return 0;
}

}  // namespace
}  // namespace nodelet::e2e

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "streams") return nodelet::e2e::runStreams();
  if (argc > 1 && std::string(argv[1]) == "probes") return nodelet::e2e::runProbes();
  if (argc > 1 && std::string(argv[1]) == "cluster") return nodelet::e2e::runCluster();
  return nodelet::e2e::run();
}
