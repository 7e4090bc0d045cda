#include "agent/admission.h"

#include <algorithm>
#include <charconv>

namespace nodelet::agent {

namespace {

// Predicate failures read "Predicate <name> failed: <the scheduler plugin's reason>".
AdmissionFailure predicateFailure(const std::string& name, const std::string& reason) {
  return {name, "Predicate " + name + " failed: " + reason};
}

std::optional<int64_t> parseInt64(const std::string& s) {
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

// One requirement on a set of values (labels or fields); std::nullopt: the requirement is
// invalid, which makes its whole term match nothing (the scheduler's lazy-error selector).
std::optional<bool> matchRequirement(const api::NodeSelectorRequirement& r,
                                     const std::map<std::string, std::string>& values) {
  const auto it = values.find(r.key);
  const bool present = it != values.end();
  const auto in = [&] {
    return present && std::find(r.values.begin(), r.values.end(), it->second) != r.values.end();
  };
  if (r.op == "In" || r.op == "NotIn") {
    if (r.values.empty()) return std::nullopt;
    return r.op == "In" ? in() : !in();
  }
  if (r.op == "Exists" || r.op == "DoesNotExist") {
    if (!r.values.empty()) return std::nullopt;
    return r.op == "Exists" ? present : !present;
  }
  if (r.op == "Gt" || r.op == "Lt") {
    if (r.values.size() != 1) return std::nullopt;
    const auto bound = parseInt64(r.values[0]);
    if (!bound) return std::nullopt;
    if (!present) return false;
    const auto v = parseInt64(it->second);
    if (!v) return false;
    return r.op == "Gt" ? *v > *bound : *v < *bound;
  }
  return std::nullopt;
}

std::optional<bool> matchTerm(const api::NodeSelectorTerm& term, const AdmissionNode& node) {
  if (term.match_expressions.empty() && term.match_fields.empty()) return std::nullopt;
  bool all = true;
  for (const auto& r : term.match_expressions) {
    const auto m = matchRequirement(r, node.labels);
    if (!m) return std::nullopt;
    all = all && *m;
  }
  // Fields: metadata.name, with In or NotIn and exactly one value.
  const std::map<std::string, std::string> fields = {{"metadata.name", node.name}};
  for (const auto& r : term.match_fields) {
    if ((r.op != "In" && r.op != "NotIn") || r.values.size() != 1) return std::nullopt;
    const auto it = fields.find(r.key);
    const bool equal = (it == fields.end() ? std::string() : it->second) == r.values[0];
    all = all && (r.op == "In" ? equal : !equal);
  }
  return all;
}

}  // namespace

bool matchesNodeSelectorTerms(const std::vector<api::NodeSelectorTerm>& terms,
                              const AdmissionNode& node) {
  // The terms are ORed; an empty or invalid term matches nothing.
  return std::any_of(terms.begin(), terms.end(),
                     [&](const auto& t) { return matchTerm(t, node).value_or(false); });
}

bool toleratesTaint(const api::Toleration& t, const api::Taint& taint) {
  if (!t.effect.empty() && t.effect != taint.effect) return false;
  if (!t.key.empty() && t.key != taint.key) return false;
  if (t.op.empty() || t.op == "Equal") return t.value == taint.value;
  return t.op == "Exists";
}

std::optional<AdmissionFailure> checkOperatingSystem(const api::Pod& pod) {
  if (auto it = pod.metadata.labels.find("kubernetes.io/os");
      it != pod.metadata.labels.end() && it->second != "linux")
    return AdmissionFailure{
        "PodOSSelectorNodeLabelDoesNotMatch",
        "Failed to admit pod as the `kubernetes.io/os` label doesn't match node label"};
  if (!pod.spec.os_name.empty() && pod.spec.os_name != "linux")
    return AdmissionFailure{"PodOSNotSupported",
                            "Failed to admit pod as the OS field doesn't match node OS"};
  return std::nullopt;
}

std::optional<AdmissionFailure> checkNodeAffinity(const api::Pod& pod, const AdmissionNode& node) {
  bool match = std::all_of(pod.spec.node_selector.begin(), pod.spec.node_selector.end(),
                           [&](const auto& kv) {
                             auto it = node.labels.find(kv.first);
                             return it != node.labels.end() && it->second == kv.second;
                           });
  if (match && pod.spec.required_node_affinity)
    match = matchesNodeSelectorTerms(*pod.spec.required_node_affinity, node);
  if (match) return std::nullopt;
  return predicateFailure("NodeAffinity", "node(s) didn't match Pod's node affinity/selector");
}

std::optional<AdmissionFailure> checkTaints(const api::Pod& pod, const AdmissionNode& node) {
  if (api::isStaticPod(pod)) return std::nullopt;
  for (const auto& taint : node.taints) {
    if (taint.effect != "NoExecute") continue;  // the only effect the kubelet acts on
    const bool tolerated = std::any_of(pod.spec.tolerations.begin(), pod.spec.tolerations.end(),
                                       [&](const auto& t) { return toleratesTaint(t, taint); });
    if (!tolerated)
      return predicateFailure("TaintToleration", "node(s) had taints that the pod didn't tolerate");
  }
  return std::nullopt;
}

AdmissionNode admissionNodeFromJson(const std::string& name, const nlohmann::json& node) {
  AdmissionNode n;
  n.name = name;
  if (!node.is_object()) return n;
  const auto field = [](const nlohmann::json& obj, const char* key) {
    return obj.is_object() && obj.contains(key) ? obj[key] : nlohmann::json();
  };
  if (const auto labels = field(field(node, "metadata"), "labels"); labels.is_object())
    for (const auto& [k, v] : labels.items())
      if (v.is_string()) n.labels[k] = v.get<std::string>();
  if (const auto taints = field(field(node, "spec"), "taints"); taints.is_array())
    for (const auto& t : taints) {
      if (!t.is_object()) continue;
      api::Taint taint;
      if (t.contains("key") && t["key"].is_string()) taint.key = t["key"];
      if (t.contains("value") && t["value"].is_string()) taint.value = t["value"];
      if (t.contains("effect") && t["effect"].is_string()) taint.effect = t["effect"];
      n.taints.push_back(std::move(taint));
    }
  return n;
}

}  // namespace nodelet::agent
