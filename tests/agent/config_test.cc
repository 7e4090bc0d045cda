// KubeletConfiguration and the kubelet's flags.
#include "agent/config.h"

#include <gtest/gtest.h>

#include "agent/flags.h"

namespace nodelet::agent {
namespace {

using std::chrono::milliseconds;

const std::string kHead = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n";

TEST(DurationTest, GoSyntax) {
  struct Case {
    const char* s;
    int64_t ms;
  } cases[] = {{"20s", 20000},  {"1m", 60000},  {"1m30s", 90000}, {"500ms", 500},
               {"2h", 7200000}, {"1.5s", 1500}, {"0", 0},         {"1h0m0s", 3600000}};
  for (const auto& c : cases) EXPECT_EQ(parseDuration(c.s).value(), milliseconds(c.ms)) << c.s;
  for (const char* bad : {"", "20", "s", "1x", "--1s", "1.2.3s"})
    EXPECT_FALSE(parseDuration(bad)) << bad;
}

TEST(ConfigTest, NodeServerAuthDefaultsAreV1beta1sAndNestedUnknownsAreNamed) {
  Config c;
  EXPECT_FALSE(c.anonymous_auth);
  EXPECT_TRUE(c.webhook_authn);
  EXPECT_EQ(c.authorization_mode, "Webhook");
  auto s = loadConfigText(R"(apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication: {webhook: {enabled: true, bogus: 1}}
)",
                          c);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(c.ignored_fields, (std::vector<std::string>{"authentication.webhook.bogus"}));
  auto bad = loadConfigText(R"(apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication: {anonymous: {enabled: "yes"}}
)",
                            c);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("authentication.anonymous.enabled"), std::string::npos)
      << bad.error().message;
  c.authorization_mode = "RBAC";
  EXPECT_FALSE(validateConfig(c));
  c.authorization_mode = "Webhook";
  c.tls_cert_file = "/x.crt";
  EXPECT_FALSE(validateConfig(c)) << "a certificate without its key";
  c.tls_cert_file.clear();
  c.container_log_monitor_interval = std::chrono::seconds(2);
  auto quick = validateConfig(c);
  ASSERT_FALSE(quick) << "the kubelet's floor is 3s";
  EXPECT_NE(quick.error().message.find("greater than or equal to 3s"), std::string::npos);
}

