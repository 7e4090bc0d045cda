#pragma once
// The API objects pods read: ConfigMaps, Secrets and service-account tokens for volumes and
// environment, Services for environment variables, RuntimeClasses for the sandbox's runtime
// handler. API pods read them from the API server (ApiObjectSource), static pods from manifests
// beside them (StaticObjectSource); what is not there is refused with the reason.
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
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
  // The handler of RuntimeClass `name` (node.k8s.io/v1): what RunPodSandbox is asked to run the
  // sandbox with. std::nullopt: there is no such RuntimeClass.
  virtual Result<std::optional<std::string>> runtimeHandler(const std::string& name) = 0;
};

// Through the API server, as the kubelet's default (configMapAndSecretChangeDetectionStrategy
// Watch): the first read of a ConfigMap or Secret lists it (fieldSelector metadata.name), then
// a watch keeps it current; later reads are answered from memory, a change calls `on_change`
// (the pods that use the object sync at once), and an object no pod has read for `idle_after`
// is no longer watched. While the API server is away, what was last seen stands in.
// RuntimeClasses are read and watched in the same way (cluster-scoped).
// Services are listed per namespace (kept for `cache_for`); tokens come from the TokenRequest
// API, reused until 80 % of their lifetime (or 24 h) has passed, as the kubelet's token manager.
class ApiObjectSource final : public ObjectSource {
 public:
  ApiObjectSource(Client& client, Clock& clock, Duration cache_for = std::chrono::seconds(5),
                  Duration idle_after = std::chrono::minutes(5));
  ~ApiObjectSource() override;
  // `key` is "configmaps/<namespace>/<name>" or "secrets/<namespace>/<name>". Called from the
  // watch threads; setOnChange(nullptr) returns once no call is in progress.
  void setOnChange(std::function<void(const std::string& key)> on_change);
  size_t watching() const;  // objects watched now
  Result<std::optional<Data>> configMap(const std::string& ns, const std::string& name) override;
  Result<std::optional<Data>> secret(const std::string& ns, const std::string& name) override;
  Result<Token> serviceAccountToken(const api::Pod& pod, const std::string& audience,
                                    int64_t expiration_seconds) override;
  Result<std::vector<Service>> services(const std::string& ns) override;
  Result<std::optional<std::string>> runtimeHandler(const std::string& name) override;

 private:
  // The object (`ns` empty for cluster-scoped ones), watched from its first read on.
  Result<std::optional<nlohmann::json>> get(const std::string& resource, const std::string& ns,
                                            const std::string& name);
  Result<std::optional<Data>> data(const std::string& resource, const std::string& ns,
                                   const std::string& name);
  Client& client_;
  Clock& clock_;
  Duration cache_for_;
  Duration idle_after_;
  std::mutex change_mu_;  // held while on_change_ runs: setOnChange(nullptr) then waits
  std::function<void(const std::string&)> on_change_;
  mutable std::mutex mu_;
  struct Watcher;
  // Declared after what their threads use: destroyed (joined) first.
  std::map<std::string, std::shared_ptr<Watcher>> watchers_;             // "resource/ns/name"
  std::vector<std::pair<MonoTime, std::shared_ptr<Watcher>>> retiring_;  // stopped, joined later
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

// ConfigMaps and Secrets from manifests in the static pod directory, for static pods (beyond
// the kubelet, whose static pods can use none). Services come from `cluster` when nodelet has
// an API server; service-account tokens never (a static pod has no service account).
class StaticObjectSource final : public ObjectSource {
 public:
  explicit StaticObjectSource(ObjectSource* cluster = nullptr) : cluster_(cluster) {}
  // The directory's objects now, by "resource/namespace/name" ("configmaps/default/app").
  // Returns the keys that were added, changed or removed.
  std::vector<std::string> replace(std::map<std::string, Data> objects);

  Result<std::optional<Data>> configMap(const std::string& ns, const std::string& name) override;
  Result<std::optional<Data>> secret(const std::string& ns, const std::string& name) override;
  Result<std::vector<Service>> services(const std::string& ns) override;
  Result<Token> serviceAccountToken(const api::Pod& pod, const std::string& audience,
                                    int64_t expiration_seconds) override;
  // A RuntimeClass manifest in the directory first, then the API server's; with neither (no API
  // server), the default handler "" as the kubelet without an API server.
  Result<std::optional<std::string>> runtimeHandler(const std::string& name) override;

 private:
  std::optional<Data> find(const std::string& key) const;
  ObjectSource* cluster_;
  mutable std::mutex mu_;
  std::map<std::string, Data> objects_;
};

}  // namespace nodelet::kube
