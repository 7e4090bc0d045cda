#include "agent/config.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "agent/core/yaml_json.h"

namespace nodelet::agent {
namespace {

using nlohmann::json;

Error fieldError(const std::string& field, const std::string& what) {
  return Error{ErrorCode::InvalidArgument, "config field \"" + field + "\": " + what};
}

std::string typeName(const json& j) { return j.type_name(); }

// Each honoured field: its JSON name and how to read it into Config.
using Reader = Status (*)(const json&, const std::string&, Config&);

template <std::string Config::*M>
Status readString(const json& j, const std::string& f, Config& c) {
  if (!j.is_string()) return std::unexpected(fieldError(f, "expected string, got " + typeName(j)));
  c.*M = j.get<std::string>();
  return {};
}
template <int32_t Config::*M>
Status readInt(const json& j, const std::string& f, Config& c) {
  if (!j.is_number_integer())
    return std::unexpected(fieldError(f, "expected integer, got " + typeName(j)));
  const auto v = j.get<int64_t>();
  if (v < INT32_MIN || v > INT32_MAX) return std::unexpected(fieldError(f, "out of range"));
  c.*M = static_cast<int32_t>(v);
  return {};
}
template <bool Config::*M>
Status readBool(const json& j, const std::string& f, Config& c) {
  if (!j.is_boolean())
    return std::unexpected(fieldError(f, "expected boolean, got " + typeName(j)));
  c.*M = j.get<bool>();
  return {};
}
template <std::chrono::milliseconds Config::*M>
Status readDuration(const json& j, const std::string& f, Config& c) {
  if (!j.is_string())
    return std::unexpected(
        fieldError(f, "expected duration string like \"20s\", got " + typeName(j)));
  auto d = parseDuration(j.get<std::string>());
  if (!d) return std::unexpected(fieldError(f, d.error().message));
  c.*M = *d;
  return {};
}
template <std::vector<std::string> Config::*M>
Status readStrings(const json& j, const std::string& f, Config& c) {
  if (!j.is_array())
    return std::unexpected(fieldError(f, "expected list of strings, got " + typeName(j)));
  std::vector<std::string> out;
  for (const auto& e : j) {
    if (!e.is_string()) return std::unexpected(fieldError(f, "expected list of strings"));
    out.push_back(e.get<std::string>());
  }
  c.*M = out;
  return {};
}

template <std::map<std::string, std::string> Config::*M>
Status readStringMap(const json& j, const std::string& f, Config& c) {
  if (!j.is_object())
    return std::unexpected(fieldError(f, "expected map of strings, got " + typeName(j)));
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : j.items()) {
    if (!v.is_string()) return std::unexpected(fieldError(f + "." + k, "expected string"));
    out[k] = v.template get<std::string>();
  }
  c.*M = out;
  return {};
}

// registerWithTaints: a list of core/v1 Taints, kept as "key=value:Effect".
Status readTaints(const json& j, const std::string& f, Config& c) {
  if (!j.is_array())
    return std::unexpected(fieldError(f, "expected list of taints, got " + typeName(j)));
  std::vector<std::string> out;
  for (size_t i = 0; i < j.size(); ++i) {
    const auto& t = j[i];
    const std::string at = f + "[" + std::to_string(i) + "]";
    if (!t.is_object() || !t.contains("key") || !t["key"].is_string() || !t.contains("effect") ||
        !t["effect"].is_string())
      return std::unexpected(fieldError(at, "a taint needs string fields key and effect"));
    const std::string value =
        t.contains("value") && t["value"].is_string() ? t["value"].get<std::string>() : "";
    out.push_back(t["key"].get<std::string>() + (value.empty() ? "" : "=" + value) + ":" +
                  t["effect"].get<std::string>());
  }
  c.register_with_taints = out;
  return {};
}

// A nested object of the config: each known key read by its function, the others listed as
// ignored ("authentication.webhook.foo").
using NestedReader = std::function<Status(const json&, const std::string&)>;
Status readNested(const json& j, const std::string& f, Config& c,
                  const std::map<std::string, NestedReader>& known) {
  if (!j.is_object()) return std::unexpected(fieldError(f, "expected object, got " + typeName(j)));
  for (const auto& [k, v] : j.items()) {
    auto it = known.find(k);
    if (it == known.end()) {
      c.ignored_fields.push_back(f + "." + k);
      continue;
    }
    if (v.is_null()) continue;
    if (auto s = it->second(v, f + "." + k); !s) return s;
  }
  return {};
}

NestedReader boolInto(bool& out) {
  return [&out](const json& v, const std::string& f) -> Status {
    if (!v.is_boolean())
      return std::unexpected(fieldError(f, "expected boolean, got " + typeName(v)));
    out = v.get<bool>();
    return {};
  };
}
NestedReader stringInto(std::string& out) {
  return [&out](const json& v, const std::string& f) -> Status {
    if (!v.is_string())
      return std::unexpected(fieldError(f, "expected string, got " + typeName(v)));
    out = v.get<std::string>();
    return {};
  };
}
NestedReader durationInto(std::chrono::milliseconds& out) {
  return [&out](const json& v, const std::string& f) -> Status {
    if (!v.is_string())
      return std::unexpected(fieldError(f, "expected duration string, got " + typeName(v)));
    auto d = parseDuration(v.get<std::string>());
    if (!d) return std::unexpected(fieldError(f, d.error().message));
    out = *d;
    return {};
  };
}

Status readAuthentication(const json& j, const std::string& f, Config& c) {
  return readNested(
      j, f, c,
      {{"x509",
        [&c](const json& v, const std::string& g) {
          return readNested(v, g, c, {{"clientCAFile", stringInto(c.client_ca_file)}});
        }},
       {"webhook",
        [&c](const json& v, const std::string& g) {
          return readNested(v, g, c,
                            {{"enabled", boolInto(c.webhook_authn)},
                             {"cacheTTL", durationInto(c.webhook_authn_cache_ttl)}});
        }},
       {"anonymous", [&c](const json& v, const std::string& g) {
          return readNested(v, g, c, {{"enabled", boolInto(c.anonymous_auth)}});
        }}});
}

Status readAuthorization(const json& j, const std::string& f, Config& c) {
  return readNested(j, f, c,
                    {{"mode", stringInto(c.authorization_mode)},
                     {"webhook", [&c](const json& v, const std::string& g) {
                        return readNested(
                            v, g, c,
                            {{"cacheAuthorizedTTL", durationInto(c.authz_authorized_ttl)},
                             {"cacheUnauthorizedTTL", durationInto(c.authz_unauthorized_ttl)}});
                      }}});
}

const std::vector<std::pair<const char*, Reader>>& readers() {
  static const std::vector<std::pair<const char*, Reader>> r = {
      {"staticPodPath", &readString<&Config::static_pod_path>},
      {"fileCheckFrequency", &readDuration<&Config::file_check_frequency>},
      {"containerRuntimeEndpoint", &readString<&Config::container_runtime_endpoint>},
      {"imageServiceEndpoint", &readString<&Config::image_service_endpoint>},
      {"syncFrequency", &readDuration<&Config::sync_frequency>},
      {"podLogsDir", &readString<&Config::pod_logs_dir>},
      {"maxPods", &readInt<&Config::max_pods>},
      {"cgroupDriver", &readString<&Config::cgroup_driver>},
      {"cgroupRoot", &readString<&Config::cgroup_root>},
      {"clusterDNS", &readStrings<&Config::cluster_dns>},
      {"clusterDomain", &readString<&Config::cluster_domain>},
      {"resolvConf", &readString<&Config::resolv_conf>},
      {"runtimeRequestTimeout", &readDuration<&Config::runtime_request_timeout>},
      {"podCIDR", &readString<&Config::pod_cidr>},
      {"containerLogMaxSize", &readString<&Config::container_log_max_size>},
      {"containerLogMaxFiles", &readInt<&Config::container_log_max_files>},
      {"containerLogMonitorInterval", &readDuration<&Config::container_log_monitor_interval>},
      {"failSwapOn", &readBool<&Config::fail_swap_on>},
      {"address", &readString<&Config::address>},
      {"port", &readInt<&Config::port>},
      {"healthzBindAddress", &readString<&Config::healthz_bind_address>},
      {"healthzPort", &readInt<&Config::healthz_port>},
      {"readOnlyPort", &readInt<&Config::read_only_port>},
      {"tlsCertFile", &readString<&Config::tls_cert_file>},
      {"tlsPrivateKeyFile", &readString<&Config::tls_private_key_file>},
      {"authentication", &readAuthentication},
      {"authorization", &readAuthorization},
      {"streamingConnectionIdleTimeout", &readDuration<&Config::streaming_connection_idle_timeout>},
      {"shutdownGracePeriod", &readDuration<&Config::shutdown_grace_period>},
      {"shutdownGracePeriodCriticalPods",
       &readDuration<&Config::shutdown_grace_period_critical_pods>},
      {"nodeStatusUpdateFrequency", &readDuration<&Config::node_status_update_frequency>},
      {"nodeStatusReportFrequency", &readDuration<&Config::node_status_report_frequency>},
      {"nodeLeaseDurationSeconds", &readInt<&Config::node_lease_duration_seconds>},
      {"kubeAPIQPS", &readInt<&Config::kube_api_qps>},
      {"kubeAPIBurst", &readInt<&Config::kube_api_burst>},
      {"registerNode", &readBool<&Config::register_node>},
      {"registerWithTaints", &readTaints},
      {"systemReserved", &readStringMap<&Config::system_reserved>},
      {"kubeReserved", &readStringMap<&Config::kube_reserved>},
      {"evictionHard", &readStringMap<&Config::eviction_hard>},
      {"nodeStatusMaxImages", &readInt<&Config::node_status_max_images>},
      {"seccompDefault", &readBool<&Config::seccomp_default>},
      {"rotateCertificates", &readBool<&Config::rotate_certificates>},
  };
  return r;
}

}  // namespace

