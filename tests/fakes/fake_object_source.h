#pragma once
// An ObjectSource whose objects a test sets directly: ConfigMaps and Secrets by
// "namespace/name", Services by namespace, RuntimeClass handlers by name. Tokens are made up and
// counted.
#include <map>
#include <string>
#include <vector>

#include "agent/kube/object_source.h"

namespace nodelet::testing {

class FakeObjectSource final : public kube::ObjectSource {
 public:
  std::map<std::string, Data> configmaps, secrets;     // "namespace/name" -> data
  std::map<std::string, std::vector<Service>> svcs;    // namespace -> services
  std::map<std::string, std::string> runtime_classes;  // name -> handler
  int tokens{0};

  Result<std::optional<Data>> configMap(const std::string& ns, const std::string& name) override {
    return find(configmaps, ns + "/" + name);
  }
  Result<std::optional<Data>> secret(const std::string& ns, const std::string& name) override {
    return find(secrets, ns + "/" + name);
  }
  Result<std::vector<Service>> services(const std::string& ns) override {
    auto it = svcs.find(ns);
    return it == svcs.end() ? std::vector<Service>{} : it->second;
  }
  Result<Token> serviceAccountToken(const api::Pod& pod, const std::string& audience,
                                    int64_t) override {
    ++tokens;
    return Token{"token-for-" + pod.metadata.name + "-" + audience, SysTime{}};
  }
  Result<std::optional<std::string>> runtimeHandler(const std::string& name) override {
    return find(runtime_classes, name);
  }

 private:
  template <typename T>
  static std::optional<T> find(const std::map<std::string, T>& m, const std::string& key) {
    auto it = m.find(key);
    if (it == m.end()) return std::nullopt;
    return it->second;
  }
};

}  // namespace nodelet::testing
