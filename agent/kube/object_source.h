#pragma once
// The API objects pod volumes and environment read: ConfigMaps, Secrets and service-account
// tokens. In cluster mode they come from the API server (ApiObjectSource); a standalone nodelet
// has none, and pods that need them are refused with the reason.
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/clock.h"
#include "agent/core/error.h"
#include "agent/core/pod.h"

namespace nodelet::kube {

class Client;

class ObjectSource {
 public:
  using Data = std::map<std::string, std::string>;  // key -> bytes
  struct Token {
    std::string token;
    SysTime expires;
  };
  virtual ~ObjectSource() = default;
  // std::nullopt: there is no such object.
  virtual Result<std::optional<Data>> configMap(const std::string& ns, const std::string& name) = 0;
  virtual Result<std::optional<Data>> secret(const std::string& ns, const std::string& name) = 0;
  struct ServicePort {
    std::string name;
    int32_t port{0};
    std::string protocol{"TCP"};
  };
  struct Service {
    std::string name;
    std::string cluster_ip;
    std::vector<ServicePort> ports;
  };
  // The services of a namespace that have a cluster IP (for the service environment variables).
  virtual Result<std::vector<Service>> services(const std::string& ns) = 0;
  // A token for the pod's service account, bound to the pod (TokenRequest).
  virtual Result<Token> serviceAccountToken(const api::Pod& pod, const std::string& audience,
                                            int64_t expiration_seconds) = 0;
};

// Through the API server: objects read with GET (kept for `cache_for`, so a burst of pod starts
// reads each once), tokens from the TokenRequest API, reused until 80 % of their lifetime (or
// 24 h) has passed, as the kubelet's token manager does.
class ApiObjectSource final : public ObjectSource {
 public:
  ApiObjectSource(Client& client, Clock& clock, Duration cache_for = std::chrono::seconds(5));
  Result<std::optional<Data>> configMap(const std::string& ns, const std::string& name) override;
  Result<std::optional<Data>> secret(const std::string& ns, const std::string& name) override;
  Result<Token> serviceAccountToken(const api::Pod& pod, const std::string& audience,
                                    int64_t expiration_seconds) override;
  Result<std::vector<Service>> services(const std::string& ns) override;

 private:
  Result<std::optional<Data>> get(const std::string& kind, const std::string& ns,
                                  const std::string& name);
  Client& client_;
  Clock& clock_;
  Duration cache_for_;
  std::mutex mu_;
  struct Cached {
    std::optional<Data> data;
    MonoTime at;
  };
  std::map<std::string, Cached> objects_;  // "kind/ns/name"
  struct CachedToken {
    Token token;
    SysTime issued;
  };
  std::map<std::string, CachedToken> tokens_;  // "uid/audience/seconds"
  struct CachedServices {
    std::vector<Service> list;
    MonoTime at;
  };
  std::map<std::string, CachedServices> services_;  // namespace -> services
};

}  // namespace nodelet::kube