Result<std::chrono::milliseconds> parseDuration(std::string_view s) {
  auto bad = [&] {
    return fail(ErrorCode::InvalidArgument, "invalid duration \"" + std::string(s) + "\"");
  };
  if (s.empty()) return bad();
  if (s == "0") return std::chrono::milliseconds(0);
  long double total_ms = 0;
  size_t i = 0;
  bool neg = false;
  if (s[0] == '-' || s[0] == '+') neg = s[i++] == '-';
  if (i == s.size()) return bad();
  while (i < s.size()) {
    size_t start = i;
    int dots = 0;
    while (i < s.size() && ((s[i] >= '0' && s[i] <= '9') || s[i] == '.')) dots += s[i++] == '.';
    if (start == i || dots > 1) return bad();
    long double v = 0;
    try {
      v = std::stold(std::string(s.substr(start, i - start)));
    } catch (...) {
      return bad();
    }
    size_t ustart = i;
    while (i < s.size() && !((s[i] >= '0' && s[i] <= '9') || s[i] == '.')) ++i;
    const std::string_view unit = s.substr(ustart, i - ustart);
    long double mult = 0;
    if (unit == "ns")
      mult = 1e-6L;
    else if (unit == "us" || unit == "µs")
      mult = 1e-3L;
    else if (unit == "ms")
      mult = 1;
    else if (unit == "s")
      mult = 1000;
    else if (unit == "m")
      mult = 60'000;
    else if (unit == "h")
      mult = 3'600'000;
    else
      return bad();
    total_ms += v * mult;
  }
  if (total_ms > 9e15L) return bad();
  const auto ms = static_cast<int64_t>(total_ms);
  return std::chrono::milliseconds(neg ? -ms : ms);
}

