#include "staticpods/manifest.h"

#include <openssl/evp.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "agent/core/api_json.h"
#include "agent/core/base64.h"
#include "agent/core/quantity.h"
#include "agent/core/yaml_json.h"

namespace nodelet::staticpods {
namespace {

using nlohmann::json;

std::string sha256Hex(std::string_view data, size_t hex_len) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len && out.size() < hex_len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 0xf];
  }
  return out;
}

bool hasExplicitTag(const std::string& image) {
  // The tag is after the last ':' that follows the last '/' (a registry port is not a tag).
  const auto slash = image.rfind('/');
  const auto colon = image.rfind(':');
  return colon != std::string::npos && (slash == std::string::npos || colon > slash);
}

void defaultProbe(json& p) {
  if (!p.is_object()) return;
  if (!p.contains("timeoutSeconds")) p["timeoutSeconds"] = 1;
  if (!p.contains("periodSeconds")) p["periodSeconds"] = 10;
  if (!p.contains("successThreshold")) p["successThreshold"] = 1;
  if (!p.contains("failureThreshold")) p["failureThreshold"] = 3;
  if (p.contains("httpGet") && p["httpGet"].is_object()) {
    auto& h = p["httpGet"];
    if (!h.contains("scheme")) h["scheme"] = "HTTP";
    if (!h.contains("path")) h["path"] = "/";
  }
}

void defaultContainer(json& c, bool host_network) {
  if (!c.is_object()) return;
  if (!c.contains("terminationMessagePath")) c["terminationMessagePath"] = "/dev/termination-log";
  if (!c.contains("terminationMessagePolicy")) c["terminationMessagePolicy"] = "File";
  if (!c.contains("imagePullPolicy") && c.contains("image") && c["image"].is_string()) {
    const std::string image = c["image"];
    const bool latest = !hasExplicitTag(image) || image.ends_with(":latest");
    const bool digest = image.find('@') != std::string::npos;
    c["imagePullPolicy"] = (latest && !digest) ? "Always" : "IfNotPresent";
  }
  if (!c.contains("resources")) c["resources"] = json::object();
  if (c.contains("ports") && c["ports"].is_array()) {
    for (auto& p : c["ports"]) {
      if (!p.is_object()) continue;
      if (!p.contains("protocol")) p["protocol"] = "TCP";
      // With host networking the host port is the container port.
      if (host_network && !p.contains("hostPort") && p.contains("containerPort"))
        p["hostPort"] = p["containerPort"];
    }
  }
  for (const char* probe : {"livenessProbe", "readinessProbe", "startupProbe"})
    if (c.contains(probe)) defaultProbe(c[probe]);
  if (c.contains("env") && c["env"].is_array()) {
    for (auto& e : c["env"]) {
      if (e.is_object() && e.contains("valueFrom") && e["valueFrom"].is_object() &&
          e["valueFrom"].contains("fieldRef") && e["valueFrom"]["fieldRef"].is_object() &&
          !e["valueFrom"]["fieldRef"].contains("apiVersion"))
        e["valueFrom"]["fieldRef"]["apiVersion"] = "v1";
    }
  }
}

// The API server's defaulting, for the fields a node agent depends on.
void applyApiDefaults(json& obj) {
  auto& meta = obj["metadata"];
  if (!meta.is_object()) return;
  if (!meta.contains("namespace") || meta["namespace"] == "") meta["namespace"] = "default";
  auto& spec = obj["spec"];
  if (!spec.is_object()) return;
  if (!spec.contains("restartPolicy")) spec["restartPolicy"] = "Always";
  if (!spec.contains("terminationGracePeriodSeconds")) spec["terminationGracePeriodSeconds"] = 30;
  if (!spec.contains("dnsPolicy")) spec["dnsPolicy"] = "ClusterFirst";
  if (!spec.contains("schedulerName")) spec["schedulerName"] = "default-scheduler";
  if (!spec.contains("securityContext")) spec["securityContext"] = json::object();
  if (!spec.contains("enableServiceLinks")) spec["enableServiceLinks"] = true;
  const bool host_network = spec.value("hostNetwork", false) == true;
  for (const char* list : {"initContainers", "containers"}) {
    if (spec.contains(list) && spec[list].is_array())
      for (auto& c : spec[list]) defaultContainer(c, host_network);
  }
  if (spec.contains("volumes") && spec["volumes"].is_array()) {
    for (auto& v : spec["volumes"]) {
      if (v.is_object() && v.contains("hostPath") && v["hostPath"].is_object() &&
          !v["hostPath"].contains("type"))
        v["hostPath"]["type"] = "";
    }
  }
}

