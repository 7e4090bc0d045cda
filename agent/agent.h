#pragma once
// The agent: desired pods from the sources, the sync loop (PLEG relist, housekeeping, resync,
// delayed retries), the pod workers, and the PodSyncer that runs one pod through the runtime
// manager and publishes its status.
#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stop_token>
#include <string>

#include "agent/admission.h"
#include "agent/core/metrics.h"
#include "agent/events.h"
#include "agent/exit_watcher.h"
#include "agent/log_rotation.h"
#include "agent/pod_workers.h"
#include "agent/runtime_manager.h"
#include "agent/status_manager.h"
#include "probes/probe_manager.h"
#include "staticpods/file_source.h"

namespace nodelet::agent {

class PodStartupTracker;

struct AgentOptions {
  // The pod startup SLI: told of API pods as watched and of the statuses computed (may be null).
  PodStartupTracker* startup{nullptr};
  Duration relist_period{std::chrono::seconds(1)};
  // With no pods wanted and none found, nothing of nodelet's can appear but through nodelet
  // itself: the relist only guards against surprises, and slows down to this.
  Duration empty_relist_period{std::chrono::seconds(10)};
  Duration housekeeping_period{std::chrono::seconds(2)};
  Duration resync_period{std::chrono::minutes(1)};  // syncFrequency
  int32_t max_pods{110};
  // The node's allocatable CPU (millicores) and memory (bytes) for admission (OutOfcpu,
  // OutOfmemory); 0 = not checked.
  int64_t allocatable_cpu_milli{0};
  int64_t allocatable_memory_bytes{0};
  size_t worker_threads{4};
  // Watch running containers' processes (pidfd) so exits are noticed at once. Off in unit tests,
  // where containers have no processes.
  bool watch_exits{true};
  // containerLogMaxSize / containerLogMaxFiles, checked every log_rotation_period.
  int64_t log_max_bytes{10 * 1024 * 1024};
  int32_t log_max_files{5};
  Duration log_rotation_period{std::chrono::seconds(10)};
  // After an exit: relist every fast_relist_period for fast_relist_window.
  Duration fast_relist_period{std::chrono::milliseconds(20)};
  Duration fast_relist_window{std::chrono::milliseconds(500)};
  std::string node_ip;
  std::string node_name;  // the object of node-level events
  // The sources that must each have delivered once before a pod found in the runtime and wanted
  // by none of them counts as an orphan: "file", and "api" in cluster mode.
  std::set<std::string> sources{"file"};
  // A pod whose deletion was requested (deletionTimestamp) has stopped: the API server may now
  // be told (final status, then DELETE).
  std::function<void(const std::string& uid)> on_pod_terminated;
  // Every sandbox the runtime knows (not only nodelet's), now and then: what the network's
  // leaked addresses are reclaimed against. Unset: not asked.
  std::function<void(const std::set<std::string>& sandbox_ids)> on_all_sandboxes;
  // The node admission checks new pods against (labels, taints); `fresh`: read it again from
  // the API server, as the kubelet does when node affinity alone refused a pod. Unset: the node
  // name with the kubelet's hostname and os labels.
  std::function<AdmissionNode(bool fresh)> admission_node;
  Duration all_sandboxes_period{std::chrono::minutes(10)};
  // How often the runtime's NetworkReady condition is read (pods off the host network wait for it).
  Duration network_check_period{std::chrono::seconds(5)};  // the kubelet's runtime check period
};

// What the agent measures, for /metrics (the kubelet's metric names).
struct AgentMetrics {
  metrics::Histogram relist;  // kubelet_pleg_relist_duration_seconds
  std::map<std::string, metrics::Histogram>
      worker;                                 // kubelet_pod_worker_duration_seconds{operation}
  metrics::Histogram pod_start;               // kubelet_pod_start_duration_seconds
  int64_t running_pods{0};                    // kubelet_running_pods
  std::map<std::string, int64_t> containers;  // kubelet_running_containers{container_state}
  int64_t desired_pods{0};
  // kubelet_restarted_pods_total{static}: "true" for static pods, "" for the others.
  std::map<std::string, int64_t> restarted_pods;
};

class Agent final : public PodSyncer {
 public:
  Agent(RuntimeManager& runtime, StatusManager& statuses, EventRecorder& events, Clock& clock,
        AgentOptions options);
  ~Agent() override;

  // The file source's snapshot: the full set of static pods (a SET, in kubelet terms).
  void onFileSnapshot(const staticpods::FileSnapshot& snap);
  // The API server's pods for this node (the full set; mirror pods already left out).
  void onApiPods(std::vector<api::Pod> pods);
  // Graceful node shutdown: stops the admitted pods of one class (critical: static pods and
  // priority >= 2000000000) with `grace_seconds`; they are not started again, and end with phase
  // Failed, reason Terminated, as the kubelet reports them.
  void stopPodsForShutdown(bool critical, int64_t grace_seconds);
  // How many pods of that class still have a running container (asks the runtime).
  size_t podsRunning(bool critical);
  // A ConfigMap or Secret ("configmaps/<namespace>/<name>") changed: the pods that use it, of
  // the static pod directory or of the API server, sync now (their volumes follow in place).
  // A RuntimeClass ("runtimeclasses//<name>") changed: all pods that name it sync (one waiting
  // for it starts).
  void onObjectChanged(const std::string& key, bool static_pods);
  // The sync loop; returns when `stop` is requested. Pods keep running.
  void run(std::stop_token stop);
  // Wakes the loop for an immediate relist.
  void requestRelist();
  // A container's process exited: relist now, and often for a moment, since the runtime may
  // record the exit a few milliseconds after the process is gone.
  void onContainerExit();
  // For /healthz: the loop has turned recently and the runtime answered its last relist.
  bool healthy() const;
  std::string healthMessage() const;

