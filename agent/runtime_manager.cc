#include "agent/runtime_manager.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "agent/core/files.h"
#include "agent/core/log.h"
#include "agent/core/quantity.h"
#include "agent/labels.h"
#include "agent/pod_startup.h"
#include "agent/pod_status.h"
#include "agent/registry_auth.h"
#include "agent/seccomp.h"
#include "probes/runner.h"

namespace nodelet::agent {
namespace {

namespace fs = std::filesystem;

// The kubelet never gives a container less than this to stop (minimumGracePeriodInSeconds).
constexpr int64_t kMinGraceSeconds = 2;

std::string readSmallFile(const fs::path& path, size_t max) {
  std::ifstream in(path, std::ios::binary);
  std::string s(max, '\0');
  in.read(s.data(), static_cast<std::streamsize>(max));
  s.resize(static_cast<size_t>(in.gcount()));
  return s;
}

cri::Labels withUid(cri::Labels l, const std::string& uid) {
  l[labels::kPodUid] = uid;
  return l;
}

RuntimeContainer fromList(const cri::Container& c) {
  RuntimeContainer r;
  r.status.id = c.id;
  r.status.name = c.name;
  r.status.attempt = c.attempt;
  r.status.state = c.state;
  r.status.created_at = c.created_at;
  r.status.image = c.image;
  r.status.image_ref = c.image_ref;
  r.status.labels = c.labels;
  r.status.annotations = c.annotations;
  r.sandbox_id = c.pod_sandbox_id;
  r.restart_count =
      static_cast<int32_t>(labels::intAnnotation(c.annotations, labels::kRestartCount).value_or(0));
  auto h = c.annotations.find(labels::kContainerHash);
  if (h != c.annotations.end()) r.hash = h->second;
  auto t = c.labels.find(labels::kContainerType);
  r.type = t == c.labels.end() ? "app" : t->second;
  return r;
}

void sortNewestFirst(PodRuntimeStatus& p) {
  std::stable_sort(p.sandboxes.begin(), p.sandboxes.end(),
                   [](const auto& a, const auto& b) { return a.created_at > b.created_at; });
  // Newest first; on equal creation times the higher restart count is the newer container.
  std::stable_sort(p.containers.begin(), p.containers.end(), [](const auto& a, const auto& b) {
    if (a.status.created_at != b.status.created_at)
      return a.status.created_at > b.status.created_at;
    return a.restart_count > b.restart_count;
  });
}

cri::NamespaceOptions namespaces(const api::PodSpec& s) {
  cri::NamespaceOptions n;
  n.network = s.host_network ? cri::NamespaceMode::Node : cri::NamespaceMode::Pod;
  // The kubelet's PidNamespaceForPod: the node's, the pod's shared one, or each container's.
  n.pid = s.host_pid                                  ? cri::NamespaceMode::Node
          : s.share_process_namespace.value_or(false) ? cri::NamespaceMode::Pod
                                                      : cri::NamespaceMode::Container;
  n.ipc = s.host_ipc ? cri::NamespaceMode::Node : cri::NamespaceMode::Pod;
  return n;
}

Result<std::string> fieldValue(const api::Pod& pod, const std::string& path,
                               const std::string& pod_ip, const std::string& host_ip) {
  auto keyed = [&](const std::string& prefix,
                   const api::StringMap& m) -> std::optional<std::string> {
    if (!path.starts_with(prefix + "['") || !path.ends_with("']")) return std::nullopt;
    const std::string key = path.substr(prefix.size() + 2, path.size() - prefix.size() - 4);
    auto it = m.find(key);
    return it == m.end() ? "" : it->second;
  };
  if (path == "metadata.name") return pod.metadata.name;
  if (path == "metadata.namespace") return pod.metadata.namespace_;
  if (path == "metadata.uid") return pod.metadata.uid;
  if (path == "spec.nodeName") return pod.spec.node_name;
  if (path == "spec.serviceAccountName") return pod.spec.service_account_name;
  if (path == "status.hostIP" || path == "status.hostIPs") return host_ip;
  if (path == "status.podIP" || path == "status.podIPs")
    return pod.spec.host_network ? host_ip : pod_ip;
  if (auto v = keyed("metadata.labels", pod.metadata.labels)) return *v;
  if (auto v = keyed("metadata.annotations", pod.metadata.annotations)) return *v;
  return fail(ErrorCode::InvalidArgument, "unsupported fieldRef fieldPath \"" + path + "\"");
}

Result<std::string> resourceValue(const api::Pod& pod, const api::Container& self,
                                  const api::EnvVar& e, int64_t node_cpu_milli,
                                  int64_t node_memory) {
  const api::Container* c = &self;
  if (!e.container_name.empty()) {
    c = api::findContainer(pod.spec, e.container_name);
    if (!c)
      return fail(ErrorCode::InvalidArgument,
                  "resourceFieldRef: no container \"" + e.container_name + "\"");
  }
  const std::string& r = e.field_path;
  const bool limit = r.starts_with("limits.");
  const std::string res = r.substr(r.find('.') + 1);
  const auto& m = limit ? c->resources.limits : c->resources.requests;
  const bool cpu = res == "cpu";
  int64_t milli = 0;
  auto it = m.find(res);
  if (it != m.end()) {
    auto v = api::parseQuantityMilli(it->second);
    if (!v) return std::unexpected(v.error());
    milli = *v;
  } else if (limit) {  // no limit: the node's allocatable
    milli = cpu ? node_cpu_milli : node_memory * 1000;
  } else if (auto l = c->resources.limits.find(res); l != c->resources.limits.end()) {
    auto v = api::parseQuantityMilli(l->second);  // requests default to limits
    if (v) milli = *v;
  }
  auto div = api::parseQuantityMilli(e.divisor.empty() ? "1" : e.divisor);
  if (!div || *div <= 0)
    return fail(ErrorCode::InvalidArgument, "resourceFieldRef: invalid divisor");
  const int64_t value = (milli + *div - 1) / *div;
  return std::to_string(cpu ? std::max<int64_t>(value, 1) : value);
}

}  // namespace

std::string expandVars(const std::string& in, const std::map<std::string, std::string>& vars) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '$' || i + 1 >= in.size()) {
      out += in[i];
      continue;
    }
    if (in[i + 1] == '$') {  // "$$" is an escaped "$"
      out += '$';
      ++i;
      continue;
    }
    if (in[i + 1] == '(') {
      const auto close = in.find(')', i + 2);
      if (close != std::string::npos) {
        const std::string name = in.substr(i + 2, close - i - 2);
        auto it = vars.find(name);
        if (it != vars.end()) {
          out += it->second;
        } else {
          out += in.substr(i, close - i + 1);
        }
        i = close;
        continue;
      }
    }
    out += in[i];
  }
  return out;
}

std::string podCgroupParent(const std::string& cgroup_root, const std::string& qos,
                            const std::string& uid) {
  std::string root = cgroup_root;
  while (!root.empty() && root.back() == '/') root.pop_back();
  std::string p = root + "/kubepods";
  if (qos == "Burstable")
    p += "/burstable";
  else if (qos == "BestEffort")
    p += "/besteffort";
  return p + "/pod" + uid;
}

cri::LinuxResources containerResources(const api::Pod& pod, const api::Container& c,
                                       int64_t node_memory) {
  cri::LinuxResources r;
  auto milli = [](const api::StringMap& m, const char* k) -> std::optional<int64_t> {
    auto it = m.find(k);
    if (it == m.end()) return std::nullopt;
    auto v = api::parseQuantityMilli(it->second);
    return v ? std::optional(*v) : std::nullopt;
  };
  auto cpu_req = milli(c.resources.requests, "cpu");
  auto cpu_lim = milli(c.resources.limits, "cpu");
  if (!cpu_req && cpu_lim) cpu_req = cpu_lim;
  // cpu.shares from the request (MilliCPUToShares: min 2), CFS quota from the limit (min 1 ms).
  r.cpu_shares = cpu_req ? std::max<int64_t>(2, *cpu_req * 1024 / 1000) : 2;
  if (cpu_lim) {
    r.cpu_period = 100000;
    r.cpu_quota = std::max<int64_t>(1000, *cpu_lim * 100000 / 1000);
  }
  auto mem_lim = milli(c.resources.limits, "memory");
  if (mem_lim) r.memory_limit_in_bytes = *mem_lim / 1000;
  const std::string qos = qosClass(pod.spec);
  if (qos == "Guaranteed") {
    r.oom_score_adj = -997;
  } else if (qos == "BestEffort") {
    r.oom_score_adj = 1000;
  } else {
    auto mem_req = milli(c.resources.requests, "memory");
    if (!mem_req) mem_req = mem_lim;
    const int64_t req = mem_req ? *mem_req / 1000 : 0;
    int64_t adj = 1000 - (1000 * req) / std::max<int64_t>(node_memory, 1);
    r.oom_score_adj = std::clamp<int64_t>(adj, 3, 999);
  }
  return r;
}

