#include "agent/kube/object_source.h"

#include "agent/core/api_json.h"
#include "agent/core/log.h"
#include "agent/kube/client.h"
#include "agent/kube/json_util.h"
#include "agent/kube/kubeconfig.h"

namespace nodelet::kube {

ApiObjectSource::ApiObjectSource(Client& client, Clock& clock, Duration cache_for)
    : client_(client), clock_(clock), cache_for_(cache_for) {}

Result<std::optional<ObjectSource::Data>> ApiObjectSource::get(const std::string& kind,
                                                               const std::string& ns,
                                                               const std::string& name) {
  const std::string key = kind + "/" + ns + "/" + name;
  {
    std::lock_guard g(mu_);
    auto it = objects_.find(key);
    if (it != objects_.end() && clock_.monotonicNow() - it->second.at < cache_for_)
      return it->second.data;
  }
  auto r = client_.get("/api/v1/namespaces/" + ns + "/" + kind + "/" + name);
  if (!r || r->code >= 500) {
    // The API server is away: what was last read stands in (offline first), if anything was.
    std::lock_guard g(mu_);
    if (auto it = objects_.find(key); it != objects_.end()) return it->second.data;
    if (!r) return std::unexpected(r.error().wrap("get " + kind + " " + ns + "/" + name));
    return std::unexpected(r->toError("get " + kind + " " + ns + "/" + name));
  }
  std::optional<Data> data;
  if (r->code == 404) {
    data = std::nullopt;
  } else if (!r->ok()) {
    return std::unexpected(r->toError("get " + kind + " " + ns + "/" + name));
  } else {
    auto obj = nlohmann::json::parse(r->body, nullptr, false);
    Data d;
    for (const auto& [k, v] : js::object(obj, "data").items()) {
      if (!v.is_string()) continue;
      if (kind == "secrets") {
        auto bytes = base64Decode(v.get<std::string>());
        if (!bytes)
          return fail(ErrorCode::InvalidArgument,
                      "secret " + ns + "/" + name + " key " + k + ": invalid base64");
        d[k] = *bytes;
      } else {
        d[k] = v.get<std::string>();
      }
    }
    for (const auto& [k, v] : js::object(obj, "binaryData").items())
      if (v.is_string())
        if (auto bytes = base64Decode(v.get<std::string>())) d[k] = *bytes;
    data = std::move(d);
  }
  std::lock_guard g(mu_);
  objects_[key] = {data, clock_.monotonicNow()};
  return data;
}

Result<std::optional<ObjectSource::Data>> ApiObjectSource::configMap(const std::string& ns,
                                                                     const std::string& name) {
  return get("configmaps", ns, name);
}

Result<std::optional<ObjectSource::Data>> ApiObjectSource::secret(const std::string& ns,
                                                                  const std::string& name) {
  return get("secrets", ns, name);
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

}  // namespace nodelet::kube