// The kubelet's file-source defaulting (after the content hash is taken).
void applyStaticPodDefaults(json& obj, const ManifestContext& ctx, const std::string& uid) {
  auto& meta = obj["metadata"];
  std::string node = ctx.node_name;
  std::transform(node.begin(), node.end(), node.begin(),
                 [](unsigned char ch) { return std::tolower(ch); });
  meta["name"] = meta["name"].get<std::string>() + "-" + node;
  meta["uid"] = uid;
  auto& ann = meta["annotations"];
  if (!ann.is_object()) ann = json::object();
  ann["kubernetes.io/config.hash"] = uid;
  ann["kubernetes.io/config.source"] = "file";
  ann["kubernetes.io/config.seen"] = api::formatTime(ctx.seen);
  obj["spec"]["nodeName"] = ctx.node_name;
  // Static pods tolerate every NoExecute taint, so node problems never evict them.
  auto& tol = obj["spec"]["tolerations"];
  if (!tol.is_array()) tol = json::array();
  const json everything = {{"operator", "Exists"}, {"effect", "NoExecute"}};
  bool present = false;
  for (const auto& t : tol) present = present || t == everything;
  if (!present) tol.push_back(everything);
  obj["status"] = {{"phase", "Pending"}};
}

const std::regex& dns1123Label() {
  static const std::regex r("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$");
  return r;
}
const std::regex& dns1123Subdomain() {
  static const std::regex r("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$");
  return r;
}

void checkProbe(const std::optional<api::Probe>& p, const std::string& path, bool must_succeed_once,
                std::vector<std::string>& errs) {
  if (!p) return;
  if (p->period_seconds < 1) errs.push_back(path + ".periodSeconds: must be at least 1");
  if (p->timeout_seconds < 1) errs.push_back(path + ".timeoutSeconds: must be at least 1");
  if (p->failure_threshold < 1) errs.push_back(path + ".failureThreshold: must be at least 1");
  if (p->success_threshold < 1) errs.push_back(path + ".successThreshold: must be at least 1");
  if (must_succeed_once && p->success_threshold != 1)
    errs.push_back(path + ".successThreshold: must be 1");
  if (p->initial_delay_seconds < 0) errs.push_back(path + ".initialDelaySeconds: must be >= 0");
  if (p->termination_grace_period_seconds && *p->termination_grace_period_seconds < 1)
    errs.push_back(path + ".terminationGracePeriodSeconds: must be > 0");
}

