#include "agent/kube/node_status.h"

#include <regex>

#include "agent/core/api_json.h"
#include "agent/kube/json_util.h"

namespace nodelet::kube {
namespace {

using nlohmann::json;

struct CondSpec {
  const char* type;
  bool bad;  // the condition's status is True (for Ready: False)
  const char* reason;
  const char* message;
};

json condition(const CondSpec& c, const std::string& status, const json& previous, SysTime now) {
  std::string transition = api::formatTime(now);
  for (const auto& p : js::array(previous, "conditions"))
    if (js::str(p, "type") == c.type && js::str(p, "status") == status &&
        p.contains("lastTransitionTime") && p["lastTransitionTime"].is_string())
      transition = p["lastTransitionTime"];
  return {{"type", c.type},
          {"status", status},
          {"lastHeartbeatTime", api::formatTime(now)},
          {"lastTransitionTime", transition},
          {"reason", c.reason},
          {"message", c.message}};
}

json stripHeartbeats(json status) {
  if (status.is_object() && status.contains("conditions") && status["conditions"].is_array())
    for (auto& c : status["conditions"])
      if (c.is_object()) c.erase("lastHeartbeatTime");
  return status;
}

}  // namespace

json nodeStatus(const NodeFacts& f, const json& previous, SysTime now) {
  json s = json::object();
  s["capacity"] = f.capacity;
  s["allocatable"] = f.allocatable;
  json conds = json::array();
  auto pressure = [&](bool on, const char* type, const char* ok_reason, const char* ok_msg,
                      const char* bad_reason, const char* bad_msg) {
    conds.push_back(on ? condition({type, true, bad_reason, bad_msg}, "True", previous, now)
                       : condition({type, false, ok_reason, ok_msg}, "False", previous, now));
  };
  pressure(f.memory_pressure, "MemoryPressure", "KubeletHasSufficientMemory",
           "kubelet has sufficient memory available", "KubeletHasInsufficientMemory",
           "kubelet has insufficient memory available");
  pressure(f.disk_pressure, "DiskPressure", "KubeletHasNoDiskPressure",
           "kubelet has no disk pressure", "KubeletHasDiskPressure", "kubelet has disk pressure");
  pressure(f.pid_pressure, "PIDPressure", "KubeletHasSufficientPID",
           "kubelet has sufficient PID available", "KubeletHasInsufficientPID",
           "kubelet has insufficient PID available");
  // Ready last, as the kubelet orders it. Missing capacity makes a node not ready, too.
  std::string not_ready = f.not_ready;
  std::string missing;
  for (const char* r : {"cpu", "memory", "pods"})
    if (!f.capacity.contains(r)) missing += std::string(missing.empty() ? "" : ", ") + r;
  if (!missing.empty())
    not_ready = (not_ready.empty() ? "" : not_ready + ", ") +
                "missing node capacity for resources: " + missing;
  if (not_ready.empty()) {
    conds.push_back(condition({"Ready", false, "KubeletReady", "kubelet is posting ready status"},
                              "True", previous, now));
  } else {
    json c = condition({"Ready", true, "KubeletNotReady", ""}, "False", previous, now);
    c["message"] = not_ready;
    conds.push_back(std::move(c));
  }
  s["conditions"] = std::move(conds);
  if (!f.addresses.empty()) {
    json a = json::array();
    for (const auto& [type, addr] : f.addresses) a.push_back({{"type", type}, {"address", addr}});
    s["addresses"] = std::move(a);
  }
  s["daemonEndpoints"] = {{"kubeletEndpoint", {{"Port", f.kubelet_port}}}};
  s["nodeInfo"] = f.node_info;
  if (!f.images.empty()) {
    json imgs = json::array();
    for (const auto& i : f.images)
      imgs.push_back({{"names", i.names}, {"sizeBytes", i.size_bytes}});
    s["images"] = std::move(imgs);
  }
  return s;
}

json initialNode(const NodeFacts& f, const std::map<std::string, std::string>& labels,
                 const std::vector<Taint>& taints, SysTime now) {
  json n = {{"kind", "Node"}, {"apiVersion", "v1"}};
  n["metadata"] = {
      {"name", f.name},
      {"labels", labels},
      {"annotations", {{"volumes.kubernetes.io/controller-managed-attach-detach", "true"}}}};
  n["spec"] = json::object();
  if (!taints.empty()) {
    json t = json::array();
    for (const auto& x : taints) {
      json e = {{"key", x.key}, {"effect", x.effect}};
      if (!x.value.empty()) e["value"] = x.value;
      t.push_back(std::move(e));
    }
    n["spec"]["taints"] = std::move(t);
  }
  n["status"] = nodeStatus(f, json::object(), now);
  return n;
}

bool statusChanged(const json& a, const json& b) {
  return stripHeartbeats(a) != stripHeartbeats(b);
}

std::string readyStatus(const json& status) {
  if (!status.is_object()) return "";
  for (const auto& c : js::array(status, "conditions"))
    if (js::str(c, "type") == "Ready") return js::str(c, "status");
  return "";
}

std::string runtimeVersionString(const std::string& name, const std::string& version) {
  static const std::regex numeric(R"(^v?([0-9]+(?:\.[0-9]+)*))");
  std::smatch m;
  const std::string v = std::regex_search(version, m, numeric) ? m[1].str() : version;
  return name + "://" + v;
}

}  // namespace nodelet::kube