Status loadConfigText(std::string_view text, Config& cfg) {
  auto js = yamlToJson(text);
  if (!js) return std::unexpected(js.error());
  const json j = json::parse(*js);
  if (!j.is_object()) return fail(ErrorCode::InvalidArgument, "config: expected a mapping");
  const std::string kind = j.value("kind", "");
  const std::string api = j.value("apiVersion", "");
  if (kind != "KubeletConfiguration")
    return fail(ErrorCode::InvalidArgument,
                "config: kind must be \"KubeletConfiguration\", got \"" + kind + "\"");
  if (api != "kubelet.config.k8s.io/v1beta1")
    return fail(
        ErrorCode::InvalidArgument,
        "config: apiVersion must be \"kubelet.config.k8s.io/v1beta1\", got \"" + api + "\"");
  cfg.ignored_fields.clear();
  for (const auto& [key, value] : j.items()) {
    if (key == "kind" || key == "apiVersion") continue;
    const auto& r = readers();
    auto it = std::find_if(r.begin(), r.end(), [&](const auto& p) { return key == p.first; });
    if (it == r.end()) {
      cfg.ignored_fields.push_back(key);
      continue;
    }
    if (value.is_null()) continue;  // explicit null: keep the default
    if (auto s = it->second(value, key, cfg); !s) return s;
  }
  return {};
}