void checkContainer(const api::Container& c, const std::string& path, bool init,
                    const std::set<std::string>& volumes, std::vector<std::string>& errs) {
  if (c.name.empty()) {
    errs.push_back(path + ".name: Required value");
  } else if (c.name.size() > 63 || !std::regex_match(c.name, dns1123Label())) {
    errs.push_back(path + ".name: Invalid value \"" + c.name +
                   "\": must be a DNS-1123 label (lowercase alphanumerics and '-', at most 63)");
  }
  if (c.image.empty()) errs.push_back(path + ".image: Required value");
  if (c.image != "" && c.image.find_first_of(" \t\n") != std::string::npos)
    errs.push_back(path + ".image: Invalid value: must not contain whitespace");
  for (const auto& policy : {c.image_pull_policy}) {
    if (policy != "Always" && policy != "IfNotPresent" && policy != "Never")
      errs.push_back(path + ".imagePullPolicy: Unsupported value \"" + policy +
                     "\": supported values: \"Always\", \"IfNotPresent\", \"Never\"");
  }
  std::set<std::string> port_names;
  for (size_t i = 0; i < c.ports.size(); ++i) {
    const auto& p = c.ports[i];
    const std::string pp = path + ".ports[" + std::to_string(i) + "]";
    if (p.container_port < 1 || p.container_port > 65535)
      errs.push_back(pp + ".containerPort: must be between 1 and 65535");
    if (p.host_port < 0 || p.host_port > 65535)
      errs.push_back(pp + ".hostPort: must be between 0 and 65535");
    if (p.protocol != "TCP" && p.protocol != "UDP" && p.protocol != "SCTP")
      errs.push_back(pp + ".protocol: Unsupported value \"" + p.protocol + "\"");
    if (!p.name.empty() && !port_names.insert(p.name).second)
      errs.push_back(pp + ".name: Duplicate value \"" + p.name + "\"");
  }
  for (size_t i = 0; i < c.env.size(); ++i) {
    const auto& e = c.env[i];
    if (e.name.empty() || e.name.find('=') != std::string::npos)
      errs.push_back(path + ".env[" + std::to_string(i) + "].name: Invalid value \"" + e.name +
                     "\"");
  }
  for (const auto& [k, v] : c.resources.limits) {
    if (!api::parseQuantity(v))
      errs.push_back(path + ".resources.limits." + k + ": invalid quantity \"" + v + "\"");
  }
  for (const auto& [k, v] : c.resources.requests) {
    if (!api::parseQuantity(v))
      errs.push_back(path + ".resources.requests." + k + ": invalid quantity \"" + v + "\"");
  }
  std::set<std::string> mount_paths;
  for (size_t i = 0; i < c.volume_mounts.size(); ++i) {
    const auto& m = c.volume_mounts[i];
    const std::string mp = path + ".volumeMounts[" + std::to_string(i) + "]";
    if (!volumes.contains(m.name)) errs.push_back(mp + ".name: Not found: \"" + m.name + "\"");
    if (m.mount_path.empty() || m.mount_path[0] != '/')
      errs.push_back(mp + ".mountPath: must be an absolute path");
    else if (!mount_paths.insert(m.mount_path).second)
      errs.push_back(mp + ".mountPath: must be unique");
    if (!m.sub_path.empty() &&
        (m.sub_path[0] == '/' || m.sub_path == ".." || m.sub_path.starts_with("../") ||
         m.sub_path.find("/../") != std::string::npos || m.sub_path.ends_with("/..")))
      errs.push_back(mp + ".subPath: must be a relative path without '..'");
    if (!m.sub_path.empty() && !m.sub_path_expr.empty())
      errs.push_back(mp + ".subPathExpr: subPathExpr and subPath are mutually exclusive");
  }
  if (init) {
    if (c.restart_policy && *c.restart_policy != "Always")
      errs.push_back(path + ".restartPolicy: Unsupported value \"" + *c.restart_policy +
                     "\": supported values: \"Always\"");
    if (!api::isSidecar(c) && (c.liveness_probe || c.readiness_probe || c.startup_probe))
      errs.push_back(path + ": probes are allowed only on restartable init containers");
  } else if (c.restart_policy) {
    errs.push_back(path + ".restartPolicy: Forbidden: only init containers may set restartPolicy");
  }
  checkProbe(c.liveness_probe, path + ".livenessProbe", true, errs);
  checkProbe(c.readiness_probe, path + ".readinessProbe", false, errs);
  checkProbe(c.startup_probe, path + ".startupProbe", true, errs);
  if (c.termination_message_policy != "File" &&
      c.termination_message_policy != "FallbackToLogsOnError")
    errs.push_back(path + ".terminationMessagePolicy: Unsupported value \"" +
                   c.termination_message_policy + "\"");
}

}  // namespace

