// Pod networking end to end on the network nodelet writes (tests/run.sh has the rig's conflist
// written by `nodelet cni-config`) with real containerd and Debian's CNI plugins: pods reach each
// other by pod IP, DNS and /etc/hosts inside a pod follow its policy, a host-network pod sees the
// host's interfaces, and leaked addresses are reclaimed. Traffic stays on the rig's bridge.
#include <gtest/gtest.h>
#include <utime.h>

#include <fstream>

#include "tests/e2e/nodelet_process.h"

namespace nodelet::e2e {
namespace {

using std::chrono::seconds;

std::string image() { return env("NODELET_E2E_APP_IMAGE", "localhost/nodelet/busybox:1.35"); }

std::string pod(const std::string& name, const std::string& spec_extra, const std::string& script) {
  return "apiVersion: v1\nkind: Pod\nmetadata: {name: " + name + "}\nspec:\n" + spec_extra +
         "  containers:\n  - name: app\n    image: " + image() +
         "\n    command: [\"sh\", \"-c\", \"" + script + "\"]\n";
}
const std::string kIdle = "trap 'exit 0' TERM; while true; do sleep 1 & wait $!; done";

// The flags that put nodelet in charge of the rig's CNI network (the one `nodelet cni-config`
// wrote for the rig: the same file, so nodelet finds it unchanged).
std::vector<std::string> rigCniFlags() {
  return {"--pod-cidr=" + env("NODELET_E2E_POD_CIDR"),
          "--cni-conf-dir=" + env("NODELET_E2E_CNI_CONF_DIR"),
          "--cni-network=" + env("NODELET_E2E_CNI_NETWORK"),
          "--cni-bridge=" + env("NODELET_E2E_BRIDGE"),
          "--cni-ipam-dir=" + env("NODELET_E2E_IPAM_DIR"),
          "--cni-bin-dir=" + env("NODELET_E2E_CNI_BIN", "/usr/lib/cni")};
}

class NetworkE2eTest : public ::testing::Test {
 protected:
  void SetUp() override { NODELET_REQUIRE_RIG(); }
  void TearDown() override {
    if (HasFailure()) std::fprintf(stderr, "---- nodelet log ----\n%s\n", n_.log().c_str());
  }
  // The app container's log (CRI format lines: "<time> stdout F <text>").
  std::string log(const std::string& name) { return n_.containerLog(name); }
  bool logHas(const std::string& name, const std::string& needle) {
    return n_.containerLogHas(name, needle);
  }
  NodeletProcess n_;
};

TEST_F(NetworkE2eTest, TwoPodsReachEachOtherByPodIp) {
  n_.start();
  n_.write("server.yaml", pod("server", "",
                              "trap 'exit 0' TERM; mkdir -p /www; echo hello-from-server > "
                              "/www/index.html; httpd -f -p 80 -h /www & wait"));
  ASSERT_TRUE(waitFor([&] { return n_.phase("server") == "Running"; }, seconds(20)));
  const std::string ip = (*n_.pod("server"))["status"]["podIP"];
  ASSERT_TRUE(ip.starts_with("10.86.")) << ip;
  // busybox's wget crashes in this image; nc speaks HTTP well enough.
  n_.write("client.yaml", pod("client", "",
                              "until printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 " + ip +
                                  " 80 > /tmp/page; do sleep 0.2; done; cat /tmp/page; " + kIdle));
  EXPECT_TRUE(logHas("client", "hello-from-server")) << log("client");
  const std::string client_ip = (*n_.pod("client"))["status"]["podIP"];
  EXPECT_NE(client_ip, ip);
}

TEST_F(NetworkE2eTest, ResolvConfAndHostsFollowThePodsPolicy) {
  n_.start("clusterDNS: [10.96.0.10]\nclusterDomain: cluster.local\n");
  n_.write("custom.yaml", pod("custom",
                              "  dnsPolicy: None\n  dnsConfig:\n    nameservers: [192.0.2.53]\n    "
                              "searches: [corp.example]\n"
                              "    options: [{name: ndots, value: '2'}]\n"
                              "  hostAliases: [{ip: 192.0.2.10, hostnames: [db.local]}]\n",
                              "cat /etc/resolv.conf /etc/hosts; " + kIdle));
  n_.write("cluster.yaml", pod("cluster", "", "cat /etc/resolv.conf; " + kIdle));
  EXPECT_TRUE(logHas("custom", "nameserver 192.0.2.53"));
  const std::string custom = log("custom");
  EXPECT_NE(custom.find("search corp.example"), std::string::npos) << custom;
  EXPECT_NE(custom.find("options ndots:2"), std::string::npos) << custom;
  EXPECT_NE(custom.find("192.0.2.10\tdb.local"), std::string::npos) << custom;
  EXPECT_NE(custom.find("custom-" + n_.node()), std::string::npos)
      << "the pod's own name in /etc/hosts";
  EXPECT_TRUE(logHas("cluster", "nameserver 10.96.0.10"));
  const std::string cluster = log("cluster");
  EXPECT_NE(cluster.find("search default.svc.cluster.local svc.cluster.local cluster.local"),
            std::string::npos)
      << cluster;
  EXPECT_NE(cluster.find("options ndots:5"), std::string::npos) << cluster;
}

// A StatefulSet's pod: hostname and subdomain make its FQDN, in /etc/hosts and, with
// setHostnameAsFQDN, as the kernel hostname. shareProcessNamespace shows each container the
// others' processes.
TEST_F(NetworkE2eTest, FqdnHostnamesAndASharedProcessNamespace) {
  n_.start("clusterDomain: cluster.local\n");
  n_.write("web.yaml",
           pod("web", "  hostname: web-0\n  subdomain: nginx\n  setHostnameAsFQDN: true\n",
               "hostname; cat /etc/hosts; " + kIdle));
  n_.write(
      "shared.yaml",
      "apiVersion: v1\nkind: Pod\nmetadata: {name: shared}\nspec:\n"
      "  shareProcessNamespace: true\n  containers:\n"
      "  - {name: other, image: " +
          image() +
          ", command: [sleep, '12345']}\n"
          "  - name: app\n    image: " +
          image() +
          "\n    command:\n    - sh\n    - -c\n    - |\n      until ps | grep -q 'sleep 1234[5]'; "
          "do sleep 0.1; done; echo saw-the-other-container; " +
          kIdle + "\n");
  EXPECT_TRUE(logHas("web", "web-0.nginx.default.svc.cluster.local\n")) << log("web");
  EXPECT_NE(log("web").find("\tweb-0.nginx.default.svc.cluster.local\tweb-0\n"), std::string::npos)
      << log("web");
  EXPECT_TRUE(logHas("shared", "saw-the-other-container")) << log("shared");
}

TEST_F(NetworkE2eTest, AHostNetworkPodSeesTheHostsInterfaces) {
  n_.start();
  n_.write("hostnet.yaml", pod("hostnet", "  hostNetwork: true\n", "cat /proc/net/dev; " + kIdle));
  // The rig's bridge exists on the host only: a pod in its own network namespace cannot see it.
  EXPECT_TRUE(logHas("hostnet", env("NODELET_E2E_BRIDGE", "nodelet-rig0")));
}

TEST_F(NetworkE2eTest, LeakedAddressesAreReclaimedAndLiveOnesKept) {
  const std::string ipam = env("NODELET_E2E_IPAM_DIR");
  const std::string net = env("NODELET_E2E_CNI_NETWORK");
  if (ipam.empty() || net.empty()) GTEST_SKIP() << "the rig does not say where its IPAM state is";
  n_.extra_args = rigCniFlags();
  n_.start();
  n_.write("live.yaml", pod("live", "", kIdle));
  ASSERT_TRUE(waitFor([&] { return n_.phase("live") == "Running"; }, seconds(20)));
  const std::string live_ip = (*n_.pod("live"))["status"]["podIP"];
  // What a crash leaves: addresses reserved for sandboxes no runtime knows any more (what
  // containerd and nodelet killed with -9 leave behind once the sandbox state is gone).
  const auto dir = std::filesystem::path(ipam) / net;
  auto count = [&] {
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir))
      n += e.path().filename().string().find('.') != std::string::npos &&
           e.path().filename().string().starts_with("10.86.");
    return n;
  };
  for (int i = 0; i < 3; ++i) {
    const auto f = dir / ("10.86.255." + std::to_string(240 + i));
    std::ofstream(f) << std::string(63, 'e') << i << "\r\neth0";
    utimbuf old{time(nullptr) - 3600, time(nullptr) - 3600};  // NOLINT(real-time): a file's age
    ::utime(f.c_str(), &old);
  }
  const int before = count();
  // nodelet restarts (as after the crash) and reclaims at start-up.
  n_.stop(SIGTERM);
  n_.start();
  EXPECT_TRUE(waitFor([&] { return count() == before - 3; }, seconds(20)))
      << before << " -> " << count();
  EXPECT_TRUE(std::filesystem::exists(dir / live_ip)) << "the live pod's address stays";
  EXPECT_NE(n_.log().find("reclaimed 3 leaked pod address(es)"), std::string::npos);
}