Status loadConfigFile(const std::string& path, Config& cfg) {
  std::ifstream in(path);
  if (!in) return fail(ErrorCode::NotFound, "config file \"" + path + "\": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  if (auto s = loadConfigText(ss.str(), cfg); !s)
    return std::unexpected(s.error().wrap("config file \"" + path + "\""));
  return {};
}

Status validateConfig(const Config& c) {
  if (c.cgroup_driver == "systemd")
    return fail(ErrorCode::InvalidArgument,
                "cgroupDriver \"systemd\" is not supported by nodelet yet: use \"cgroupfs\" (and "
                "SystemdCgroup = false in containerd's runc options)");
  if (c.cgroup_driver != "cgroupfs")
    return fail(
        ErrorCode::InvalidArgument,
        "cgroupDriver must be \"cgroupfs\" or \"systemd\", got \"" + c.cgroup_driver + "\"");
  if (c.max_pods < 1) return fail(ErrorCode::InvalidArgument, "maxPods must be at least 1");
  for (auto [name, port] : {std::pair{"port", c.port},
                            {"healthzPort", c.healthz_port},
                            {"readOnlyPort", c.read_only_port}}) {
    if (port < 0 || port > 65535)
      return fail(ErrorCode::InvalidArgument, std::string(name) + " must be in 0..65535");
  }
  if (c.authorization_mode != "Webhook" && c.authorization_mode != "AlwaysAllow")
    return fail(ErrorCode::InvalidArgument,
                "authorization.mode must be \"Webhook\" or "
                "\"AlwaysAllow\", got \"" +
                    c.authorization_mode + "\"");
  if (c.shutdown_grace_period.count() < 0 || c.shutdown_grace_period_critical_pods.count() < 0 ||
      c.shutdown_grace_period_critical_pods > c.shutdown_grace_period)
    return fail(ErrorCode::InvalidArgument,
                "shutdownGracePeriodCriticalPods must be between 0 and shutdownGracePeriod");
  if (c.tls_cert_file.empty() != c.tls_private_key_file.empty())
    return fail(ErrorCode::InvalidArgument,
                "tlsCertFile and tlsPrivateKeyFile must be given together");
  if (c.file_check_frequency.count() <= 0)
    return fail(ErrorCode::InvalidArgument, "fileCheckFrequency must be positive");
  if (c.sync_frequency.count() <= 0)
    return fail(ErrorCode::InvalidArgument, "syncFrequency must be positive");
  if (c.runtime_request_timeout.count() <= 0)
    return fail(ErrorCode::InvalidArgument, "runtimeRequestTimeout must be positive");
  if (c.container_log_max_files < 2)
    return fail(ErrorCode::InvalidArgument, "containerLogMaxFiles must be at least 2");
  if (c.container_log_monitor_interval < std::chrono::seconds(3))
    return fail(ErrorCode::InvalidArgument,
                "containerLogMonitorInterval must be a positive time duration greater than or "
                "equal to 3s");
  if (c.root_dir.empty() || c.root_dir[0] != '/')
    return fail(ErrorCode::InvalidArgument, "--root-dir must be an absolute path");
  if (c.pod_logs_dir.empty() || c.pod_logs_dir[0] != '/')
    return fail(ErrorCode::InvalidArgument, "podLogsDir must be an absolute path");
  if (c.node_lease_duration_seconds < 1)
    return fail(ErrorCode::InvalidArgument, "nodeLeaseDurationSeconds must be positive");
  if (c.node_status_update_frequency.count() <= 0)
    return fail(ErrorCode::InvalidArgument, "nodeStatusUpdateFrequency must be positive");
  for (const auto& t : c.register_with_taints) {
    const auto colon = t.rfind(':');
    const std::string effect = colon == std::string::npos ? "" : t.substr(colon + 1);
    if (colon == std::string::npos || colon == 0 ||
        (effect != "NoSchedule" && effect != "PreferNoSchedule" && effect != "NoExecute"))
      return fail(ErrorCode::InvalidArgument, "registerWithTaints: \"" + t +
                                                  "\" must be key[=value]:Effect with Effect "
                                                  "NoSchedule, PreferNoSchedule or NoExecute");
  }
  if (!c.bootstrap_kubeconfig.empty() && c.kubeconfig.empty())
    return fail(ErrorCode::InvalidArgument,
                "--bootstrap-kubeconfig needs --kubeconfig (where the bootstrapped credentials "
                "are written)");
  if (!c.register_node && !c.kubeconfig.empty())
    return fail(
        ErrorCode::InvalidArgument,
        "registerNode: false is not supported by nodelet yet (the Node must be registered by "
        "nodelet itself)");
  return {};
}

std::string nodeName(const Config& cfg) {
  std::string n = cfg.hostname_override;
  if (n.empty()) {
    char buf[256] = {};
    if (gethostname(buf, sizeof buf - 1) == 0) n = buf;
  }
  std::transform(n.begin(), n.end(), n.begin(), [](unsigned char ch) { return std::tolower(ch); });
  return n;
}

}  // namespace nodelet::agent