TEST(ConfigTest, ReadsTheFieldsNodeletHonours) {
  Config c;
  auto s = loadConfigText(R"(
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
staticPodPath: /etc/kubernetes/manifests
fileCheckFrequency: 5s
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
syncFrequency: 30s
podLogsDir: /var/log/pods2
maxPods: 20
cgroupDriver: cgroupfs
clusterDNS: [10.96.0.10]
clusterDomain: cluster.local
runtimeRequestTimeout: 1m
podCIDR: 10.244.0.0/24
containerLogMaxSize: 5Mi
containerLogMaxFiles: 3
failSwapOn: false
readOnlyPort: 10255
evictionHard: {memory.available: 200Mi}
systemReserved: {cpu: 100m}
kubeAPIQPS: 20
registerWithTaints: [{key: dedicated, value: infra, effect: NoSchedule}, {key: gpu, effect: NoExecute}]
authentication: {anonymous: {enabled: true}, x509: {clientCAFile: /etc/kubernetes/pki/ca.crt},
  webhook: {enabled: false, cacheTTL: 30s}}
authorization: {mode: AlwaysAllow, webhook: {cacheAuthorizedTTL: 1m, cacheUnauthorizedTTL: 5s}}
tlsCertFile: /var/lib/kubelet/pki/kubelet.crt
tlsPrivateKeyFile: /var/lib/kubelet/pki/kubelet.key
streamingConnectionIdleTimeout: 5m
containerLogMonitorInterval: 4s
featureGates: {Foo: true}
)",
                          c);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(c.static_pod_path, "/etc/kubernetes/manifests");
  EXPECT_EQ(c.file_check_frequency, milliseconds(5000));
  EXPECT_EQ(c.sync_frequency, milliseconds(30000));
  EXPECT_EQ(c.pod_logs_dir, "/var/log/pods2");
  EXPECT_EQ(c.max_pods, 20);
  EXPECT_EQ(c.cluster_dns, (std::vector<std::string>{"10.96.0.10"}));
  EXPECT_EQ(c.runtime_request_timeout, milliseconds(60000));
  EXPECT_FALSE(c.fail_swap_on);
  EXPECT_EQ(c.read_only_port, 10255);
  // A given evictionHard replaces the defaults entirely, as in the kubelet.
  EXPECT_EQ(c.eviction_hard, (std::map<std::string, std::string>{{"memory.available", "200Mi"}}));
  EXPECT_EQ(c.system_reserved.at("cpu"), "100m");
  EXPECT_EQ(c.kube_api_qps, 20);
  EXPECT_EQ(c.register_with_taints,
            (std::vector<std::string>{"dedicated=infra:NoSchedule", "gpu:NoExecute"}));
  EXPECT_TRUE(c.anonymous_auth);
  EXPECT_EQ(c.client_ca_file, "/etc/kubernetes/pki/ca.crt");
  EXPECT_FALSE(c.webhook_authn);
  EXPECT_EQ(c.webhook_authn_cache_ttl, milliseconds(30000));
  EXPECT_EQ(c.authorization_mode, "AlwaysAllow");
  EXPECT_EQ(c.authz_authorized_ttl, milliseconds(60000));
  EXPECT_EQ(c.authz_unauthorized_ttl, milliseconds(5000));
  EXPECT_EQ(c.tls_cert_file, "/var/lib/kubelet/pki/kubelet.crt");
  EXPECT_EQ(c.streaming_connection_idle_timeout, milliseconds(300000));
  EXPECT_EQ(c.container_log_monitor_interval, milliseconds(4000));
  EXPECT_EQ(c.ignored_fields, (std::vector<std::string>{"featureGates"}));
  EXPECT_TRUE(validateConfig(c));
}

TEST(ConfigTest, ClusterModeFieldsAreChecked) {
  Config c;
  auto taints = loadConfigText(kHead + "registerWithTaints: [{key: a}]\n", c);
  ASSERT_FALSE(taints);
  EXPECT_NE(taints.error().message.find("registerWithTaints"), std::string::npos)
      << taints.error().message;
  auto reserved = loadConfigText(kHead + "systemReserved: {cpu: 1}\n", c);
  ASSERT_FALSE(reserved);
  EXPECT_NE(reserved.error().message.find("systemReserved"), std::string::npos)
      << reserved.error().message;
  c = Config{};
  c.register_with_taints = {"a=b:Sometimes"};
  auto s = validateConfig(c);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("NoSchedule, PreferNoSchedule or NoExecute"), std::string::npos);
  c = Config{};
  c.kubeconfig = "/k";
  c.register_node = false;
  EXPECT_FALSE(validateConfig(c));
  // TLS bootstrapping writes --kubeconfig: it needs one.
  c = Config{};
  c.bootstrap_kubeconfig = "/b";
  auto boot = validateConfig(c);
  ASSERT_FALSE(boot);
  EXPECT_NE(boot.error().message.find("--bootstrap-kubeconfig needs --kubeconfig"),
            std::string::npos);
  c = Config{};
  ASSERT_TRUE(loadConfigText(kHead + "rotateCertificates: true\n", c));
  EXPECT_TRUE(c.rotate_certificates);
  EXPECT_TRUE(c.ignored_fields.empty());
}

TEST(ConfigTest, DefaultsAreTheKubelets) {
  Config c;
  EXPECT_EQ(c.file_check_frequency, milliseconds(20000));
  EXPECT_EQ(c.sync_frequency, milliseconds(60000));
  EXPECT_EQ(c.max_pods, 110);
  EXPECT_EQ(c.pod_logs_dir, "/var/log/pods");
  EXPECT_EQ(c.healthz_port, 10248);
  EXPECT_EQ(c.port, 10250);
  EXPECT_EQ(c.read_only_port, 0);
  EXPECT_EQ(c.root_dir, "/var/lib/nodelet");
  EXPECT_EQ(c.imageEndpoint(), c.container_runtime_endpoint);
}

