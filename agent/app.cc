#include "agent/app.h"

#include <signal.h>
#include <systemd/sd-daemon.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "agent/agent.h"
#include "agent/api_events.h"
#include "agent/client_certificates.h"
#include "agent/config.h"
#include "agent/container_streams.h"
#include "agent/core/api_json.h"
#include "agent/core/files.h"
#include "agent/core/log.h"
#include "agent/core/quantity.h"
#include "agent/core/yaml_json.h"
#include "agent/events.h"
#include "agent/flags.h"
#include "agent/kube/client.h"
#include "agent/kube/curl_api.h"
#include "agent/kube/json_util.h"
#include "agent/kube/kubeconfig.h"
#include "agent/kube/node_controller.h"
#include "agent/kube/object_source.h"
#include "agent/kube/reflector.h"
#include "agent/kube/status_syncer.h"
#include "agent/metrics_page.h"
#include "agent/node_auth.h"
#include "agent/node_facts.h"
#include "agent/node_info.h"
#include "agent/node_shutdown.h"
#include "agent/pki.h"
#include "agent/pod_startup.h"
#include "agent/runtime_manager.h"
#include "agent/server.h"
#include "agent/stats_summary.h"
#include "agent/status_manager.h"
#include "cri/instrumented_service.h"
#include "network/cni.h"
#include "nodelet/version.h"
#include "staticpods/file_source.h"

namespace nodelet::agent {
namespace {

namespace fs = std::filesystem;

int die(const std::string& msg, int code = 1) {
  std::fprintf(stderr, "nodelet: %s\n", msg.c_str());
  return code;
}

// ---- container logs for the node server -------------------------------------------------------
// The log file of a container as the status knows it: <podLogsDir>/<ns>_<pod>_<uid>/<c>/<n>.log,
// n being its restart count (the one before with `previous`).
Result<LogTarget> containerLog(StatusManager& statuses, const std::string& logs_dir,
                               const std::string& ns, const std::string& name,
                               const std::string& container, bool previous) {
  if (const auto p = statuses.podByName(ns, name)) {
    const std::string uid = p->metadata.uid;
    for (const auto* list : {&p->status.init_container_statuses, &p->status.container_statuses,
                             &p->status.ephemeral_container_statuses}) {
      for (const auto& c : *list) {
        if (c.name != container) continue;
        int32_t n = c.restart_count;
        if (previous) {
          if (!c.last_state.terminated || n == 0)
            return fail(ErrorCode::InvalidArgument, "previous terminated container \"" + container +
                                                        "\" in pod \"" + name + "\" not found");
          --n;
        } else if (c.state.waiting && !c.last_state.terminated && n == 0) {
          return fail(ErrorCode::InvalidArgument,
                      "container \"" + container + "\" in pod \"" + name +
                          "\" is waiting to start: " + c.state.waiting->reason);
        }
        LogTarget t;
        t.path = logs_dir + "/" + ns + "_" + name + "_" + uid + "/" + container + "/" +
                 std::to_string(n) + ".log";
        // Running as long as the status shows this very container (same restart) running.
        t.running = [&statuses, uid, container, n, previous] {
          if (previous) return false;
          auto st = statuses.podStatus(uid);
          if (!st) return false;
          for (const auto* l : {&st->init_container_statuses, &st->container_statuses,
                                &st->ephemeral_container_statuses})
            for (const auto& s : *l)
              if (s.name == container) return s.restart_count == n && s.state.running.has_value();
          return false;
        };
        return t;
      }
    }
    return fail(ErrorCode::NotFound,
                "container \"" + container + "\" not found in pod \"" + name + "\"");
  }
  return fail(ErrorCode::NotFound, "pod \"" + ns + "/" + name + "\" not found");
}

// ---- nodelet check ----------------------------------------------------------------------------
int runCheck(const Args& args, const Config& cfg) {
  if (args.positional.empty()) return die("check: give one or more manifest files", 2);
  int rc = 0;
  std::vector<std::string> objects;
  for (const auto& file : args.positional) {
    bool ok = false;
    const std::string content = readFile(file, &ok);
    if (!ok) {
      std::fprintf(stderr, "%s: cannot read file\n", file.c_str());
      rc = 1;
      continue;
    }
    std::error_code ec;
    const std::string abs = fs::absolute(file, ec).lexically_normal().string();
    auto m = staticpods::parseManifestFile(content,
                                           {nodeName(cfg), abs, RealClock::instance().systemNow()});
    if (!m) {
      std::fprintf(stderr, "%s: %s\n", file.c_str(), m.error().message.c_str());
      rc = 1;
      continue;
    }
    objects.push_back(m->pod ? m->pod->object_json : m->object->object_json);
  }
  if (args.output == "json") {
    if (objects.size() == 1) {
      std::printf("%s\n", nlohmann::json::parse(objects[0]).dump(2).c_str());
    } else if (!objects.empty()) {
      nlohmann::json list = {
          {"apiVersion", "v1"}, {"kind", "List"}, {"items", nlohmann::json::array()}};
      for (const auto& o : objects) list["items"].push_back(nlohmann::json::parse(o));
      std::printf("%s\n", list.dump(2).c_str());
    }
  } else {
    for (size_t i = 0; i < objects.size(); ++i)
      std::printf("%s%s", i ? "---\n" : "", jsonToYaml(objects[i]).c_str());
  }
  return rc;
}

// ---- nodelet pods -----------------------------------------------------------------------------
std::string age(std::optional<SysTime> since, SysTime now) {
  if (!since) return "<unknown>";
  const auto s = std::chrono::duration_cast<std::chrono::seconds>(now - *since).count();
  if (s < 120) return std::to_string(std::max<int64_t>(s, 0)) + "s";
  if (s < 3600) return std::to_string(s / 60) + "m" + (s < 600 ? std::to_string(s % 60) + "s" : "");
  if (s < 86400) return std::to_string(s / 3600) + "h";
  return std::to_string(s / 86400) + "d";
}

// The STATUS column as kubectl prints it.
std::string displayStatus(const api::Pod& p) {
  std::string reason = p.status.reason.empty() ? p.status.phase : p.status.reason;
  bool initializing = false;
  const auto& inits = p.status.init_container_statuses;
  for (size_t i = 0; i < inits.size(); ++i) {
    const auto& c = inits[i];
    const api::Container* spec = api::findContainer(p.spec, c.name);
    if (c.state.terminated && c.state.terminated->exit_code == 0) continue;
    if (spec && api::isSidecar(*spec) && c.started.value_or(false)) continue;
    if (c.state.terminated) {
      reason = "Init:" + (c.state.terminated->reason.empty()
                              ? "ExitCode:" + std::to_string(c.state.terminated->exit_code)
                              : c.state.terminated->reason);
    } else if (c.state.waiting && !c.state.waiting->reason.empty() &&
               c.state.waiting->reason != "PodInitializing") {
      reason = "Init:" + c.state.waiting->reason;
    } else {
      reason = "Init:" + std::to_string(i) + "/" + std::to_string(inits.size());
    }
    initializing = true;
    break;
  }
  if (!initializing) {
    bool has_running = false;
    for (auto it = p.status.container_statuses.rbegin(); it != p.status.container_statuses.rend();
         ++it) {
      if (it->state.waiting && !it->state.waiting->reason.empty()) {
        reason = it->state.waiting->reason;
      } else if (it->state.terminated) {
        reason = it->state.terminated->reason.empty()
                     ? "ExitCode:" + std::to_string(it->state.terminated->exit_code)
                     : it->state.terminated->reason;
      } else if (it->ready && it->state.running) {
        has_running = true;
      }
    }
    if (reason == "Completed" && has_running) reason = "Running";
  }
  return reason;
}

int runPods(const Config& cfg) {
  bool ok = false;
  const std::string path = cfg.root_dir + "/status/pods.json";
  const std::string text = readFile(path, &ok);
  if (!ok)
    return die("no pod status at " + path + " (is nodelet running with --root-dir " + cfg.root_dir +
               "?)");
  nlohmann::json list = nlohmann::json::parse(text, nullptr, false);
  if (!list.is_object() || !list.contains("items")) return die(path + ": not a PodList");
  const SysTime now = RealClock::instance().systemNow();
  std::vector<std::vector<std::string>> rows = {
      {"NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"}};
  for (const auto& item : list["items"]) {
    auto pod = api::decodePod(item.dump());
    if (!pod) continue;
    int ready = 0, restarts = 0;
    for (const auto& c : pod->status.container_statuses) {
      ready += c.ready ? 1 : 0;
      restarts += c.restart_count;
    }
    for (const auto& c : pod->status.init_container_statuses) restarts += c.restart_count;
    rows.push_back({pod->metadata.namespace_, pod->metadata.name,
                    std::to_string(ready) + "/" + std::to_string(pod->spec.containers.size()),
                    displayStatus(*pod), std::to_string(restarts), age(pod->status.start_time, now),
                    pod->status.pod_ip.empty() ? "<none>" : pod->status.pod_ip,
                    pod->spec.node_name.empty() ? "<none>" : pod->spec.node_name});
  }
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 3, ' ');
    }
    std::printf("%s\n", line.c_str());
  }
  return 0;
}