std::vector<std::string> validatePod(const api::Pod& pod) {
  std::vector<std::string> errs;
  const auto& m = pod.metadata;
  if (m.name.empty()) {
    errs.push_back("metadata.name: Required value");
  } else if (m.name.size() > 253 || !std::regex_match(m.name, dns1123Subdomain())) {
    errs.push_back("metadata.name: Invalid value \"" + m.name +
                   "\": must be a DNS-1123 subdomain (lowercase alphanumerics, '-' and '.')");
  }
  if (m.namespace_.size() > 63 || !std::regex_match(m.namespace_, dns1123Label()))
    errs.push_back("metadata.namespace: Invalid value \"" + m.namespace_ +
                   "\": must be a DNS-1123 label");
  const auto& s = pod.spec;
  if (s.containers.empty()) errs.push_back("spec.containers: Required value");
  if (!s.runtime_class_name.empty() &&
      (s.runtime_class_name.size() > 253 ||
       !std::regex_match(s.runtime_class_name, dns1123Subdomain())))
    errs.push_back("spec.runtimeClassName: Invalid value \"" + s.runtime_class_name +
                   "\": must be a DNS-1123 subdomain (lowercase alphanumerics, '-' and '.')");
  std::set<std::string> volumes;
  for (size_t i = 0; i < s.volumes.size(); ++i) {
    const auto& v = s.volumes[i];
    const std::string vp = "spec.volumes[" + std::to_string(i) + "]";
    if (v.name.empty() || v.name.size() > 63 || !std::regex_match(v.name, dns1123Label()))
      errs.push_back(vp + ".name: Invalid value \"" + v.name + "\": must be a DNS-1123 label");
    else if (!volumes.insert(v.name).second)
      errs.push_back(vp + ".name: Duplicate value \"" + v.name + "\"");
    switch (v.kind) {
      case api::Volume::Kind::EmptyDir:
        if (!v.medium.empty() && v.medium != "Memory")
          errs.push_back(vp + ".emptyDir.medium: Unsupported value \"" + v.medium + "\"");
        if (!v.size_limit.empty() && !api::parseQuantity(v.size_limit))
          errs.push_back(vp + ".emptyDir.sizeLimit: invalid quantity \"" + v.size_limit + "\"");
        break;
      case api::Volume::Kind::HostPath: {
        if (v.path.empty() || v.path[0] != '/')
          errs.push_back(vp + ".hostPath.path: must be an absolute path");
        static const std::set<std::string> kTypes = {
            "",       "DirectoryOrCreate", "Directory",  "FileOrCreate", "File",
            "Socket", "CharDevice",        "BlockDevice"};
        if (!kTypes.contains(v.host_path_type))
          errs.push_back(vp + ".hostPath.type: Unsupported value \"" + v.host_path_type + "\"");
        break;
      }
      case api::Volume::Kind::DownwardAPI:
        break;
      case api::Volume::Kind::ConfigMap:
      case api::Volume::Kind::Secret:
        // From ConfigMap and Secret manifests in the same directory (the kubelet's static pods
        // can use no API objects at all).
        break;
      case api::Volume::Kind::Projected:
        for (size_t j = 0; j < v.sources.size(); ++j)
          if (v.sources[j].kind == api::VolumeProjection::Kind::ServiceAccountToken)
            errs.push_back(vp + ".projected.sources[" + std::to_string(j) +
                           "].serviceAccountToken: static pods cannot use service account "
                           "tokens (there is no API server to issue them for a static pod)");
        break;
      case api::Volume::Kind::Other:
        errs.push_back(
            vp + "." + v.other_kind +
            ": Unsupported volume type: nodelet supports emptyDir, hostPath, downwardAPI, and "
            "(for API-server pods) configMap, secret and projected volumes");
        break;
    }
  }
  std::set<std::string> names;
  auto each = [&](const std::vector<api::Container>& list, const char* field, bool init) {
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string path = std::string("spec.") + field + "[" + std::to_string(i) + "]";
      checkContainer(list[i], path, init, volumes, errs);
      if (!list[i].name.empty() && !names.insert(list[i].name).second)
        errs.push_back(path + ".name: Duplicate value \"" + list[i].name + "\"");
    }
  };
  each(s.init_containers, "initContainers", true);
  each(s.containers, "containers", false);
  if (s.restart_policy != "Always" && s.restart_policy != "OnFailure" &&
      s.restart_policy != "Never")
    errs.push_back("spec.restartPolicy: Unsupported value \"" + s.restart_policy +
                   "\": supported values: \"Always\", \"OnFailure\", \"Never\"");
  if (s.dns_policy != "ClusterFirst" && s.dns_policy != "ClusterFirstWithHostNet" &&
      s.dns_policy != "Default" && s.dns_policy != "None")
    errs.push_back("spec.dnsPolicy: Unsupported value \"" + s.dns_policy + "\"");
  if (s.dns_policy == "None" && !s.dns_config)
    errs.push_back(
        "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None");
  if (s.termination_grace_period_seconds && *s.termination_grace_period_seconds < 0)
    errs.push_back("spec.terminationGracePeriodSeconds: must be >= 0");
  if (s.active_deadline_seconds && *s.active_deadline_seconds < 1)
    errs.push_back("spec.activeDeadlineSeconds: must be at least 1");
  if (s.host_network) {
    for (const auto* list : {&s.init_containers, &s.containers})
      for (const auto& c : *list)
        for (const auto& p : c.ports)
          if (p.host_port != 0 && p.host_port != p.container_port)
            errs.push_back(
                "spec.containers[*].ports.hostPort: must match containerPort when hostNetwork is "
                "true");
  }
  return errs;
}