RuntimeManager::RuntimeManager(cri::RuntimeService& runtime, cri::ImageService& images,
                               Clock& clock, EventRecorder& events, RuntimeManagerOptions options)
    : runtime_(runtime), images_(images), clock_(clock), events_(events), o_(std::move(options)) {
  if (auto v = runtime_.version()) runtime_name_ = v->runtime_name;
}

std::string RuntimeManager::podDir(const std::string& uid) const {
  return o_.root_dir + "/pods/" + uid;
}

std::string RuntimeManager::cgroupParent(const api::Pod& pod) const {
  return podCgroupParent(o_.cgroup_root, qosClass(pod.spec), pod.metadata.uid);
}

void RuntimeManager::gcBackoff() {
  const MonoTime now = clock_.monotonicNow();
  crash_backoff_.gc(now);
  image_backoff_.gc(now);
}

std::optional<int> RuntimeManager::containerPid(const std::string& id) {
  auto st = runtime_.containerStatus(id, true);
  if (!st) return std::nullopt;
  auto it = st->info.find("info");  // containerd: a JSON document with "pid"
  if (it == st->info.end()) return std::nullopt;
  auto j = nlohmann::json::parse(it->second, nullptr, false);
  if (!j.is_object() || !j.contains("pid") || !j["pid"].is_number_integer()) return std::nullopt;
  const int pid = j["pid"].get<int>();
  return pid > 0 ? std::optional(pid) : std::nullopt;
}

std::map<std::string, std::string> RuntimeManager::runningLogPaths() {
  std::map<std::string, std::string> out;
  auto cs = runtime_.listContainers({.state = cri::ContainerState::Running,
                                     .label_selector = labels::ownedSelector(o_.node_name)});
  if (!cs) return out;
  for (const auto& c : *cs) {
    auto it = log_paths_.find(c.id);
    if (it == log_paths_.end()) {  // one status call per container, then remembered
      auto st = runtime_.containerStatus(c.id, false);
      if (!st) continue;
      it = log_paths_.emplace(c.id, st->log_path).first;
    }
    out[c.id] = it->second;
  }
  std::erase_if(log_paths_, [&](const auto& kv) { return !out.contains(kv.first); });
  return out;
}

void RuntimeManager::linkContainerLog(const api::Pod& pod, const std::string& container,
                                      const std::string& id, const std::string& target) {
  if (o_.container_log_links_dir.empty()) return;
  // The kubelet's name, cut to 251 characters before ".log".
  std::string name = pod.metadata.name + "_" + pod.metadata.namespace_ + "_" + container + "-" + id;
  if (name.size() > 251) name.resize(251);
  const std::string link = o_.container_log_links_dir + "/" + name + ".log";
  std::error_code ec;
  fs::create_directories(o_.container_log_links_dir, ec);
  fs::remove(link, ec);
  fs::create_symlink(target, link, ec);
  if (ec) {
    NODELET_LOG(warn, Agent, "log link {}: {}", link, ec.message());
    return;
  }
  std::lock_guard g(links_mu_);
  log_links_[link] = id;
}

void RuntimeManager::pruneLogLinks(const std::set<std::string>& live) {
  if (o_.container_log_links_dir.empty()) return;
  std::vector<std::string> gone;
  {
    std::lock_guard g(links_mu_);
    if (!links_scanned_) {
      // After a restart: the links this node made before (they point into podLogsDir).
      links_scanned_ = true;
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(o_.container_log_links_dir, ec)) {
        std::error_code ec2;
        if (!e.is_symlink(ec2)) continue;
        const std::string target = fs::read_symlink(e.path(), ec2).string();
        if (ec2 || !target.starts_with(o_.pod_logs_dir + "/") ||
            !e.path().filename().string().ends_with(".log"))
          continue;
        log_links_.emplace(e.path().string(), "");  // its container: by the name's suffix
      }
    }
    for (auto it = log_links_.begin(); it != log_links_.end();) {
      bool alive = live.contains(it->second);
      if (it->second.empty()) {  // an earlier run's link: "...-<container id>.log"
        for (const auto& id : live)
          if (it->first.ends_with("-" + id + ".log")) {
            it->second = id;
            alive = true;
            break;
          }
      }
      if (alive) {
        ++it;
        continue;
      }
      gone.push_back(it->first);
      it = log_links_.erase(it);
    }
  }
  for (const auto& link : gone) {
    std::error_code ec;
    fs::remove(link, ec);
  }
}

Result<std::map<std::string, PodRuntimeStatus>> RuntimeManager::listPods() {
  const auto owned = labels::ownedSelector(o_.node_name);
  auto sbs = runtime_.listPodSandbox({.label_selector = owned});
  if (!sbs) return std::unexpected(sbs.error());
  auto cs = runtime_.listContainers({.label_selector = owned});
  if (!cs) return std::unexpected(cs.error());
  std::map<std::string, PodRuntimeStatus> pods;
  for (const auto& s : *sbs) {
    auto uid = s.labels.find(labels::kPodUid);
    if (uid == s.labels.end()) continue;
    auto& p = pods[uid->second];
    p.uid = uid->second;
    p.name = s.metadata.name;
    p.namespace_ = s.metadata.namespace_;
    p.sandboxes.push_back({s.id, s.metadata.attempt, s.state, s.created_at, "", {}});
  }
  for (const auto& c : *cs) {
    auto uid = c.labels.find(labels::kPodUid);
    if (uid == c.labels.end()) continue;
    auto& p = pods[uid->second];
    p.uid = uid->second;
    p.containers.push_back(fromList(c));
  }
  for (auto& [uid, p] : pods) sortNewestFirst(p);
  return pods;
}

Result<PodRuntimeStatus> RuntimeManager::podStatus(const std::string& uid) {
  const auto sel = withUid(labels::ownedSelector(o_.node_name), uid);
  auto sbs = runtime_.listPodSandbox({.label_selector = sel});
  if (!sbs) return std::unexpected(sbs.error());
  auto cs = runtime_.listContainers({.label_selector = sel});
  if (!cs) return std::unexpected(cs.error());
  PodRuntimeStatus p;
  p.uid = uid;
  for (const auto& s : *sbs) {
    p.name = s.metadata.name;
    p.namespace_ = s.metadata.namespace_;
    p.sandboxes.push_back({s.id, s.metadata.attempt, s.state, s.created_at, "", {}});
  }
  for (const auto& c : *cs) {
    RuntimeContainer rc = fromList(c);
    auto st = runtime_.containerStatus(c.id, false);
    if (!st) {
      if (st.error().code == ErrorCode::NotFound) continue;  // removed meanwhile
      return std::unexpected(st.error());
    }
    rc.status = *st;
    if (rc.exited() && rc.status.message.empty()) {
      // The container's termination message, as the kubelet reads it back.
      const fs::path f =
          fs::path(podDir(uid)) / "containers" / rc.status.name / std::to_string(rc.restart_count);
      rc.status.message = readSmallFile(f, 4096);
    }
    p.containers.push_back(std::move(rc));
  }
  sortNewestFirst(p);
  if (!p.sandboxes.empty() && p.sandboxes[0].state == cri::SandboxState::Ready) {
    auto ss = runtime_.podSandboxStatus(p.sandboxes[0].id, false);
    if (ss) {
      p.sandboxes[0].ip = ss->ip;
      p.sandboxes[0].additional_ips = ss->additional_ips;
      p.sandboxes[0].state = ss->state;
    }
  }
  return p;
}