// ---- pod networking ----------------------------------------------------------------------------
network::CniOptions cniOptions(const Config& cfg) {
  network::CniOptions o;
  o.conf_dir = cfg.cni_conf_dir;
  o.bin_dirs = cfg.cni_bin_dirs;
  o.network = cfg.cni_network;
  o.bridge = cfg.cni_bridge;
  o.ipam_dir = cfg.cni_ipam_dir;
  o.force = cfg.cni_force;
  return o;
}

// ---- nodelet cni-config -------------------------------------------------------------------------
int runCniConfig(const Config& cfg) {
  if (cfg.pod_cidr.empty()) return die("cni-config: give --pod-cidr (or podCIDR in --config)", 2);
  network::ExecPluginVersions versions;
  network::CniConfig cni(cniOptions(cfg), versions);
  const std::vector<std::string> cidrs = splitList(cfg.pod_cidr, ",");
  std::string msg;
  auto r = cni.ensure(cidrs, &msg);
  if (!r) return die(r.error().message);
  if (*r == network::CniConfig::Outcome::Foreign) return die(msg);
  std::printf("%s\n", *r == network::CniConfig::Outcome::Unchanged ? "unchanged" : msg.c_str());
  return 0;
}

// ---- cluster mode -------------------------------------------------------------------------------
// The API server side of the agent: the Node and its Lease, the pods bound to this node (with an
// on-disk checkpoint so a restart during an API outage brings them back), and pod status.
// The Node nodelet registers (and admits pods against while it has no API server's copy): the
// kubelet's well-known labels, --node-labels over them, and registerWithTaints
// ("key[=value]:effect").
AdmissionNode localNode(const Config& cfg, const std::string& node, const MachineFacts& machine) {
  AdmissionNode n;
  n.name = node;
  n.labels = {{"kubernetes.io/hostname", node},
              {"kubernetes.io/os", "linux"},
              {"kubernetes.io/arch", machine.architecture},
              {"beta.kubernetes.io/os", "linux"},
              {"beta.kubernetes.io/arch", machine.architecture}};
  for (const auto& [k, v] : cfg.node_labels) n.labels[k] = v;
  for (const auto& t : cfg.register_with_taints) {
    const auto colon = t.rfind(':');
    const std::string kv = t.substr(0, colon);
    const auto eq = kv.find('=');
    n.taints.push_back(
        {kv.substr(0, eq), eq == std::string::npos ? "" : kv.substr(eq + 1), t.substr(colon + 1)});
  }
  return n;
}

