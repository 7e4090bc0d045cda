#pragma once
// nodelet's configuration: the subset of kubelet.config.k8s.io/v1beta1 KubeletConfiguration it
// honours, with the kubelet's defaults, plus the kubelet command-line flags users type.
// Precedence as in the kubelet: defaults < --config file < flags.
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/error.h"

namespace nodelet::agent {

struct Config {
  // ---- KubeletConfiguration fields ----
  std::string static_pod_path;
  std::chrono::milliseconds file_check_frequency{std::chrono::seconds(20)};
  std::string container_runtime_endpoint{"unix:///run/containerd/containerd.sock"};
  std::string image_service_endpoint;  // empty: same as the runtime endpoint
  std::chrono::milliseconds sync_frequency{std::chrono::minutes(1)};
  std::string pod_logs_dir{"/var/log/pods"};
  int32_t max_pods{110};
  std::string cgroup_driver{"cgroupfs"};
  std::string cgroup_root;  // "" = the root cgroup; pods go under <cgroupRoot>/kubepods
  std::vector<std::string> cluster_dns;
  std::string cluster_domain;
  std::string resolv_conf{"/etc/resolv.conf"};
  std::chrono::milliseconds runtime_request_timeout{std::chrono::minutes(2)};
  std::string pod_cidr;
  std::string container_log_max_size{"10Mi"};
  int32_t container_log_max_files{5};
  // How often container logs are checked against containerLogMaxSize (at least 3 s).
  std::chrono::milliseconds container_log_monitor_interval{std::chrono::seconds(10)};
  bool fail_swap_on{true};
  std::string address{"0.0.0.0"};
  int32_t port{10250};
  std::string healthz_bind_address{"127.0.0.1"};
  int32_t healthz_port{10248};
  int32_t read_only_port{0};
  // The node server on address:port: its certificate (self-signed into <root-dir>/pki when
  // unset) and who may use it (authentication.*, authorization.*; v1beta1 defaults).
  std::string tls_cert_file;
  std::string tls_private_key_file;
  std::string client_ca_file;  // authentication.x509.clientCAFile
  bool anonymous_auth{false};  // authentication.anonymous.enabled
  bool webhook_authn{true};    // authentication.webhook.enabled
  std::chrono::milliseconds webhook_authn_cache_ttl{std::chrono::minutes(2)};
  std::string authorization_mode{"Webhook"};  // or AlwaysAllow
  std::chrono::milliseconds authz_authorized_ttl{std::chrono::minutes(5)};
  std::chrono::milliseconds authz_unauthorized_ttl{std::chrono::seconds(30)};
  // exec/attach/port-forward sessions relayed by the node server end after this long without a
  // byte either way (0: never).
  std::chrono::milliseconds streaming_connection_idle_timeout{std::chrono::hours(4)};
  // Graceful node shutdown (0: off, as in the kubelet).
  std::chrono::milliseconds shutdown_grace_period{0};
  std::chrono::milliseconds shutdown_grace_period_critical_pods{0};
  std::chrono::milliseconds node_status_update_frequency{std::chrono::seconds(10)};
  std::chrono::milliseconds node_status_report_frequency{std::chrono::minutes(5)};
  int32_t node_lease_duration_seconds{40};
  int32_t kube_api_qps{50};
  int32_t kube_api_burst{100};
  bool register_node{true};
  std::vector<std::string> register_with_taints;       // "key[=value]:Effect"
  std::map<std::string, std::string> system_reserved;  // cpu, memory, ephemeral-storage
  std::map<std::string, std::string> kube_reserved;
  // memory.available / nodefs.available; a quantity ("100Mi") or a percentage ("10%").
  std::map<std::string, std::string> eviction_hard{{"memory.available", "100Mi"},
                                                   {"nodefs.available", "10%"}};
  int32_t node_status_max_images{50};
  bool seccomp_default{false};      // RuntimeDefault for containers that do not choose a profile
  bool rotate_certificates{false};  // renew the API client certificate before it expires

  // ---- flags only ----
  std::string config_file;
  std::string hostname_override;
  std::string root_dir{"/var/lib/nodelet"};
  std::string kubeconfig;
  std::string bootstrap_kubeconfig;  // TLS bootstrapping: a client certificate for --kubeconfig
  std::string cert_dir;              // --cert-dir; "" = <root-dir>/pki
  std::string node_ip;
  std::map<std::string, std::string> node_labels;  // --node-labels
  // The CNI network nodelet writes from the pod CIDR (nodelet's own flags: the kubelet left CNI
  // to the runtime in 1.24).
  std::string cni_conf_dir{"/etc/cni/net.d"};
  std::vector<std::string> cni_bin_dirs{"/usr/lib/cni", "/opt/cni/bin"};
  std::string cni_network{"nodelet"};
  std::string cni_bridge{"nodelet0"};
  std::string cni_ipam_dir{"/var/lib/cni/networks"};
  bool cni_force{false};
  std::string container_log_links_dir{"/var/log/containers"};  // --container-log-links-dir
  int verbosity{0};

  // Fields of the file nodelet does not know; warned about once at start-up.
  std::vector<std::string> ignored_fields;

  std::string certDir() const { return cert_dir.empty() ? root_dir + "/pki" : cert_dir; }
  std::string imageEndpoint() const {
    return image_service_endpoint.empty() ? container_runtime_endpoint : image_service_endpoint;
  }
};

// Parses a KubeletConfiguration (YAML or JSON) on top of `cfg`. Wrong types are errors naming
// the field; unknown fields are collected in cfg.ignored_fields.
Status loadConfigText(std::string_view text, Config& cfg);
Status loadConfigFile(const std::string& path, Config& cfg);
// Checks the merged configuration: unsupported values get a clear error.
Status validateConfig(const Config& cfg);

// Go duration syntax as the kubelet's config and flags accept it: "20s", "1m30s", "500ms", "2h".
Result<std::chrono::milliseconds> parseDuration(std::string_view s);

// The node's name: --hostname-override, else the host name, lowercased (as the kubelet does).
std::string nodeName(const Config& cfg);

}  // namespace nodelet::agent