cri::PodSandboxConfig RuntimeManager::sandboxConfig(const api::Pod& pod, uint32_t attempt) {
  cri::PodSandboxConfig c;
  c.metadata = {pod.metadata.name, pod.metadata.uid, pod.metadata.namespace_, attempt};
  // runc refuses a hostname without a private UTS namespace: none for hostNetwork pods.
  if (!pod.spec.host_network)
    c.hostname =
        network::kernelHostname(pod, o_.dns.cluster_domain).value_or(network::podHostname(pod));
  c.log_directory = o_.pod_logs_dir + "/" + pod.metadata.namespace_ + "_" + pod.metadata.name +
                    "_" + pod.metadata.uid;
  c.dns_config = network::podDnsConfig(pod, o_.dns).config;
  for (const auto* list : {&pod.spec.init_containers, &pod.spec.containers}) {
    for (const auto& ctr : *list) {
      for (const auto& p : ctr.ports) {
        if (p.host_port == 0) continue;
        c.port_mappings.push_back({p.protocol == "UDP"    ? cri::Protocol::Udp
                                   : p.protocol == "SCTP" ? cri::Protocol::Sctp
                                                          : cri::Protocol::Tcp,
                                   p.container_port, p.host_port, p.host_ip});
      }
    }
  }
  c.labels = labels::sandboxLabels(pod, o_.node_name);
  c.annotations = labels::sandboxAnnotations(pod);
  c.cgroup_parent = cgroupParent(pod);
  c.security.namespaces = namespaces(pod.spec);
  if (const auto& sc = pod.spec.security_context) {
    c.security.run_as_user = sc->run_as_user;
    c.security.run_as_group = sc->run_as_group;
    c.security.supplemental_groups = sc->supplemental_groups;
    if (sc->fs_group) c.security.supplemental_groups.push_back(*sc->fs_group);
    for (const auto& [k, v] : sc->sysctls) c.sysctls[k] = v;
  }
  // The sandbox gets the pod-level profile (a bad Localhost one fails the containers, with why).
  auto sb_seccomp = seccompFor(pod, nullptr, o_.root_dir, o_.seccomp_default);
  c.security.seccomp =
      sb_seccomp ? *sb_seccomp : cri::SecurityProfile{cri::SecurityProfile::Type::Unconfined, ""};
  return c;
}

Result<std::string> RuntimeManager::ensureImage(const api::Pod& pod, const api::Container& c,
                                                const cri::PodSandboxConfig& sandbox) {
  const auto ref = containerRef(pod, c.name);
  auto present = images_.imageStatus(c.image);
  if (!present) return std::unexpected(present.error().wrap("ImageStatus"));
  if (*present && c.image_pull_policy != "Always") {
    events_.record(ref, "Normal", "Pulled",
                   "Container image \"" + c.image + "\" already present on machine");
    return (*present)->id;
  }
  if (!*present && c.image_pull_policy == "Never") {
    const std::string msg =
        "Container image \"" + c.image + "\" is not present with pull policy of Never";
    events_.record(ref, "Warning", "ErrImageNeverPull", msg);
    return fail(ErrorCode::FailedPrecondition, "ErrImageNeverPull: " + msg);
  }
  const MonoTime now = clock_.monotonicNow();
  const std::string key = "image:" + c.image;
  if (image_backoff_.inBackoffSince(key, now, now + Duration(1))) {
    events_.record(ref, "Normal", "BackOff", "Back-off pulling image \"" + c.image + "\"");
    return fail(ErrorCode::Unavailable,
                "ImagePullBackOff: Back-off pulling image \"" + c.image + "\"");
  }
  // Credentials from the pod's imagePullSecrets that match the image, tried in turn; a Secret
  // that cannot be read is said (the pull may still work without it).
  RegistryKeyring keyring;
  std::vector<std::string> unreadable;
  kube::ObjectSource* objects = objectsFor(pod);
  for (const auto& name : pod.spec.image_pull_secrets) {
    auto data = objects ? objects->secret(pod.metadata.namespace_, name)
                        : Result<std::optional<kube::ObjectSource::Data>>(std::nullopt);
    if (!data || !*data || !keyring.addSecret(**data)) unreadable.push_back(name);
  }
  if (!unreadable.empty()) {
    std::string list;
    for (const auto& n : unreadable) list += (list.empty() ? "" : ", ") + n;
    events_.record(podRef(pod), "Warning", "FailedToRetrieveImagePullSecret",
                   "Unable to retrieve some image pull secrets (" + list +
                       "); attempting to pull the image may not succeed.");
  }
  const std::vector<cri::AuthConfig> creds = keyring.lookup(c.image);
  events_.record(ref, "Normal", "Pulling", "Pulling image \"" + c.image + "\"");
  const MonoTime start = clock_.monotonicNow();
  if (o_.startup) o_.startup->imagePullStarted(pod.metadata.uid);
  Result<std::string> pulled = fail(ErrorCode::Internal, "no pull attempted");
  if (creds.empty()) pulled = images_.pullImage(c.image, nullptr, &sandbox);
  for (const auto& auth : creds) {
    pulled = images_.pullImage(c.image, &auth, &sandbox);
    if (pulled) break;
  }
  if (o_.startup && pulled) o_.startup->imagePullFinished(pod.metadata.uid);
  if (!pulled) {
    image_backoff_.next(key, clock_.monotonicNow());
    events_.record(ref, "Warning", "Failed",
                   "Failed to pull image \"" + c.image + "\": " + pulled.error().message);
    return fail(ErrorCode::Unavailable, "ErrImagePull: " + pulled.error().message);
  }
  image_backoff_.reset(key);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(clock_.monotonicNow() - start).count();
  events_.record(ref, "Normal", "Pulled",
                 "Successfully pulled image \"" + c.image + "\" in " + std::to_string(ms) + "ms");
  return *pulled;
}

std::vector<std::pair<std::string, std::string>> serviceEnv(
    const std::vector<kube::ObjectSource::Service>& services) {
  auto upper = [](std::string s) {
    for (auto& c : s)
      c = c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
  };
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& s : services) {
    if (s.ports.empty()) continue;
    const std::string name = upper(s.name);
    const std::string host =
        s.cluster_ip.find(':') != std::string::npos ? "[" + s.cluster_ip + "]" : s.cluster_ip;
    out.emplace_back(name + "_SERVICE_HOST", s.cluster_ip);
    out.emplace_back(name + "_SERVICE_PORT", std::to_string(s.ports[0].port));
    for (const auto& p : s.ports)
      if (!p.name.empty())
        out.emplace_back(name + "_SERVICE_PORT_" + upper(p.name), std::to_string(p.port));
    auto lower = [](std::string v) {
      for (auto& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      return v;
    };
    const auto& first = s.ports[0];
    out.emplace_back(name + "_PORT",
                     lower(first.protocol) + "://" + host + ":" + std::to_string(first.port));
    for (const auto& p : s.ports) {
      const std::string proto = lower(p.protocol);
      const std::string prefix = name + "_PORT_" + std::to_string(p.port) + "_" + upper(p.protocol);
      out.emplace_back(prefix, proto + "://" + host + ":" + std::to_string(p.port));
      out.emplace_back(prefix + "_PROTO", proto);
      out.emplace_back(prefix + "_PORT", std::to_string(p.port));
      out.emplace_back(prefix + "_ADDR", s.cluster_ip);
    }
  }
  return out;
}

Status RuntimeManager::checkNonRoot(const api::Pod& pod, const api::Container& c) {
  const auto& psc = pod.spec.security_context;
  const auto& csc = c.security_context;
  const bool non_root = (csc && csc->run_as_non_root)   ? *csc->run_as_non_root
                        : (psc && psc->run_as_non_root) ? *psc->run_as_non_root
                                                        : false;
  if (!non_root) return {};
  const std::string who = "(pod: \"" + pod.metadata.name + "_" + pod.metadata.namespace_ + "(" +
                          pod.metadata.uid + ")\", container: " + c.name + ")";
  std::optional<int64_t> uid = (csc && csc->run_as_user) ? csc->run_as_user
                               : psc                     ? psc->run_as_user
                                                         : std::nullopt;
  if (uid) {
    if (*uid == 0)
      return fail(ErrorCode::PermissionDenied,
                  "container's runAsUser breaks non-root policy " + who);
    return {};
  }
  // No runAsUser: the image's user decides (as the kubelet verifies it).
  auto img = images_.imageStatus(c.image);
  if (!img || !*img)
    return fail(ErrorCode::Unavailable, "cannot verify the user of image " + c.image + " " + who);
  const cri::Image& i = **img;
  if (i.uid) {
    if (*i.uid == 0)
      return fail(ErrorCode::PermissionDenied,
                  "container has runAsNonRoot and image will run as root " + who);
    return {};
  }
  if (!i.username.empty())
    return fail(ErrorCode::PermissionDenied,
                "container has runAsNonRoot and image has non-numeric user (" + i.username +
                    "), cannot verify user is non-root " + who);
  return fail(ErrorCode::PermissionDenied,
              "container has runAsNonRoot and image will run as root " + who);
}