// The real thing: nodelet and containerd killed with -9, and the sandbox's record lost with them
// (as when containerd's state does not survive a crash): its address stays reserved on disk until
// nodelet, started again, reclaims it.
TEST_F(NetworkE2eTest, AfterKill9OfNodeletAndContainerdALostSandboxsAddressIsReclaimed) {
  const std::string rig = env("NODELET_E2E_RIG"), ipam = env("NODELET_E2E_IPAM_DIR");
  const std::string net = env("NODELET_E2E_CNI_NETWORK"), sock = env("NODELET_E2E_CRI_ENDPOINT");
  if (rig.empty() || ipam.empty() || net.empty()) GTEST_SKIP() << "needs the rig's paths";
  n_.extra_args = rigCniFlags();
  n_.start();
  n_.write("victim.yaml", pod("victim", "", kIdle));
  ASSERT_TRUE(waitFor([&] { return n_.phase("victim") == "Running"; }, seconds(20)));
  const std::string ip = (*n_.pod("victim"))["status"]["podIP"];
  const auto reservation = std::filesystem::path(ipam) / net / ip;
  ASSERT_TRUE(std::filesystem::exists(reservation));
  n_.stop(SIGKILL);
  n_.remove("victim.yaml");
  // The sandbox's record goes (its task and container deleted behind containerd's CRI plugin),
  // then containerd is killed with -9 and started again: it no longer knows the sandbox.
  const std::string ctr = "ctr -a " + sock.substr(std::string("unix://").size()) + " -n k8s.io ";
  for (const auto& sb : n_.sandboxes()) {
    for (const auto& c : n_.containers())
      if (c.pod_sandbox_id == sb.id)
        std::system((ctr + "t kill -s KILL " + c.id + " >/dev/null 2>&1; " + ctr + "t delete -f " +
                     c.id + " >/dev/null 2>&1; " + ctr + "c rm " + c.id + " >/dev/null 2>&1")
                        .c_str());
    std::system((ctr + "t kill -s KILL " + sb.id + " >/dev/null 2>&1; " + ctr + "t delete -f " +
                 sb.id + " >/dev/null 2>&1; " + ctr + "c rm " + sb.id + " >/dev/null 2>&1")
                    .c_str());
  }
  ASSERT_EQ(std::system((rig + " restart >/dev/null 2>&1").c_str()), 0);
  ASSERT_TRUE(std::filesystem::exists(reservation)) << "the address leaked";
  // Age it past the creation race window (reclaim leaves reservations younger than 2 minutes).
  utimbuf old{time(nullptr) - 600, time(nullptr) - 600};  // NOLINT(real-time): a file's age
  ::utime(reservation.c_str(), &old);
  n_.start();
  EXPECT_TRUE(waitFor([&] { return !std::filesystem::exists(reservation); }, seconds(30)))
      << n_.log();
}

}  // namespace
}  // namespace nodelet::e2e