  // nodelet::agent::PodSyncer
  SyncOutcome syncPod(const api::Pod& pod, SyncReason reason) override;
  Status syncTerminatingPod(const std::string& uid, const api::Pod* pod,
                            std::optional<int64_t> grace_seconds) override;
  Status syncTerminatedPod(const std::string& uid, const api::Pod* pod, bool remove) override;
  void podRestarted(const api::Pod& pod) override;

  PodWorkers& workers() { return workers_; }
  // One relist now (the PLEG): returns the UIDs whose runtime state changed.
  std::set<std::string> relist();
  void housekeeping();
  AgentMetrics metrics() const;
  std::map<std::string, probes::Manager::Counters> probeCounters() const {
    return probes_->counters();
  }
  std::vector<probes::Manager::ContainerCounters> containerProbeCounters() const {
    return probes_->containerCounters();
  }
  // The runtime's network readiness, as last read ("" = ready).
  std::string networkNotReady() const;
  // Rotates the logs of running containers that outgrew containerLogMaxSize.
  int rotateLogs();

 private:
  void observeWorker(std::string_view operation, MonoTime start);
  void publishStatus(const api::Pod& pod, const PodRuntimeStatus& st,
                     const std::map<std::string, Waiting>& waiting, bool terminal = false);
  void rejectPod(const api::Pod& pod, const std::string& reason, const std::string& message);
  void watchRunning(const PodRuntimeStatus& st);
  // Replaces one source's pods and reconciles the union with the workers; returns whether pods
  // were added.
  bool applySource(const std::string& source, std::vector<api::Pod> pods);
  // "<resource>|<message>" when `pod` does not fit the node's allocatable next to the admitted
  // pods ("" = it fits), under mu_.
  std::string resourceShortage(const api::Pod& pod) const;
  // Admission of a new pod (already in desired_); the first check it fails. Holds mu_.
  std::optional<AdmissionFailure> admit(const api::Pod& pod) const;
  // Why `pod`'s host ports clash with an admitted pod's ("" = they do not), under mu_.
  std::string hostPortConflict(const api::Pod& pod) const;
  // Sync unless the pod is rejected or being deleted (under mu_).
  void syncLocked(const std::string& uid, const api::Pod& pod,
                  SyncReason reason = SyncReason::Sync);
  // Starts probing the running containers of `pod` that have probes.
  void probeRunning(const api::Pod& pod, const PodRuntimeStatus& st);
  void onProbeEvent(const probes::ProbeEvent& e);
  // Registers exit watches queued by the workers (on the loop thread).
  void watchPending();

  RuntimeManager& runtime_;
  StatusManager& statuses_;
  EventRecorder& events_;
  Clock& clock_;
  AgentOptions o_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool wake_{false};
  std::map<std::string, api::Pod> desired_;  // by UID: the union of the sources
  std::map<std::string, std::map<std::string, api::Pod>> by_source_;  // source -> uid -> pod
  std::set<std::string> rejected_;              // admitted = desired - rejected
  std::set<std::string> deleting_;              // deletion requested: killed, kept for status
  std::set<std::string> shutdown_;              // stopped for the node's shutdown
  AgentMetrics metrics_;                        // under mu_
  std::map<std::string, MonoTime> first_seen_;  // uid -> when a source first gave it (pod start)
  std::string network_not_ready_;               // the runtime's NetworkReady=false, in words
  std::set<std::string> network_waiting_;  // pods told (an event) that they wait for the network
  std::optional<MonoTime> next_network_check_, next_all_sandboxes_;
  bool sources_ready_{false};
  std::map<std::string, std::string> relist_signatures_;  // uid -> runtime state signature
  std::set<std::string> pending_watches_;                 // new running containers to watch (ids)
  std::set<std::pair<std::string, std::string>> reported_errors_;  // (file, message)
  std::atomic<int64_t> last_loop_ns_{0};
  std::atomic<int64_t> fast_relist_until_ns_{0};
  std::atomic<bool> runtime_ok_{true};
  std::string runtime_error_;

  std::unique_ptr<ExitWatcher> exits_;
  // Probes: results feed status; liveness/startup failures mark containers for a kill.
  std::unique_ptr<probes::DefaultRunner> probe_runner_;
  std::unique_ptr<probes::Manager> probes_;
  std::map<std::string, Unhealthy> unhealthy_;  // container id -> why to kill it (under mu_)
  std::set<std::string> seed_ready_;            // ready before a restart of nodelet
  std::unique_ptr<LogRotator> logs_;
  PodWorkers workers_;  // last: its threads call back into this object
};

}  // namespace nodelet::agent
