#include "agent/kube/node_controller.h"

#include "agent/core/api_json.h"
#include "agent/core/log.h"
#include "agent/kube/json_util.h"
#include "agent/kube/strategic_patch.h"

namespace nodelet::kube {
namespace {

using nlohmann::json;

constexpr const char* kLeasePath = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases";

// MicroTime: UTC with exactly six fractional digits.
std::string microTime(SysTime t) {
  const auto us =
      std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  const std::string whole = api::formatTime(SysTime(std::chrono::seconds(us / 1000000)));
  char frac[16];
  std::snprintf(frac, sizeof frac, ".%06lld", static_cast<long long>(us % 1000000));
  return whole.substr(0, whole.size() - 1) + frac + "Z";
}

}  // namespace

NodeController::NodeController(Client& client, Clock& clock, NodeControllerOptions options,
                               FactsFn facts, EventFn events)
    : client_(client),
      clock_(clock),
      o_(std::move(options)),
      facts_(std::move(facts)),
      events_(std::move(events)),
      rng_(o_.jitter_seed ? o_.jitter_seed : 0x9e3779b97f4a7c15ull) {}

Duration NodeController::jittered(Duration d, double fraction) {
  rng_ ^= rng_ << 13;
  rng_ ^= rng_ >> 7;
  rng_ ^= rng_ << 17;
  const double u = static_cast<double>(rng_ % 1000000) / 1000000.0;  // [0, 1)
  return std::chrono::duration_cast<Duration>(d * (1.0 + fraction * (2 * u - 1)));
}

bool NodeController::registered() const {
  std::lock_guard g(mu_);
  return !node_.is_null();
}

json NodeController::node() const {
  std::lock_guard g(mu_);
  return node_;
}

std::string NodeController::nodeUid() const {
  std::lock_guard g(mu_);
  return js::meta(node_, "uid");
}

void NodeController::poke() {
  {
    std::lock_guard g(mu_);
    poked_ = true;
  }
  cv_.notify_all();
}

Status NodeController::registerNode() {
  const NodeFacts facts = facts_();
  const json want = initialNode(facts, o_.labels, o_.taints, clock_.systemNow());
  auto r = client_.request("POST", "/api/v1/nodes", want.dump());
  if (!r) return std::unexpected(r.error().wrap("register node " + o_.node_name));
  json got;
  if (r->code == 201 || r->code == 200) {
    got = json::parse(r->body, nullptr, false);
    NODELET_LOG(info, Api, "registered node {}", o_.node_name);
  } else if (r->code == 409) {
    auto cur = client_.get("/api/v1/nodes/" + o_.node_name);
    if (!cur) return std::unexpected(cur.error().wrap("get node " + o_.node_name));
    if (!cur->ok()) return std::unexpected(cur->toError("get node " + o_.node_name));
    got = json::parse(cur->body, nullptr, false);
    // Reconcile: the labels nodelet owns must be what it would register now.
    json labels_patch = json::object();
    const json have = js::object(js::object(got, "metadata"), "labels");
    for (const auto& [k, v] : o_.labels)
      if (!have.contains(k) || have[k] != v) labels_patch[k] = v;
    if (!labels_patch.empty()) {
      auto p = client_.request("PATCH", "/api/v1/nodes/" + o_.node_name,
                               json{{"metadata", {{"labels", labels_patch}}}}.dump(),
                               "application/strategic-merge-patch+json");
      if (p && p->ok()) got = json::parse(p->body, nullptr, false);
    }
    NODELET_LOG(info, Api, "node {} was already registered (uid {})", o_.node_name,
                js::meta(got, "uid"));
  } else {
    return std::unexpected(r->toError("register node " + o_.node_name));
  }
  if (!got.is_object() || !got.contains("metadata") || !got["metadata"].is_object())
    return fail(ErrorCode::Internal,
                "register node " + o_.node_name + ": the server's reply is not a Node");
  {
    std::lock_guard g(mu_);
    node_ = std::move(got);
  }
  cv_.notify_all();
  emitTransitions();
  checkPodCidr();
  return {};
}

void NodeController::refreshForPodCidr() {
  // Until the controller manager has assigned a pod CIDR, look for it on every tick (the
  // kubelet watches its Node for it).
  {
    std::lock_guard g(mu_);
    if (!pod_cidr_.empty() || !o_.on_pod_cidr) return;
  }
  refreshNode();
  checkPodCidr();
}

nlohmann::json NodeController::refreshNode() {
  auto cur = client_.get("/api/v1/nodes/" + o_.node_name);
  json got = cur && cur->ok() ? json::parse(cur->body, nullptr, false) : json();
  std::lock_guard g(mu_);
  if (got.is_object() && got.contains("metadata")) node_ = std::move(got);
  return node_;
}

void NodeController::checkPodCidr() {
  std::string cidr;
  {
    std::lock_guard g(mu_);
    cidr = js::str(js::object(node_, "spec"), "podCIDR");
    if (cidr.empty() || cidr == pod_cidr_) return;
    pod_cidr_ = cidr;
  }
  NODELET_LOG(info, Api, "node {}: spec.podCIDR is {}", o_.node_name, cidr);
  if (o_.on_pod_cidr) o_.on_pod_cidr(cidr);
}

Status NodeController::renewLease() {
  const std::string path = std::string(kLeasePath) + "/" + o_.node_name;
  const std::string node_uid = nodeUid();
  for (int attempt = 0; attempt < 5; ++attempt) {
    json lease;
    {
      std::lock_guard g(mu_);
      lease = lease_;
    }
    if (lease.is_null()) {
      auto r = client_.get(path);
      if (!r) return std::unexpected(r.error().wrap("get lease"));
      if (r->code == 404) {
        json create = {{"apiVersion", "coordination.k8s.io/v1"},
                       {"kind", "Lease"},
                       {"metadata", {{"name", o_.node_name}, {"namespace", "kube-node-lease"}}},
                       {"spec",
                        {{"holderIdentity", o_.node_name},
                         {"leaseDurationSeconds", o_.lease_duration_seconds},
                         {"renewTime", microTime(clock_.systemNow())}}}};
        if (!node_uid.empty())
          create["metadata"]["ownerReferences"] = {
              {{"apiVersion", "v1"}, {"kind", "Node"}, {"name", o_.node_name}, {"uid", node_uid}}};
        auto c = client_.request("POST", kLeasePath, create.dump());
        if (!c) return std::unexpected(c.error().wrap("create lease"));
        if (c->code == 409) continue;  // created meanwhile: GET it
        if (!c->ok()) return std::unexpected(c->toError("create lease"));
        std::lock_guard g(mu_);
        lease_ = json::parse(c->body, nullptr, false);
        return {};
      }
      if (!r->ok()) return std::unexpected(r->toError("get lease"));
      lease = json::parse(r->body, nullptr, false);
      if (!lease.is_object())
        return fail(ErrorCode::Internal, "get lease: the server's reply is not a Lease");
    }
    json next = lease;
    if (!next["spec"].is_object()) next["spec"] = json::object();  // a malformed reply
    if (!next["metadata"].is_object()) next["metadata"] = json::object();
    next["spec"]["holderIdentity"] = o_.node_name;
    next["spec"]["leaseDurationSeconds"] = o_.lease_duration_seconds;
    next["spec"]["renewTime"] = microTime(clock_.systemNow());
    if (!node_uid.empty() && !next["metadata"].contains("ownerReferences"))
      next["metadata"]["ownerReferences"] = {
          {{"apiVersion", "v1"}, {"kind", "Node"}, {"name", o_.node_name}, {"uid", node_uid}}};
    auto u = client_.request("PUT", path, next.dump());
    if (!u) return std::unexpected(u.error().wrap("renew lease"));
    if (u->code == 409 || u->code == 404) {  // someone else wrote it, or it is gone: start over
      std::lock_guard g(mu_);
      lease_ = nullptr;
      continue;
    }
    if (!u->ok()) return std::unexpected(u->toError("renew lease"));
    std::lock_guard g(mu_);
    lease_ = json::parse(u->body, nullptr, false);
    return {};
  }
  return fail(ErrorCode::FailedPrecondition, "renew lease: gave up after 5 conflicts");
}

Result<bool> NodeController::updateStatus(bool force) {
  json server;
  {
    std::lock_guard g(mu_);
    if (node_.is_null()) return false;
    server = js::object(node_, "status");
  }
  const SysTime now = clock_.systemNow();
  const MonoTime mono = clock_.monotonicNow();
  const json next = nodeStatus(facts_(), server, now);
  bool due = force || statusChanged(server, next);
  {
    std::lock_guard g(mu_);
    if (!last_report_ || mono - *last_report_ >= report_interval_) due = true;
  }
  if (!due) {
    refreshForPodCidr();
    return false;
  }
  const json patch =
      twoWayMergePatch({{"status", server}}, {{"status", next}}, PatchSchema::node());
  if (patch.empty()) {  // the server has exactly this: as good as a report
    {
      std::lock_guard g(mu_);
      last_report_ = mono;
      report_interval_ = jittered(o_.status_report_frequency, 0.5);
    }
    refreshForPodCidr();
    return false;
  }
  auto r = client_.request("PATCH", "/api/v1/nodes/" + o_.node_name + "/status", patch.dump(),
                           "application/strategic-merge-patch+json");
  if (!r) return std::unexpected(r.error().wrap("update node status"));
  if (r->code == 404) {  // the Node was deleted: register again
    std::lock_guard g(mu_);
    node_ = nullptr;
    lease_ = nullptr;
    return std::unexpected(r->toError("update node status"));
  }
  if (!r->ok()) {
    // Maybe our copy is stale: read the Node again for the next attempt.
    if (auto cur = client_.get("/api/v1/nodes/" + o_.node_name); cur && cur->ok()) {
      std::lock_guard g(mu_);
      node_ = json::parse(cur->body, nullptr, false);
    }
    return std::unexpected(r->toError("update node status"));
  }
  json got = json::parse(r->body, nullptr, false);
  {
    std::lock_guard g(mu_);
    if (got.is_object()) node_ = got;
    last_report_ = mono;
    // Sent again after nodeStatusReportFrequency, spread ±50 % so nodes do not report together.
    report_interval_ = jittered(o_.status_report_frequency, 0.5);
  }
  emitTransitions();
  checkPodCidr();
  return true;
}

void NodeController::emitTransitions() {
  // The kubelet's node events: one per condition whose status changed, named after the state.
  static const std::map<std::string, std::pair<const char*, const char*>> names = {
      {"MemoryPressure", {"NodeHasSufficientMemory", "NodeHasInsufficientMemory"}},
      {"DiskPressure", {"NodeHasNoDiskPressure", "NodeHasDiskPressure"}},
      {"PIDPressure", {"NodeHasSufficientPID", "NodeHasInsufficientPID"}},
      {"Ready", {"NodeNotReady", "NodeReady"}},
  };
  std::vector<std::string> happened;
  {
    std::lock_guard g(mu_);
    if (!node_.is_object() || !node_.contains("status")) return;
    for (const auto& c : js::array(js::object(node_, "status"), "conditions")) {
      if (!c.is_object()) continue;
      const std::string type = js::str(c, "type"), status = js::str(c, "status");
      auto n = names.find(type);
      if (n == names.end() || status.empty() || last_conditions_[type] == status) continue;
      last_conditions_[type] = status;
      happened.push_back(status == "True" ? n->second.second : n->second.first);
    }
  }
  if (!events_) return;
  for (const auto& reason : happened)
    events_("Normal", reason, "Node " + o_.node_name + " status is now: " + reason);
}

void NodeController::run(std::stop_token stop) {
  std::stop_callback wake(stop, [this] { cv_.notify_all(); });
  if (events_) events_("Normal", "Starting", "Starting nodelet.");
  Duration backoff = std::chrono::milliseconds(100);
  MonoTime next_status = clock_.monotonicNow();
  MonoTime next_lease = next_status;
  MonoTime next_register = next_status;
  const Duration renew = std::chrono::seconds(o_.lease_duration_seconds) / 4;
  bool lease_ok = true, status_ok = true;
  for (uint64_t turn = 0; !stop.stop_requested() && turn < (1ull << 62); ++turn) {
    const MonoTime now = clock_.monotonicNow();
    if (!registered()) {
      if (now >= next_register) {
        if (auto s = registerNode(); !s) {
          NODELET_LOG(warn, Api, "{}; retrying in {} ms", s.error().message,
                      std::chrono::duration_cast<std::chrono::milliseconds>(backoff).count());
          next_register = now + backoff;
          backoff = std::min<Duration>(backoff * 2, std::chrono::seconds(7));
        } else {
          backoff = std::chrono::milliseconds(100);
          next_lease = next_status = clock_.monotonicNow();
        }
      }
    }
    if (registered()) {
      bool force = false;
      {
        std::lock_guard g(mu_);
        force = poked_;
        poked_ = false;
      }
      if (clock_.monotonicNow() >= next_lease) {
        auto s = renewLease();
        if (!s && lease_ok) NODELET_LOG(warn, Api, "{}", s.error().message);
        if (s && !lease_ok) NODELET_LOG(info, Api, "node lease renewed again");
        lease_ok = static_cast<bool>(s);
        // After a failure, retry sooner than a full interval (the kubelet retries at 200 ms
        // doubling up to 7 s); after success, every leaseDuration/4 with ±4 % jitter.
        next_lease =
            clock_.monotonicNow() + (lease_ok ? jittered(renew, 0.04) : std::chrono::seconds(1));
      }
      if (force || clock_.monotonicNow() >= next_status) {
        auto s = updateStatus(force);
        if (!s && status_ok) NODELET_LOG(warn, Api, "{}", s.error().message);
        status_ok = static_cast<bool>(s);
        next_status = clock_.monotonicNow() + o_.status_update_frequency;
      }
    }
    MonoTime deadline = registered() ? std::min(next_lease, next_status) : next_register;
    std::unique_lock l(mu_);
    if (!poked_ && !stop.stop_requested()) clock_.waitUntil(cv_, l, deadline);
  }
}

}  // namespace nodelet::kube
