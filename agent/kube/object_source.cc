#include "agent/kube/object_source.h"

#include <atomic>
#include <thread>

#include "agent/core/api_json.h"
#include "agent/core/log.h"
#include "agent/kube/client.h"
#include "agent/kube/json_util.h"
#include "agent/kube/kubeconfig.h"
#include "agent/kube/reflector.h"

namespace nodelet::kube {

namespace {

// A ConfigMap's or Secret's data, decoded (Secret values and binaryData are base64).
Result<ObjectSource::Data> decodeData(const std::string& resource, const nlohmann::json& obj) {
  ObjectSource::Data d;
  for (const auto& [k, v] : js::object(obj, "data").items()) {
    if (!v.is_string()) continue;
    if (resource == "secrets") {
      auto bytes = base64Decode(v.get<std::string>());
      if (!bytes)
        return fail(ErrorCode::InvalidArgument, "secret " + js::meta(obj, "namespace") + "/" +
                                                    js::meta(obj, "name") + " key " + k +
                                                    ": invalid base64");
      d[k] = std::move(*bytes);
    } else {
      d[k] = v.get<std::string>();
    }
  }
  for (const auto& [k, v] : js::object(obj, "binaryData").items())
    if (v.is_string())
      if (auto bytes = base64Decode(v.get<std::string>())) d[k] = std::move(*bytes);
  return d;
}

}  // namespace

// One watched object: its reflector (list + watch of metadata.name=<name> in its namespace, the
// only reads the Node authorizer allows a node) and the thread that keeps it current.
struct ApiObjectSource::Watcher {
  ObjectStore store;
  std::unique_ptr<Reflector> reflector;
  std::mutex first;  // held for the first list, so concurrent first readers list once
  std::atomic<bool> listed{false};
  MonoTime last_read{};  // under ApiObjectSource::mu_
  std::jthread thread;   // last: stops first
};

ApiObjectSource::ApiObjectSource(Client& client, Clock& clock, Duration cache_for,
                                 Duration idle_after)
    : client_(client), clock_(clock), cache_for_(cache_for), idle_after_(idle_after) {}

ApiObjectSource::~ApiObjectSource() {
  std::lock_guard g(mu_);
  for (auto& [k, w] : watchers_) w->thread.request_stop();
  for (auto& [at, w] : retiring_) w->thread.request_stop();
}

void ApiObjectSource::setOnChange(std::function<void(const std::string& key)> on_change) {
  std::lock_guard g(change_mu_);  // waits for a call in progress
  on_change_ = std::move(on_change);
}

size_t ApiObjectSource::watching() const {
  std::lock_guard g(mu_);
  return watchers_.size();
}

Result<std::optional<nlohmann::json>> ApiObjectSource::get(const std::string& resource,
                                                           const std::string& ns,
                                                           const std::string& name) {
  const std::string key = resource + "/" + ns + "/" + name;
  std::shared_ptr<Watcher> w;
  std::vector<std::shared_ptr<Watcher>> finished;
  {
    std::lock_guard g(mu_);
    const MonoTime now = clock_.monotonicNow();
    // Objects no pod has read for a while (every running pod re-reads its objects at each sync)
    // stop being watched. A watch notices its stop within a second or so (libcurl's progress
    // callback), so a retired watcher is joined only once it has had several: a reader never
    // waits for one.
    for (auto it = retiring_.begin(); it != retiring_.end();) {
      if (now - it->first > std::chrono::seconds(5)) {
        finished.push_back(std::move(it->second));
        it = retiring_.erase(it);
      } else {
        ++it;
      }
    }
    for (auto it = watchers_.begin(); it != watchers_.end();) {
      if (it->first != key && now - it->second->last_read > idle_after_) {
        it->second->thread.request_stop();
        retiring_.emplace_back(now, std::move(it->second));
        it = watchers_.erase(it);
      } else {
        ++it;
      }
    }
    auto& slot = watchers_[key];
    if (!slot) {
      slot = std::make_shared<Watcher>();
      ReflectorOptions o;
      o.resource = resource;
      if (resource == "runtimeclasses") {  // cluster-scoped
        o.kind = "RuntimeClass";
        o.collection = "/apis/node.k8s.io/v1/runtimeclasses";
      } else {
        o.kind = resource == "secrets" ? "Secret" : "ConfigMap";
        o.collection = "/api/v1/namespaces/" + ns + "/" + resource;
      }
      o.field_selector = "metadata.name=" + name;
      // As the kubelet's object watches: long (2664-3450 s observed in recorded/), with timeout=.
      o.timeout_param = true;
      o.min_watch_timeout = std::chrono::seconds(2400);
      o.max_watch_timeout = std::chrono::seconds(3600);
      Watcher* raw = slot.get();
      slot->reflector = std::make_unique<Reflector>(
          client_, clock_, slot->store, o, [this, raw, key](const std::vector<nlohmann::json>&) {
            if (!raw->listed) return;  // the first list answers its reader directly
            std::lock_guard lock(change_mu_);
            if (on_change_) on_change_(key);
          });
    }
    slot->last_read = now;
    w = slot;
  }
  finished.clear();  // joins watchers stopped seconds ago (done by now)
  if (!w->listed) {
    std::lock_guard first(w->first);
    if (!w->listed) {
      if (auto s = w->reflector->list(); !s) {
        std::lock_guard lock(mu_);
        if (auto it = watchers_.find(key); it != watchers_.end() && it->second == w)
          watchers_.erase(it);  // the next reader tries again
        return std::unexpected(
            s.error().wrap("get " + resource + " " + (ns.empty() ? name : ns + "/" + name)));
      }
      w->listed = true;
      w->thread = std::jthread([w = w.get()](std::stop_token st) { w->reflector->run(st, true); });
    }
  }
  // What the watch holds: current while the API server is there, the last known while not.
  return w->store.get(ns, name);
}

Result<std::optional<ObjectSource::Data>> ApiObjectSource::data(const std::string& resource,
                                                                const std::string& ns,
                                                                const std::string& name) {
  auto obj = get(resource, ns, name);
  if (!obj) return std::unexpected(obj.error());
  if (!*obj) return std::optional<Data>{};
  auto data = decodeData(resource, **obj);
  if (!data) return std::unexpected(data.error());
  return std::optional<Data>(std::move(*data));
}

Result<std::optional<ObjectSource::Data>> ApiObjectSource::configMap(const std::string& ns,
                                                                     const std::string& name) {
  return data("configmaps", ns, name);
}

Result<std::optional<ObjectSource::Data>> ApiObjectSource::secret(const std::string& ns,
                                                                  const std::string& name) {
  return data("secrets", ns, name);
}

Result<std::optional<std::string>> ApiObjectSource::runtimeHandler(const std::string& name) {
  auto obj = get("runtimeclasses", "", name);
  if (!obj) return std::unexpected(obj.error());
  if (!*obj) return std::optional<std::string>{};
  return std::optional<std::string>(js::str(**obj, "handler"));
}

Result<ObjectSource::Token> ApiObjectSource::serviceAccountToken(const api::Pod& pod,
                                                                 const std::string& audience,
                                                                 int64_t expiration_seconds) {
  const std::string key =
      pod.metadata.uid + "/" + audience + "/" + std::to_string(expiration_seconds);
  const SysTime now = clock_.systemNow();
  {
    std::lock_guard g(mu_);
    auto it = tokens_.find(key);
    if (it != tokens_.end()) {
      const auto ttl = it->second.token.expires - it->second.issued;
      const bool fresh = now < it->second.issued + ttl * 8 / 10 &&
                         now - it->second.issued < std::chrono::hours(24);
      if (fresh) return it->second.token;
    }
  }
  const std::string sa =
      pod.spec.service_account_name.empty() ? "default" : pod.spec.service_account_name;
  nlohmann::json req = {{"kind", "TokenRequest"},
                        {"apiVersion", "authentication.k8s.io/v1"},
                        {"spec",
                         {{"audiences", audience.empty() ? nlohmann::json::array()
                                                         : nlohmann::json::array({audience})},
                          {"expirationSeconds", expiration_seconds},
                          {"boundObjectRef",
                           {{"apiVersion", "v1"},
                            {"kind", "Pod"},
                            {"name", pod.metadata.name},
                            {"uid", pod.metadata.uid}}}}}};
  auto r = client_.request(
      "POST", "/api/v1/namespaces/" + pod.metadata.namespace_ + "/serviceaccounts/" + sa + "/token",
      req.dump());
  if (!r || !r->ok()) {
    // A token that has not expired yet keeps serving while the API server is away.
    std::lock_guard g(mu_);
    if (auto it = tokens_.find(key); it != tokens_.end() && now < it->second.token.expires)
      return it->second.token;
    if (!r) return std::unexpected(r.error().wrap("request a token for serviceaccount " + sa));
    return std::unexpected(r->toError("request a token for serviceaccount " + sa));
  }
  auto obj = nlohmann::json::parse(r->body, nullptr, false);
  Token t;
  t.token = js::str(js::object(obj, "status"), "token");
  auto exp = api::parseTime(js::str(js::object(obj, "status"), "expirationTimestamp"));
  if (t.token.empty() || !exp)
    return fail(ErrorCode::Internal, "TokenRequest for " + sa + ": the reply has no token");
  t.expires = *exp;
  std::lock_guard g(mu_);
  tokens_[key] = {t, now};
  return t;
}

Result<std::vector<ObjectSource::Service>> ApiObjectSource::services(const std::string& ns) {
  {
    std::lock_guard g(mu_);
    auto it = services_.find(ns);
    if (it != services_.end() && clock_.monotonicNow() - it->second.at < cache_for_)
      return it->second.list;
  }
  auto r = client_.get("/api/v1/namespaces/" + ns + "/services");
  if (!r || !r->ok()) {
    std::lock_guard g(mu_);
    if (auto it = services_.find(ns); it != services_.end())
      return it->second.list;  // offline first
    if (!r) return std::unexpected(r.error().wrap("list services in " + ns));
    return std::unexpected(r->toError("list services in " + ns));
  }
  auto doc = nlohmann::json::parse(r->body, nullptr, false);
  std::vector<Service> out;
  for (const auto& item : js::array(doc, "items")) {
    const auto& spec = js::object(item, "spec");
    Service s;
    s.name = js::meta(item, "name");
    s.cluster_ip = js::str(spec, "clusterIP");
    if (s.name.empty() || s.cluster_ip.empty() || s.cluster_ip == "None") continue;  // headless
    for (const auto& p : js::array(spec, "ports")) {
      ServicePort sp;
      sp.name = js::str(p, "name");
      sp.port = static_cast<int32_t>(js::integer(p, "port"));
      const std::string proto = js::str(p, "protocol");
      if (!proto.empty()) sp.protocol = proto;
      s.ports.push_back(sp);
    }
    out.push_back(std::move(s));
  }
  std::lock_guard g(mu_);
  services_[ns] = {out, clock_.monotonicNow()};
  return out;
}

std::vector<std::string> StaticObjectSource::replace(std::map<std::string, Data> objects) {
  std::vector<std::string> changed;
  std::lock_guard g(mu_);
  for (const auto& [key, data] : objects) {
    auto it = objects_.find(key);
    if (it == objects_.end() || it->second != data) changed.push_back(key);
  }
  for (const auto& [key, data] : objects_)
    if (!objects.contains(key)) changed.push_back(key);
  objects_ = std::move(objects);
  return changed;
}

std::optional<ObjectSource::Data> StaticObjectSource::find(const std::string& key) const {
  std::lock_guard g(mu_);
  auto it = objects_.find(key);
  if (it == objects_.end()) return std::nullopt;
  return it->second;
}

Result<std::optional<ObjectSource::Data>> StaticObjectSource::configMap(const std::string& ns,
                                                                        const std::string& name) {
  return find("configmaps/" + ns + "/" + name);
}

Result<std::optional<ObjectSource::Data>> StaticObjectSource::secret(const std::string& ns,
                                                                     const std::string& name) {
  return find("secrets/" + ns + "/" + name);
}

Result<std::vector<ObjectSource::Service>> StaticObjectSource::services(const std::string& ns) {
  if (cluster_) return cluster_->services(ns);
  return std::vector<Service>{};
}

Result<std::optional<std::string>> StaticObjectSource::runtimeHandler(const std::string& name) {
  if (auto rc = find("runtimeclasses//" + name))
    return std::optional<std::string>(rc->at("handler"));
  if (cluster_) return cluster_->runtimeHandler(name);
  // No API server and no RuntimeClass manifest: the kubelet without an API server has no
  // RuntimeClasses and runs every sandbox with the runtime's default handler. So does nodelet.
  NODELET_LOG(warn, StaticPods,
              "RuntimeClass {} is not defined in the manifest directory and there is no API "
              "server: the runtime's default handler runs the pod, as the kubelet's would",
              name);
  return std::optional<std::string>("");
}

Result<ObjectSource::Token> StaticObjectSource::serviceAccountToken(const api::Pod&,
                                                                    const std::string&, int64_t) {
  return fail(ErrorCode::FailedPrecondition, "static pods cannot use service account tokens");
}

}  // namespace nodelet::kube