Result<std::vector<std::pair<std::string, std::string>>> RuntimeManager::containerEnv(
    const api::Pod& pod, const api::Container& c, const std::string& pod_ip) {
  kube::ObjectSource* objects = objectsFor(pod);
  std::vector<std::pair<std::string, std::string>> out;
  std::map<std::string, std::string> vars;
  // Service variables first (the pod's namespace when enableServiceLinks, and always the API
  // server's `kubernetes` service), then envFrom, then env: later entries win.
  if (objects) {
    std::vector<kube::ObjectSource::Service> svcs;
    if (pod.spec.enable_service_links.value_or(true)) {
      // Offline first: with the API server away and nothing read yet, the container starts
      // without these variables (the kubelet refuses to start it) and says so.
      auto in_ns = objects->services(pod.metadata.namespace_);
      if (in_ns)
        svcs = *in_ns;
      else
        NODELET_LOG(warn, Agent, "pod {}: starting {} without service environment variables: {}",
                    pod.fullName(), c.name, in_ns.error().message);
    }
    if (pod.metadata.namespace_ != "default" || !pod.spec.enable_service_links.value_or(true)) {
      if (auto def = objects->services("default"))
        for (const auto& s : *def)
          if (s.name == "kubernetes") svcs.push_back(s);
    }
    for (auto& [k, v] : serviceEnv(svcs)) {
      vars[k] = v;
      out.emplace_back(std::move(k), std::move(v));
    }
  }
  // envFrom next; env entries of the same name win (they come later).
  for (const auto& f : c.env_from) {
    const std::string kind = f.secret ? "secret" : "configmap";
    if (!objects) {
      if (f.optional) continue;
      return fail(ErrorCode::FailedPrecondition,
                  "envFrom " + kind + " \"" + f.name + "\": needs an API server (cluster mode)");
    }
    auto data = f.secret ? objects->secret(pod.metadata.namespace_, f.name)
                         : objects->configMap(pod.metadata.namespace_, f.name);
    if (!data) return std::unexpected(data.error().wrap("envFrom"));
    if (!*data) {
      if (f.optional) continue;
      return fail(ErrorCode::NotFound, kind + " \"" + f.name + "\" not found");
    }
    std::vector<std::string> invalid;
    for (const auto& [k, v] : **data) {
      const std::string name = f.prefix + k;
      // An environment variable name: printable ASCII, no '=' (the kubelet's rule since 1.32).
      const bool ok = !name.empty() && std::all_of(name.begin(), name.end(), [](char ch) {
        return ch >= 0x20 && ch < 0x7f && ch != '=';
      });
      if (!ok) {
        invalid.push_back(name);
        continue;
      }
      vars[name] = v;
      out.emplace_back(name, v);
    }
    if (!invalid.empty()) {
      std::string list;
      for (const auto& n : invalid) list += (list.empty() ? "" : ", ") + n;
      events_.record(
          containerRef(pod, c.name), "Warning", "InvalidEnvironmentVariableNames",
          "Keys [" + list + "] from the EnvFrom " + (f.secret ? "secret " : "configMap ") +
              pod.metadata.namespace_ + "/" + f.name +
              " were skipped since they are considered invalid environment variable names.");
    }
  }
  for (const auto& e : c.env) {
    std::string value;
    switch (e.source) {
      case api::EnvVar::Source::Value:
        value = expandVars(e.value, vars);
        break;
      case api::EnvVar::Source::FieldRef: {
        auto v = fieldValue(pod, e.field_path, pod_ip, o_.node_ip);
        if (!v) return std::unexpected(v.error().wrap("env " + e.name));
        value = *v;
        break;
      }
      case api::EnvVar::Source::ResourceFieldRef: {
        auto v = resourceValue(pod, c, e, o_.node_cpu_milli, o_.node_memory_bytes);
        if (!v) return std::unexpected(v.error().wrap("env " + e.name));
        value = *v;
        break;
      }
      case api::EnvVar::Source::ConfigMapKeyRef:
      case api::EnvVar::Source::SecretKeyRef: {
        const bool cm = e.source == api::EnvVar::Source::ConfigMapKeyRef;
        const std::string kind = cm ? "configmap" : "secret";
        if (!objects) {
          if (e.optional) continue;
          return fail(
              ErrorCode::FailedPrecondition,
              "env " + e.name + ": " + kind + " references need an API server (cluster mode)");
        }
        auto data = cm ? objects->configMap(pod.metadata.namespace_, e.ref_name)
                       : objects->secret(pod.metadata.namespace_, e.ref_name);
        if (!data) return std::unexpected(data.error().wrap("env " + e.name));
        if (!*data || !(*data)->contains(e.ref_key)) {
          if (e.optional) continue;
          if (!*data) return fail(ErrorCode::NotFound, kind + " \"" + e.ref_name + "\" not found");
          return fail(ErrorCode::NotFound, "couldn't find key " + e.ref_key + " in " +
                                               (cm ? "ConfigMap " : "Secret ") +
                                               pod.metadata.namespace_ + "/" + e.ref_name);
        }
        value = (*data)->at(e.ref_key);
        break;
      }
    }
    vars[e.name] = value;
    out.emplace_back(e.name, value);
  }
  // One entry per name, the last value winning (a process reads the first of duplicates).
  std::vector<std::pair<std::string, std::string>> unique;
  std::map<std::string, size_t> at;
  for (auto& [k, v] : out) {
    auto [it, fresh] = at.emplace(k, unique.size());
    if (fresh)
      unique.emplace_back(k, std::move(v));
    else
      unique[it->second].second = std::move(v);
  }
  return unique;
}

namespace {

// metadata.labels / metadata.annotations in a downwardAPI file: sorted key="value" lines.
std::string formatMap(const api::StringMap& m) {
  std::string out;
  for (const auto& [k, v] : m) {
    std::string q;
    for (char c : v) {
      if (c == '"' || c == '\\') q += '\\';
      if (c == '\n') {
        q += "\\n";
        continue;
      }
      q += c;
    }
    out += (out.empty() ? "" : "\n") + k + "=\"" + q + "\"";
  }
  return out;
}

const char* volumeDir(api::Volume::Kind k) {
  switch (k) {
    case api::Volume::Kind::ConfigMap:
      return "kubernetes.io~configmap";
    case api::Volume::Kind::Secret:
      return "kubernetes.io~secret";
    case api::Volume::Kind::DownwardAPI:
      return "kubernetes.io~downward-api";
    case api::Volume::Kind::Projected:
      return "kubernetes.io~projected";
    case api::Volume::Kind::EmptyDir:
    case api::Volume::Kind::HostPath:
    case api::Volume::Kind::Other:
      return "kubernetes.io~other";
  }
  return "kubernetes.io~other";
}

}  // namespace

kube::ObjectSource* RuntimeManager::objectsFor(const api::Pod& pod) const {
  return api::isStaticPod(pod) ? o_.static_objects : o_.objects;
}

Result<std::string> RuntimeManager::runtimeHandler(const api::Pod& pod) const {
  const std::string& name = pod.spec.runtime_class_name;
  if (name.empty()) return std::string();  // the runtime's default handler
  kube::ObjectSource* objects = objectsFor(pod);
  if (!objects) return std::string();  // no RuntimeClasses anywhere: the kubelet's default too
  auto handler = objects->runtimeHandler(name);
  if (!handler) return std::unexpected(handler.error());
  // The kubelet's message (its RuntimeClass lister's NotFound).
  if (!*handler)
    return fail(ErrorCode::NotFound, "runtimeclass.node.k8s.io \"" + name + "\" not found");
  return **handler;
}

