#pragma once
// The half of a pod sync that talks to the runtime: reads a pod's sandboxes and containers,
// carries out the planner's actions (sandbox, images, containers), kills pods gracefully
// (preStop, grace period, sidecars last), and removes what a gone pod leaves behind.
#include <atomic>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "agent/atomic_writer.h"
#include "agent/backoff.h"
#include "agent/core/clock.h"
#include "agent/core/pod.h"
#include "agent/events.h"
#include "agent/kube/object_source.h"
#include "agent/planner.h"
#include "agent/runtime_pod.h"
#include "cri/runtime_service.h"
#include "network/dns.h"

namespace nodelet::agent {

class PodStartupTracker;

struct RuntimeManagerOptions {
  std::string node_name;
  std::string root_dir{"/var/lib/nodelet"};
  std::string pod_logs_dir{"/var/log/pods"};
  std::string cgroup_root;  // pods go under <cgroupRoot>/kubepods/...
  network::DnsSettings dns;
  std::string node_ip;
  int64_t node_cpu_milli{1000};  // for resourceFieldRef without a limit
  int64_t node_memory_bytes{1 << 30};
  // ConfigMaps, Secrets and tokens for volumes and env, RuntimeClasses for sandboxes: the API
  // server's for its pods (null standalone), the static pod directory's for static pods.
  kube::ObjectSource* objects{nullptr};
  kube::ObjectSource* static_objects{nullptr};
  bool seccomp_default{false};          // seccompDefault: RuntimeDefault when a pod does not choose
  std::string container_log_links_dir;  // /var/log/containers from the config; "" = no links
  PodStartupTracker* startup{nullptr};  // told of image pulls (may be null)
};

struct SyncResult {
  std::map<std::string, Waiting> waiting;
  std::optional<Duration> requeue_after;
  bool pod_done{false};
  Status error;
};

class RuntimeManager {
 public:
  RuntimeManager(cri::RuntimeService& runtime, cri::ImageService& images, Clock& clock,
                 EventRecorder& events, RuntimeManagerOptions options);

  // Every pod this nodelet owns (by UID), from one ListPodSandbox and one ListContainers: what
  // the PLEG compares. Container details (exit codes, times) are not filled.
  Result<std::map<std::string, PodRuntimeStatus>> listPods();
  // One pod in full: sandbox IPs and every container's status.
  Result<PodRuntimeStatus> podStatus(const std::string& uid);

  SyncResult syncPod(const api::Pod& pod, const PodRuntimeStatus& status,
                     const std::map<std::string, Unhealthy>* unhealthy = nullptr);
  // Stops the pod's containers (preStop hooks, then StopContainer with the remaining grace;
  // app containers in parallel, then sidecars in reverse order) and its sandboxes.
  Status killPod(const api::Pod* pod, const PodRuntimeStatus& status,
                 std::optional<int64_t> grace_override = std::nullopt);
  // Removes the containers and sandboxes of a killed pod, and its pod directory and cgroup.
  Status removePod(const PodRuntimeStatus& status);
  // Dead containers beyond the newest per name, and dead sandboxes other than the newest.
  void garbageCollect(const PodRuntimeStatus& status);

  // The pid of a running container's process (from the runtime's verbose status), if known.
  std::optional<int> containerPid(const std::string& id);
  std::string runtimeName() const { return runtime_name_; }
  cri::RuntimeService& runtime() { return runtime_; }
  // Log files of the running containers this nodelet owns (id -> path), from the runtime.
  std::map<std::string, std::string> runningLogPaths();
  // /var/log/containers/<pod>_<namespace>_<container>-<id>.log -> the container's log, for log
  // shippers, as the kubelet links them; a link goes when its container is gone from `live`.
  void pruneLogLinks(const std::set<std::string>& live);
  // Forgets back-off entries idle for twice the maximum (pods long gone or long healthy).
  void gcBackoff();

  // A container's environment: envFrom, then env (valueFrom resolved, $(VAR) expanded), one
  // entry per name.
  Result<std::vector<std::pair<std::string, std::string>>> containerEnv(const api::Pod& pod,
                                                                        const api::Container& c,
                                                                        const std::string& pod_ip);
  // Containers started (kubelet_started_containers_total): app, and init (sidecars included).
  uint64_t startedApp() const { return started_app_.load(); }
  uint64_t startedInit() const { return started_init_.load(); }
  // runAsNonRoot, checked against runAsUser or the image's user with the kubelet's messages.
  Status checkNonRoot(const api::Pod& pod, const api::Container& c);
  // The files of a configMap, secret, downwardAPI or projected volume (paths checked).
  Result<Payload> dataPayload(const api::Pod& pod, const api::Volume& v, const std::string& pod_ip);
  // Where `pod` reads its ConfigMaps and Secrets (null: nowhere).
  kube::ObjectSource* objectsFor(const api::Pod& pod) const;
  // The runtime handler of the pod's RuntimeClass ("" for none), or why there is none.
  Result<std::string> runtimeHandler(const api::Pod& pod) const;