namespace {

// The document of a manifest file: size-capped, YAML or JSON, one object with a kind, v1 and a
// name.
Result<json> loadDocument(std::string_view content, bool objects_too) {
  if (content.size() > kMaxManifestBytes)
    return fail(ErrorCode::InvalidArgument, "manifest is " + std::to_string(content.size()) +
                                                " bytes, more than the " +
                                                std::to_string(kMaxManifestBytes) + " allowed");
  auto text = yamlToJson(content);
  if (!text) return std::unexpected(text.error());
  json obj = json::parse(*text, nullptr, false);
  if (!obj.is_object()) return fail(ErrorCode::InvalidArgument, "expected a Pod object");
  const std::string kind = obj.value("kind", json("")).is_string() ? obj.value("kind", "") : "?";
  if (objects_too && kind != "Pod" && kind != "ConfigMap" && kind != "Secret" &&
      kind != "RuntimeClass")
    return fail(ErrorCode::InvalidArgument,
                "kind: expected \"Pod\", \"ConfigMap\", \"Secret\" or \"RuntimeClass\", got \"" +
                    kind + "\"");
  if (!objects_too && kind != "Pod")
    return fail(ErrorCode::InvalidArgument, "kind: expected \"Pod\", got \"" + kind + "\"");
  const std::string api_version = obj.value("apiVersion", json("")).is_string()
                                      ? obj.value("apiVersion", std::string())
                                      : std::string("?");
  const std::string want_version = kind == "RuntimeClass" ? "node.k8s.io/v1" : "v1";
  if (api_version != want_version)
    return fail(ErrorCode::InvalidArgument,
                "apiVersion: expected \"" + want_version + "\", got \"" + api_version + "\"");
  if (!obj.contains("metadata") || !obj["metadata"].is_object())
    return fail(ErrorCode::InvalidArgument, "metadata: Required value");
  if (!obj["metadata"].contains("name") || !obj["metadata"]["name"].is_string() ||
      obj["metadata"]["name"] == "")
    return fail(ErrorCode::InvalidArgument, "metadata.name: Required value");
  return obj;
}

Result<StaticPod> podFromDocument(json obj, const ManifestContext& ctx);
Result<StaticObject> objectFromDocument(json obj, const ManifestContext& ctx);

}  // namespace