struct Cluster {
  kube::Client& client;
  Clock& clock;
  std::string node;
  std::string checkpoint;
  kube::ObjectStore store;
  std::unique_ptr<kube::NodeController> nodes;
  std::unique_ptr<kube::Reflector> reflector;
  kube::StatusSyncer syncer;
  std::jthread node_thread, reflector_thread, syncer_thread;
  EventRecorder* events{nullptr};
  std::set<std::string> bad_pods;  // "uid message" already reported
  std::mutex mu;

  Cluster(kube::Client& c, Clock& clk, const std::string& n, const std::string& root)
      : client(c),
        clock(clk),
        node(n),
        checkpoint(root + "/checkpoints/api-pods.json"),
        syncer(c, clk, store, {n}, [this] { return nodes ? nodes->nodeUid() : ""; }) {}

  static Result<std::unique_ptr<Cluster>> create(
      kube::Client& client, Clock& clock, const Config& cfg, const std::string& node,
      const std::string& node_ip, const MachineFacts& machine, cri::GrpcServices& cri,
      EventRecorder& events, std::function<void(const std::string&)> on_pod_cidr) {
    auto c = std::make_unique<Cluster>(client, clock, node, cfg.root_dir);
    kube::NodeControllerOptions no;
    no.node_name = node;
    const AdmissionNode local = localNode(cfg, node, machine);
    no.labels = local.labels;
    no.taints = local.taints;
    no.status_update_frequency = cfg.node_status_update_frequency;
    no.status_report_frequency = cfg.node_status_report_frequency;
    no.lease_duration_seconds = cfg.node_lease_duration_seconds;
    no.on_pod_cidr = std::move(on_pod_cidr);
    // Fail early on a configuration the facts cannot be computed with (a bad quantity).
    auto probe = buildNodeFacts(cfg, node, node_ip, machine, {});
    if (!probe) return std::unexpected(probe.error());
    c->nodes = std::make_unique<kube::NodeController>(
        client, clock, no,
        [cfg, node, node_ip, &cri] {
          auto f = buildNodeFacts(
              cfg, node, node_ip, readMachineFacts(cfg.root_dir),
              readRuntimeFacts(*cri.runtime, *cri.image, cfg.node_status_max_images));
          return f ? *f : kube::NodeFacts{};
        },
        [&events, node](const std::string& type, const std::string& reason,
                        const std::string& msg) {
          events.record({"Node", node, "", node, ""}, type, reason, msg);
        });
    c->events = &events;
    return c;
  }

  void attach(StatusManager& statuses) {
    statuses.setListener([this](const api::Pod& pod, bool removed) {
      if (removed)
        syncer.onRemoved(pod.metadata.uid);
      else
        syncer.onStatus(pod);
    });
  }

  // Each API pod decoded once per resourceVersion: a watch event hands over every pod of the
  // node, and most are unchanged. `wanted_changed` says whether what a restart would need from
  // the checkpoint changed: the set of pods, or a pod's spec, labels, annotations, deletion or
  // phase (not a status-only update such as a readiness flip).
  struct Decoded {
    std::string resource_version;
    Result<api::Pod> pod;
  };
  std::map<std::string, Decoded> decoded;  // by uid; the reflector's thread (start() before it)

  static bool sameWanted(const api::Pod& a, const api::Pod& b) {
    return a.spec == b.spec && a.metadata.labels == b.metadata.labels &&
           a.metadata.annotations == b.metadata.annotations &&
           a.metadata.deletion_timestamp == b.metadata.deletion_timestamp &&
           a.status.phase == b.status.phase;
  }

