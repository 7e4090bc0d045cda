#include "agent/node_auth.h"

#include <strings.h>

#include <algorithm>

#include "agent/core/log.h"
#include "agent/kube/client.h"
#include "agent/kube/json_util.h"

namespace nodelet::agent {
namespace {

// `path` is `prefix` or below it ("/stats" matches "/stats" and "/stats/summary").
bool isSubpath(const std::string& path, std::string prefix) {
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  return path == prefix ||
         (path.starts_with(prefix) && path.size() > prefix.size() && path[prefix.size()] == '/');
}

std::string accessKey(const UserInfo& u, const RequestAttributes& a) {
  std::string k = u.name + '\n' + u.uid + '\n';
  for (const auto& g : u.groups) k += g + ',';
  for (const auto& [key, values] : u.extra) {
    k += '\n' + key + '=';
    for (const auto& v : values) k += v + ',';
  }
  return k + '\n' + a.verb + '\n' + a.subresource + '\n' + a.name;
}

}  // namespace

RequestAttributes attributesFor(const std::string& method, const std::string& path,
                                const std::string& node_name) {
  RequestAttributes a;
  a.name = node_name;
  a.verb = method == "POST"     ? "create"
           : method == "GET"    ? "get"
           : method == "PUT"    ? "update"
           : method == "PATCH"  ? "patch"
           : method == "DELETE" ? "delete"
                                : "";
  // As the kubelet v1.32 maps it (without the alpha KubeletFineGrainedAuthz gate): everything
  // else, exec and logs of containers included, is "proxy".
  a.subresource = isSubpath(path, "/stats/")        ? "stats"
                  : isSubpath(path, "/metrics")     ? "metrics"
                  : isSubpath(path, "/logs/")       ? "log"
                  : isSubpath(path, "/spec/")       ? "spec"
                  : isSubpath(path, "/checkpoint/") ? "checkpoint"
                                                    : "proxy";
  return a;
}

NodeAuth::NodeAuth(AuthOptions options, Reviewer* reviewer, Clock& clock)
    : o_(std::move(options)), reviewer_(reviewer), clock_(clock) {}

Result<std::optional<UserInfo>> NodeAuth::authenticate(const std::optional<UserInfo>& cert_user,
                                                       const std::string& authorization) {
  if (cert_user) return cert_user;
  // "Authorization: Bearer <token>" (the scheme is case-insensitive).
  std::string token;
  if (authorization.size() > 7 && strncasecmp(authorization.c_str(), "bearer ", 7) == 0) {
    token = authorization.substr(7);
    while (!token.empty() && token.front() == ' ') token.erase(0, 1);
    while (!token.empty() && token.back() == ' ') token.pop_back();
  }
  if (!token.empty() && o_.webhook_authn && reviewer_) {
    const MonoTime now = clock_.monotonicNow();
    {
      std::lock_guard g(mu_);
      auto it = tokens_.find(token);
      if (it != tokens_.end() && now < it->second.until) {
        if (it->second.user) return it->second.user;
        return std::optional<UserInfo>{};
      }
    }
    auto r = reviewer_->reviewToken(token);
    if (!r) return std::unexpected(r.error());
    std::lock_guard g(mu_);
    if (tokens_.size() > 4096) tokens_.clear();  // a bound, not a policy
    tokens_[token] = {*r, now + o_.token_cache_ttl};
    if (*r) return *r;
  }
  if (o_.anonymous) return UserInfo{"system:anonymous", "", {"system:unauthenticated"}, {}};
  return std::optional<UserInfo>{};
}

Decision NodeAuth::decide(const std::optional<UserInfo>& cert_user,
                          const std::string& authorization, const std::string& method,
                          const std::string& path) {
  Decision d;
  auto user = authenticate(cert_user, authorization);
  if (!user) {
    NODELET_LOG(warn, Server, "authentication: {}", user.error().message);
    return {401, "Unauthorized", {}};
  }
  if (!*user) return {401, "Unauthorized", {}};
  d.user = **user;
  const RequestAttributes attrs = attributesFor(method, path, o_.node_name);
  auto forbidden = [&](const std::string& reason) {
    Decision f{403,
               "Forbidden (user=" + d.user.name + ", verb=" + attrs.verb +
                   ", resource=nodes, subresource=" + attrs.subresource + ")",
               d.user};
    if (!reason.empty()) NODELET_LOG(debug, Server, "{}: {}", f.message, reason);
    return f;
  };
  if (o_.authorization_mode == "AlwaysAllow") return d;
  if (!reviewer_) return forbidden("authorization mode Webhook needs an API server");
  const std::string key = accessKey(d.user, attrs);
  const MonoTime now = clock_.monotonicNow();
  {
    std::lock_guard g(mu_);
    auto it = access_.find(key);
    if (it != access_.end() && now < it->second.until)
      return it->second.allowed ? d : forbidden(it->second.reason);
  }
  auto r = reviewer_->reviewAccess(d.user, attrs);
  if (!r) {
    NODELET_LOG(warn, Server, "authorization: {}", r.error().message);
    return {500,
            "Authorization error (user=" + d.user.name + ", verb=" + attrs.verb +
                ", resource=nodes, subresource=" + attrs.subresource + ")",
            d.user};
  }
  {
    std::lock_guard g(mu_);
    if (access_.size() > 4096) access_.clear();
    access_[key] = {r->first, r->second,
                    now + (r->first ? o_.authorized_ttl : o_.unauthorized_ttl)};
  }
  return r->first ? d : forbidden(r->second);
}

Result<std::optional<UserInfo>> ApiReviewer::reviewToken(const std::string& token) {
  const nlohmann::json req = {{"apiVersion", "authentication.k8s.io/v1"},
                              {"kind", "TokenReview"},
                              {"spec", {{"token", token}}}};
  auto r = client_.request("POST", "/apis/authentication.k8s.io/v1/tokenreviews", req.dump());
  if (!r) return std::unexpected(r.error().wrap("TokenReview"));
  if (!r->ok()) return std::unexpected(r->toError("TokenReview"));
  const auto doc = nlohmann::json::parse(r->body, nullptr, false);
  const auto& st = nodelet::kube::js::object(doc, "status");
  if (!nodelet::kube::js::boolean(st, "authenticated")) return std::optional<UserInfo>{};
  const auto& u = nodelet::kube::js::object(st, "user");
  UserInfo user;
  user.name = nodelet::kube::js::str(u, "username");
  user.uid = nodelet::kube::js::str(u, "uid");
  for (const auto& g : nodelet::kube::js::array(u, "groups"))
    if (g.is_string()) user.groups.push_back(g.get<std::string>());
  for (const auto& [k, v] : nodelet::kube::js::object(u, "extra").items())
    if (v.is_array())
      for (const auto& e : v)
        if (e.is_string()) user.extra[k].push_back(e.get<std::string>());
  if (user.name.empty()) return fail(ErrorCode::Internal, "TokenReview: no username in the reply");
  return std::optional<UserInfo>(std::move(user));
}

Result<std::pair<bool, std::string>> ApiReviewer::reviewAccess(const UserInfo& user,
                                                               const RequestAttributes& attrs) {
  nlohmann::json spec = {{"resourceAttributes",
                          {{"verb", attrs.verb},
                           {"version", "v1"},
                           {"resource", "nodes"},
                           {"subresource", attrs.subresource},
                           {"name", attrs.name}}},
                         {"user", user.name},
                         {"groups", user.groups}};
  if (!user.uid.empty()) spec["uid"] = user.uid;
  if (!user.extra.empty()) spec["extra"] = user.extra;
  const nlohmann::json req = {{"apiVersion", "authorization.k8s.io/v1"},
                              {"kind", "SubjectAccessReview"},
                              {"spec", std::move(spec)}};
  auto r =
      client_.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", req.dump());
  if (!r) return std::unexpected(r.error().wrap("SubjectAccessReview"));
  if (!r->ok()) return std::unexpected(r->toError("SubjectAccessReview"));
  const auto doc = nlohmann::json::parse(r->body, nullptr, false);
  const auto& st = nodelet::kube::js::object(doc, "status");
  return std::pair<bool, std::string>{
      nodelet::kube::js::boolean(st, "allowed") && !nodelet::kube::js::boolean(st, "denied"),
      nodelet::kube::js::str(st, "reason")};
}

}  // namespace nodelet::agent