Result<Payload> RuntimeManager::dataPayload(const api::Pod& pod, const api::Volume& v,
                                            const std::string& pod_ip) {
  kube::ObjectSource* objects = objectsFor(pod);
  Payload out;
  const int32_t def = v.default_mode.value_or(0644);
  const std::string& ns = pod.metadata.namespace_;
  auto keys = [&](bool cm, const std::string& name, const std::vector<api::KeyToPath>& items,
                  bool optional) -> Status {
    const std::string kind = cm ? "configmap" : "secret";
    if (!objects)
      return fail(ErrorCode::FailedPrecondition,
                  kind + " \"" + name + "\": needs an API server (cluster mode)");
    auto data = cm ? objects->configMap(ns, name) : objects->secret(ns, name);
    if (!data) return std::unexpected(data.error());
    if (!*data) {
      if (optional) return {};
      return fail(ErrorCode::NotFound, kind + " \"" + name + "\" not found");
    }
    if (items.empty()) {
      for (const auto& [k, val] : **data) {
        if (auto s = validateKey(k); !s)
          return std::unexpected(s.error().wrap(kind + " \"" + name + "\""));
        out[k] = {val, def};
      }
      return {};
    }
    for (const auto& it : items) {
      if (auto s = validatePayloadPath(it.path); !s)
        return std::unexpected(s.error().wrap(kind + " \"" + name + "\" item " + it.key));
      auto val = (*data)->find(it.key);
      if (val == (*data)->end()) {
        if (optional) continue;
        return fail(ErrorCode::NotFound, kind + " \"" + name + "\": no key " + it.key);
      }
      out[it.path] = {val->second, it.mode.value_or(def)};
    }
    return {};
  };
  auto downward = [&](const std::vector<api::DownwardApiFile>& files) -> Status {
    for (const auto& f : files) {
      if (auto s = validatePayloadPath(f.path); !s)
        return std::unexpected(s.error().wrap("downwardAPI"));
      std::string value;
      if (!f.field_path.empty()) {
        if (f.field_path == "metadata.labels") {
          value = formatMap(pod.metadata.labels);
        } else if (f.field_path == "metadata.annotations") {
          value = formatMap(pod.metadata.annotations);
        } else {
          auto r = fieldValue(pod, f.field_path, pod_ip, o_.node_ip);
          if (!r) return std::unexpected(r.error().wrap("downwardAPI " + f.path));
          value = *r;
        }
      } else {
        const api::Container* c = api::findContainer(pod.spec, f.container_name);
        if (!c)
          return fail(ErrorCode::InvalidArgument,
                      "downwardAPI " + f.path + ": no container \"" + f.container_name + "\"");
        api::EnvVar e;
        e.field_path = f.resource;
        e.container_name = f.container_name;
        e.divisor = f.divisor;
        auto r = resourceValue(pod, *c, e, o_.node_cpu_milli, o_.node_memory_bytes);
        if (!r) return std::unexpected(r.error().wrap("downwardAPI " + f.path));
        value = *r;
      }
      out[f.path] = {value, f.mode.value_or(def)};
    }
    return {};
  };
  Status s;
  switch (v.kind) {
    case api::Volume::Kind::ConfigMap:
    case api::Volume::Kind::Secret:
      s = keys(v.kind == api::Volume::Kind::ConfigMap, v.ref_name, v.items, v.optional);
      break;
    case api::Volume::Kind::DownwardAPI:
      s = downward(v.downward);
      break;
    case api::Volume::Kind::Projected:
      for (const auto& src : v.sources) {
        switch (src.kind) {
          case api::VolumeProjection::Kind::ConfigMap:
          case api::VolumeProjection::Kind::Secret:
            s = keys(src.kind == api::VolumeProjection::Kind::ConfigMap, src.name, src.items,
                     src.optional);
            break;
          case api::VolumeProjection::Kind::DownwardAPI:
            s = downward(src.downward);
            break;
          case api::VolumeProjection::Kind::ServiceAccountToken: {
            if (auto p = validatePayloadPath(src.path); !p)
              return std::unexpected(p.error().wrap("serviceAccountToken"));
            if (!objects)
              return fail(ErrorCode::FailedPrecondition,
                          "serviceAccountToken: needs an API server (cluster mode)");
            auto t = objects->serviceAccountToken(pod, src.audience, src.expiration_seconds);
            if (!t) return std::unexpected(t.error());
            out[src.path] = {t->token, def};
            break;
          }
          case api::VolumeProjection::Kind::Other:
            return fail(ErrorCode::InvalidArgument,
                        "projected source " + src.other_kind + " is not supported");
        }
        if (!s) return std::unexpected(s.error());
      }
      break;
    case api::Volume::Kind::EmptyDir:
    case api::Volume::Kind::HostPath:
    case api::Volume::Kind::Other:
      return fail(ErrorCode::InvalidArgument, "volume \"" + v.name + "\" holds no data");
  }
  if (!s) return std::unexpected(s.error());
  return out;
}

Result<std::string> RuntimeManager::prepareDataVolume(const api::Pod& pod, const api::Volume& v,
                                                      const std::string& pod_ip) {
  auto payload = dataPayload(pod, v, pod_ip);
  if (!payload)
    return std::unexpected(
        payload.error().wrap("MountVolume.SetUp failed for volume \"" + v.name + "\""));
  const fs::path dir = fs::path(podDir(pod.metadata.uid)) / "volumes" / volumeDir(v.kind) / v.name;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (v.kind == api::Volume::Kind::Secret || v.kind == api::Volume::Kind::Projected) {
    // Secrets and tokens never touch a disk: the volume is a tmpfs (unmounted with the pod).
    struct stat a {
    }, b{};
    const bool mounted = ::stat(dir.c_str(), &a) == 0 &&
                         ::stat(dir.parent_path().c_str(), &b) == 0 && a.st_dev != b.st_dev;
    if (!mounted && ::mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0)
      return fail(ErrorCode::Internal,
                  "mount tmpfs for volume \"" + v.name + "\": " + strerror(errno));
  }
  // fsGroup: the files belong to the pod's group and are group-readable (read-only volumes).
  std::optional<int64_t> gid;
  if (pod.spec.security_context && pod.spec.security_context->fs_group) {
    gid = pod.spec.security_context->fs_group;
    for (auto& [path, f] : *payload) f.mode |= 0440;
    (void)::chown(dir.c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(*gid));
  }
  auto w = writeAtomically(dir.string(), *payload, clock_, gid);
  if (!w) return std::unexpected(w.error().wrap("volume \"" + v.name + "\""));
  return dir.string();
}

void RuntimeManager::refreshDataVolumes(const api::Pod& pod, const std::string& pod_ip) {
  std::string problems;
  for (const auto& v : pod.spec.volumes) {
    if (v.kind != api::Volume::Kind::ConfigMap && v.kind != api::Volume::Kind::Secret &&
        v.kind != api::Volume::Kind::DownwardAPI && v.kind != api::Volume::Kind::Projected)
      continue;
    if (auto d = prepareDataVolume(pod, v, pod_ip); !d)
      problems += (problems.empty() ? "" : "; ") + d.error().message;
  }
  auto& last = volume_errors_[pod.metadata.uid];
  if (!problems.empty() && problems != last)
    events_.record(podRef(pod), "Warning", "FailedMount", problems);
  last = problems;
}

