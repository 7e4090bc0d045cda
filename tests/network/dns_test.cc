// Pod DNS and /etc/hosts against what a real kubelet v1.32 wrote
// (shared/spec/kubelet-pod-files.md).
#include "network/dns.h"

#include <gtest/gtest.h>

#include "tests/common/pods.h"

namespace nodelet::network {
namespace {

using testing::podFromYaml;

DnsSettings settings() {
  DnsSettings s;
  s.cluster_dns = {"10.96.0.10"};
  s.cluster_domain = "cluster.local";
  s.host = parseResolvConf("nameserver 10.96.0.53\nsearch node.acc.test\noptions timeout:2\n");
  return s;
}

api::Pod inAcc(const std::string& spec) {
  auto p = podFromYaml(spec);
  p.metadata.namespace_ = "acc";
  return p;
}

TEST(DnsTest, ClusterFirstAppendsTheNodesSearchesAndUsesNdots5) {
  auto d = podDnsConfig(inAcc("  containers: [{name: a, image: x}]\n"), settings());
  EXPECT_EQ(d.config.servers, (std::vector<std::string>{"10.96.0.10"}));
  EXPECT_EQ(d.config.searches,
            (std::vector<std::string>{"acc.svc.cluster.local", "svc.cluster.local", "cluster.local",
                                      "node.acc.test"}));
  EXPECT_EQ(d.config.options, (std::vector<std::string>{"ndots:5"}));
  EXPECT_TRUE(d.warnings.empty());
}

TEST(DnsTest, NoneUsesOnlyDnsConfig) {
  auto d = podDnsConfig(inAcc("  dnsPolicy: None\n  dnsConfig: {nameservers: [10.96.0.20], "
                              "searches: [a.acc.test, b.acc.test], "
                              "options: [{name: ndots, value: \"2\"}, {name: edns0}]}\n  "
                              "containers: [{name: a, image: x}]\n"),
                        settings());
  EXPECT_EQ(d.config.servers, (std::vector<std::string>{"10.96.0.20"}));
  EXPECT_EQ(d.config.searches, (std::vector<std::string>{"a.acc.test", "b.acc.test"}));
  EXPECT_EQ(d.config.options, (std::vector<std::string>{"ndots:2", "edns0"}));
}

TEST(DnsTest, DefaultAndHostNetworkClusterFirstUseTheNodesFile) {
  for (const char* spec : {"  dnsPolicy: Default\n  containers: [{name: a, image: x}]\n",
                           "  hostNetwork: true\n  containers: [{name: a, image: x}]\n"}) {
    auto d = podDnsConfig(inAcc(spec), settings());
    EXPECT_EQ(d.config.servers, (std::vector<std::string>{"10.96.0.53"})) << spec;
    EXPECT_EQ(d.config.searches, (std::vector<std::string>{"node.acc.test"})) << spec;
    EXPECT_EQ(d.config.options, (std::vector<std::string>{"timeout:2"})) << spec;
  }
  auto d = podDnsConfig(inAcc("  hostNetwork: true\n  dnsPolicy: ClusterFirstWithHostNet\n  "
                              "containers: [{name: a, image: x}]\n"),
                        settings());
  EXPECT_EQ(d.config.servers, (std::vector<std::string>{"10.96.0.10"}));
}

TEST(DnsTest, ClusterFirstWithoutClusterDnsFallsBackWithAWarning) {
  auto s = settings();
  s.cluster_dns.clear();
  auto d = podDnsConfig(inAcc("  containers: [{name: a, image: x}]\n"), s);
  EXPECT_EQ(d.config.servers, (std::vector<std::string>{"10.96.0.53"}));
  ASSERT_EQ(d.warnings.size(), 1u);
  EXPECT_EQ(d.warnings[0].first, "MissingClusterDNS");
  EXPECT_EQ(d.warnings[0].second,
            "pod: \"web_acc(uid-1)\". kubelet does not have ClusterDNS IP configured and cannot "
            "create Pod using "
            "\"ClusterFirst\" policy. Falling back to \"Default\" policy.");
}

TEST(DnsTest, DnsConfigIsMergedAndLimited) {
  auto d = podDnsConfig(
      inAcc("  dnsConfig: {nameservers: [10.96.0.10, 1.1.1.1, 2.2.2.2, 3.3.3.3], searches: "
            "[cluster.local, x.test], "
            "options: [{name: ndots, value: \"1\"}]}\n  containers: [{name: a, image: x}]\n"),
      settings());
  EXPECT_EQ(d.config.servers, (std::vector<std::string>{"10.96.0.10", "1.1.1.1", "2.2.2.2"}));
  EXPECT_EQ(d.config.searches.back(), "x.test");
  EXPECT_EQ(std::count(d.config.searches.begin(), d.config.searches.end(), "cluster.local"), 1);
  EXPECT_EQ(d.config.options, (std::vector<std::string>{"ndots:1"}));
  ASSERT_FALSE(d.warnings.empty());
  EXPECT_EQ(d.warnings[0].first, "DNSConfigForming");
}

TEST(HostsFileTest, MatchesTheKubeletByteForByte) {
  EXPECT_EQ(managedHostsFile({"10.219.0.6"}, "acc-net-cf-acc-node-1", "", {}),
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost "
            "ip6-loopback\n"
            "fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-"
            "allrouters\n"
            "10.219.0.6\tacc-net-cf-acc-node-1\n");
  const std::string with =
      managedHostsFile({"10.219.0.6"}, "p", "", {{"10.1.2.3", {"foo.acc.test", "bar.acc.test"}}});
  EXPECT_TRUE(with.ends_with(
      "10.219.0.6\tp\n\n# Entries added by HostAliases.\n10.1.2.3\tfoo.acc.test\tbar.acc.test\n"))
      << with;
}

TEST(HostnameTest, PodNameOrSpecHostnameCutTo63) {
  auto p = podFromYaml("  containers: [{name: a, image: x}]\n", std::string(70, 'a'));
  EXPECT_EQ(podHostname(p).size(), 63u);
  p.spec.hostname = "mine";
  EXPECT_EQ(podHostname(p), "mine");
}

}  // namespace
}  // namespace nodelet::network