  // The API pods nodelet runs: mirror pods are left out (they stand for static pods), and so
  // are pods the API server already reports finished.
  std::vector<api::Pod> toPods(const std::vector<nlohmann::json>& objs, EventRecorder* recorder,
                               bool* wanted_changed = nullptr) {
    std::vector<api::Pod> out;
    std::map<std::string, Decoded> next;
    bool changed = false;
    for (const auto& o : objs) {
      if (kube::isMirrorPod(o)) continue;
      const std::string uid = kube::js::meta(o, "uid");
      const std::string rv = kube::js::meta(o, "resourceVersion");
      auto prev = decoded.find(uid);
      Decoded& d = next[uid];
      if (prev != decoded.end() && prev->second.resource_version == rv && !rv.empty()) {
        d = std::move(prev->second);
      } else {
        d.resource_version = rv;
        d.pod = api::decodePod(o.dump());
        changed = changed || prev == decoded.end() || !prev->second.pod || !d.pod ||
                  !sameWanted(*prev->second.pod, *d.pod);
      }
      const auto& pod = d.pod;
      if (!pod) {
        const std::string key = kube::ObjectStore::keyOf(o) + " " + pod.error().message;
        std::lock_guard g(mu);
        if (bad_pods.insert(key).second) {
          NODELET_LOG(warn, Api, "pod {} cannot be run: {}", kube::ObjectStore::keyOf(o),
                      pod.error().message);
          if (recorder) {
            ObjectRef ref{"Pod", kube::js::meta(o, "name"), kube::js::meta(o, "namespace"),
                          kube::js::meta(o, "uid"), ""};
            recorder->record(ref, "Warning", "FailedCreate",
                             "nodelet cannot run this pod: " + pod.error().message);
          }
        }
        continue;
      }
      if ((pod->status.phase == "Succeeded" || pod->status.phase == "Failed") &&
          !pod->metadata.deletion_timestamp)
        continue;
      out.push_back(*pod);
      out.back().metadata.annotations["kubernetes.io/config.source"] = "api";
    }
    changed = changed || next.size() != decoded.size();  // a pod gone
    decoded = std::move(next);
    if (wanted_changed) *wanted_changed = changed;
    return out;
  }

  void saveCheckpoint(const std::vector<nlohmann::json>& objs) {
    nlohmann::json list = {{"kind", "PodList"}, {"apiVersion", "v1"}, {"items", objs}};
    std::error_code ec;
    fs::create_directories(fs::path(checkpoint).parent_path(), ec);
    const std::string tmp = checkpoint + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out << list.dump();
      if (!out) return;
    }
    fs::permissions(tmp, fs::perms::owner_read | fs::perms::owner_write, ec);
    fs::rename(tmp, checkpoint, ec);
  }

  std::vector<nlohmann::json> loadCheckpoint() {
    bool ok = false;
    const std::string text = readFile(checkpoint, &ok);
    if (!ok) return {};
    auto list = nlohmann::json::parse(text, nullptr, false);
    if (!list.is_object() || !list.contains("items") || !list["items"].is_array()) {
      NODELET_LOG(warn, Api, "pod checkpoint {} is unreadable: ignoring it", checkpoint);
      return {};
    }
    return list["items"].get<std::vector<nlohmann::json>>();
  }

  void start(Agent& agent) {
    // Pods from the last run first: running pods stay wanted (and restart) even if the API
    // server does not answer; the first list replaces them.
    if (auto saved = loadCheckpoint(); !saved.empty()) {
      NODELET_LOG(info, Api, "{} pod(s) from the checkpoint until the API server answers",
                  saved.size());
      store.replace([&] {
        std::map<std::string, nlohmann::json> m;
        for (const auto& o : saved)
          if (o.is_object() && o.contains("metadata") && o["metadata"].is_object())
            m[kube::ObjectStore::keyOf(o)] = o;
        return m;
      }());
      agent.onApiPods(toPods(saved, nullptr));
    }
    kube::ReflectorOptions ro;
    ro.field_selector = "spec.nodeName=" + node;
    reflector = std::make_unique<kube::Reflector>(
        client, clock, store, ro, [this, &agent](const std::vector<nlohmann::json>& objs) {
          bool wanted_changed = false;
          auto pods = toPods(objs, events, &wanted_changed);
          if (wanted_changed) saveCheckpoint(objs);
          agent.onApiPods(std::move(pods));
          syncer.wake();
        });
    node_thread = std::jthread([this](std::stop_token st) { nodes->run(st); });
    reflector_thread = std::jthread([this](std::stop_token st) { reflector->run(st); });
    syncer_thread = std::jthread([this](std::stop_token st) { syncer.run(st); });
  }

  void stop() {
    for (auto* t : {&reflector_thread, &node_thread, &syncer_thread}) t->request_stop();
    for (auto* t : {&reflector_thread, &node_thread, &syncer_thread})
      if (t->joinable()) t->join();
  }
};