Result<std::vector<cri::Mount>> RuntimeManager::containerMounts(
    const api::Pod& pod, const api::Container& c, const std::string& pod_ip, int32_t restart_count,
    const std::map<std::string, std::string>& env) {
  std::vector<cri::Mount> mounts;
  const fs::path pdir = podDir(pod.metadata.uid);
  bool user_hosts = false, user_termination = false;
  for (const auto& m : c.volume_mounts) {
    const api::Volume* v = nullptr;
    for (const auto& vol : pod.spec.volumes)
      if (vol.name == m.name) v = &vol;
    if (!v) return fail(ErrorCode::InvalidArgument, "volume \"" + m.name + "\" not found");
    fs::path host;
    std::error_code ec;
    if (v->kind == api::Volume::Kind::EmptyDir) {
      host = pdir / "volumes" / "kubernetes.io~empty-dir" / v->name;
      fs::create_directories(host, ec);
      ::chmod(host.c_str(), 0777);
      if (pod.spec.security_context && pod.spec.security_context->fs_group) {
        // fsGroup: the volume belongs to the pod's group, and what is created in it stays so.
        (void)::chown(host.c_str(), static_cast<uid_t>(-1),
                      static_cast<gid_t>(*pod.spec.security_context->fs_group));
        ::chmod(host.c_str(), 02777);
      }
      if (v->medium == "Memory") {
        // tmpfs, sized by sizeLimit when given (mounted once; unmounted with the pod).
        std::string opts = "mode=0777";
        if (!v->size_limit.empty())
          if (auto b = api::parseQuantity(v->size_limit)) opts += ",size=" + std::to_string(*b);
        struct stat a {
        }, b{};
        const bool mounted = ::stat(host.c_str(), &a) == 0 &&
                             ::stat(host.parent_path().c_str(), &b) == 0 && a.st_dev != b.st_dev;
        if (!mounted &&
            ::mount("tmpfs", host.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) != 0)
          return fail(ErrorCode::Internal,
                      "mount tmpfs for emptyDir \"" + v->name + "\": " + strerror(errno));
      }
    } else if (v->kind == api::Volume::Kind::HostPath) {
      host = v->path;
      struct stat st {};
      const bool exists = ::stat(host.c_str(), &st) == 0;
      const std::string& t = v->host_path_type;
      auto bad = [&](const char* what) {
        return fail(ErrorCode::FailedPrecondition,
                    "hostPath type check failed: " + v->path + " is not " + what);
      };
      if (t == "DirectoryOrCreate" && !exists) {
        fs::create_directories(host, ec);
        if (ec) return fail(ErrorCode::Internal, "create " + v->path + ": " + ec.message());
        ::chmod(host.c_str(), 0755);
      } else if (t == "FileOrCreate" && !exists) {
        fs::create_directories(host.parent_path(), ec);
        const int fd = ::open(host.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        if (fd < 0) return fail(ErrorCode::Internal, "create " + v->path + ": " + strerror(errno));
        ::close(fd);
      } else if (t == "Directory" && !(exists && S_ISDIR(st.st_mode))) {
        return bad("a directory");
      } else if (t == "File" && !(exists && S_ISREG(st.st_mode))) {
        return bad("a file");
      } else if (t == "Socket" && !(exists && S_ISSOCK(st.st_mode))) {
        return bad("a socket file");
      } else if (t == "CharDevice" && !(exists && S_ISCHR(st.st_mode))) {
        return bad("a character device");
      } else if (t == "BlockDevice" && !(exists && S_ISBLK(st.st_mode))) {
        return bad("a block device");
      }
    } else if (v->kind == api::Volume::Kind::ConfigMap || v->kind == api::Volume::Kind::Secret ||
               v->kind == api::Volume::Kind::DownwardAPI ||
               v->kind == api::Volume::Kind::Projected) {
      auto dir = prepareDataVolume(pod, *v, pod_ip);
      if (!dir) return std::unexpected(dir.error());
      host = *dir;
    } else {
      return fail(ErrorCode::InvalidArgument,
                  "volume \"" + v->name + "\": unsupported type " + v->other_kind);
    }
    // subPathExpr: $(VAR) from the container's environment, then a subPath like any other.
    const std::string sub_path =
        !m.sub_path_expr.empty() ? expandVars(m.sub_path_expr, env) : m.sub_path;
    if (!sub_path.empty()) {
      const fs::path base = fs::weakly_canonical(host, ec);
      fs::path sub = fs::weakly_canonical(host / sub_path, ec);
      const auto rel = sub.lexically_relative(base);
      if (ec || rel.empty() || *rel.begin() == ".." || fs::path(sub_path).is_absolute())
        return fail(ErrorCode::InvalidArgument,
                    "subPath \"" + sub_path + "\" escapes volume \"" + v->name + "\"");
      if (!fs::exists(sub)) fs::create_directories(sub, ec);
      host = sub;
    }
    cri::Mount cm;
    cm.container_path = m.mount_path;
    cm.host_path = host.string();
    cm.readonly = m.read_only;
    cm.propagation = m.mount_propagation == "Bidirectional" ? cri::MountPropagation::Bidirectional
                     : m.mount_propagation == "HostToContainer"
                         ? cri::MountPropagation::HostToContainer
                         : cri::MountPropagation::Private;
    mounts.push_back(cm);
    user_hosts = user_hosts || m.mount_path == "/etc/hosts";
    user_termination = user_termination || m.mount_path == c.termination_message_path;
  }
  if (!pod.spec.host_network && !user_hosts) {
    cri::Mount hosts;
    hosts.container_path = "/etc/hosts";
    hosts.host_path = (pdir / "etc-hosts").string();
    mounts.push_back(hosts);
  }
  if (!user_termination && !c.termination_message_path.empty()) {
    // The container writes its termination message here; nodelet reads it when it exits.
    const fs::path dir = pdir / "containers" / c.name;
    std::error_code ec;
    fs::create_directories(dir, ec);
    const fs::path f = dir / std::to_string(restart_count);
    const int fd = ::open(f.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0666);
    if (fd >= 0) {
      ::fchmod(fd, 0666);
      ::close(fd);
      cri::Mount tm;
      tm.container_path = c.termination_message_path;
      tm.host_path = f.string();
      mounts.push_back(tm);
    }
  }
  return mounts;
}

RuntimeManager::StartResult RuntimeManager::startContainer(
    const api::Pod& pod, const api::Container& c, const char* type, const std::string& sandbox_id,
    const cri::PodSandboxConfig& sandbox, const std::string& pod_ip,
    const PodRuntimeStatus& status) {
  const auto ref = containerRef(pod, c.name);
  const RuntimeContainer* prev = status.latest(c.name);
  const int32_t restart_count = prev ? prev->restart_count + 1 : 0;

  auto image = ensureImage(pod, c, sandbox);
  if (!image) {
    const auto& m = image.error().message;
    const auto colon = m.find(':');
    const std::string reason =
        colon != std::string::npos && (m.starts_with("ErrImage") || m.starts_with("ImagePull"))
            ? m.substr(0, colon)
            : "ErrImagePull";
    return {false, {reason, colon != std::string::npos ? m.substr(colon + 2) : m}};
  }
  if (auto nr = checkNonRoot(pod, c); !nr) {
    events_.record(ref, "Warning", "Failed", "Error: " + nr.error().message);
    return {false, {"CreateContainerConfigError", nr.error().message}};
  }
  auto env = containerEnv(pod, c, pod_ip);
  if (!env) {
    events_.record(ref, "Warning", "Failed", "Error: " + env.error().message);
    return {false, {"CreateContainerConfigError", env.error().message}};
  }
  const std::map<std::string, std::string> env_map(env->begin(), env->end());
  auto mounts = containerMounts(pod, c, pod_ip, restart_count, env_map);
  if (!mounts) {
    events_.record(ref, "Warning", "Failed", "Error: " + mounts.error().message);
    return {false, {"CreateContainerConfigError", mounts.error().message}};
  }
  std::map<std::string, std::string> vars(env->begin(), env->end());
  cri::ContainerConfig cc;
  cc.name = c.name;
  cc.attempt = static_cast<uint32_t>(restart_count);
  cc.image = c.image;
  for (const auto& s : c.command) cc.command.push_back(expandVars(s, vars));
  for (const auto& s : c.args) cc.args.push_back(expandVars(s, vars));
  cc.working_dir = c.working_dir;
  cc.envs = std::move(*env);
  cc.mounts = std::move(*mounts);
  cc.labels = labels::containerLabels(pod, c, o_.node_name, type);
  cc.annotations = labels::containerAnnotations(pod, c, restart_count);
  cc.log_path = c.name + "/" + std::to_string(restart_count) + ".log";
  cc.stdin_ = c.stdin_;
  cc.stdin_once = c.stdin_once;
  cc.tty = c.tty;
  cc.resources = containerResources(pod, c, o_.node_memory_bytes);
  auto& sec = cc.security;
  sec.namespaces = namespaces(pod.spec);
  if (!c.target_container_name.empty()) {
    // kubectl debug --target: the ephemeral container joins that container's PID namespace.
    const RuntimeContainer* target = status.latest(c.target_container_name, sandbox_id);
    if (!target || !target->running()) {
      const std::string msg = "target container \"" + c.target_container_name + "\" is not running";
      events_.record(ref, "Warning", "Failed", "Error: " + msg);
      return {false, {"CreateContainerError", msg}};
    }
    sec.namespaces.pid = cri::NamespaceMode::Target;
    sec.namespaces.target_id = target->status.id;
  }
  if (const auto& psc = pod.spec.security_context) {
    sec.run_as_user = psc->run_as_user;
    sec.run_as_group = psc->run_as_group;
    sec.supplemental_groups = psc->supplemental_groups;
    if (psc->fs_group) sec.supplemental_groups.push_back(*psc->fs_group);
  }
  if (const auto& sc = c.security_context) {
    if (sc->run_as_user) sec.run_as_user = sc->run_as_user;
    if (sc->run_as_group) sec.run_as_group = sc->run_as_group;
    sec.privileged = sc->privileged.value_or(false);
    sec.readonly_rootfs = sc->read_only_root_filesystem.value_or(false);
    sec.no_new_privs =
        sc->allow_privilege_escalation.has_value() && !*sc->allow_privilege_escalation;
    if (sc->capabilities) {
      sec.add_capabilities = sc->capabilities->add;
      sec.drop_capabilities = sc->capabilities->drop;
    }
  }
  // procMount Unmasked: /proc as it is (no masked or read-only paths), as for privileged.
  const bool unmasked = c.security_context && c.security_context->proc_mount == "Unmasked";
  if (!sec.privileged && !unmasked) {
    sec.masked_paths = cri::defaultMaskedPaths();
    sec.readonly_paths = cri::defaultReadonlyPaths();
  }
  auto seccomp = seccompFor(pod, &c, o_.root_dir, o_.seccomp_default);
  if (!seccomp) {
    events_.record(ref, "Warning", "Failed", "Error: " + seccomp.error().message);
    return {false, {"CreateContainerError", seccomp.error().message}};
  }
  sec.seccomp = *seccomp;

  auto id = runtime_.createContainer(sandbox_id, cc, sandbox);
  if (!id) {
    events_.record(ref, "Warning", "Failed", "Error: " + id.error().message);
    return {false, {"CreateContainerError", id.error().message}};
  }
  events_.record(ref, "Normal", "Created", "Created container: " + c.name);
  linkContainerLog(pod, c.name, *id, sandbox.log_directory + "/" + cc.log_path);
  if (prev) {
    // A restart: the next one waits longer (the kubelet's crash-loop back-off). A container
    // this sync killed (a failed probe) was still running when the sync began: it ended now.
    const MonoTime finished =
        prev->exited()
            ? toMonotonic(prev->status.finished_at, clock_.monotonicNow(), clock_.systemNow())
            : clock_.monotonicNow();
    crash_backoff_.next(backoffKey(pod, c), finished);
  }
  (std::string(type) == "app" ? started_app_ : started_init_).fetch_add(1);
  if (auto s = runtime_.startContainer(*id); !s) {
    events_.record(ref, "Warning", "Failed", "Error: " + s.error().message);
    return {false, {"RunContainerError", s.error().message}};
  }
  events_.record(ref, "Normal", "Started", "Started container " + c.name);
  if (c.lifecycle && c.lifecycle->post_start) {
    const auto timeout =
        std::chrono::seconds(pod.spec.termination_grace_period_seconds.value_or(30));
    const std::string msg = runHook(pod, c, *id, *c.lifecycle->post_start, pod_ip, timeout);
    if (!msg.empty()) {
      events_.record(ref, "Warning", "FailedPostStartHook", msg);
      (void)runtime_.stopContainer(*id, kMinGraceSeconds);
      return {false, {"PostStartHookError", msg}};
    }
  }
  return {true, {}};
}

std::string RuntimeManager::runHook(const api::Pod& pod, const api::Container& c,
                                    const std::string& container_id, const api::Handler& h,
                                    const std::string& pod_ip, Duration timeout) {
  const std::string who = "Container \"" + c.name + "\" in Pod \"" + pod.metadata.name + "_" +
                          pod.metadata.namespace_ + "(" + pod.metadata.uid + ")\"";
  if (h.exec) {
    auto r = runtime_.execSync(container_id, h.exec->command,
                               std::chrono::duration_cast<std::chrono::seconds>(timeout));
    if (r && r->exit_code == 0) return "";
    std::string cmd;
    for (const auto& a : h.exec->command) cmd += (cmd.empty() ? "" : " ") + a;
    const std::string output = r ? r->stdout_ + r->stderr_ : "";
    const std::string err = !r ? r.error().message
                               : "command '" + cmd + "' exited with " +
                                     std::to_string(r->exit_code) + ": " + r->stderr_;
    return "Exec lifecycle hook ([" + cmd + "]) for " + who + " failed - error: " + err +
           ", message: \"" + output + "\"";
  }
  if (h.http_get) {
    // To the pod (the node's address for hostNetwork pods), as the kubelet's HTTP hooks: any
    // answer will do, only a request that gets none fails the hook.
    const auto out = probes::DefaultRunner::http(*h.http_get, {pod_ip, c.ports}, timeout);
    if (out.result == probes::ProbeResult::Success ||
        out.output.starts_with("HTTP probe failed with statuscode"))
      return "";
    return "HTTP lifecycle hook (" + h.http_get->path + ") for " + who +
           " failed - error: " + out.output;
  }
  if (h.sleep) {
    // In nodelet, not in the container (which may have no sleep binary), as the kubelet does.
    clock_.sleepUntil(clock_.monotonicNow() +
                      std::min<Duration>(std::chrono::seconds(h.sleep->seconds), timeout));
    return "";
  }
  return "";  // tcpSocket is deprecated for hooks and does nothing, as in the kubelet
}

SyncResult RuntimeManager::syncPod(const api::Pod& pod, const PodRuntimeStatus& status,
                                   const std::map<std::string, Unhealthy>* unhealthy) {
  SyncResult res;
  // After a restart of nodelet the back-off continues from what the runtime shows.
  for (const auto* list : {&pod.spec.init_containers, &pod.spec.containers}) {
    for (const auto& c : *list) {
      const RuntimeContainer* last = status.latest(c.name);
      if (last && last->exited() && last->restart_count > 0)
        crash_backoff_.seed(
            backoffKey(pod, c), last->restart_count,
            toMonotonic(last->status.finished_at, clock_.monotonicNow(), clock_.systemNow()));
    }
  }
  const PodActions a = computePodActions(
      pod, status, {clock_.monotonicNow(), clock_.systemNow(), &crash_backoff_, unhealthy});
  res.waiting = a.waiting;
  res.requeue_after = a.requeue_after;
  res.pod_done = a.pod_done;
  if (a.kill_pod) {
    if (a.create_sandbox)
      events_.record(podRef(pod), "Normal", "SandboxChanged",
                     "Pod sandbox changed, it will be killed and re-created.");
    if (auto s = killPod(&pod, status); !s) {
      res.error = s;
      return res;
    }
  }
  const int64_t grace = pod.spec.termination_grace_period_seconds.value_or(30);
  for (const auto& k : a.containers_to_kill) {
    for (const auto& c : status.containers) {
      if (c.status.id != k.id) continue;
      if (!k.message.empty())
        events_.record(containerRef(pod, k.name), "Normal", "Killing", k.message);
      if (c.running())
        stopContainer(&pod, c, k.grace_seconds.value_or(grace), podIp(pod, status));
      else
        (void)runtime_.removeContainer(c.status.id);
    }
  }
  if (a.pod_done || (!a.create_sandbox && a.sandbox_id.empty())) return res;
  // Data volumes of a running pod follow their objects (a ConfigMap edit shows up in place).
  if (!a.create_sandbox && std::any_of(status.containers.begin(), status.containers.end(),
                                       [](const RuntimeContainer& c) { return c.running(); })) {
    const RuntimeSandbox* sb = status.currentSandbox();
    refreshDataVolumes(pod, sb ? sb->ip : "");
  }
  // Most syncs (resyncs, status refreshes) have nothing to create or start: stop here, before
  // building the sandbox config (DNS included) that only creation needs.
  if (!a.create_sandbox && a.init_to_start.empty() && a.containers_to_start.empty() &&
      a.ephemeral_to_start.empty())
    return res;

  std::string sandbox_id = a.sandbox_id;
  const RuntimeSandbox* current = status.currentSandbox();
  const uint32_t attempt = a.create_sandbox || !current ? a.attempt : current->attempt;
  const cri::PodSandboxConfig sandbox = sandboxConfig(pod, attempt);
  std::string pod_ip;
  if (a.create_sandbox) {
    std::error_code ec;
    fs::create_directories(sandbox.log_directory, ec);
    fs::create_directories(podDir(pod.metadata.uid), ec);
    for (const auto& [reason, msg] : network::podDnsConfig(pod, o_.dns).warnings)
      events_.record(podRef(pod), "Warning", reason, msg);
    auto handler = runtimeHandler(pod);
    auto host = network::kernelHostname(pod, o_.dns.cluster_domain);
    auto id = !handler ? Result<std::string>(std::unexpected(handler.error()))
              : !host && !pod.spec.host_network ? Result<std::string>(std::unexpected(host.error()))
                                                : runtime_.runPodSandbox(sandbox, *handler);
    if (!id) {
      events_.record(podRef(pod), "Warning", "FailedCreatePodSandBox",
                     "Failed to create pod sandbox: " + id.error().message);
      res.error = std::unexpected(id.error().wrap("RunPodSandbox"));
      res.requeue_after = std::chrono::seconds(2);
      return res;
    }
    sandbox_id = *id;
    if (!pod.spec.host_network) {
      if (auto ss = runtime_.podSandboxStatus(sandbox_id, false)) pod_ip = ss->ip;
    }
  } else if (const auto* sb = status.currentSandbox()) {
    pod_ip = sb->ip;
  }
  if (!pod.spec.host_network) {
    const fs::path hosts = fs::path(podDir(pod.metadata.uid)) / "etc-hosts";
    if (a.create_sandbox || !fs::exists(hosts)) {
      std::vector<std::string> ips;
      if (!pod_ip.empty()) ips.push_back(pod_ip);
      const std::string domain = network::podDomain(pod, o_.dns.cluster_domain);
      const std::string fqdn = domain.empty() ? "" : network::podHostname(pod) + "." + domain;
      std::error_code ec;
      fs::create_directories(hosts.parent_path(), ec);
      if (auto s = writeFileAtomic(hosts.string(),
                                   network::managedHostsFile(ips, network::podHostname(pod), fqdn,
                                                             pod.spec.host_aliases),
                                   0644);
          !s)
        NODELET_LOG(warn, Agent, "pod {}: {}", pod.fullName(), s.error().message);
    }
  }
  // Ephemeral containers first, as the kubelet: a debugging container starts even while an
  // init container keeps failing.
  for (const auto& name : a.ephemeral_to_start) {
    const api::Container* c = api::findContainer(pod.spec, name);
    if (!c) continue;
    auto r = startContainer(pod, *c, "ephemeral", sandbox_id, sandbox, pod_ip, status);
    if (!r.ok) res.waiting[name] = r.waiting;
  }
  // A new sandbox starts from a clean slate: containers of older sandboxes are history only.
  for (const auto& name : a.init_to_start) {
    const api::Container* c = api::findContainer(pod.spec, name);
    if (!c) continue;
    auto r = startContainer(pod, *c, api::isSidecar(*c) ? "sidecar" : "init", sandbox_id, sandbox,
                            pod_ip, status);
    if (!r.ok) {
      res.waiting[name] = r.waiting;
      if (!res.requeue_after) res.requeue_after = std::chrono::seconds(2);
      break;  // init containers go one at a time
    }
    // A sidecar counts as started once running: the next step need not wait for a relist.
    if (api::isSidecar(*c)) res.requeue_after = Duration::zero();
  }
  for (const auto& name : a.containers_to_start) {
    const api::Container* c = api::findContainer(pod.spec, name);
    if (!c) continue;
    auto r = startContainer(pod, *c, "app", sandbox_id, sandbox, pod_ip, status);
    if (!r.ok) {
      res.waiting[name] = r.waiting;
      if (!res.requeue_after) res.requeue_after = std::chrono::seconds(2);
    }
  }
  return res;
}

void RuntimeManager::stopContainer(const api::Pod* pod, const RuntimeContainer& c, int64_t grace,
                                   const std::string& pod_ip) {
  const MonoTime start = clock_.monotonicNow();
  if (pod)
    events_.record(containerRef(*pod, c.status.name), "Normal", "Killing",
                   "Stopping container " + c.status.name);
  const api::Container* spec = pod ? api::findContainer(pod->spec, c.status.name) : nullptr;
  if (spec && spec->lifecycle && spec->lifecycle->pre_stop) {
    const std::string msg = runHook(*pod, *spec, c.status.id, *spec->lifecycle->pre_stop, pod_ip,
                                    std::chrono::seconds(std::max<int64_t>(grace, 1)));
    if (!msg.empty())
      events_.record(containerRef(*pod, c.status.name), "Warning", "FailedPreStopHook", msg);
  }
  const int64_t spent =
      std::chrono::duration_cast<std::chrono::seconds>(clock_.monotonicNow() - start).count();
  const int64_t left = std::max(kMinGraceSeconds, grace - spent);
  if (auto s = runtime_.stopContainer(c.status.id, grace == 0 ? 0 : left); !s) {
    NODELET_LOG(warn, Agent, "StopContainer {} ({}): {}", c.status.id, c.status.name,
                s.error().message);
  }
}

std::string RuntimeManager::podIp(const api::Pod& pod, const PodRuntimeStatus& st) const {
  if (pod.spec.host_network) return o_.node_ip;
  const RuntimeSandbox* sb = st.currentSandbox();
  return sb ? sb->ip : "";
}

Status RuntimeManager::killPod(const api::Pod* pod, const PodRuntimeStatus& st,
                               std::optional<int64_t> grace_override) {
  int64_t grace = 30;
  if (pod && pod->spec.termination_grace_period_seconds)
    grace = *pod->spec.termination_grace_period_seconds;
  else if (!st.containers.empty())
    grace =
        labels::intAnnotation(st.containers[0].status.annotations, labels::kTerminationGracePeriod)
            .value_or(30);
  if (grace_override) grace = *grace_override;
  std::vector<const RuntimeContainer*> mains, sidecars;
  for (const auto& c : st.containers) {
    if (!c.running() && c.status.state != cri::ContainerState::Created) continue;
    (c.type == "sidecar" ? sidecars : mains).push_back(&c);
  }
  const std::string ip = pod ? podIp(*pod, st) : "";
  {  // app and init containers stop in parallel
    std::vector<std::jthread> stops;
    for (const auto* c : mains)
      stops.emplace_back([this, pod, c, grace, &ip] { stopContainer(pod, *c, grace, ip); });
  }
  // Sidecars after them, in reverse order of the spec.
  if (pod) {
    std::vector<const RuntimeContainer*> ordered;
    for (auto it = pod->spec.init_containers.rbegin(); it != pod->spec.init_containers.rend(); ++it)
      for (const auto* c : sidecars)
        if (c->status.name == it->name) ordered.push_back(c);
    for (const auto* c : sidecars)
      if (std::find(ordered.begin(), ordered.end(), c) == ordered.end()) ordered.push_back(c);
    sidecars = ordered;
  }
  for (const auto* c : sidecars) stopContainer(pod, *c, grace, ip);
  Status result;
  for (const auto& s : st.sandboxes) {
    if (s.state != cri::SandboxState::Ready) continue;
    if (auto r = runtime_.stopPodSandbox(s.id); !r)
      result = std::unexpected(r.error().wrap("StopPodSandbox"));
  }
  return result;
}

Status RuntimeManager::removePod(const PodRuntimeStatus& st) {
  Status result;
  for (const auto& c : st.containers) {
    if (auto r = runtime_.removeContainer(c.status.id); !r && r.error().code != ErrorCode::NotFound)
      result = std::unexpected(r.error().wrap("RemoveContainer"));
  }
  for (const auto& s : st.sandboxes) {
    if (auto r = runtime_.stopPodSandbox(s.id); !r)
      result = std::unexpected(r.error().wrap("StopPodSandbox"));
    if (auto r = runtime_.removePodSandbox(s.id); !r)
      result = std::unexpected(r.error().wrap("RemovePodSandbox"));
  }
  if (!result) return result;
  if (st.uid.empty() || st.uid.find('/') != std::string::npos || st.uid.starts_with("."))
    return result;
  // The pod's directory (unmount memory-backed emptyDirs first), its logs and its cgroup.
  std::error_code ec;
  // Memory-backed volumes (emptyDir medium Memory, secrets, projected) are tmpfs mounts.
  const fs::path volumes = fs::path(podDir(st.uid)) / "volumes";
  if (fs::is_directory(volumes, ec)) {
    for (const auto& kind : fs::directory_iterator(volumes, ec))
      for (const auto& e : fs::directory_iterator(kind.path(), ec))
        ::umount2(e.path().c_str(), MNT_DETACH);
  }
  volume_errors_.erase(st.uid);
  fs::remove_all(podDir(st.uid), ec);
  if (!st.name.empty())
    fs::remove_all(o_.pod_logs_dir + "/" + st.namespace_ + "_" + st.name + "_" + st.uid, ec);
  for (const char* qos : {"Guaranteed", "Burstable", "BestEffort"}) {
    const std::string rel = podCgroupParent(o_.cgroup_root, qos, st.uid);
    for (const auto& h : fs::directory_iterator("/sys/fs/cgroup", ec)) {
      const fs::path d = h.path() / rel.substr(1);
      if (fs::is_directory(d)) {
        // Container cgroups are gone with the containers; only empty directories remain.
        for (const auto& sub : fs::directory_iterator(d, ec))
          if (sub.is_directory()) ::rmdir(sub.path().c_str());
        ::rmdir(d.c_str());
      }
    }
  }
  return result;
}

void RuntimeManager::garbageCollect(const PodRuntimeStatus& st) {
  std::map<std::string, int> dead_seen;
  for (const auto& c : st.containers) {  // newest first
    if (!c.exited()) continue;
    if (++dead_seen[c.status.name] > 1) (void)runtime_.removeContainer(c.status.id);
  }
  for (size_t i = 1; i < st.sandboxes.size(); ++i) {
    const auto& s = st.sandboxes[i];
    if (s.state == cri::SandboxState::Ready) continue;
    bool in_use = false;
    for (const auto& c : st.containers) in_use = in_use || (c.sandbox_id == s.id && c.running());
    if (in_use) continue;
    (void)runtime_.removePodSandbox(s.id);
  }
}

}  // namespace nodelet::agent
