#pragma once
// Who may use the node server on `port` (10250), as the kubelet decides it
// (pkg/kubelet/server/auth.go and the apiserver's delegating authenticator/authorizer):
//
//   authentication: a client certificate that verifies against authentication.x509.clientCAFile
//     (user = CN, groups = O), else a bearer token through TokenReview (authentication.webhook),
//     else anonymous (system:anonymous) when authentication.anonymous.enabled; else 401.
//   authorization: AlwaysAllow, or Webhook: a SubjectAccessReview for
//     {verb from the HTTP method, resource "nodes", subresource from the path, name = node};
//     allowed and denied answers are cached (cacheAuthorizedTTL / cacheUnauthorizedTTL).
//
// The reviews go through the API server (agent/kube/reviews.h); this file is the decision
// logic, unit-tested with scripted reviews and a simulated clock.
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/clock.h"
#include "agent/core/error.h"

namespace nodelet::kube {
class Client;
}

namespace nodelet::agent {

struct UserInfo {
  std::string name;
  std::string uid;
  std::vector<std::string> groups;
  std::map<std::string, std::vector<std::string>> extra;
  bool operator==(const UserInfo&) const = default;
};

// What a request asks for, in SubjectAccessReview terms.
struct RequestAttributes {
  std::string verb;         // get, create, update, patch, delete (from the HTTP method)
  std::string subresource;  // stats, metrics, log, spec, pods, healthz, configz, proxy, ...
  std::string name;         // the node
  bool operator==(const RequestAttributes&) const = default;
};
// The kubelet's mapping of a node-server path (and method) to the attributes it authorizes.
RequestAttributes attributesFor(const std::string& method, const std::string& path,
                                const std::string& node_name);

// The API server's answers (TokenReview, SubjectAccessReview), or a script in tests.
class Reviewer {
 public:
  virtual ~Reviewer() = default;
  // nullopt: the token is not valid. An error: the review could not be made.
  virtual Result<std::optional<UserInfo>> reviewToken(const std::string& token) = 0;
  // (allowed, reason)
  virtual Result<std::pair<bool, std::string>> reviewAccess(const UserInfo& user,
                                                            const RequestAttributes& attrs) = 0;
};

struct AuthOptions {
  bool anonymous{false};     // authentication.anonymous.enabled (v1beta1 default: false)
  bool webhook_authn{true};  // authentication.webhook.enabled
  Duration token_cache_ttl{std::chrono::minutes(2)};  // authentication.webhook.cacheTTL
  std::string authorization_mode{"Webhook"};          // or AlwaysAllow
  Duration authorized_ttl{std::chrono::minutes(5)};
  Duration unauthorized_ttl{std::chrono::seconds(30)};
  std::string node_name;
};

struct Decision {
  int code{200};        // 200, 401 or 403
  std::string message;  // the body for 401/403, as the kubelet writes it
  UserInfo user;
};

class NodeAuth {
 public:
  // `reviewer` may be null (no API server): then only certificates and anonymous authenticate,
  // and only AlwaysAllow can authorize.
  NodeAuth(AuthOptions options, Reviewer* reviewer, Clock& clock);
  // `cert_user`: the verified client certificate's user, if one was presented and verified.
  // `authorization`: the request's Authorization header.
  Decision decide(const std::optional<UserInfo>& cert_user, const std::string& authorization,
                  const std::string& method, const std::string& path);

 private:
  Result<std::optional<UserInfo>> authenticate(const std::optional<UserInfo>& cert_user,
                                               const std::string& authorization);
  AuthOptions o_;
  Reviewer* reviewer_;
  Clock& clock_;
  std::mutex mu_;
  struct CachedToken {
    std::optional<UserInfo> user;
    MonoTime until;
  };
  std::map<std::string, CachedToken> tokens_;  // token -> user (nullopt: invalid)
  struct CachedAccess {
    bool allowed;
    std::string reason;
    MonoTime until;
  };
  std::map<std::string, CachedAccess> access_;  // user + attributes -> answer
};

// The reviews through the API server: TokenReview and SubjectAccessReview, as the node's own
// identity (the system:node role may create both).
class ApiReviewer final : public Reviewer {
 public:
  explicit ApiReviewer(nodelet::kube::Client& client) : client_(client) {}
  Result<std::optional<UserInfo>> reviewToken(const std::string& token) override;
  Result<std::pair<bool, std::string>> reviewAccess(const UserInfo& user,
                                                    const RequestAttributes& attrs) override;

 private:
  nodelet::kube::Client& client_;
};

}  // namespace nodelet::agent