// ---- nodelet (the agent) ----------------------------------------------------------------------
int runAgent(Config cfg, sigset_t signals) {
  if (!cfg.ignored_fields.empty()) {
    std::string list;
    for (const auto& f : cfg.ignored_fields) list += (list.empty() ? "" : ", ") + f;
    NODELET_LOG(warn, Agent, "config file: ignoring fields nodelet does not support: {}", list);
  }
  // The machine, read once at start-up (the node status re-reads what changes, every period).
  const MachineFacts machine = readMachineFacts(cfg.root_dir);
  const std::string node = nodeName(cfg);
  std::unique_ptr<kube::Client> client;
  std::unique_ptr<ClientCertificateRotator> rotator;
  if (!cfg.kubeconfig.empty()) {
    if (auto curl = kube::curlApi(); !curl) return die(curl.error().message);
    kube::ClientOptions co;
    co.qps = cfg.kube_api_qps;
    co.burst = std::max(1, cfg.kube_api_burst);
    co.user_agent = std::string("nodelet/") + kVersion + " (linux/" + machine.architecture +
                    ") kubernetes/" + kKubeVersion;
    if (!cfg.bootstrap_kubeconfig.empty()) {
      // TLS bootstrapping may wait up to an hour for an approval: on its own thread, so that a
      // signal still stops nodelet at once.
      ClientBootstrapOptions bo;
      bo.kubeconfig = cfg.kubeconfig;
      bo.bootstrap_kubeconfig = cfg.bootstrap_kubeconfig;
      bo.cert_dir = cfg.certDir();
      bo.node_name = node;
      bo.client = co;
      sd_notify(0, "STATUS=waiting for a client certificate (TLS bootstrap)");
      std::optional<Status> done;
      std::mutex mu;
      std::jthread boot([&](std::stop_token st) {
        Status s = bootstrapClientCertificate(bo, RealClock::instance(), st);
        std::lock_guard g(mu);
        done = std::move(s);
      });
      for (;;) {
        {
          std::lock_guard g(mu);
          if (done) break;
        }
        timespec ts{0, 100'000'000};
        if (sigtimedwait(&signals, nullptr, &ts) > 0) return 0;  // ~jthread stops and joins
      }
      if (!*done) return die("TLS bootstrap: " + done->error().message);
    }
    auto kc = kube::loadKubeconfig(cfg.kubeconfig);
    if (!kc) return die(kc.error().message);
    if (cfg.rotate_certificates && !kc->client_cert_pem.empty()) {
      // A certificate rotated since the kubeconfig was written (one with the data inline) is
      // newer: use it.
      const std::string current = readFile(cfg.certDir() + "/kubelet-client-current.pem");
      const auto ours = bootstrap::validity(kc->client_cert_pem);
      const auto stored = bootstrap::validity(current);
      if (stored && bootstrap::certificatesValid(current, RealClock::instance().systemNow()) &&
          (!ours || stored->second > ours->second)) {
        kc->client_cert_pem = current;
        kc->client_key_pem = current;
      }
    }
    client = std::make_unique<kube::Client>(*kc, RealClock::instance(), co);
    if (cfg.rotate_certificates && !kc->client_cert_pem.empty()) {
      rotator = std::make_unique<ClientCertificateRotator>(
          *client, RealClock::instance(), cfg.certDir(), node, kc->client_cert_pem,
          [c = client.get()](const std::string& cert, const std::string& key) {
            c->setClientCertificate(cert, key);
          });
    } else if (cfg.rotate_certificates) {
      NODELET_LOG(warn, Api,
                  "rotateCertificates: the kubeconfig has no client certificate to rotate");
    }
  }
  // Declared after the client it uses: stopped and joined first.
  std::jthread rotation;
  if (rotator) rotation = std::jthread([&rotator](std::stop_token st) { rotator->run(st); });
  if (cfg.fail_swap_on && swapOn())
    return die(
        "running with swap on is not supported, please disable swap or set --fail-swap-on flag to "
        "false");
  std::string node_ip = cfg.node_ip.empty() ? defaultRouteIp() : cfg.node_ip;
  if (node_ip.empty()) node_ip = "127.0.0.1";
  std::error_code ec;
  fs::create_directories(cfg.root_dir, ec);
  if (ec) return die("--root-dir " + cfg.root_dir + ": " + ec.message());
  fs::permissions(cfg.root_dir, fs::perms::owner_all, ec);
  fs::create_directories(cfg.pod_logs_dir, ec);
  NODELET_LOG(info, Agent, "nodelet {} (Kubernetes {}) starting as node {} ({})", kVersion,
              kKubeVersion, node, node_ip);

  RealClock& clock = RealClock::instance();
  cri::GrpcOptions ro;
  ro.endpoint = cfg.container_runtime_endpoint;
  ro.request_timeout = cfg.runtime_request_timeout;
  cri::GrpcOptions io = ro;
  io.endpoint = cfg.imageEndpoint();
  auto grpc = cri::connectGrpc(ro, io);
  if (!grpc) return die(grpc.error().message);
  cri::OperationRecorder operations(clock);
  cri::GrpcServices services_{
      std::make_unique<cri::InstrumentedRuntimeService>(std::move(grpc->runtime), operations),
      std::make_unique<cri::InstrumentedImageService>(std::move(grpc->image), operations)};
  auto* services = &services_;
  for (int attempt = 0;; ++attempt) {
    auto v = services->runtime->version();
    if (v) {
      NODELET_LOG(info, Agent, "container runtime {} {} (CRI {})", v->runtime_name,
                  v->runtime_version, v->runtime_api_version);
      break;
    }
    if (attempt % 10 == 0)
      NODELET_LOG(warn, Agent, "waiting for the container runtime at {}: {}",
                  cfg.container_runtime_endpoint, v.error().message);
    timespec ts{1, 0};
    if (sigtimedwait(&signals, nullptr, &ts) > 0) return 0;
  }

  PodStartupTracker startup(clock);  // kubelet_pod_start_sli_duration_seconds
  RuntimeManagerOptions rmo;
  rmo.startup = &startup;
  rmo.node_name = node;
  rmo.root_dir = cfg.root_dir;
  rmo.pod_logs_dir = cfg.pod_logs_dir;
  rmo.cgroup_root = cfg.cgroup_root;
  rmo.dns.cluster_dns = cfg.cluster_dns;
  rmo.dns.cluster_domain = cfg.cluster_domain;
  if (!cfg.resolv_conf.empty()) {
    bool ok = false;
    const std::string text = readFile(cfg.resolv_conf, &ok);
    if (ok)
      rmo.dns.host = network::parseResolvConf(text);
    else
      NODELET_LOG(warn, Network,
                  "resolvConf {} cannot be read: pods with dnsPolicy Default get no nameservers",
                  cfg.resolv_conf);
  }
  rmo.node_ip = node_ip;
  rmo.node_cpu_milli = cpuMilli();
  rmo.node_memory_bytes = memoryBytes();
  rmo.seccomp_default = cfg.seccomp_default;
  rmo.container_log_links_dir = cfg.container_log_links_dir;
  // Volumes and env that read ConfigMaps, Secrets and tokens: through the API server.
  std::unique_ptr<kube::ApiObjectSource> objects;
  if (client) {
    objects = std::make_unique<kube::ApiObjectSource>(*client, clock);
    rmo.objects = objects.get();
  }
  // ...and for static pods, from ConfigMap and Secret manifests beside them.
  kube::StaticObjectSource static_objects(objects.get());
  rmo.static_objects = &static_objects;

  LocalEventRecorder local_events(clock);
  std::unique_ptr<ApiEventRecorder> api_events;
  if (client) api_events = std::make_unique<ApiEventRecorder>(*client, clock, local_events, node);
  EventRecorder& events = api_events ? static_cast<EventRecorder&>(*api_events) : local_events;
  StatusManager statuses(cfg.root_dir + "/status/pods.json");
  // Pod networking from the pod CIDR: `podCIDR` standalone, Node.spec.podCIDR in a cluster.
  network::ExecPluginVersions plugin_versions;
  network::CniConfig cni(cniOptions(cfg), plugin_versions);
  std::atomic<bool> cni_in_charge{false};
  std::mutex cni_mu;
  auto apply_pod_cidr = [&](const std::string& cidrs) {
    const std::vector<std::string> list = splitList(cidrs, ",");
    std::lock_guard g(cni_mu);
    std::string msg;
    auto r = cni.ensure(list, &msg);
    const ObjectRef node_ref{"Node", node, "", node, ""};
    if (!r) {
      NODELET_LOG(error, Network, "CNI configuration for pod CIDR {}: {}", cidrs,
                  r.error().message);
      events.record(node_ref, "Warning", "FailedCNIConfiguration", r.error().message);
      return;
    }
    cni_in_charge = *r != network::CniConfig::Outcome::Foreign;
    if (*r == network::CniConfig::Outcome::Written)
      NODELET_LOG(info, Network, "pod CIDR {}: {}", cidrs, msg);
    else if (*r == network::CniConfig::Outcome::Foreign)
      NODELET_LOG(warn, Network, "{}", msg);
  };
  std::unique_ptr<Cluster> cluster;
  if (client) {
    auto c = Cluster::create(*client, clock, cfg, node, node_ip, machine, *services, events,
                             apply_pod_cidr);
    if (!c) return die(c.error().message);
    cluster = std::move(*c);
    cluster->attach(statuses);
  }
  RuntimeManager runtime(*services->runtime, *services->image, clock, events, rmo);
  AgentOptions ao;
  ao.startup = &startup;
  ao.resync_period = cfg.sync_frequency;
  ao.max_pods = cfg.max_pods;
  if (auto f = buildNodeFacts(cfg, node, node_ip, machine, {})) {
    if (auto it = f->allocatable.find("cpu"); it != f->allocatable.end())
      ao.allocatable_cpu_milli = api::parseQuantityMilli(it->second).value_or(0);
    if (auto it = f->allocatable.find("memory"); it != f->allocatable.end())
      ao.allocatable_memory_bytes = api::parseQuantity(it->second).value_or(0);
  }
  ao.node_ip = node_ip;
  ao.node_name = node;
  if (auto max = api::parseQuantity(cfg.container_log_max_size); max && *max > 0) {
    ao.log_max_bytes = *max;
  } else {
    return die("containerLogMaxSize: invalid quantity \"" + cfg.container_log_max_size + "\"");
  }
  ao.log_max_files = cfg.container_log_max_files;
  ao.log_rotation_period = cfg.container_log_monitor_interval;
  ao.on_all_sandboxes = [&](const std::set<std::string>& ids) {
    if (!cni_in_charge) return;
    std::lock_guard g(cni_mu);
    if (int n = cni.reclaimLeaks(ids, clock.systemNow()); n > 0)
      NODELET_LOG(info, Network, "reclaimed {} leaked pod address(es) of network {}", n,
                  cfg.cni_network);
  };
  if (!client && !cfg.pod_cidr.empty()) apply_pod_cidr(cfg.pod_cidr);
  // Admission reads the API server's Node once registered (labels and taints an administrator
  // added count), and the Node nodelet would register before.
  // The fresh read runs under the agent's lock: at most one every 10 s, so a burst of pods that
  // do not fit (or an API server that does not answer) cannot hold the sync loop up.
  ao.admission_node = [&cluster, &clock, local = localNode(cfg, node, machine), node,
                       last_fresh =
                           std::optional<MonoTime>()](bool fresh) mutable -> AdmissionNode {
    if (cluster && cluster->nodes) {
      const MonoTime now = clock.monotonicNow();
      if (fresh && (!last_fresh || now - *last_fresh >= std::chrono::seconds(10))) {
        last_fresh = now;
      } else {
        fresh = false;
      }
      const nlohmann::json n = fresh ? cluster->nodes->refreshNode() : cluster->nodes->node();
      if (n.is_object() && n.contains("metadata")) return admissionNodeFromJson(node, n);
    }
    return local;
  };
  if (cluster) {
    ao.sources.insert("api");
    ao.on_pod_terminated = [&cluster](const std::string& uid) {
      cluster->syncer.onTerminated(uid);
    };
  }
  Agent agent(runtime, statuses, events, clock, ao);
  // A watched ConfigMap or Secret changed: the API pods using it sync now. Cleared before the
  // agent goes away.
  struct ObjectChanges {
    kube::ApiObjectSource* source;
    ~ObjectChanges() {
      if (source) source->setOnChange(nullptr);
    }
  } object_changes{objects.get()};
  if (objects)
    objects->setOnChange([&agent](const std::string& key) { agent.onObjectChanged(key, false); });
  // Graceful node shutdown: a logind delay lock while shutdownGracePeriod is set. The manager
  // goes first (it stops the inhibitor's signals), the inhibitor after (its lock with it).
  LogindInhibitor inhibitor;
  std::unique_ptr<NodeShutdownManager> node_shutdown;
  if (cfg.shutdown_grace_period.count() > 0) {
    node_shutdown = std::make_unique<NodeShutdownManager>(
        inhibitor,
        ShutdownHooks{
            [&agent](bool critical, int64_t grace) { agent.stopPodsForShutdown(critical, grace); },
            [&agent](bool critical) { return agent.podsRunning(critical); }},
        clock, cfg.shutdown_grace_period, cfg.shutdown_grace_period_critical_pods);
    if (auto s = node_shutdown->start(); !s)
      NODELET_LOG(error, Agent, "{} (pods will not be stopped before a shutdown)",
                  s.error().message);
  }

  SummaryProvider summary(*services_.runtime, clock, node, cfg.root_dir);
  ContainerStreams streams(*services_.runtime,
                           [&statuses](const std::string& ns, const std::string& name) {
                             return statuses.podByName(ns, name);
                           });
  NodeServer server({[&] {
                       return std::pair{agent.healthy(), agent.healthMessage()};
                     },
                     [&] { return api::encodePodList(statuses.pods()); },
                     [&] {
                       MetricsInput in;
                       in.agent = agent.metrics();
                       in.runtime_ops = operations.snapshot();
                       in.probes = agent.probeCounters();
                       in.started_app = runtime.startedApp();
                       in.started_init = runtime.startedInit();
                       in.startup = startup.histograms();
                       in.node_name = node;
                       in.process = readProcessStats();
                       return renderMetrics(in);
                     },
                     [&] { return renderProbeMetrics(agent.containerProbeCounters()); },
                     [&] {
                       // What runs, as /runningpods/ lists it: pods with a running container.
                       std::vector<api::Pod> running;
                       for (auto& p : statuses.pods())
                         for (const auto& c : p.status.container_statuses)
                           if (c.state.running) {
                             running.push_back(std::move(p));
                             break;
                           }
                       return api::encodePodList(running);
                     },
                     [&](const std::string& ns, const std::string& name, const std::string& cname,
                         bool previous) {
                       return containerLog(statuses, cfg.pod_logs_dir, ns, name, cname, previous);
                     },
                     [&]() -> Result<std::string> {
                       auto doc = summary.summary(statuses.pods());
                       if (!doc) return std::unexpected(doc.error());
                       return doc->dump();
                     },
                     [&] {
                       auto doc = summary.summary(statuses.pods());
                       // A scrape the runtime could not answer still answers: with the error.
                       return renderResourceMetrics(doc ? *doc : nlohmann::json::object());
                     }});
  if (cfg.healthz_port > 0) {
    if (auto s = server.startHealthz(cfg.healthz_bind_address, cfg.healthz_port); !s)
      return die(s.error().message);
  }
  if (cfg.read_only_port > 0) {
    if (auto s = server.startReadOnly(cfg.address, cfg.read_only_port); !s)
      return die(s.error().message);
  }
  // The authenticated node server (port 0: none, a nodelet extension for tests and labs).
  std::unique_ptr<ApiReviewer> reviewer;
  if (client) reviewer = std::make_unique<ApiReviewer>(*client);
  AuthOptions auth_options;
  auth_options.anonymous = cfg.anonymous_auth;
  auth_options.webhook_authn = cfg.webhook_authn;
  auth_options.token_cache_ttl = cfg.webhook_authn_cache_ttl;
  auth_options.authorization_mode = cfg.authorization_mode;
  auth_options.authorized_ttl = cfg.authz_authorized_ttl;
  auth_options.unauthorized_ttl = cfg.authz_unauthorized_ttl;
  auth_options.node_name = node;
  NodeAuth auth(auth_options, reviewer.get(), clock);
  if (cfg.port > 0) {
    if (!client && cfg.authorization_mode == "Webhook")
      NODELET_LOG(warn, Server,
                  "authorization mode Webhook needs an API server: the node server on port {} "
                  "refuses every request (standalone: authorization.mode AlwaysAllow with "
                  "authentication.x509.clientCAFile)",
                  cfg.port);
    SecureOptions so;
    so.cert_file = cfg.tls_cert_file;
    so.key_file = cfg.tls_private_key_file;
    if (so.cert_file.empty()) {
      std::vector<std::string> ips;
      if (!node_ip.empty()) ips.push_back(node_ip);
      auto certs = ensureSelfSignedCert(cfg.certDir(), node, ips, clock.systemNow());
      if (!certs) return die(certs.error().message);
      so.cert_file = certs->cert;
      so.key_file = certs->key;
    }
    so.client_ca_file = cfg.client_ca_file;
    so.auth = &auth;
    so.clock = &clock;
    so.streams = &streams;
    so.stream_idle_timeout = cfg.streaming_connection_idle_timeout;
    if (auto s = server.startSecure(cfg.address, cfg.port, so); !s) return die(s.error().message);
  }

  std::unique_ptr<staticpods::FileSource> files;
  if (!cfg.static_pod_path.empty()) {
    NODELET_LOG(info, StaticPods, "watching static pod manifests in {}", cfg.static_pod_path);
    files = std::make_unique<staticpods::FileSource>(cfg.static_pod_path, node, clock,
                                                     cfg.file_check_frequency);
    files->start([&agent, &static_objects](staticpods::FileSnapshot s) {
      std::map<std::string, kube::ObjectSource::Data> found;
      for (auto& o : s.objects)
        found[o.resource + "/" + o.namespace_ + "/" + o.name] = std::move(o.data);
      // Objects first, so that new pods find them; then the pods that use a changed one sync.
      const auto changed = static_objects.replace(std::move(found));
      agent.onFileSnapshot(s);
      for (const auto& key : changed) agent.onObjectChanged(key, /*static_pods=*/true);
    });
  } else {
    NODELET_LOG(warn, Agent,
                "no pod source configured (staticPodPath / --pod-manifest-path): no pods will run");
    agent.onFileSnapshot({});
  }
  std::jthread loop([&agent](std::stop_token st) { agent.run(st); });
  if (cluster) {
    if (api_events) api_events->start();
    cluster->start(agent);
  }
  sd_notify(0, "READY=1\nSTATUS=running");
  // systemd's watchdog (WatchdogSec): pinged at half the period while the sync loop turns and
  // the runtime answers, so a wedged nodelet is restarted (its pods keep running).
  uint64_t watchdog_usec = 0;
  std::jthread watchdog;
  if (sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec > 0) {
    const auto period = std::chrono::microseconds(watchdog_usec) / 2;
    NODELET_LOG(info, Agent, "systemd watchdog: pinging every {} ms while healthy",
                std::chrono::duration_cast<std::chrono::milliseconds>(period).count());
    watchdog = std::jthread([&agent, &clock, period](std::stop_token st) {
      std::mutex m;
      std::condition_variable cv;
      std::stop_callback wake(st, [&] { cv.notify_all(); });
      for (uint64_t i = 0; !st.stop_requested() && i < (1ull << 62); ++i) {
        if (agent.healthy()) {
          const auto pods = agent.metrics().running_pods;
          sd_notify(0, ("WATCHDOG=1\nSTATUS=running, " + std::to_string(pods) + " pod(s)").c_str());
        }
        std::unique_lock l(m);
        clock.waitUntil(cv, l, clock.monotonicNow() + period);
      }
    });
  }

  int sig = 0;
  sigwait(&signals, &sig);
  NODELET_LOG(info, Agent, "signal {}: shutting down (pods keep running)", sig);
  sd_notify(0, "STOPPING=1");
  if (files) files->stop();
  if (cluster) cluster->stop();
  if (api_events) api_events->stop();
  if (watchdog.joinable()) {
    watchdog.request_stop();
    watchdog.join();
  }
  loop.request_stop();
  loop.join();
  agent.workers().stop();
  statuses.flush();
  server.stop();
  NODELET_LOG(debug, Cri, "CRI operations: {}", operations.summary());
  return 0;
}

}  // namespace

