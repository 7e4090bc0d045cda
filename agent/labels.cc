#include "agent/labels.h"

#include <charconv>
#include <nlohmann/json.hpp>

namespace nodelet::agent::labels {

cri::Labels ownedSelector(const std::string& node) {
  return {{kManagedBy, "nodelet"}, {kNode, node}};
}

cri::Labels sandboxLabels(const api::Pod& pod, const std::string& node) {
  cri::Labels l(pod.metadata.labels.begin(), pod.metadata.labels.end());
  l[kPodName] = pod.metadata.name;
  l[kPodNamespace] = pod.metadata.namespace_;
  l[kPodUid] = pod.metadata.uid;
  l[kManagedBy] = "nodelet";
  l[kNode] = node;
  return l;
}

cri::Labels sandboxAnnotations(const api::Pod& pod) {
  return cri::Labels(pod.metadata.annotations.begin(), pod.metadata.annotations.end());
}

cri::Labels containerLabels(const api::Pod& pod, const api::Container& c, const std::string& node,
                            const char* type) {
  return {{kPodName, pod.metadata.name}, {kPodNamespace, pod.metadata.namespace_},
          {kPodUid, pod.metadata.uid},   {kContainerName, c.name},
          {kManagedBy, "nodelet"},       {kNode, node},
          {kContainerType, type}};
}

std::string hashString(uint64_t h) {
  char buf[17];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, h, 16);
  return std::string(buf, p);
}

cri::Labels containerAnnotations(const api::Pod& pod, const api::Container& c,
                                 int32_t restart_count) {
  cri::Labels a;
  a[kContainerHash] = hashString(c.hash);
  a[kRestartCount] = std::to_string(restart_count);
  a[kTerminationMessagePath] = c.termination_message_path;
  a[kTerminationMessagePolicy] = c.termination_message_policy;
  a[kTerminationGracePeriod] =
      std::to_string(pod.spec.termination_grace_period_seconds.value_or(30));
  if (c.lifecycle && c.lifecycle->pre_stop && c.lifecycle->pre_stop->exec) {
    a[kPreStopHandler] =
        nlohmann::json{{"exec", {{"command", c.lifecycle->pre_stop->exec->command}}}}.dump();
  }
  if (!c.ports.empty()) {
    nlohmann::json ports = nlohmann::json::array();
    for (const auto& p : c.ports) {
      nlohmann::json pj = {{"containerPort", p.container_port}, {"protocol", p.protocol}};
      if (!p.name.empty()) pj["name"] = p.name;
      if (p.host_port) pj["hostPort"] = p.host_port;
      ports.push_back(pj);
    }
    a[kContainerPorts] = ports.dump();
  }
  return a;
}

std::optional<int64_t> intAnnotation(const cri::Labels& a, const char* key) {
  auto it = a.find(key);
  if (it == a.end()) return std::nullopt;
  int64_t v = 0;
  auto [p, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), v);
  if (ec != std::errc() || p != it->second.data() + it->second.size()) return std::nullopt;
  return v;
}

}  // namespace nodelet::agent::labels