 private:
  struct StartResult {
    bool ok{false};
    Waiting waiting;
  };
  cri::PodSandboxConfig sandboxConfig(const api::Pod& pod, uint32_t attempt);
  StartResult startContainer(const api::Pod& pod, const api::Container& c, const char* type,
                             const std::string& sandbox_id, const cri::PodSandboxConfig& sandbox,
                             const std::string& pod_ip, const PodRuntimeStatus& status);
  Result<std::string> ensureImage(const api::Pod& pod, const api::Container& c,
                                  const cri::PodSandboxConfig& sandbox);

  // `env`: the container's environment, for subPathExpr.
  Result<std::vector<cri::Mount>> containerMounts(const api::Pod& pod, const api::Container& c,
                                                  const std::string& pod_ip, int32_t restart_count,
                                                  const std::map<std::string, std::string>& env);
  // configMap, secret, downwardAPI and projected volumes: their directory written (atomically; on
  // tmpfs for secrets and projected volumes). Returns the directory.
  Result<std::string> prepareDataVolume(const api::Pod& pod, const api::Volume& v,
                                        const std::string& pod_ip);
  // Rewrites the data volumes of a running pod (a changed ConfigMap shows up in place).
  void refreshDataVolumes(const api::Pod& pod, const std::string& pod_ip);
  void stopContainer(const api::Pod* pod, const RuntimeContainer& c, int64_t grace_seconds,
                     const std::string& pod_ip);
  // A lifecycle hook: exec in the container, HTTP GET to the pod, or a sleep in nodelet.
  // Returns "" on success, else the kubelet's message for the event.
  std::string runHook(const api::Pod& pod, const api::Container& c, const std::string& container_id,
                      const api::Handler& h, const std::string& pod_ip, Duration timeout);
  // Where HTTP hooks go: the pod's address (the node's for hostNetwork).
  std::string podIp(const api::Pod& pod, const PodRuntimeStatus& st) const;
  std::string podDir(const std::string& uid) const;
  std::map<std::string, std::string> volume_errors_;  // uid -> last FailedMount message
  std::atomic<uint64_t> started_app_{0}, started_init_{0};
  std::string cgroupParent(const api::Pod& pod) const;

  cri::RuntimeService& runtime_;
  cri::ImageService& images_;
  Clock& clock_;
  EventRecorder& events_;
  RuntimeManagerOptions o_;
  Backoff crash_backoff_{std::chrono::seconds(10), std::chrono::seconds(300)};
  Backoff image_backoff_{std::chrono::seconds(10), std::chrono::seconds(300)};
  std::string runtime_name_{"containerd"};
  std::map<std::string, std::string> log_paths_;  // container id -> log path (runningLogPaths)
  void linkContainerLog(const api::Pod& pod, const std::string& container, const std::string& id,
                        const std::string& target);
  std::mutex links_mu_;
  std::map<std::string, std::string> log_links_;  // link -> container id (under links_mu_)
  bool links_scanned_{false};                     // the links of an earlier run, found once
};

// $(VAR) expansion as the kubelet does it: defined names are replaced, "$$" is a literal "$",
// anything else (an undefined name, an unclosed reference) stays as written.
std::string expandVars(const std::string& in, const std::map<std::string, std::string>& vars);
// The docker-link style variables the kubelet injects for services (FOO_SERVICE_HOST,
// FOO_SERVICE_PORT, FOO_PORT=tcp://ip:port, FOO_PORT_<port>_<PROTO>_ADDR, ...).
std::vector<std::pair<std::string, std::string>> serviceEnv(
    const std::vector<kube::ObjectSource::Service>& services);
// The cgroupfs parent of a pod: <root>/kubepods[/burstable|/besteffort]/pod<uid>.
std::string podCgroupParent(const std::string& cgroup_root, const std::string& qos,
                            const std::string& uid);
// Linux resources for a container from its requests and limits (cpu shares, CFS quota, memory
// limit, oom_score_adj by QoS).
cri::LinuxResources containerResources(const api::Pod& pod, const api::Container& c,
                                       int64_t node_memory_bytes);

}  // namespace nodelet::agent
