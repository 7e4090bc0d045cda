#include "agent/kube/status_syncer.h"

#include <set>

#include "agent/core/api_json.h"
#include "agent/core/log.h"
#include "agent/kube/json_util.h"
#include "agent/kube/strategic_patch.h"

namespace nodelet::kube {
namespace {

using nlohmann::json;

constexpr const char* kConfigMirror = "kubernetes.io/config.mirror";
constexpr const char* kConfigHash = "kubernetes.io/config.hash";

std::string podPath(const json& pod) {
  return "/api/v1/namespaces/" + js::meta(pod, "namespace") + "/pods/" + js::meta(pod, "name");
}

std::string mirrorHash(const json& pod) {
  return js::str(js::object(js::object(pod, "metadata"), "annotations"), kConfigMirror);
}

std::string uidOf(const json& pod) { return js::meta(pod, "uid"); }

}  // namespace

bool isMirrorPod(const json& pod) {
  return js::object(js::object(pod, "metadata"), "annotations").contains(kConfigMirror);
}

json mergedStatus(const json& ours, const json& server) {
  static const std::set<std::string> owned = {"PodScheduled",
                                              "Ready",
                                              "Initialized",
                                              "ContainersReady",
                                              "PodResizePending",
                                              "PodResizeInProgress",
                                              "PodReadyToStartContainers"};
  json out = ours;
  if (!server.is_object()) return out;
  for (const auto& c : js::array(server, "conditions")) {
    if (!c.is_object() || owned.contains(js::str(c, "type"))) continue;
    if (!out.contains("conditions")) out["conditions"] = json::array();
    out["conditions"].push_back(c);
  }
  if (server.contains("resourceClaimStatuses"))
    out["resourceClaimStatuses"] = server["resourceClaimStatuses"];
  // The server backfills qosClass on every status write: never ask it to remove one.
  if (!out.contains("qosClass") && server.contains("qosClass"))
    out["qosClass"] = server["qosClass"];
  return out;
}

json mirrorPodFor(const api::Pod& pod, const std::string& node_name, const std::string& node_uid) {
  // The static pod as its manifest says (every field), else as nodelet models it.
  json m =
      json::parse(pod.source_json.empty() ? api::encodePod(pod) : pod.source_json, nullptr, false);
  if (!m.is_object() || !m.contains("metadata") || !m["metadata"].is_object())
    m = json::parse(api::encodePod(pod));
  m["apiVersion"] = "v1";
  m["kind"] = "Pod";
  m.erase("status");
  json& md = m["metadata"];
  for (const char* k : {"uid", "resourceVersion", "creationTimestamp", "deletionTimestamp",
                        "deletionGracePeriodSeconds"})
    md.erase(k);
  const auto hash = pod.metadata.annotations.find(kConfigHash);
  md["annotations"][kConfigMirror] =
      hash == pod.metadata.annotations.end() ? pod.metadata.uid : hash->second;
  md["ownerReferences"] = {{{"apiVersion", "v1"},
                            {"kind", "Node"},
                            {"name", node_name},
                            {"uid", node_uid},
                            {"controller", true}}};
  m["spec"]["nodeName"] = node_name;
  return m;
}

StatusSyncer::StatusSyncer(Client& client, Clock& clock, ObjectStore& store,
                           StatusSyncerOptions options, NodeUidFn node_uid)
    : client_(client),
      clock_(clock),
      store_(store),
      o_(std::move(options)),
      node_uid_(std::move(node_uid)) {}

void StatusSyncer::onStatus(const api::Pod& pod) {
  {
    std::lock_guard g(mu_);
    auto& e = pods_[pod.metadata.uid];
    e.pod = pod;
    e.removed = false;
    e.dirty = true;
    wake_ = true;
  }
  cv_.notify_all();
}

void StatusSyncer::onRemoved(const std::string& uid) {
  {
    std::lock_guard g(mu_);
    auto it = pods_.find(uid);
    if (it == pods_.end()) return;
    it->second.removed = true;
    it->second.dirty = true;
    wake_ = true;
  }
  cv_.notify_all();
}

void StatusSyncer::onTerminated(const std::string& uid) {
  {
    std::lock_guard g(mu_);
    auto it = pods_.find(uid);
    if (it == pods_.end()) return;
    it->second.terminated = true;
    it->second.dirty = true;
    wake_ = true;
  }
  cv_.notify_all();
}

void StatusSyncer::wake() {
  {
    std::lock_guard g(mu_);
    for (auto& [uid, e] : pods_)
      if (api::isStaticPod(e.pod)) e.dirty = true;
    wake_ = true;
  }
  cv_.notify_all();
}

bool StatusSyncer::deletePod(const json& target, const char* why) {
  const json opts = {{"kind", "DeleteOptions"},
                     {"apiVersion", "v1"},
                     {"gracePeriodSeconds", 0},
                     {"preconditions", {{"uid", uidOf(target)}}}};
  auto r = client_.request("DELETE", podPath(target), opts.dump());
  if (!r) {
    NODELET_LOG(warn, Api, "delete {} pod {}: {}", why, ObjectStore::keyOf(target),
                r.error().message);
    return false;
  }
  // 404: already gone; 409: a different pod by that name now (precondition failed).
  if (r->ok() || r->code == 404 || r->code == 409) {
    NODELET_LOG(info, Api, "deleted {} pod {}", why, ObjectStore::keyOf(target));
    return true;
  }
  NODELET_LOG(warn, Api, "delete {} pod {}: {}", why, ObjectStore::keyOf(target), r->describe());
  return false;
}

std::optional<json> StatusSyncer::ensureMirror(const Entry& e) {
  const auto& md = e.pod.metadata;
  auto mirror = store_.get(md.namespace_, md.name);
  const auto hash_it = md.annotations.find(kConfigHash);
  const std::string hash = hash_it == md.annotations.end() ? md.uid : hash_it->second;
  if (mirror) {
    if (!isMirrorPod(*mirror)) {
      NODELET_LOG(warn, Api, "static pod {}: a pod by that name exists and is not its mirror pod",
                  e.pod.fullName());
      return std::nullopt;
    }
    if (mirrorHash(*mirror) == hash &&
        !js::object(*mirror, "metadata").contains("deletionTimestamp"))
      return mirror;
    // An outdated mirror (the manifest changed): replace it.
    if (!deletePod(*mirror, "outdated mirror")) return std::nullopt;
    store_.erase(ObjectStore::keyOf(*mirror));
  }
  const std::string node_uid = node_uid_ ? node_uid_() : "";
  if (node_uid.empty()) return std::nullopt;  // not registered yet: the owner reference needs it
  const json body = mirrorPodFor(e.pod, o_.node_name, node_uid);
  auto r = client_.request("POST", "/api/v1/namespaces/" + md.namespace_ + "/pods", body.dump());
  if (!r) {
    NODELET_LOG(warn, Api, "create mirror pod {}: {}", e.pod.fullName(), r.error().message);
    return std::nullopt;
  }
  if (r->code == 409) {  // created meanwhile (by us, before a restart): fine if it is ours
    auto cur = client_.get("/api/v1/namespaces/" + md.namespace_ + "/pods/" + md.name);
    if (cur && cur->ok()) {
      json got = json::parse(cur->body, nullptr, false);
      if (isMirrorPod(got) && mirrorHash(got) == hash) {
        store_.upsert(got);
        return got;
      }
    }
    return std::nullopt;
  }
  if (!r->ok()) {
    NODELET_LOG(warn, Api, "create mirror pod {}: {}", e.pod.fullName(), r->describe());
    return std::nullopt;
  }
  json got = json::parse(r->body, nullptr, false);
  if (!got.is_object() || !got.contains("metadata")) return std::nullopt;
  NODELET_LOG(info, Api, "created mirror pod {} for static pod {}", ObjectStore::keyOf(got),
              md.uid);
  store_.upsert(got);
  return got;
}

bool StatusSyncer::syncStatus(const Entry& e, const json& target) {
  const json ours = json::parse(api::encodePodStatus(e.pod.status));
  const json server = js::object(target, "status");
  json patch = twoWayMergePatch({{"status", server}}, {{"status", mergedStatus(ours, server)}},
                                PatchSchema::pod());
  if (patch.empty()) return true;
  json body = {{"metadata", {{"uid", uidOf(target)}}}};
  body.update(patch);
  auto r = client_.request("PATCH", podPath(target) + "/status", body.dump(),
                           "application/strategic-merge-patch+json");
  if (!r) {
    NODELET_LOG(debug, Api, "status of pod {}: {}", ObjectStore::keyOf(target), r.error().message);
    return false;
  }
  if (r->ok()) {
    store_.updateWithReply(json::parse(r->body, nullptr, false));
    return true;
  }
  // 404: gone; 409/422: the pod by that name is another one now. The watch brings the truth.
  if (r->code == 404 || r->code == 409 || r->code == 422) {
    NODELET_LOG(info, Api, "status of pod {} not written: {}", ObjectStore::keyOf(target),
                r->describe());
    return true;
  }
  NODELET_LOG(warn, Api, "status of pod {}: {}", ObjectStore::keyOf(target), r->describe());
  return false;
}

bool StatusSyncer::syncEntry(const std::string& uid, Entry& e) {
  const auto& md = e.pod.metadata;
  if (api::isStaticPod(e.pod)) {
    if (e.removed) {
      auto mirror = store_.get(md.namespace_, md.name);
      if (mirror && isMirrorPod(*mirror)) {
        if (!deletePod(*mirror, "mirror")) return false;
        store_.erase(ObjectStore::keyOf(*mirror));
      }
      return true;
    }
    auto mirror = ensureMirror(e);
    if (!mirror) return false;
    return syncStatus(e, *mirror);
  }
  auto target = store_.get(md.namespace_, md.name);
  if (!target || uidOf(*target) != uid) return true;  // gone from the server: nothing to report
  if (!syncStatus(e, *target)) return false;
  if (e.terminated && (*target)["metadata"].contains("deletionTimestamp")) {
    if (!deletePod(*target, "terminated")) return false;
    e.terminated = false;
  }
  return true;
}

int StatusSyncer::syncOnce() {
  std::vector<std::pair<std::string, Entry>> work;
  {
    std::lock_guard g(mu_);
    for (auto& [uid, e] : pods_)
      if (e.dirty) {
        work.emplace_back(uid, e);
        e.dirty = false;
      }
  }
  int failed = 0;
  for (auto& [uid, e] : work) {
    const bool was_terminated = e.terminated;
    const bool ok = syncEntry(uid, e);
    std::lock_guard g(mu_);
    auto it = pods_.find(uid);
    if (it == pods_.end()) continue;
    if (!ok) {
      ++failed;
      it->second.dirty = true;  // try again later; a newer status may have replaced this one
      continue;
    }
    if (was_terminated && !e.terminated) it->second.terminated = false;  // deleted
    if (it->second.removed && e.removed && !it->second.dirty) pods_.erase(it);
  }
  return failed;
}

void StatusSyncer::run(std::stop_token stop) {
  std::stop_callback wake(stop, [this] { cv_.notify_all(); });
  MonoTime next_resync = clock_.monotonicNow() + o_.resync_period;
  for (uint64_t turn = 0; !stop.stop_requested() && turn < (1ull << 62); ++turn) {
    const int failed = syncOnce();
    MonoTime now = clock_.monotonicNow();
    if (now >= next_resync) {
      std::lock_guard g(mu_);
      for (auto& [uid, e] : pods_) e.dirty = true;  // compare with the server again
      next_resync = now + o_.resync_period;
    }
    const MonoTime deadline = failed ? std::min(next_resync, now + o_.retry_period) : next_resync;
    std::unique_lock l(mu_);
    if (!wake_ && !stop.stop_requested()) clock_.waitUntil(cv_, l, deadline);
    wake_ = false;
  }
}

}  // namespace nodelet::kube