Result<StaticPod> parseManifest(std::string_view content, const ManifestContext& ctx) {
  auto obj = loadDocument(content, false);
  if (!obj) return std::unexpected(obj.error());
  return podFromDocument(std::move(*obj), ctx);
}

Result<Manifest> parseManifestFile(std::string_view content, const ManifestContext& ctx) {
  auto obj = loadDocument(content, true);
  if (!obj) return std::unexpected(obj.error());
  const std::string kind = (*obj)["kind"];
  Manifest m;
  if (kind == "Pod") {
    auto pod = podFromDocument(std::move(*obj), ctx);
    if (!pod) return std::unexpected(pod.error());
    m.pod = std::move(*pod);
  } else {
    auto o = objectFromDocument(std::move(*obj), ctx);
    if (!o) return std::unexpected(o.error());
    m.object = std::move(*o);
  }
  return m;
}

namespace {

// A RuntimeClass (node.k8s.io/v1, cluster-scoped): its handler is what the runtime runs the
// sandboxes of pods naming it with.
Result<StaticObject> runtimeClassFromDocument(json obj, const ManifestContext& ctx) {
  obj["metadata"].erase("namespace");  // cluster-scoped: the API server drops it too
  StaticObject o;
  o.resource = "runtimeclasses";
  o.source_path = ctx.source_path;
  o.name = obj["metadata"]["name"];
  if (o.name.size() > 253 || !std::regex_match(o.name, dns1123Subdomain()))
    return fail(ErrorCode::InvalidArgument,
                "metadata.name: Invalid value \"" + o.name + "\": must be a DNS-1123 subdomain");
  if (!obj.contains("handler")) return fail(ErrorCode::InvalidArgument, "handler: Required value");
  if (!obj["handler"].is_string())
    return fail(ErrorCode::InvalidArgument, "handler: must be a string");
  const std::string handler = obj["handler"];
  if (handler.size() > 63 || !std::regex_match(handler, dns1123Label()))
    return fail(ErrorCode::InvalidArgument, "handler: Invalid value \"" + handler +
                                                "\": must be a DNS-1123 label (lowercase "
                                                "alphanumerics and '-', at most 63)");
  o.data["handler"] = handler;
  o.object_json = obj.dump();
  return o;
}

Result<StaticObject> objectFromDocument(json obj, const ManifestContext& ctx) {
  if (obj["kind"] == "RuntimeClass") return runtimeClassFromDocument(std::move(obj), ctx);
  const bool secret = obj["kind"] == "Secret";
  auto& md = obj["metadata"];
  if (!md.contains("namespace") || md["namespace"] == "") md["namespace"] = "default";
  StaticObject o;
  o.resource = secret ? "secrets" : "configmaps";
  o.source_path = ctx.source_path;
  if (!md["namespace"].is_string())
    return fail(ErrorCode::InvalidArgument, "metadata.namespace: must be a string");
  o.name = md["name"];
  o.namespace_ = md["namespace"];
  if (o.name.size() > 253 || !std::regex_match(o.name, dns1123Subdomain()))
    return fail(ErrorCode::InvalidArgument,
                "metadata.name: Invalid value \"" + o.name + "\": must be a DNS-1123 subdomain");
  if (o.namespace_.size() > 63 || !std::regex_match(o.namespace_, dns1123Label()))
    return fail(ErrorCode::InvalidArgument, "metadata.namespace: Invalid value \"" + o.namespace_ +
                                                "\": must be a DNS-1123 label");
  // The API server's key rule: [-._a-zA-Z0-9]+, at most 253, not "." or "..".
  static const std::regex kKey("[-._a-zA-Z0-9]+");
  auto key_ok = [](const std::string& k) {
    return !k.empty() && k.size() <= 253 && k != "." && k != ".." && std::regex_match(k, kKey);
  };
  auto section = [&](const char* field, bool base64) -> Status {
    if (!obj.contains(field)) return {};
    if (!obj[field].is_object())
      return fail(ErrorCode::InvalidArgument, std::string(field) + ": must be a map");
    for (const auto& [k, v] : obj[field].items()) {
      const std::string path = std::string(field) + "[" + k + "]";
      if (!key_ok(k))
        return fail(ErrorCode::InvalidArgument,
                    path +
                        ": Invalid value: a valid key must consist of alphanumeric "
                        "characters, '-', '_' or '.'");
      if (!v.is_string()) return fail(ErrorCode::InvalidArgument, path + ": must be a string");
      if (!base64) {
        if (o.data.contains(k) && std::string(field) != "stringData")
          return fail(ErrorCode::InvalidArgument,
                      path + ": Duplicate value (in data and binaryData)");
        o.data[k] = v.get<std::string>();
        continue;
      }
      auto bytes = base64Decode(v.get<std::string>());
      if (!bytes) return fail(ErrorCode::InvalidArgument, path + ": illegal base64 data");
      if (o.data.contains(k))
        return fail(ErrorCode::InvalidArgument,
                    path + ": Duplicate value (in data and binaryData)");
      o.data[k] = std::move(*bytes);
    }
    return {};
  };
  Status s;
  if (secret) {
    if (!obj.contains("type")) obj["type"] = "Opaque";
    s = section("data", true);
    if (s) s = section("stringData", false);  // the API server merges stringData over data
    if (s && obj.contains("stringData") && obj["stringData"].is_object()) {
      // ...and stores the merged result as data (base64), as a reader of the object sees it.
      json data = json::object();
      for (const auto& [k, v] : o.data) data[k] = base64Encode(v);
      obj["data"] = std::move(data);
      obj.erase("stringData");
    }
  } else {
    s = section("data", false);
    if (s) s = section("binaryData", true);
  }
  if (!s) return std::unexpected(s.error());
  size_t total = 0;
  for (const auto& [k, v] : o.data) total += k.size() + v.size();
  if (total > kMaxManifestBytes)
    return fail(ErrorCode::InvalidArgument, "data: Too long: must have at most 1048576 bytes");
  o.object_json = obj.dump();
  return o;
}

Result<StaticPod> podFromDocument(json obj, const ManifestContext& ctx) {
  applyApiDefaults(obj);

  // Type-check and validate before naming, so errors speak of the file's own name.
  auto typed = api::decodePod(obj.dump());
  if (!typed) return std::unexpected(typed.error());
  auto errs = validatePod(*typed);
  if (!errs.empty()) {
    std::string msg = errs[0];
    for (size_t i = 1; i < errs.size(); ++i) msg += "; " + errs[i];
    return fail(ErrorCode::InvalidArgument, msg);
  }

  std::string uid = obj["metadata"].value("uid", "");
  if (uid.empty()) {
    // Content + node + path: any edit, another node or another file is another pod.
    uid = sha256Hex(obj.dump() + "\nhost:" + ctx.node_name + "\nfile:" + ctx.source_path, 32);
  }
  applyStaticPodDefaults(obj, ctx, uid);
  const std::string final_name = obj["metadata"]["name"];
  if (final_name.size() > 253)
    return fail(ErrorCode::InvalidArgument,
                "metadata.name: \"" + final_name + "\" (with the node name) is longer than 253");
  auto pod = api::decodePod(obj.dump());
  if (!pod) return std::unexpected(pod.error());
  pod->source_json = obj.dump();
  std::string object = pod->source_json;
  return StaticPod{std::move(*pod), std::move(object), ctx.source_path};
}

}  // namespace

bool isManifestCandidate(std::string_view name) {
  if (name.empty() || name[0] == '.') return false;  // dotfiles, .#emacs locks, .swp
  if (name.ends_with("~") || name.ends_with(".swp") || name.ends_with(".swx") ||
      name.ends_with(".tmp") || name.ends_with(".bak"))
    return false;
  return true;
}

}  // namespace nodelet::staticpods
