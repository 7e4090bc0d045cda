#pragma once
// nodelet's own CRI types: what the rest of nodelet sees of sandboxes, containers and images.
// cri/convert.cc maps them to and from the generated protobuf types, which never leave cri/.
// Timestamps are CRI's: nanoseconds since the Unix epoch.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace nodelet::cri {

using Labels = std::map<std::string, std::string>;

enum class Protocol { Tcp, Udp, Sctp };
enum class NamespaceMode { Pod, Container, Node, Target };
enum class MountPropagation { Private, HostToContainer, Bidirectional };
enum class SandboxState { Ready, NotReady };
enum class ContainerState { Created, Running, Exited, Unknown };

std::string_view toString(SandboxState s);
std::string_view toString(ContainerState s);

struct DnsConfig {
  std::vector<std::string> servers;
  std::vector<std::string> searches;
  std::vector<std::string> options;
};

struct PortMapping {
  Protocol protocol{Protocol::Tcp};
  int32_t container_port{0};
  int32_t host_port{0};
  std::string host_ip;
};

struct NamespaceOptions {
  NamespaceMode network{NamespaceMode::Pod};
  NamespaceMode pid{NamespaceMode::Container};
  NamespaceMode ipc{NamespaceMode::Pod};
  std::string target_id;
};

struct LinuxResources {
  int64_t cpu_period{0};
  int64_t cpu_quota{0};
  int64_t cpu_shares{0};
  int64_t memory_limit_in_bytes{0};
  int64_t oom_score_adj{0};
  std::string cpuset_cpus;
  std::string cpuset_mems;
  Labels unified;
};

struct SecurityProfile {
  enum class Type { RuntimeDefault, Unconfined, Localhost };
  Type type{Type::RuntimeDefault};
  std::string localhost_ref;
};

struct SandboxSecurity {
  NamespaceOptions namespaces;
  std::optional<int64_t> run_as_user;
  std::optional<int64_t> run_as_group;
  bool readonly_rootfs{false};
  std::vector<int64_t> supplemental_groups;
  bool privileged{false};
  std::optional<SecurityProfile> seccomp;
};

struct PodSandboxMetadata {
  std::string name;
  std::string uid;
  std::string namespace_;
  uint32_t attempt{0};
};

struct PodSandboxConfig {
  PodSandboxMetadata metadata;
  std::string hostname;
  std::string log_directory;
  std::optional<DnsConfig> dns_config;
  std::vector<PortMapping> port_mappings;
  Labels labels;
  Labels annotations;
  std::string cgroup_parent;
  SandboxSecurity security;
  Labels sysctls;
  std::optional<LinuxResources> resources;
};

struct Mount {
  std::string container_path;
  std::string host_path;
  bool readonly{false};
  bool selinux_relabel{false};
  MountPropagation propagation{MountPropagation::Private};
};

// The paths the kubelet masks and makes read-only in unprivileged containers (its default
// ProcMount); a runtime applies exactly what it is sent, so these must be sent.
inline const std::vector<std::string>& defaultMaskedPaths() {
  static const std::vector<std::string> paths = {"/proc/asound",
                                                 "/proc/acpi",
                                                 "/proc/kcore",
                                                 "/proc/keys",
                                                 "/proc/latency_stats",
                                                 "/proc/timer_list",
                                                 "/proc/timer_stats",
                                                 "/proc/sched_debug",
                                                 "/proc/scsi",
                                                 "/sys/firmware",
                                                 "/sys/devices/virtual/powercap"};
  return paths;
}
inline const std::vector<std::string>& defaultReadonlyPaths() {
  static const std::vector<std::string> paths = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                                 "/proc/sysrq-trigger"};
  return paths;
}

struct ContainerSecurity {
  std::vector<std::string> add_capabilities;
  std::vector<std::string> drop_capabilities;
  bool privileged{false};
  NamespaceOptions namespaces;
  std::optional<int64_t> run_as_user;
  std::optional<int64_t> run_as_group;
  std::string run_as_username;
  bool readonly_rootfs{false};
  std::vector<int64_t> supplemental_groups;
  bool no_new_privs{false};
  std::vector<std::string> masked_paths;
  std::vector<std::string> readonly_paths;
  std::optional<SecurityProfile> seccomp;
};

struct ContainerConfig {
  std::string name;
  uint32_t attempt{0};
  std::string image;
  std::vector<std::string> command;
  std::vector<std::string> args;
  std::string working_dir;
  std::vector<std::pair<std::string, std::string>> envs;
  std::vector<Mount> mounts;
  Labels labels;
  Labels annotations;
  std::string log_path;  // relative to the sandbox's log_directory
  bool stdin_{false};
  bool stdin_once{false};
  bool tty{false};
  std::optional<LinuxResources> resources;
  ContainerSecurity security;
};