int runMain(int argc, char** argv) {
  // Signals are taken synchronously by the main thread: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::vector<std::string> argv_s(argv, argv + argc);
  auto args = parseArgs(argv_s);
  if (!args) return die(args.error().message, 2);
  switch (args->command) {
    case Command::Help:
      std::fputs(usage().c_str(), stdout);
      return 0;
    case Command::Version:
      std::printf("nodelet %s (Kubernetes %s)\n", kVersion, kKubeVersion);
      return 0;
    case Command::Check:
    case Command::Pods:
    case Command::CniConfig:
    case Command::Run:
      break;
  }
  Config cfg;
  if (auto s = applyFlags(*args, cfg); !s) return die(s.error().message, 2);
  if (!cfg.config_file.empty()) {
    if (auto s = loadConfigFile(cfg.config_file, cfg); !s) return die(s.error().message, 2);
    (void)applyFlags(*args, cfg);  // flags win over the file
  }
  if (auto s = validateConfig(cfg); !s) return die(s.error().message, 2);
  log::setVerbosity(cfg.verbosity);
  if (args->command == Command::Check) return runCheck(*args, cfg);
  if (args->command == Command::Pods) return runPods(cfg);
  if (args->command == Command::CniConfig) return runCniConfig(cfg);
  return runAgent(std::move(cfg), signals);
}

}  // namespace nodelet::agent
