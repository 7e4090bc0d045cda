#include "agent/agent.h"

#include <algorithm>

#include "agent/core/log.h"
#include "agent/core/quantity.h"
#include "agent/pod_startup.h"
#include "agent/pod_status.h"

namespace nodelet::agent {
namespace {

// Runs `f` when the scope ends (however it ends).
struct ScopeExit {
  std::function<void()> f;
  ~ScopeExit() { f(); }
};

// What the relist compares: sandbox and container ids with their states.
std::string signature(const PodRuntimeStatus& p) {
  std::string sig;
  for (const auto& s : p.sandboxes)
    sig += s.id + (s.state == cri::SandboxState::Ready ? "R;" : "N;");
  for (const auto& c : p.containers)
    sig += c.status.id + ":" + std::string(cri::toString(c.status.state)) + ";";
  return sig;
}

}  // namespace

Agent::Agent(RuntimeManager& runtime, StatusManager& statuses, EventRecorder& events, Clock& clock,
             AgentOptions options)
    : runtime_(runtime),
      statuses_(statuses),
      events_(events),
      clock_(clock),
      o_(std::move(options)),
      workers_(*this, clock, o_.worker_threads) {
  if (o_.watch_exits) exits_ = std::make_unique<ExitWatcher>([this] { onContainerExit(); });
  probe_runner_ = std::make_unique<probes::DefaultRunner>(
      [this](const std::string& id, const std::vector<std::string>& cmd,
             Duration timeout) -> Result<std::pair<int32_t, std::string>> {
        auto r = runtime_.runtime().execSync(
            id, cmd, std::chrono::duration_cast<std::chrono::seconds>(timeout));
        if (!r) return std::unexpected(r.error());
        return std::pair<int32_t, std::string>{r->exit_code, r->stdout_ + r->stderr_};
      });
  probes_ = std::make_unique<probes::Manager>(
      *probe_runner_, clock_, [this](const probes::ProbeEvent& e) { onProbeEvent(e); });
  seed_ready_ = statuses_.readyContainersInSnapshot();
}

void Agent::probeRunning(const api::Pod& pod, const PodRuntimeStatus& st) {
  for (const auto* list : {&pod.spec.init_containers, &pod.spec.containers}) {
    for (const auto& c : *list) {
      if (!c.liveness_probe && !c.readiness_probe && !c.startup_probe) continue;
      const RuntimeContainer* rc = st.latest(c.name);
      if (!rc || !rc->running() || probes_->watching(rc->status.id)) continue;
      probes::Target t;
      t.pod_uid = pod.metadata.uid;
      t.pod_name = pod.fullName();
      t.container_name = c.name;
      t.container_id = rc->status.id;
      t.started = toMonotonic(rc->status.started_at, clock_.monotonicNow(), clock_.systemNow());
      t.liveness = c.liveness_probe;
      t.readiness = c.readiness_probe;
      t.startup = c.startup_probe;
      const RuntimeSandbox* sb = st.currentSandbox();
      t.endpoint.ip = pod.spec.host_network ? o_.node_ip : (sb ? sb->ip : "");
      t.endpoint.ports = c.ports;
      probes_->add(t);
      bool seed = false;
      {
        std::lock_guard g(mu_);
        seed = seed_ready_.erase(rc->status.id) > 0;
      }
      if (seed) probes_->seedReady(rc->status.id);
    }
  }
}

void Agent::onProbeEvent(const probes::ProbeEvent& e) {
  std::optional<api::Pod> pod;
  {
    std::lock_guard g(mu_);
    auto it = desired_.find(e.pod_uid);
    if (it != desired_.end()) pod = it->second;
    if (pod && e.changed && e.result == probes::ProbeResult::Failure &&
        e.kind != probes::Kind::Readiness) {
      const bool liveness = e.kind == probes::Kind::Liveness;
      std::optional<int64_t> grace;
      if (const api::Container* c = api::findContainer(pod->spec, e.container_name)) {
        const auto& probe = liveness ? c->liveness_probe : c->startup_probe;
        if (probe) grace = probe->termination_grace_period_seconds;
      }
      unhealthy_[e.container_id] = {"Container " + e.container_name + " failed " +
                                        (liveness ? "liveness" : "startup") +
                                        " probe, will be restarted",
                                    grace};
    }
  }
  if (!pod || pod->metadata.deletion_timestamp) return;
  if (e.result == probes::ProbeResult::Failure) {
    events_.record(containerRef(*pod, e.container_name), "Warning", "Unhealthy",
                   std::string(probes::toString(e.kind)) + " probe failed: " + e.output);
  }
  // A changed result changes the pod's status (readiness) or its containers (a kill).
  if (e.changed) workers_.updatePod({PodUpdate::Type::Sync, e.pod_uid, *pod, std::nullopt, true});
}

int Agent::rotateLogs() {
  {
    std::lock_guard g(mu_);
    if (relist_signatures_.empty()) return 0;  // nothing of ours runs
  }
  if (!logs_)
    logs_ = std::make_unique<LogRotator>(runtime_.runtime(), clock_, o_.log_max_bytes,
                                         o_.log_max_files);
  std::vector<std::pair<std::string, std::string>> running;
  for (const auto& [id, path] : runtime_.runningLogPaths()) running.emplace_back(id, path);
  return logs_->rotate(running);
}

void Agent::watchRunning(const PodRuntimeStatus& st) {
  if (!exits_) return;
  for (const auto& c : st.containers) {
    if (!c.running() || exits_->watching(c.status.id)) continue;
    if (auto pid = runtime_.containerPid(c.status.id)) exits_->watch(c.status.id, *pid);
  }
}

Agent::~Agent() { workers_.stop(); }

void Agent::rejectPod(const api::Pod& pod, const std::string& reason, const std::string& message) {
  NODELET_LOG(warn, Agent, "pod {} not admitted: {}: {}", pod.fullName(), reason, message);
  events_.record(podRef(pod), "Warning", reason, message);
  api::PodStatus s;
  s.phase = "Failed";
  s.reason = reason;
  s.message = "Pod was rejected: " + message;
  statuses_.setPodStatus(pod, s);
}

std::optional<AdmissionFailure> Agent::admit(const api::Pod& pod) const {
  // The kubelet's order (predicateAdmitHandler): the OS, then what the node has room for (the
  // pod limit, then each resource), node affinity, host ports, NoExecute taints. The first
  // failure is the one reported.
  if (auto f = checkOperatingSystem(pod)) return f;
  const size_t admitted = desired_.size() - rejected_.size() - deleting_.size() - 1;
  if (admitted >= static_cast<size_t>(o_.max_pods))
    return AdmissionFailure{
        "OutOfpods", "Node didn't have enough resource: pods, requested: 1, used: " +
                         std::to_string(admitted) + ", capacity: " + std::to_string(o_.max_pods)};
  if (const std::string short_of = resourceShortage(pod); !short_of.empty()) {
    const auto bar = short_of.find('|');
    return AdmissionFailure{"OutOf" + short_of.substr(0, bar), short_of.substr(bar + 1)};
  }
  const auto defaults = [this] {
    return AdmissionNode{o_.node_name,
                         {{"kubernetes.io/hostname", o_.node_name}, {"kubernetes.io/os", "linux"}},
                         {}};
  };
  AdmissionNode node = o_.admission_node ? o_.admission_node(false) : defaults();
  if (checkNodeAffinity(pod, node) && o_.admission_node) node = o_.admission_node(true);
  if (auto f = checkNodeAffinity(pod, node)) return f;
  if (const std::string clash = hostPortConflict(pod); !clash.empty()) {
    NODELET_LOG(info, Agent, "pod {}: {}", pod.fullName(), clash);
    return AdmissionFailure{"NodePorts",
                            "Predicate NodePorts failed: node(s) didn't have free ports for the "
                            "requested pod ports"};
  }
  return checkTaints(pod, node);
}

void Agent::onFileSnapshot(const staticpods::FileSnapshot& snap) {
  {
    std::lock_guard g(mu_);
    // Manifest problems: one event per file and message, not one per rescan.
    std::set<std::pair<std::string, std::string>> now_errors;
    for (const auto& e : snap.errors) {
      now_errors.insert({e.path, e.message});
      if (!reported_errors_.contains({e.path, e.message})) {
        events_.record({"Node", o_.node_name, "", o_.node_name, ""}, "Warning",
                       "FailedStaticPodManifest", "manifest " + e.path + ": " + e.message);
      }
    }
    reported_errors_ = std::move(now_errors);
  }
  std::vector<api::Pod> pods;
  pods.reserve(snap.pods.size());
  for (const auto& sp : snap.pods) pods.push_back(sp.pod);
  // New pods end the slow relist cadence of an empty node at once.
  if (applySource("file", std::move(pods))) requestRelist();
}

void Agent::onApiPods(std::vector<api::Pod> pods) {
  if (o_.startup)
    for (const auto& p : pods) o_.startup->observedOnWatch(p);
  if (applySource("api", std::move(pods))) requestRelist();
}

void Agent::onObjectChanged(const std::string& key, bool static_pods) {
  const size_t a = key.find('/'), b = key.find('/', a == std::string::npos ? a : a + 1);
  if (a == std::string::npos || b == std::string::npos) return;
  const std::string resource = key.substr(0, a), ns = key.substr(a + 1, b - a - 1),
                    name = key.substr(b + 1);
  // A RuntimeClass is cluster-scoped, and static pods read the API server's too.
  const bool cluster_scoped = ns.empty();
  std::lock_guard g(mu_);
  for (const auto& [source, pods] : by_source_) {
    if (!cluster_scoped && (source == "file") != static_pods) continue;
    for (const auto& [uid, pod] : pods) {
      if (!cluster_scoped && pod.metadata.namespace_ != ns) continue;
      if (!api::usesObject(pod.spec, resource, name)) continue;
      auto d = desired_.find(uid);
      if (d == desired_.end()) continue;
      NODELET_LOG(debug, Agent, "pod {}: {} changed", pod.fullName(), key);
      syncLocked(uid, d->second);
    }
  }
}

namespace {

// The kubelet's IsCriticalPod: static (and mirror) pods, and pods of system-critical priority.
bool isCriticalPod(const api::Pod& pod) {
  return api::isStaticPod(pod) || pod.spec.priority.value_or(0) >= 2'000'000'000;
}

}  // namespace

void Agent::stopPodsForShutdown(bool critical, int64_t grace_seconds) {
  std::lock_guard g(mu_);
  for (const auto& [uid, pod] : desired_) {
    if (isCriticalPod(pod) != critical || rejected_.contains(uid) || deleting_.contains(uid))
      continue;
    NODELET_LOG(info, Agent, "shutdown: stopping pod {} ({} s)", pod.fullName(), grace_seconds);
    shutdown_.insert(uid);
    deleting_.insert(uid);  // never started again
    workers_.updatePod({PodUpdate::Type::Kill, uid, pod, grace_seconds, false});
  }
}

size_t Agent::podsRunning(bool critical) {
  auto pods = runtime_.listPods();
  if (!pods) return 0;  // nothing to wait for that can be known
  std::lock_guard g(mu_);
  size_t n = 0;
  for (const auto& [uid, p] : *pods) {
    auto d = desired_.find(uid);
    if (d == desired_.end() || isCriticalPod(d->second) != critical) continue;
    for (const auto& c : p.containers)
      if (c.running()) {
        ++n;
        break;
      }
  }
  return n;
}

void Agent::syncLocked(const std::string& uid, const api::Pod& pod, SyncReason reason) {
  if (rejected_.contains(uid) || deleting_.contains(uid)) return;
  workers_.updatePod({PodUpdate::Type::Sync, uid, pod, std::nullopt, true, reason});
}

void Agent::podRestarted(const api::Pod& pod) {
  NODELET_LOG(info, Agent, "pod {} ({}) was added again while it was being removed: starting it",
              pod.fullName(), pod.metadata.uid);
  std::lock_guard g(mu_);
  ++metrics_.restarted_pods[api::isStaticPod(pod) ? "true" : ""];
}

namespace {

// (protocol, port) -> host IPs of the host ports a pod asks for ("" = every address).
std::multimap<std::pair<std::string, int32_t>, std::string> hostPorts(const api::Pod& p) {
  std::multimap<std::pair<std::string, int32_t>, std::string> out;
  for (const auto* list : {&p.spec.init_containers, &p.spec.containers})
    for (const auto& c : *list)
      for (const auto& port : c.ports)
        if (port.host_port > 0)
          out.emplace(std::pair{port.protocol.empty() ? "TCP" : port.protocol, port.host_port},
                      port.host_ip == "0.0.0.0" ? "" : port.host_ip);
  return out;
}

}  // namespace

namespace {

// What a pod asks of the node (the scheduler's effective request): the larger of its app
// containers and sidecars together, and its largest regular init container plus the sidecars
// started before it. In millicores and bytes.
std::pair<int64_t, int64_t> podRequests(const api::Pod& p) {
  auto req = [](const api::Container& c) {
    int64_t cpu = 0, mem = 0;
    if (auto it = c.resources.requests.find("cpu"); it != c.resources.requests.end())
      cpu = api::parseQuantityMilli(it->second).value_or(0);
    if (auto it = c.resources.requests.find("memory"); it != c.resources.requests.end())
      mem = api::parseQuantity(it->second).value_or(0);
    return std::pair<int64_t, int64_t>{cpu, mem};
  };
  int64_t cpu = 0, mem = 0, side_cpu = 0, side_mem = 0, init_cpu = 0, init_mem = 0;
  for (const auto& c : p.spec.init_containers) {
    auto [c_cpu, c_mem] = req(c);
    if (api::isSidecar(c)) {
      side_cpu += c_cpu;
      side_mem += c_mem;
    } else {
      init_cpu = std::max(init_cpu, side_cpu + c_cpu);
      init_mem = std::max(init_mem, side_mem + c_mem);
    }
  }
  for (const auto& c : p.spec.containers) {
    auto [c_cpu, c_mem] = req(c);
    cpu += c_cpu;
    mem += c_mem;
  }
  return {std::max(cpu + side_cpu, init_cpu), std::max(mem + side_mem, init_mem)};
}

// What the pod's readiness gates say now ("" for a condition not there): a controller flipping
// one makes the pod sync, so that Ready follows (the kubelet's NeedToReconcilePodReadiness).
std::vector<std::string> readinessGateStatus(const api::Pod& pod) {
  std::vector<std::string> out;
  for (const auto& type : pod.spec.readiness_gates) {
    std::string status;
    for (const auto& c : pod.status.conditions)
      if (c.type == type) status = c.status;
    out.push_back(std::move(status));
  }
  return out;
}

}  // namespace

std::string Agent::resourceShortage(const api::Pod& pod) const {
  const auto [cpu, mem] = podRequests(pod);
  int64_t used_cpu = 0, used_mem = 0;
  for (const auto& [uid, other] : desired_) {
    if (uid == pod.metadata.uid || rejected_.contains(uid) || deleting_.contains(uid)) continue;
    const auto [c, m] = podRequests(other);
    used_cpu += c;
    used_mem += m;
  }
  if (o_.allocatable_cpu_milli > 0 && cpu > 0 && used_cpu + cpu > o_.allocatable_cpu_milli)
    return "cpu|Node didn't have enough resource: cpu, requested: " + std::to_string(cpu) +
           ", used: " + std::to_string(used_cpu) +
           ", capacity: " + std::to_string(o_.allocatable_cpu_milli);
  if (o_.allocatable_memory_bytes > 0 && mem > 0 && used_mem + mem > o_.allocatable_memory_bytes)
    return "memory|Node didn't have enough resource: memory, requested: " + std::to_string(mem) +
           ", used: " + std::to_string(used_mem) +
           ", capacity: " + std::to_string(o_.allocatable_memory_bytes);
  return "";
}

std::string Agent::hostPortConflict(const api::Pod& pod) const {
  const auto wanted = hostPorts(pod);
  if (wanted.empty()) return "";
  for (const auto& [uid, other] : desired_) {
    if (uid == pod.metadata.uid || rejected_.contains(uid) || deleting_.contains(uid)) continue;
    for (const auto& [key, ip] : hostPorts(other)) {
      auto [b, e] = wanted.equal_range(key);
      for (auto it = b; it != e; ++it)
        if (it->second.empty() || ip.empty() || it->second == ip)
          return "host port " + key.first + "/" + std::to_string(key.second) + " is taken by pod " +
                 other.fullName();
    }
  }
  return "";
}

bool Agent::applySource(const std::string& source, std::vector<api::Pod> pods) {
  bool added = false;
  std::lock_guard g(mu_);
  auto& mine = by_source_[source];
  mine.clear();
  for (auto& p : pods) {
    const std::string uid = p.metadata.uid;
    mine[uid] = std::move(p);
  }
  std::map<std::string, const api::Pod*> next;
  for (const auto& [src, m] : by_source_)
    for (const auto& [uid, p] : m) next.emplace(uid, &p);

  for (auto it = desired_.begin(); it != desired_.end();) {
    if (next.contains(it->first)) {
      ++it;
      continue;
    }
    NODELET_LOG(info, Agent, "pod {} ({}) removed from its source", it->second.fullName(),
                it->first);
    if (rejected_.erase(it->first)) {
      statuses_.removePod(it->first);
    } else if (!deleting_.contains(it->first)) {
      workers_.updatePod({PodUpdate::Type::Kill, it->first, it->second, std::nullopt, true});
    }
    deleting_.erase(it->first);
    first_seen_.erase(it->first);
    if (o_.startup) o_.startup->forget(it->first);
    it = desired_.erase(it);
  }
  // Admission goes in creation order (then by name), as the kubelet's HandlePodAdditions does:
  // when not everything fits, the newest pods are the ones refused.
  std::vector<std::pair<std::string, const api::Pod*>> ordered(next.begin(), next.end());
  std::stable_sort(ordered.begin(), ordered.end(), [](const auto& x, const auto& y) {
    const SysTime tx = x.second->metadata.creation_timestamp.value_or(SysTime{});
    const SysTime ty = y.second->metadata.creation_timestamp.value_or(SysTime{});
    if (tx != ty) return tx < ty;
    return x.second->fullName() < y.second->fullName();
  });
  for (const auto& [uid, pod] : ordered) {
    auto cur = desired_.find(uid);
    const bool is_new = cur == desired_.end();
    if (!is_new && cur->second.spec == pod->spec &&
        cur->second.metadata.labels == pod->metadata.labels &&
        cur->second.metadata.deletion_timestamp == pod->metadata.deletion_timestamp &&
        readinessGateStatus(cur->second) == readinessGateStatus(*pod))
      continue;
    desired_[uid] = *pod;
    if (pod->metadata.deletion_timestamp) {
      // Graceful deletion (the API server set deletionTimestamp): stop it within its grace
      // period; it stays known (for its final status) until its source drops it.
      if (deleting_.insert(uid).second && !rejected_.contains(uid)) {
        NODELET_LOG(info, Agent, "pod {} ({}) is being deleted", pod->fullName(), uid);
        workers_.updatePod(
            {PodUpdate::Type::Kill, uid, *pod, pod->metadata.deletion_grace_period_seconds, true});
      }
      continue;
    }
    if (is_new) {
      if (auto refused = admit(*pod)) {
        rejected_.insert(uid);
        rejectPod(*pod, refused->reason, refused->message);
        continue;
      }
      NODELET_LOG(info, Agent, "pod {} ({}) added", pod->fullName(), uid);
      first_seen_[uid] = clock_.monotonicNow();
      added = true;
    }
    syncLocked(uid, *pod, is_new ? SyncReason::Create : SyncReason::Update);
  }
  bool all = true;
  for (const auto& src : o_.sources) all = all && by_source_.contains(src);
  sources_ready_ = all;
  return added;
}

void Agent::observeWorker(std::string_view operation, MonoTime start) {
  std::lock_guard g(mu_);  // kubelet_pod_worker_duration_seconds{operation_type}
  metrics_.worker[std::string(operation)].observe(clock_.monotonicNow() - start);
}

AgentMetrics Agent::metrics() const {
  std::lock_guard g(mu_);
  AgentMetrics m = metrics_;
  m.desired_pods = static_cast<int64_t>(desired_.size());
  return m;
}

std::set<std::string> Agent::relist() {
  std::set<std::string> changed;
  const MonoTime relist_start = clock_.monotonicNow();
  auto pods = runtime_.listPods();
  if (!pods) {
    if (runtime_ok_.exchange(false) || runtime_error_ != pods.error().message)
      NODELET_LOG(error, Agent, "relist: {}", pods.error().message);
    std::lock_guard g(mu_);
    runtime_error_ = pods.error().message;
    return changed;
  }
  runtime_ok_ = true;
  std::set<std::string> alive, existing;
  for (const auto& [uid, p] : *pods)
    for (const auto& c : p.containers) {
      existing.insert(c.status.id);
      if (c.running()) alive.insert(c.status.id);
    }
  runtime_.pruneLogLinks(existing);
  if (exits_) {  // watch what runs (adopted containers too), forget what is gone
    for (const auto& [uid, p] : *pods) watchRunning(p);
    exits_->retain(alive);
  }
  probes_->retain(alive);
  {
    std::lock_guard g(mu_);
    std::erase_if(unhealthy_, [&](const auto& kv) { return !alive.contains(kv.first); });
  }
  std::map<std::string, std::string> sigs;
  for (const auto& [uid, p] : *pods) sigs[uid] = signature(p);
  int64_t running_pods = 0;
  std::map<std::string, int64_t> states;
  for (const auto& [uid, p] : *pods) {
    const RuntimeSandbox* sb = p.currentSandbox();
    running_pods += sb && sb->state == cri::SandboxState::Ready ? 1 : 0;
    for (const auto& c : p.containers) {
      std::string st(cri::toString(c.status.state));
      std::transform(st.begin(), st.end(), st.begin(),
                     [](unsigned char ch) { return std::tolower(ch); });
      ++states[st];
    }
  }
  std::lock_guard g(mu_);
  metrics_.relist.observe(clock_.monotonicNow() - relist_start);
  metrics_.running_pods = running_pods;
  metrics_.containers = std::move(states);
  for (const auto& [uid, sig] : sigs) {
    auto it = relist_signatures_.find(uid);
    if (it == relist_signatures_.end() || it->second != sig) changed.insert(uid);
  }
  for (const auto& [uid, sig] : relist_signatures_)
    if (!sigs.contains(uid)) changed.insert(uid);
  relist_signatures_ = std::move(sigs);
  for (const auto& uid : changed) {
    auto d = desired_.find(uid);
    if (d != desired_.end()) syncLocked(uid, d->second);
  }
  return changed;
}

std::string Agent::networkNotReady() const {
  std::lock_guard g(mu_);
  return network_not_ready_;
}

void Agent::housekeeping() {
  runtime_.gcBackoff();
  const MonoTime now = clock_.monotonicNow();
  bool check_network = false, list_all = false;
  {
    std::lock_guard g(mu_);
    check_network = !next_network_check_ || now >= *next_network_check_;
    if (check_network) next_network_check_ = now + o_.network_check_period;
    list_all = o_.on_all_sandboxes && sources_ready_ &&
               (!next_all_sandboxes_ || now >= *next_all_sandboxes_);
    if (list_all) next_all_sandboxes_ = now + o_.all_sandboxes_period;
  }
  if (check_network) {
    if (auto rs = runtime_.runtime().status(false)) {
      const auto* c = rs->condition("NetworkReady");
      std::string why;
      if (!c || !c->status)
        why = "container runtime network not ready: NetworkReady=false reason:" +
              (c ? c->reason : "") + " message:" + (c ? c->message : "not reported");
      std::lock_guard g(mu_);
      if (why != network_not_ready_) {
        if (why.empty())
          NODELET_LOG(info, Network, "the runtime's network is ready");
        else
          NODELET_LOG(warn, Network, "{}: pods off the host network wait", why);
        network_waiting_.clear();
      }
      network_not_ready_ = why;
    }
  }
  if (list_all) {
    if (auto all = runtime_.runtime().listPodSandbox({})) {
      std::set<std::string> ids;
      for (const auto& sb : *all) ids.insert(sb.id);
      o_.on_all_sandboxes(ids);
    }
  }
  std::set<std::string> orphans;
  {
    std::lock_guard g(mu_);
    if (!sources_ready_) return;  // until every source has spoken, nothing is an orphan
    for (const auto& [uid, sig] : relist_signatures_)
      if (!desired_.contains(uid) && !workers_.known(uid)) orphans.insert(uid);
  }
  for (const auto& uid : orphans) {
    NODELET_LOG(info, Agent, "pod {} runs but is not wanted: terminating it", uid);
    workers_.updatePod({PodUpdate::Type::Kill, uid, std::nullopt, std::nullopt, true});
  }
}

void Agent::requestRelist() {
  {
    std::lock_guard g(mu_);
    wake_ = true;
  }
  cv_.notify_all();
}

void Agent::watchPending() {
  std::set<std::string> ids;
  {
    std::lock_guard g(mu_);
    ids.swap(pending_watches_);
  }
  for (const auto& id : ids) {
    if (exits_->watching(id)) continue;
    if (auto pid = runtime_.containerPid(id)) exits_->watch(id, *pid);
  }
}

void Agent::onContainerExit() {
  const auto until = clock_.monotonicNow() + o_.fast_relist_window;
  fast_relist_until_ns_ = std::chrono::duration_cast<Duration>(until.time_since_epoch()).count();
  requestRelist();
}

bool Agent::healthy() const {
  const auto last = MonoTime(Duration(last_loop_ns_.load()));
  return runtime_ok_ && clock_.monotonicNow() - last < std::chrono::minutes(2);
}

std::string Agent::healthMessage() const {
  if (!runtime_ok_) {
    std::lock_guard g(mu_);
    return "container runtime is down: " + runtime_error_;
  }
  if (!healthy()) return "sync loop is stuck";
  return "ok";
}

void Agent::run(std::stop_token stop) {
  MonoTime next_relist = clock_.monotonicNow();
  MonoTime next_housekeeping = next_relist;  // at once: it reads the network's readiness
  MonoTime next_resync = next_relist + o_.resync_period;
  MonoTime next_rotation = next_relist + o_.log_rotation_period;
  std::stop_callback wake(stop, [this] { requestRelist(); });
  while (!stop.stop_requested()) {
    MonoTime now = clock_.monotonicNow();
    last_loop_ns_ = std::chrono::duration_cast<Duration>(now.time_since_epoch()).count();
    bool forced = false, watches = false;
    {
      std::lock_guard g(mu_);
      forced = wake_;
      watches = !pending_watches_.empty();
      wake_ = false;
    }
    if (watches && exits_) watchPending();
    if (forced || now >= next_relist) {
      relist();
      const bool fast = clock_.monotonicNow() < MonoTime(Duration(fast_relist_until_ns_.load()));
      bool empty = false;
      {
        std::lock_guard g(mu_);
        empty = desired_.empty() && relist_signatures_.empty() && sources_ready_;
      }
      next_relist = clock_.monotonicNow() + (fast    ? o_.fast_relist_period
                                             : empty ? o_.empty_relist_period
                                                     : o_.relist_period);
    }
    if (now >= next_housekeeping) {
      housekeeping();
      next_housekeeping = now + o_.housekeeping_period;
    }
    if (now >= next_resync) {
      std::lock_guard g(mu_);
      for (const auto& [uid, pod] : desired_) syncLocked(uid, pod);
      next_resync = now + o_.resync_period;
    }
    if (now >= next_rotation) {
      rotateLogs();
      next_rotation = now + o_.log_rotation_period;
    }
    MonoTime deadline = std::min({next_relist, next_housekeeping, next_resync, next_rotation});
    if (auto due = workers_.tick()) deadline = std::min(deadline, *due);
    statuses_.flush();
    std::unique_lock l(mu_);
    if (!wake_ && pending_watches_.empty() && !stop.stop_requested())
      clock_.waitUntil(cv_, l, deadline);
  }
}

void Agent::publishStatus(const api::Pod& pod, const PodRuntimeStatus& st,
                          const std::map<std::string, Waiting>& waiting, bool terminal) {
  auto prev = statuses_.podStatus(pod.metadata.uid);
  StatusInput in;
  in.pod = &pod;
  in.runtime = &st;
  in.waiting = &waiting;
  in.previous = prev ? &*prev : nullptr;
  in.runtime_name = runtime_.runtimeName();
  in.host_ip = o_.node_ip;
  in.now = clock_.systemNow();
  in.pod_terminal = terminal;
  std::map<std::string, bool> ready, started;
  for (const auto& c : st.containers) {
    if (!c.running() || ready.contains(c.status.name)) continue;
    ready[c.status.name] = probes_->ready(c.status.id);
    started[c.status.name] = probes_->started(c.status.id);
  }
  in.readiness = &ready;
  in.started = &started;
  api::PodStatus status = computePodStatus(in);
  if (o_.startup) o_.startup->statusUpdated(pod.metadata.uid, status);
  if (status.phase == "Running") {  // kubelet_pod_start_duration_seconds: first seen -> running
    std::lock_guard g(mu_);
    auto it = first_seen_.find(pod.metadata.uid);
    if (it != first_seen_.end()) {
      metrics_.pod_start.observe(clock_.monotonicNow() - it->second);
      first_seen_.erase(it);
    }
  }
  statuses_.setPodStatus(pod, std::move(status));
}

SyncOutcome Agent::syncPod(const api::Pod& pod, SyncReason reason) {
  const MonoTime sync_start = clock_.monotonicNow();
  const ScopeExit timer{[&] { observeWorker(toString(reason), sync_start); }};
  SyncOutcome out;
  auto st = runtime_.podStatus(pod.metadata.uid);
  if (!st) {
    out.error = std::unexpected(st.error());
    out.requeue_after = std::chrono::seconds(1);
    return out;
  }
  // A pod off the host network needs the runtime's network to get a sandbox: it waits (in
  // ContainerCreating) while NetworkReady is false, as the kubelet has it wait.
  if (!pod.spec.host_network && !st->currentSandbox()) {
    std::string not_ready;
    bool tell = false;
    {
      std::lock_guard g(mu_);
      not_ready = network_not_ready_;
      if (!not_ready.empty()) tell = network_waiting_.insert(pod.metadata.uid).second;
    }
    if (!not_ready.empty()) {
      if (tell)
        events_.record(podRef(pod), "Warning", "NetworkNotReady",
                       "network is not ready: " + not_ready);
      publishStatus(pod, *st, {});
      out.requeue_after = o_.network_check_period;
      return out;
    }
  }
  std::map<std::string, Unhealthy> unhealthy;
  {
    std::lock_guard g(mu_);
    unhealthy = unhealthy_;
  }
  SyncResult r = runtime_.syncPod(pod, *st, &unhealthy);
  out.requeue_after = r.requeue_after;
  out.pod_done = r.pod_done;
  out.error = r.error;
  // Read back what the sync changed, so the status is current without waiting for a relist.
  auto after = runtime_.podStatus(pod.metadata.uid);
  const PodRuntimeStatus& now = after ? *after : *st;
  probeRunning(pod, now);
  publishStatus(pod, now, r.waiting);
  bool queued = false;
  {
    std::lock_guard g(mu_);
    // What this sync did is known: the relist reacts only to changes made by others.
    // (A pod with nothing in the runtime has no entry, exactly as the relist sees it.)
    if (after) {
      std::string sig = signature(now);
      if (sig.empty())
        relist_signatures_.erase(pod.metadata.uid);
      else
        relist_signatures_[pod.metadata.uid] = std::move(sig);
    }
    // New containers get their exit watch from the loop thread (a verbose status call each),
    // off this worker, which may have more pods to start.
    for (const auto& c : now.containers)
      if (exits_ && c.running() && !exits_->watching(c.status.id))
        queued = pending_watches_.insert(c.status.id).second || queued;
  }
  if (queued) cv_.notify_all();
  runtime_.garbageCollect(now);
  return out;
}

Status Agent::syncTerminatingPod(const std::string& uid, const api::Pod* pod,
                                 std::optional<int64_t> grace) {
  const MonoTime start = clock_.monotonicNow();
  const ScopeExit timer{[&] { observeWorker("kill", start); }};
  auto st = runtime_.podStatus(uid);
  if (!st) return std::unexpected(st.error());
  auto s = runtime_.killPod(pod, *st, grace);
  if (s && pod) {
    const bool deleted = pod->metadata.deletion_timestamp.has_value();
    bool shutdown = false;
    {
      std::lock_guard g(mu_);
      shutdown = shutdown_.contains(uid);
    }
    auto after = runtime_.podStatus(uid);
    if (after) publishStatus(*pod, *after, {}, deleted || shutdown);
    if (shutdown) {  // as the kubelet's shutdown manager words it
      auto status = statuses_.podStatus(uid).value_or(api::PodStatus{});
      status.phase = "Failed";
      status.reason = "Terminated";
      status.message = "Pod was terminated in response to imminent node shutdown.";
      statuses_.setPodStatus(*pod, status);
    }
    if (deleted && o_.on_pod_terminated) o_.on_pod_terminated(uid);
  }
  return s;
}

Status Agent::syncTerminatedPod(const std::string& uid, const api::Pod* pod, bool remove) {
  if (!remove) return {};
  auto st = runtime_.podStatus(uid);
  if (!st) return std::unexpected(st.error());
  if (auto s = runtime_.removePod(*st); !s) return s;
  statuses_.removePod(uid);
  if (pod) NODELET_LOG(info, Agent, "pod {} ({}) terminated and removed", pod->fullName(), uid);
  return {};
}

}  // namespace nodelet::agent
