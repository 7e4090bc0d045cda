#pragma once
// nodelet's own pod model: the parts of core/v1 Pod that a node agent acts on. Parsers
// (staticpods/, the API client) produce it; the agent, cri/ converters, probes/ and network/
// consume it. No third-party types here.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/clock.h"

namespace nodelet::api {

using StringMap = std::map<std::string, std::string>;

// A port given by number or by a container port's name ("http").
struct IntOrString {
  bool is_int{true};
  int32_t int_value{0};
  std::string str_value;
  bool operator==(const IntOrString&) const = default;
};

struct ObjectMeta {
  std::string name;
  std::string generate_name;
  std::string namespace_;
  std::string uid;
  std::string resource_version;
  StringMap labels;
  StringMap annotations;
  std::optional<SysTime> creation_timestamp;
  std::optional<SysTime> deletion_timestamp;
  std::optional<int64_t> deletion_grace_period_seconds;
  bool operator==(const ObjectMeta&) const = default;
};

struct ContainerPort {
  std::string name;
  int32_t container_port{0};
  int32_t host_port{0};
  std::string host_ip;
  std::string protocol{"TCP"};
  bool operator==(const ContainerPort&) const = default;
};

struct EnvVar {
  enum class Source { Value, FieldRef, ResourceFieldRef, ConfigMapKeyRef, SecretKeyRef };
  std::string name;
  Source source{Source::Value};
  std::string value;       // Value
  std::string field_path;  // FieldRef: metadata.name, status.podIP, ...; ResourceFieldRef: resource
  std::string container_name;  // ResourceFieldRef
  std::string divisor;         // ResourceFieldRef
  std::string ref_name;        // ConfigMapKeyRef/SecretKeyRef object name
  std::string ref_key;
  bool optional{false};
  bool operator==(const EnvVar&) const = default;
};

// envFrom: every key of a ConfigMap or Secret, with a prefix.
struct EnvFromSource {
  bool secret{false};
  std::string name;
  std::string prefix;
  bool optional{false};
  bool operator==(const EnvFromSource&) const = default;
};

struct ExecAction {
  std::vector<std::string> command;
  bool operator==(const ExecAction&) const = default;
};
struct HttpHeader {
  std::string name;
  std::string value;
  bool operator==(const HttpHeader&) const = default;
};
struct HttpGetAction {
  std::string path;
  IntOrString port;
  std::string host;
  std::string scheme{"HTTP"};
  std::vector<HttpHeader> http_headers;
  bool operator==(const HttpGetAction&) const = default;
};
struct TcpSocketAction {
  IntOrString port;
  std::string host;
  bool operator==(const TcpSocketAction&) const = default;
};
struct GrpcAction {
  int32_t port{0};
  std::optional<std::string> service;
  bool operator==(const GrpcAction&) const = default;
};
struct SleepAction {
  int64_t seconds{0};
  bool operator==(const SleepAction&) const = default;
};

// A probe's or lifecycle hook's handler: exactly one of the actions is set.
struct Handler {
  std::optional<ExecAction> exec;
  std::optional<HttpGetAction> http_get;
  std::optional<TcpSocketAction> tcp_socket;
  std::optional<GrpcAction> grpc;
  std::optional<SleepAction> sleep;
  bool operator==(const Handler&) const = default;
};

struct Probe {
  Handler handler;
  int32_t initial_delay_seconds{0};
  int32_t timeout_seconds{1};
  int32_t period_seconds{10};
  int32_t success_threshold{1};
  int32_t failure_threshold{3};
  std::optional<int64_t> termination_grace_period_seconds;
  bool operator==(const Probe&) const = default;
};

struct Lifecycle {
  std::optional<Handler> post_start;
  std::optional<Handler> pre_stop;
  bool operator==(const Lifecycle&) const = default;
};

struct ResourceRequirements {
  StringMap limits;  // "cpu" -> "500m", "memory" -> "64Mi"
  StringMap requests;
  bool operator==(const ResourceRequirements&) const = default;
};

struct VolumeMount {
  std::string name;
  std::string mount_path;
  bool read_only{false};
  std::string sub_path;
  std::string sub_path_expr;
  std::string mount_propagation;  // None | HostToContainer | Bidirectional
  bool operator==(const VolumeMount&) const = default;
};

struct Capabilities {
  std::vector<std::string> add;
  std::vector<std::string> drop;
  bool operator==(const Capabilities&) const = default;
};

struct SeccompProfile {
  std::string type;               // RuntimeDefault | Unconfined | Localhost
  std::string localhost_profile;  // relative to <root-dir>/seccomp
  bool operator==(const SeccompProfile&) const = default;
};

struct SecurityContext {
  std::optional<SeccompProfile> seccomp_profile;
  std::optional<int64_t> run_as_user;
  std::optional<int64_t> run_as_group;
  std::optional<bool> run_as_non_root;
  std::optional<bool> privileged;
  std::optional<bool> read_only_root_filesystem;
  std::optional<bool> allow_privilege_escalation;
  std::optional<Capabilities> capabilities;
  std::string proc_mount;  // "" / Default: masked /proc paths; Unmasked: none
  bool operator==(const SecurityContext&) const = default;
};

struct Container {
  std::string name;
  std::string target_container_name;  // ephemeral containers: whose processes it sees
  std::string image;
  std::vector<std::string> command;
  std::vector<std::string> args;
  std::string working_dir;
  std::vector<ContainerPort> ports;
  std::vector<EnvVar> env;
  std::vector<EnvFromSource> env_from;
  ResourceRequirements resources;
  std::vector<VolumeMount> volume_mounts;
  std::optional<Probe> liveness_probe;
  std::optional<Probe> readiness_probe;
  std::optional<Probe> startup_probe;
  std::optional<Lifecycle> lifecycle;
  std::string termination_message_path{"/dev/termination-log"};
  std::string termination_message_policy{"File"};
  std::string image_pull_policy;  // Always | IfNotPresent | Never (defaulted from the tag)
  std::optional<SecurityContext> security_context;
  bool stdin_{false};
  bool stdin_once{false};
  bool tty{false};
  // Init containers only: "Always" makes a restartable init container (a sidecar).
  std::optional<std::string> restart_policy;
  // FNV-1a 64 of the container's canonical JSON, set by decodePod: a changed spec is a changed
  // hash, and the runtime manager restarts that container (io.kubernetes.container.hash).
  uint64_t hash{0};
  bool operator==(const Container&) const = default;
};

// configMap/secret items: a key written to a relative path, with its own mode if given.
struct KeyToPath {
  std::string key;
  std::string path;
  std::optional<int32_t> mode;
  bool operator==(const KeyToPath&) const = default;
};
// downwardAPI items: a pod field (fieldRef) or a container's resource (resourceFieldRef).
struct DownwardApiFile {
  std::string path;
  std::string field_path;  // metadata.name, metadata.labels, ...
  std::string resource;    // limits.cpu, requests.memory, ...
  std::string container_name;
  std::string divisor;
  std::optional<int32_t> mode;
  bool operator==(const DownwardApiFile&) const = default;
};
struct VolumeProjection {
  enum class Kind { ConfigMap, Secret, DownwardAPI, ServiceAccountToken, Other };
  Kind kind{Kind::Other};
  std::string other_kind;  // clusterTrustBundle, podCertificate, ...
  std::string name;        // configMap / secret
  std::vector<KeyToPath> items;
  bool optional{false};
  std::vector<DownwardApiFile> downward;
  std::string audience;  // serviceAccountToken
  int64_t expiration_seconds{3600};
  std::string path;
  bool operator==(const VolumeProjection&) const = default;
};

struct Volume {
  enum class Kind { EmptyDir, HostPath, ConfigMap, Secret, DownwardAPI, Projected, Other };
  std::string name;
  Kind kind{Kind::Other};
  std::string other_kind;  // the source's field name when Kind::Other ("csi", ...)
  std::string medium;      // emptyDir: "" or "Memory"
  std::string size_limit;  // emptyDir
  std::string path;        // hostPath
  std::string host_path_type;
  std::string ref_name;  // configMap name / secretName
  std::vector<KeyToPath> items;
  std::optional<int32_t> default_mode;
  bool optional{false};
  std::vector<DownwardApiFile> downward;  // downwardAPI
  std::vector<VolumeProjection> sources;  // projected
  bool operator==(const Volume&) const = default;
};

struct PodDnsConfigOption {
  std::string name;
  std::optional<std::string> value;
  bool operator==(const PodDnsConfigOption&) const = default;
};
struct PodDnsConfig {
  std::vector<std::string> nameservers;
  std::vector<std::string> searches;
  std::vector<PodDnsConfigOption> options;
  bool operator==(const PodDnsConfig&) const = default;
};
struct HostAlias {
  std::string ip;
  std::vector<std::string> hostnames;
  bool operator==(const HostAlias&) const = default;
};

// Scheduling constraints the kubelet checks again at admission.
struct NodeSelectorRequirement {
  std::string key;
  std::string op;  // In, NotIn, Exists, DoesNotExist, Gt, Lt
  std::vector<std::string> values;
  bool operator==(const NodeSelectorRequirement&) const = default;
};
struct NodeSelectorTerm {
  std::vector<NodeSelectorRequirement> match_expressions;  // on the node's labels
  std::vector<NodeSelectorRequirement> match_fields;       // on its fields (metadata.name)
  bool operator==(const NodeSelectorTerm&) const = default;
};
struct Taint {  // a Node's
  std::string key, value, effect;
  bool operator==(const Taint&) const = default;
};
struct Toleration {
  std::string key;
  std::string op;  // Equal ("" too) or Exists
  std::string value;
  std::string effect;  // "" tolerates every effect
  std::optional<int64_t> toleration_seconds;
  bool operator==(const Toleration&) const = default;
};

struct PodSecurityContext {
  std::optional<SeccompProfile> seccomp_profile;
  std::optional<int64_t> run_as_user;
  std::optional<int64_t> run_as_group;
  std::optional<bool> run_as_non_root;
  std::vector<int64_t> supplemental_groups;
  std::optional<int64_t> fs_group;
  std::vector<std::pair<std::string, std::string>> sysctls;
  bool operator==(const PodSecurityContext&) const = default;
};

struct PodSpec {
  std::vector<Container> init_containers;
  std::vector<Container> containers;
  std::vector<Container> ephemeral_containers;  // kubectl debug: started once, never restarted
  std::vector<Volume> volumes;
  std::string restart_policy{"Always"};
  std::optional<int64_t> termination_grace_period_seconds{30};
  std::optional<int64_t> active_deadline_seconds;
  std::string dns_policy{"ClusterFirst"};
  std::optional<PodDnsConfig> dns_config;
  std::string node_name;
  std::string service_account_name;
  bool host_network{false};
  bool host_pid{false};
  bool host_ipc{false};
  std::string hostname;
  std::string subdomain;
  std::vector<HostAlias> host_aliases;
  std::optional<PodSecurityContext> security_context;
  std::optional<bool> enable_service_links;
  std::optional<int32_t> priority;
  std::string priority_class_name;
  std::string runtime_class_name;  // a RuntimeClass, whose handler runs the sandbox
  std::map<std::string, std::string> node_selector;
  // affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms
  std::optional<std::vector<NodeSelectorTerm>> required_node_affinity;
  std::vector<Toleration> tolerations;
  std::string os_name;                          // spec.os.name
  std::vector<std::string> readiness_gates;     // conditionType of each readinessGates entry
  std::vector<std::string> image_pull_secrets;  // Secret names
  std::optional<bool> share_process_namespace;
  bool set_hostname_as_fqdn{false};
  bool operator==(const PodSpec&) const = default;
};

// ---- status ------------------------------------------------------------------------------
struct ContainerStateWaiting {
  std::string reason;
  std::string message;
  bool operator==(const ContainerStateWaiting&) const = default;
};
struct ContainerStateRunning {
  std::optional<SysTime> started_at;
  bool operator==(const ContainerStateRunning&) const = default;
};
struct ContainerStateTerminated {
  int32_t exit_code{0};
  int32_t signal{0};
  std::string reason;
  std::string message;
  std::optional<SysTime> started_at;
  std::optional<SysTime> finished_at;
  std::string container_id;
  bool operator==(const ContainerStateTerminated&) const = default;
};
// Exactly one member set, or none (an unknown state).
struct ContainerState {
  std::optional<ContainerStateWaiting> waiting;
  std::optional<ContainerStateRunning> running;
  std::optional<ContainerStateTerminated> terminated;
  bool operator==(const ContainerState&) const = default;
};

struct ContainerStatus {
  std::string name;
  ContainerState state;
  ContainerState last_state;
  bool ready{false};
  int32_t restart_count{0};
  std::string image;
  std::string image_id;
  std::string container_id;
  std::optional<bool> started;
  bool operator==(const ContainerStatus&) const = default;
};

struct PodCondition {
  std::string type;
  std::string status;  // "True" | "False" | "Unknown"
  std::string reason;
  std::string message;
  std::optional<SysTime> last_transition_time;
  std::optional<SysTime> last_probe_time;
  bool operator==(const PodCondition&) const = default;
};

struct PodStatus {
  std::string phase{"Pending"};
  std::vector<PodCondition> conditions;
  std::string message;
  std::string reason;
  std::string host_ip;
  std::vector<std::string> host_ips;
  std::string pod_ip;
  std::vector<std::string> pod_ips;
  std::optional<SysTime> start_time;
  std::vector<ContainerStatus> init_container_statuses;
  std::vector<ContainerStatus> container_statuses;
  std::vector<ContainerStatus> ephemeral_container_statuses;
  std::string qos_class;
  bool operator==(const PodStatus&) const = default;
};

struct Pod {
  ObjectMeta metadata;
  PodSpec spec;
  PodStatus status;
  // The whole object as its source gave it (JSON), when kept: a static pod's defaulted manifest,
  // from which its mirror pod is made with every field, not only those nodelet models.
  std::string source_json;
  bool operator==(const Pod&) const = default;

  std::string fullName() const { return metadata.name + "_" + metadata.namespace_; }
};

// Restartable init containers (sidecars) are init containers with restartPolicy Always.
bool isSidecar(const Container& c);
// The kubelet's IsStaticPod: the pod came from a source other than the API server (its
// kubernetes.io/config.source annotation is set and not "api").
bool isStaticPod(const Pod& pod);
const Container* findContainer(const PodSpec& spec, const std::string& name);
// Whether the pod reads ConfigMap or Secret `name` (`resource` "configmaps" or "secrets") in a
// volume, a projected volume, an env key reference or envFrom, or runs with RuntimeClass `name`
// ("runtimeclasses", cluster-scoped).
bool usesObject(const PodSpec& spec, std::string_view resource, std::string_view name);

}  // namespace nodelet::api