TEST(ConfigTest, ErrorsNameTheField) {
  struct Case {
    const char* body;
    const char* error;
  } cases[] = {
      {"maxPods: many", "config field \"maxPods\": expected integer, got string"},
      {"fileCheckFrequency: 20", "config field \"fileCheckFrequency\": expected duration string"},
      {"syncFrequency: forever", "config field \"syncFrequency\": invalid duration \"forever\""},
      {"clusterDNS: 10.96.0.10", "config field \"clusterDNS\": expected list of strings"},
      {"failSwapOn: maybe", "config field \"failSwapOn\": expected boolean"},
  };
  for (const auto& c : cases) {
    Config cfg;
    auto s = loadConfigText(
        std::string("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n") +
            c.body,
        cfg);
    ASSERT_FALSE(s) << c.body;
    EXPECT_NE(s.error().message.find(c.error), std::string::npos) << s.error().message;
  }
  Config cfg;
  EXPECT_FALSE(loadConfigText("apiVersion: v1\nkind: Pod\n", cfg));
  EXPECT_FALSE(
      loadConfigText("kind: KubeletConfiguration\napiVersion: kubelet.config.k8s.io/v1\n", cfg));
}

TEST(ConfigTest, UnsupportedValuesAreRejectedClearly) {
  Config c;
  c.cgroup_driver = "systemd";
  auto s = validateConfig(c);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("not supported"), std::string::npos);
  c = Config{};
  c.max_pods = 0;
  EXPECT_FALSE(validateConfig(c));
  c = Config{};
  c.root_dir = "relative";
  EXPECT_FALSE(validateConfig(c));
}

TEST(FlagsTest, TheKubeletsSpellings) {
  auto a = parseArgs({"nodelet", "--config=/etc/k.yaml", "--pod-manifest-path", "/m", "-v=4", "--v",
                      "5", "--fail-swap-on=false", "--cluster-dns=10.0.0.10,10.0.0.11",
                      "--hostname-override", "Node1", "--runtime-request-timeout=30s",
                      "--max-pods=12", "-root-dir=/r", "--streaming-connection-idle-timeout=5m",
                      "--container-log-max-size=20Mi", "--container-log-max-files=3"});
  ASSERT_TRUE(a) << a.error().message;
  Config c;
  ASSERT_TRUE(applyFlags(*a, c));
  EXPECT_EQ(c.config_file, "/etc/k.yaml");
  EXPECT_EQ(c.static_pod_path, "/m");
  EXPECT_EQ(c.verbosity, 5);
  EXPECT_FALSE(c.fail_swap_on);
  EXPECT_EQ(c.cluster_dns, (std::vector<std::string>{"10.0.0.10", "10.0.0.11"}));
  EXPECT_EQ(c.runtime_request_timeout, milliseconds(30000));
  EXPECT_EQ(c.max_pods, 12);
  EXPECT_EQ(c.root_dir, "/r");
  EXPECT_EQ(c.streaming_connection_idle_timeout, milliseconds(300000));
  EXPECT_EQ(c.container_log_max_size, "20Mi");
  EXPECT_EQ(c.container_log_max_files, 3);
  EXPECT_EQ(nodeName(c), "node1");
}