struct PodSandbox {
  std::string id;
  PodSandboxMetadata metadata;
  SandboxState state{SandboxState::NotReady};
  int64_t created_at{0};
  Labels labels;
  Labels annotations;
  std::string runtime_handler;
};

struct PodSandboxStatus {
  std::string id;
  PodSandboxMetadata metadata;
  SandboxState state{SandboxState::NotReady};
  int64_t created_at{0};
  std::string ip;  // primary pod IP
  std::vector<std::string> additional_ips;
  std::optional<NamespaceOptions> namespaces;
  Labels labels;
  Labels annotations;
  Labels info;  // verbose only
};

struct Container {
  std::string id;
  std::string pod_sandbox_id;
  std::string name;
  uint32_t attempt{0};
  std::string image;
  std::string image_ref;
  ContainerState state{ContainerState::Unknown};
  int64_t created_at{0};
  Labels labels;
  Labels annotations;
};

struct ContainerStatus {
  std::string id;
  std::string name;
  uint32_t attempt{0};
  ContainerState state{ContainerState::Unknown};
  int64_t created_at{0};
  int64_t started_at{0};
  int64_t finished_at{0};
  int32_t exit_code{0};
  std::string image;
  std::string image_ref;
  std::string reason;
  std::string message;
  Labels labels;
  Labels annotations;
  std::vector<Mount> mounts;
  std::string log_path;
  Labels info;  // verbose only
};

struct PodSandboxFilter {
  std::string id;
  std::optional<SandboxState> state;
  Labels label_selector;
};

struct ContainerFilter {
  std::string id;
  std::optional<ContainerState> state;
  std::string pod_sandbox_id;
  Labels label_selector;
};

struct VersionInfo {
  std::string version;
  std::string runtime_name;
  std::string runtime_version;
  std::string runtime_api_version;
};

struct RuntimeCondition {
  std::string type;  // RuntimeReady, NetworkReady
  bool status{false};
  std::string reason;
  std::string message;
};

struct RuntimeStatus {
  std::vector<RuntimeCondition> conditions;
  Labels info;
  const RuntimeCondition* condition(std::string_view type) const {
    for (const auto& c : conditions)
      if (c.type == type) return &c;
    return nullptr;
  }
};

struct ExecSyncResult {
  std::string stdout_;
  std::string stderr_;
  int32_t exit_code{0};
};

struct StreamingRequest {
  std::string container_id;    // Exec/Attach
  std::string pod_sandbox_id;  // PortForward
  std::vector<std::string> cmd;
  std::vector<int32_t> ports;
  bool tty{false};
  bool stdin_{false};
  bool stdout_{true};
  bool stderr_{true};
};

struct CpuUsage {
  int64_t timestamp{0};
  std::optional<uint64_t> usage_core_nano_seconds;
  std::optional<uint64_t> usage_nano_cores;
};
struct MemoryUsage {
  int64_t timestamp{0};
  std::optional<uint64_t> working_set_bytes;
  std::optional<uint64_t> available_bytes;
  std::optional<uint64_t> usage_bytes;
  std::optional<uint64_t> rss_bytes;
  std::optional<uint64_t> page_faults;
  std::optional<uint64_t> major_page_faults;
};
struct FilesystemUsage {
  int64_t timestamp{0};
  std::string mountpoint;
  std::optional<uint64_t> used_bytes;
  std::optional<uint64_t> inodes_used;
};
struct ContainerStats {
  std::string id;
  std::string name;
  Labels labels;
  std::optional<CpuUsage> cpu;
  std::optional<MemoryUsage> memory;
  std::optional<FilesystemUsage> writable_layer;
};
struct NetworkInterfaceUsage {
  std::string name;
  std::optional<uint64_t> rx_bytes, rx_errors, tx_bytes, tx_errors;
};
struct PodSandboxStats {
  std::string id;
  PodSandboxMetadata metadata;
  Labels labels;
  std::optional<CpuUsage> cpu;
  std::optional<MemoryUsage> memory;
  std::optional<NetworkInterfaceUsage> network_default_interface;
  std::optional<uint64_t> process_count;
  std::vector<ContainerStats> containers;
};
struct ContainerStatsFilter {
  std::string id;
  std::string pod_sandbox_id;
  Labels label_selector;
};

enum class ContainerEventType { Created, Started, Stopped, Deleted };
struct ContainerEvent {
  std::string container_id;
  ContainerEventType type{ContainerEventType::Created};
  int64_t created_at{0};
  std::string pod_sandbox_id;
};

struct Image {
  std::string id;
  std::vector<std::string> repo_tags;
  std::vector<std::string> repo_digests;
  uint64_t size{0};
  std::optional<int64_t> uid;
  std::string username;
  bool pinned{false};
};

struct AuthConfig {
  std::string username;
  std::string password;
  std::string auth;
  std::string server_address;
  std::string identity_token;
  std::string registry_token;
};

}  // namespace nodelet::cri