TEST(FlagsTest, ListsDropEmptyItemsUnlessSplitAsGoSplits) {
  EXPECT_EQ(splitList("a,,b,", ","), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(splitList("a  b", " ", true), (std::vector<std::string>{"a", "", "b"}));
  EXPECT_EQ(splitList("", " ", true), (std::vector<std::string>{""}));
  EXPECT_TRUE(splitList("", ",").empty());
}

TEST(FlagsTest, FlagsOverrideTheFile) {
  Config c;
  ASSERT_TRUE(
      loadConfigText("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: "
                     "KubeletConfiguration\nmaxPods: 50\nstaticPodPath: /file\n",
                     c));
  ASSERT_TRUE(applyFlags(*parseArgs({"nodelet", "--max-pods=7"}), c));
  EXPECT_EQ(c.max_pods, 7);
  EXPECT_EQ(c.static_pod_path, "/file");
}

TEST(FlagsTest, MistakesAreErrors) {
  for (std::vector<std::string> bad :
       std::vector<std::vector<std::string>>{{"nodelet", "--no-such-flag"},
                                             {"nodelet", "--config"},
                                             {"nodelet", "stray"},
                                             {"nodelet", "frobnicate"},
                                             {"nodelet", "check", "-o", "xml", "f.yaml"}}) {
    EXPECT_FALSE(parseArgs(bad)) << bad.back();
  }
  auto a = parseArgs({"nodelet", "--max-pods=lots"});
  ASSERT_TRUE(a);
  Config c;
  EXPECT_FALSE(applyFlags(*a, c));
  a = parseArgs({"nodelet", "--fail-swap-on=perhaps"});
  EXPECT_FALSE(applyFlags(*a, c));
}

TEST(FlagsTest, Commands) {
  EXPECT_EQ(parseArgs({"nodelet", "--version"})->command, Command::Version);
  EXPECT_EQ(parseArgs({"nodelet", "-h"})->command, Command::Help);
  auto check = parseArgs({"nodelet", "check", "-o", "json", "a.yaml", "b.yaml"});
  ASSERT_TRUE(check);
  EXPECT_EQ(check->command, Command::Check);
  EXPECT_EQ(check->output, "json");
  EXPECT_EQ(check->positional, (std::vector<std::string>{"a.yaml", "b.yaml"}));
  EXPECT_EQ(parseArgs({"nodelet", "pods", "--root-dir", "/x"})->command, Command::Pods);
  EXPECT_EQ(parseArgs({"nodelet", "cni-config", "--pod-cidr=10.0.0.0/24"})->command,
            Command::CniConfig);
  EXPECT_NE(usage().find("--pod-manifest-path"), std::string::npos);
}

TEST(FlagsTest, ClusterAndCniFlags) {
  auto a = parseArgs({"nodelet", "--kubeconfig=/k", "--bootstrap-kubeconfig=/b", "--cert-dir=/p",
                      "--rotate-certificates", "--node-labels=role=edge,zone=a",
                      "--register-with-taints=x=y:NoSchedule", "--kube-api-qps=5",
                      "--cni-conf-dir=/c", "--cni-bin-dir=/a:/b", "--cni-network=n",
                      "--cni-bridge=br", "--cni-ipam-dir=/i", "--cni-force"});
  ASSERT_TRUE(a) << a.error().message;
  Config c;
  ASSERT_TRUE(applyFlags(*a, c));
  EXPECT_EQ(c.kubeconfig, "/k");
  EXPECT_EQ(c.bootstrap_kubeconfig, "/b");
  EXPECT_EQ(c.certDir(), "/p");
  EXPECT_TRUE(c.rotate_certificates);
  EXPECT_EQ(c.node_labels, (std::map<std::string, std::string>{{"role", "edge"}, {"zone", "a"}}));
  EXPECT_EQ(c.register_with_taints, (std::vector<std::string>{"x=y:NoSchedule"}));
  EXPECT_EQ(c.kube_api_qps, 5);
  EXPECT_EQ(c.cni_conf_dir, "/c");
  EXPECT_EQ(c.cni_bin_dirs, (std::vector<std::string>{"/a", "/b"}));
  EXPECT_EQ(c.cni_network, "n");
  EXPECT_EQ(c.cni_bridge, "br");
  EXPECT_EQ(c.cni_ipam_dir, "/i");
  EXPECT_TRUE(c.cni_force);
  EXPECT_TRUE(validateConfig(c));
  EXPECT_FALSE(applyFlags(*parseArgs({"nodelet", "--node-labels=novalue"}), c));
}

}  // namespace
}  // namespace nodelet::agent
