#include "agent/core/api_json.h"

#include <ctime>
#include <nlohmann/json.hpp>

namespace nodelet::api {
namespace {

using nlohmann::json;

// ---- decoding: a thin cursor that knows its field path ---------------------------------------
struct DecodeError {
  std::string path;
  std::string what;
};

class In {
 public:
  In(const json& j, std::string path) : j_(j), path_(std::move(path)) {}

  bool has(const char* key) const { return j_.contains(key) && !j_.at(key).is_null(); }
  In at(const char* key) const { return In(j_.at(key), join(key)); }
  const json& raw() const { return j_; }
  const std::string& path() const { return path_; }

  [[noreturn]] void fail(const std::string& what) const { throw DecodeError{path_, what}; }

  void expectObject() const {
    if (!j_.is_object()) fail("expected object, got " + std::string(j_.type_name()));
  }
  std::string str() const {
    if (!j_.is_string()) fail("expected string, got " + std::string(j_.type_name()));
    return j_.get<std::string>();
  }
  int64_t i64() const {
    if (j_.is_number_integer()) return j_.get<int64_t>();
    if (j_.is_number_float()) {
      const double d = j_.get<double>();
      if (d == static_cast<double>(static_cast<int64_t>(d))) return static_cast<int64_t>(d);
    }
    fail("expected integer, got " + std::string(j_.type_name()));
  }
  int32_t i32() const {
    const int64_t v = i64();
    if (v < INT32_MIN || v > INT32_MAX) fail("integer out of range");
    return static_cast<int32_t>(v);
  }
  bool boolean() const {
    if (!j_.is_boolean()) fail("expected boolean, got " + std::string(j_.type_name()));
    return j_.get<bool>();
  }
  template <class F>
  void each(F&& f) const {
    if (!j_.is_array()) fail("expected array, got " + std::string(j_.type_name()));
    for (size_t i = 0; i < j_.size(); ++i) f(In(j_[i], path_ + "[" + std::to_string(i) + "]"));
  }
  std::vector<std::string> strings() const {
    std::vector<std::string> out;
    each([&](const In& e) { out.push_back(e.str()); });
    return out;
  }
  StringMap stringMap() const {
    expectObject();
    StringMap m;
    for (const auto& [k, v] : j_.items()) m[k] = In(v, join(k.c_str())).str();
    return m;
  }
  IntOrString intOrString() const {
    if (j_.is_string()) return IntOrString{false, 0, j_.get<std::string>()};
    return IntOrString{true, i32(), {}};
  }
  // Helpers for optional fields.
  void str(const char* k, std::string& out) const {
    if (has(k)) out = at(k).str();
  }
  void b(const char* k, bool& out) const {
    if (has(k)) out = at(k).boolean();
  }
  template <class T>
  void i(const char* k, T& out) const {
    if (has(k)) out = static_cast<T>(sizeof(T) == 4 ? at(k).i32() : at(k).i64());
  }

 private:
  std::string join(const char* key) const { return path_.empty() ? key : path_ + "." + key; }
  const json& j_;
  std::string path_;
};

uint64_t fnv1a64(std::string_view data) {
  uint64_t h = 14695981039346656037ull;
  for (char c : data) {
    const auto ch = static_cast<unsigned char>(c);
    h ^= ch;
    h *= 1099511628211ull;
  }
  return h;
}

Handler decodeHandler(const In& in) {
  in.expectObject();
  Handler h;
  int n = 0;
  if (in.has("exec")) {
    ++n;
    ExecAction e;
    In x = in.at("exec");
    if (x.has("command")) e.command = x.at("command").strings();
    h.exec = e;
  }
  if (in.has("httpGet")) {
    ++n;
    In x = in.at("httpGet");
    HttpGetAction a;
    x.str("path", a.path);
    x.str("host", a.host);
    x.str("scheme", a.scheme);
    if (!x.has("port")) x.fail("port: Required value");
    a.port = x.at("port").intOrString();
    if (x.has("httpHeaders")) {
      x.at("httpHeaders").each([&](const In& e) {
        HttpHeader hh;
        e.str("name", hh.name);
        e.str("value", hh.value);
        a.http_headers.push_back(hh);
      });
    }
    h.http_get = a;
  }
  if (in.has("tcpSocket")) {
    ++n;
    In x = in.at("tcpSocket");
    TcpSocketAction a;
    x.str("host", a.host);
    if (!x.has("port")) x.fail("port: Required value");
    a.port = x.at("port").intOrString();
    h.tcp_socket = a;
  }
  if (in.has("grpc")) {
    ++n;
    In x = in.at("grpc");
    GrpcAction a;
    x.i("port", a.port);
    if (x.has("service")) a.service = x.at("service").str();
    h.grpc = a;
  }
  if (in.has("sleep")) {
    ++n;
    SleepAction a;
    in.at("sleep").i("seconds", a.seconds);
    h.sleep = a;
  }
  if (n != 1) in.fail("must specify exactly one handler type, found " + std::to_string(n));
  return h;
}

Probe decodeProbe(const In& in) {
  Probe p;
  p.handler = decodeHandler(in);
  in.i("initialDelaySeconds", p.initial_delay_seconds);
  in.i("timeoutSeconds", p.timeout_seconds);
  in.i("periodSeconds", p.period_seconds);
  in.i("successThreshold", p.success_threshold);
  in.i("failureThreshold", p.failure_threshold);
  if (in.has("terminationGracePeriodSeconds"))
    p.termination_grace_period_seconds = in.at("terminationGracePeriodSeconds").i64();
  return p;
}

std::optional<SeccompProfile> decodeSeccomp(const In& in) {
  if (!in.has("seccompProfile")) return std::nullopt;
  In x = in.at("seccompProfile");
  x.expectObject();
  SeccompProfile p;
  x.str("type", p.type);
  x.str("localhostProfile", p.localhost_profile);
  if (p.type != "RuntimeDefault" && p.type != "Unconfined" && p.type != "Localhost")
    x.at("type").fail("Unsupported value: \"" + p.type +
                      "\": supported values: \"Localhost\", \"RuntimeDefault\", \"Unconfined\"");
  if (p.type == "Localhost" && p.localhost_profile.empty())
    x.fail("localhostProfile: Required value: must be set when seccomp type is Localhost");
  if (p.type != "Localhost" && !p.localhost_profile.empty())
    x.fail("localhostProfile: Invalid value: can only be set when seccomp type is Localhost");
  return p;
}

std::optional<SecurityContext> decodeSecurityContext(const In& in) {
  in.expectObject();
  SecurityContext s;
  s.seccomp_profile = decodeSeccomp(in);
  if (in.has("runAsUser")) s.run_as_user = in.at("runAsUser").i64();
  if (in.has("runAsGroup")) s.run_as_group = in.at("runAsGroup").i64();
  if (in.has("runAsNonRoot")) s.run_as_non_root = in.at("runAsNonRoot").boolean();
  if (in.has("privileged")) s.privileged = in.at("privileged").boolean();
  in.str("procMount", s.proc_mount);
  if (!s.proc_mount.empty() && s.proc_mount != "Default" && s.proc_mount != "Unmasked")
    in.at("procMount")
        .fail("Unsupported value: \"" + s.proc_mount +
              "\": supported values: \"Default\", \"Unmasked\"");
  if (in.has("readOnlyRootFilesystem"))
    s.read_only_root_filesystem = in.at("readOnlyRootFilesystem").boolean();
  if (in.has("allowPrivilegeEscalation"))
    s.allow_privilege_escalation = in.at("allowPrivilegeEscalation").boolean();
  if (in.has("capabilities")) {
    Capabilities c;
    In x = in.at("capabilities");
    if (x.has("add")) c.add = x.at("add").strings();
    if (x.has("drop")) c.drop = x.at("drop").strings();
    s.capabilities = c;
  }
  return s;
}

Container decodeContainer(const In& in) {
  in.expectObject();
  Container c;
  in.str("name", c.name);
  in.str("targetContainerName", c.target_container_name);
  in.str("image", c.image);
  if (in.has("command")) c.command = in.at("command").strings();
  if (in.has("args")) c.args = in.at("args").strings();
  in.str("workingDir", c.working_dir);
  if (in.has("ports")) {
    in.at("ports").each([&](const In& e) {
      e.expectObject();
      ContainerPort p;
      e.str("name", p.name);
      e.i("containerPort", p.container_port);
      e.i("hostPort", p.host_port);
      e.str("hostIP", p.host_ip);
      e.str("protocol", p.protocol);
      c.ports.push_back(p);
    });
  }
  if (in.has("envFrom")) {
    in.at("envFrom").each([&](const In& e) {
      e.expectObject();
      EnvFromSource f;
      e.str("prefix", f.prefix);
      const bool cm = e.has("configMapRef");
      if (!cm && !e.has("secretRef")) e.fail("must specify configMapRef or secretRef");
      In r = e.at(cm ? "configMapRef" : "secretRef");
      r.expectObject();
      r.str("name", f.name);
      r.b("optional", f.optional);
      f.secret = !cm;
      c.env_from.push_back(std::move(f));
    });
  }
  if (in.has("env")) {
    in.at("env").each([&](const In& e) {
      e.expectObject();
      EnvVar v;
      e.str("name", v.name);
      e.str("value", v.value);
      if (e.has("valueFrom")) {
        In f = e.at("valueFrom");
        if (f.has("fieldRef")) {
          v.source = EnvVar::Source::FieldRef;
          f.at("fieldRef").str("fieldPath", v.field_path);
        } else if (f.has("resourceFieldRef")) {
          v.source = EnvVar::Source::ResourceFieldRef;
          In r = f.at("resourceFieldRef");
          r.str("resource", v.field_path);
          r.str("containerName", v.container_name);
          if (r.has("divisor")) {
            const auto& d = r.at("divisor").raw();
            v.divisor = d.is_string() ? d.get<std::string>() : d.dump();
          }
        } else if (f.has("configMapKeyRef") || f.has("secretKeyRef")) {
          const bool cm = f.has("configMapKeyRef");
          v.source = cm ? EnvVar::Source::ConfigMapKeyRef : EnvVar::Source::SecretKeyRef;
          In r = f.at(cm ? "configMapKeyRef" : "secretKeyRef");
          r.str("name", v.ref_name);
          r.str("key", v.ref_key);
          r.b("optional", v.optional);
        } else {
          f.fail("must specify one of: fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef");
        }
      }
      c.env.push_back(v);
    });
  }
  if (in.has("resources")) {
    In r = in.at("resources");
    auto quantities = [](const In& m) {
      m.expectObject();
      StringMap out;
      for (const auto& [k, v] : m.raw().items()) {
        // Quantities may be written as numbers in YAML ("cpu: 1").
        out[k] = v.is_string() ? v.get<std::string>() : v.is_number() ? v.dump() : "";
        if (out[k].empty()) In(v, m.path() + "." + k).fail("expected quantity");
      }
      return out;
    };
    if (r.has("limits")) c.resources.limits = quantities(r.at("limits"));
    if (r.has("requests")) c.resources.requests = quantities(r.at("requests"));
  }
  if (in.has("volumeMounts")) {
    in.at("volumeMounts").each([&](const In& e) {
      e.expectObject();
      VolumeMount m;
      e.str("name", m.name);
      e.str("mountPath", m.mount_path);
      e.b("readOnly", m.read_only);
      e.str("subPath", m.sub_path);
      e.str("subPathExpr", m.sub_path_expr);
      e.str("mountPropagation", m.mount_propagation);
      c.volume_mounts.push_back(m);
    });
  }
  if (in.has("livenessProbe")) c.liveness_probe = decodeProbe(in.at("livenessProbe"));
  if (in.has("readinessProbe")) c.readiness_probe = decodeProbe(in.at("readinessProbe"));
  if (in.has("startupProbe")) c.startup_probe = decodeProbe(in.at("startupProbe"));
  if (in.has("lifecycle")) {
    In l = in.at("lifecycle");
    Lifecycle lc;
    if (l.has("postStart")) lc.post_start = decodeHandler(l.at("postStart"));
    if (l.has("preStop")) lc.pre_stop = decodeHandler(l.at("preStop"));
    c.lifecycle = lc;
  }
  in.str("terminationMessagePath", c.termination_message_path);
  in.str("terminationMessagePolicy", c.termination_message_policy);
  in.str("imagePullPolicy", c.image_pull_policy);
  if (in.has("securityContext"))
    c.security_context = decodeSecurityContext(in.at("securityContext"));
  in.b("stdin", c.stdin_);
  in.b("stdinOnce", c.stdin_once);
  in.b("tty", c.tty);
  if (in.has("restartPolicy")) c.restart_policy = in.at("restartPolicy").str();
  c.hash = fnv1a64(in.raw().dump());
  return c;
}

std::optional<int32_t> optMode(const In& in, const char* key) {
  if (!in.has(key)) return std::nullopt;
  const int32_t m = in.at(key).i32();
  if (m < 0 || m > 0777)
    in.at(key).fail("must be a file mode between 0 and 0777 (octal), got " + std::to_string(m));
  return m;
}

std::vector<KeyToPath> decodeItems(const In& in) {
  std::vector<KeyToPath> out;
  if (!in.has("items")) return out;
  in.at("items").each([&](const In& e) {
    e.expectObject();
    KeyToPath k;
    e.str("key", k.key);
    e.str("path", k.path);
    k.mode = optMode(e, "mode");
    out.push_back(std::move(k));
  });
  return out;
}

std::vector<DownwardApiFile> decodeDownward(const In& in) {
  std::vector<DownwardApiFile> out;
  if (!in.has("items")) return out;
  in.at("items").each([&](const In& e) {
    e.expectObject();
    DownwardApiFile f;
    e.str("path", f.path);
    f.mode = optMode(e, "mode");
    if (e.has("fieldRef")) {
      In r = e.at("fieldRef");
      r.expectObject();
      r.str("fieldPath", f.field_path);
    }
    if (e.has("resourceFieldRef")) {
      In r = e.at("resourceFieldRef");
      r.expectObject();
      r.str("resource", f.resource);
      r.str("containerName", f.container_name);
      if (r.has("divisor")) {
        const auto& d = r.at("divisor").raw();
        f.divisor = d.is_string() ? d.get<std::string>() : d.dump();
      }
    }
    out.push_back(std::move(f));
  });
  return out;
}

VolumeProjection decodeProjection(const In& in) {
  in.expectObject();
  VolumeProjection p;
  for (const auto& [k, val] : in.raw().items()) {
    if (val.is_null()) continue;
    In src = in.at(k.c_str());
    if (k == "configMap" || k == "secret") {
      src.expectObject();
      p.kind =
          k == "configMap" ? VolumeProjection::Kind::ConfigMap : VolumeProjection::Kind::Secret;
      src.str("name", p.name);
      p.items = decodeItems(src);
      src.b("optional", p.optional);
    } else if (k == "downwardAPI") {
      src.expectObject();
      p.kind = VolumeProjection::Kind::DownwardAPI;
      p.downward = decodeDownward(src);
    } else if (k == "serviceAccountToken") {
      src.expectObject();
      p.kind = VolumeProjection::Kind::ServiceAccountToken;
      src.str("audience", p.audience);
      src.str("path", p.path);
      if (src.has("expirationSeconds")) p.expiration_seconds = src.at("expirationSeconds").i64();
    } else {
      p.kind = VolumeProjection::Kind::Other;
      p.other_kind = k;
    }
  }
  return p;
}

Volume decodeVolume(const In& in) {
  in.expectObject();
  Volume v;
  in.str("name", v.name);
  int sources = 0;
  for (const auto& [k, val] : in.raw().items()) {
    if (k == "name" || val.is_null()) continue;
    ++sources;
    if (k == "emptyDir") {
      v.kind = Volume::Kind::EmptyDir;
      In e = in.at("emptyDir");
      e.expectObject();
      e.str("medium", v.medium);
      if (e.has("sizeLimit")) {
        const auto& s = e.at("sizeLimit").raw();
        v.size_limit = s.is_string() ? s.get<std::string>() : s.dump();
      }
    } else if (k == "hostPath") {
      v.kind = Volume::Kind::HostPath;
      In h = in.at("hostPath");
      h.expectObject();
      h.str("path", v.path);
      h.str("type", v.host_path_type);
    } else if (k == "configMap" || k == "secret") {
      In c = in.at(k.c_str());
      c.expectObject();
      v.kind = k == "configMap" ? Volume::Kind::ConfigMap : Volume::Kind::Secret;
      c.str(k == "configMap" ? "name" : "secretName", v.ref_name);
      v.items = decodeItems(c);
      v.default_mode = optMode(c, "defaultMode");
      c.b("optional", v.optional);
    } else if (k == "downwardAPI") {
      In d = in.at("downwardAPI");
      d.expectObject();
      v.kind = Volume::Kind::DownwardAPI;
      v.downward = decodeDownward(d);
      v.default_mode = optMode(d, "defaultMode");
    } else if (k == "projected") {
      In pr = in.at("projected");
      pr.expectObject();
      v.kind = Volume::Kind::Projected;
      v.default_mode = optMode(pr, "defaultMode");
      if (pr.has("sources"))
        pr.at("sources").each([&](const In& e) { v.sources.push_back(decodeProjection(e)); });
    } else {
      v.kind = Volume::Kind::Other;
      v.other_kind = k;
    }
  }
  if (sources != 1)
    in.fail("must specify exactly one volume source, found " + std::to_string(sources));
  return v;
}

std::optional<SysTime> optTime(const In& in, const char* key) {
  if (!in.has(key)) return std::nullopt;
  auto t = parseTime(in.at(key).str());
  if (!t) in.at(key).fail(t.error().message);
  return *t;
}

ContainerState decodeState(const In& in) {
  in.expectObject();
  ContainerState s;
  if (in.has("waiting")) {
    In w = in.at("waiting");
    ContainerStateWaiting x;
    w.str("reason", x.reason);
    w.str("message", x.message);
    s.waiting = x;
  } else if (in.has("running")) {
    s.running = ContainerStateRunning{optTime(in.at("running"), "startedAt")};
  } else if (in.has("terminated")) {
    In t = in.at("terminated");
    ContainerStateTerminated x;
    t.i("exitCode", x.exit_code);
    t.i("signal", x.signal);
    t.str("reason", x.reason);
    t.str("message", x.message);
    t.str("containerID", x.container_id);
    x.started_at = optTime(t, "startedAt");
    x.finished_at = optTime(t, "finishedAt");
    s.terminated = x;
  }
  return s;
}

PodStatus decodeStatus(const In& in) {
  in.expectObject();
  PodStatus s;
  in.str("phase", s.phase);
  in.str("reason", s.reason);
  in.str("message", s.message);
  in.str("hostIP", s.host_ip);
  in.str("podIP", s.pod_ip);
  in.str("qosClass", s.qos_class);
  s.start_time = optTime(in, "startTime");
  if (in.has("conditions")) {
    in.at("conditions").each([&](const In& e) {
      PodCondition c;
      e.str("type", c.type);
      e.str("status", c.status);
      e.str("reason", c.reason);
      e.str("message", c.message);
      c.last_transition_time = optTime(e, "lastTransitionTime");
      s.conditions.push_back(c);
    });
  }
  auto statuses = [&](const char* key, std::vector<ContainerStatus>& out) {
    if (!in.has(key)) return;
    in.at(key).each([&](const In& e) {
      ContainerStatus c;
      e.str("name", c.name);
      e.b("ready", c.ready);
      if (e.has("started")) c.started = e.at("started").boolean();
      e.i("restartCount", c.restart_count);
      e.str("image", c.image);
      e.str("imageID", c.image_id);
      e.str("containerID", c.container_id);
      if (e.has("state")) c.state = decodeState(e.at("state"));
      if (e.has("lastState")) c.last_state = decodeState(e.at("lastState"));
      out.push_back(c);
    });
  };
  statuses("initContainerStatuses", s.init_container_statuses);
  statuses("containerStatuses", s.container_statuses);
  statuses("ephemeralContainerStatuses", s.ephemeral_container_statuses);
  return s;
}

Pod decodePodJson(const In& in) {
  in.expectObject();
  Pod p;
  if (in.has("kind") && in.at("kind").str() != "Pod")
    in.at("kind").fail("expected \"Pod\", got \"" + in.at("kind").str() + "\"");
  if (in.has("apiVersion") && in.at("apiVersion").str() != "v1")
    in.at("apiVersion").fail("expected \"v1\", got \"" + in.at("apiVersion").str() + "\"");
  if (in.has("metadata")) {
    In m = in.at("metadata");
    m.expectObject();
    m.str("name", p.metadata.name);
    m.str("generateName", p.metadata.generate_name);
    m.str("namespace", p.metadata.namespace_);
    m.str("uid", p.metadata.uid);
    m.str("resourceVersion", p.metadata.resource_version);
    if (m.has("labels")) p.metadata.labels = m.at("labels").stringMap();
    if (m.has("annotations")) p.metadata.annotations = m.at("annotations").stringMap();
    p.metadata.creation_timestamp = optTime(m, "creationTimestamp");
    p.metadata.deletion_timestamp = optTime(m, "deletionTimestamp");
    if (m.has("deletionGracePeriodSeconds"))
      p.metadata.deletion_grace_period_seconds = m.at("deletionGracePeriodSeconds").i64();
  }
  if (!in.has("spec")) in.fail("spec: Required value");
  In s = in.at("spec");
  s.expectObject();
  if (s.has("initContainers"))
    s.at("initContainers").each([&](const In& e) {
      p.spec.init_containers.push_back(decodeContainer(e));
    });
  if (s.has("containers"))
    s.at("containers").each([&](const In& e) { p.spec.containers.push_back(decodeContainer(e)); });
  if (s.has("ephemeralContainers"))
    s.at("ephemeralContainers").each([&](const In& e) {
      p.spec.ephemeral_containers.push_back(decodeContainer(e));
    });
  if (s.has("volumes"))
    s.at("volumes").each([&](const In& e) { p.spec.volumes.push_back(decodeVolume(e)); });
  s.str("restartPolicy", p.spec.restart_policy);
  if (s.has("terminationGracePeriodSeconds"))
    p.spec.termination_grace_period_seconds = s.at("terminationGracePeriodSeconds").i64();
  if (s.has("activeDeadlineSeconds"))
    p.spec.active_deadline_seconds = s.at("activeDeadlineSeconds").i64();
  s.str("dnsPolicy", p.spec.dns_policy);
  if (s.has("dnsConfig")) {
    In d = s.at("dnsConfig");
    PodDnsConfig dc;
    if (d.has("nameservers")) dc.nameservers = d.at("nameservers").strings();
    if (d.has("searches")) dc.searches = d.at("searches").strings();
    if (d.has("options")) {
      d.at("options").each([&](const In& e) {
        PodDnsConfigOption o;
        e.str("name", o.name);
        if (e.has("value")) o.value = e.at("value").str();
        dc.options.push_back(o);
      });
    }
    p.spec.dns_config = dc;
  }
  s.str("nodeName", p.spec.node_name);
  s.str("serviceAccountName", p.spec.service_account_name);
  s.b("hostNetwork", p.spec.host_network);
  s.b("hostPID", p.spec.host_pid);
  s.b("hostIPC", p.spec.host_ipc);
  s.str("hostname", p.spec.hostname);
  s.str("subdomain", p.spec.subdomain);
  if (s.has("hostAliases")) {
    s.at("hostAliases").each([&](const In& e) {
      HostAlias a;
      e.str("ip", a.ip);
      if (e.has("hostnames")) a.hostnames = e.at("hostnames").strings();
      p.spec.host_aliases.push_back(a);
    });
  }
  if (s.has("securityContext")) {
    In x = s.at("securityContext");
    x.expectObject();
    PodSecurityContext sc;
    sc.seccomp_profile = decodeSeccomp(x);
    if (x.has("runAsUser")) sc.run_as_user = x.at("runAsUser").i64();
    if (x.has("runAsGroup")) sc.run_as_group = x.at("runAsGroup").i64();
    if (x.has("runAsNonRoot")) sc.run_as_non_root = x.at("runAsNonRoot").boolean();
    if (x.has("fsGroup")) sc.fs_group = x.at("fsGroup").i64();
    if (x.has("supplementalGroups"))
      x.at("supplementalGroups").each([&](const In& e) {
        sc.supplemental_groups.push_back(e.i64());
      });
    if (x.has("sysctls")) {
      x.at("sysctls").each([&](const In& e) {
        std::string n, v;
        e.str("name", n);
        e.str("value", v);
        sc.sysctls.emplace_back(n, v);
      });
    }
    p.spec.security_context = sc;
  }
  if (s.has("enableServiceLinks"))
    p.spec.enable_service_links = s.at("enableServiceLinks").boolean();
  if (s.has("priority")) p.spec.priority = s.at("priority").i32();
  s.str("priorityClassName", p.spec.priority_class_name);
  s.str("runtimeClassName", p.spec.runtime_class_name);
  if (s.has("nodeSelector")) p.spec.node_selector = s.at("nodeSelector").stringMap();
  if (s.has("affinity")) {
    In a = s.at("affinity");
    a.expectObject();
    if (a.has("nodeAffinity")) {
      In na = a.at("nodeAffinity");
      na.expectObject();
      if (na.has("requiredDuringSchedulingIgnoredDuringExecution")) {
        In req = na.at("requiredDuringSchedulingIgnoredDuringExecution");
        req.expectObject();
        auto requirements = [](const In& list) {
          std::vector<NodeSelectorRequirement> out;
          list.each([&](const In& e) {
            NodeSelectorRequirement r;
            e.str("key", r.key);
            e.str("operator", r.op);
            if (e.has("values")) r.values = e.at("values").strings();
            out.push_back(std::move(r));
          });
          return out;
        };
        std::vector<NodeSelectorTerm> terms;
        if (req.has("nodeSelectorTerms"))
          req.at("nodeSelectorTerms").each([&](const In& t) {
            NodeSelectorTerm term;
            if (t.has("matchExpressions"))
              term.match_expressions = requirements(t.at("matchExpressions"));
            if (t.has("matchFields")) term.match_fields = requirements(t.at("matchFields"));
            terms.push_back(std::move(term));
          });
        p.spec.required_node_affinity = std::move(terms);
      }
    }
  }
  if (s.has("tolerations"))
    s.at("tolerations").each([&](const In& e) {
      Toleration t;
      e.str("key", t.key);
      e.str("operator", t.op);
      e.str("value", t.value);
      e.str("effect", t.effect);
      if (e.has("tolerationSeconds")) t.toleration_seconds = e.at("tolerationSeconds").i64();
      p.spec.tolerations.push_back(std::move(t));
    });
  if (s.has("imagePullSecrets"))
    s.at("imagePullSecrets").each([&](const In& e) {
      std::string name;
      e.str("name", name);
      if (!name.empty()) p.spec.image_pull_secrets.push_back(std::move(name));
    });
  if (s.has("readinessGates"))
    s.at("readinessGates").each([&](const In& e) {
      std::string type;
      e.str("conditionType", type);
      p.spec.readiness_gates.push_back(std::move(type));
    });
  if (s.has("shareProcessNamespace"))
    p.spec.share_process_namespace = s.at("shareProcessNamespace").boolean();
  if (s.has("setHostnameAsFQDN")) p.spec.set_hostname_as_fqdn = s.at("setHostnameAsFQDN").boolean();
  if (s.has("os")) {
    In os = s.at("os");
    os.expectObject();
    os.str("name", p.spec.os_name);
  }
  if (in.has("status")) p.status = decodeStatus(in.at("status"));
  return p;
}

// ---- encoding ------------------------------------------------------------------------------
json encodeState(const ContainerState& s) {
  json j = json::object();
  if (s.waiting) {
    json w = json::object();
    if (!s.waiting->reason.empty()) w["reason"] = s.waiting->reason;
    if (!s.waiting->message.empty()) w["message"] = s.waiting->message;
    j["waiting"] = w;
  } else if (s.running) {
    json r = json::object();
    if (s.running->started_at) r["startedAt"] = formatTime(*s.running->started_at);
    j["running"] = r;
  } else if (s.terminated) {
    const auto& t = *s.terminated;
    json x = {{"exitCode", t.exit_code}};
    if (t.signal) x["signal"] = t.signal;
    if (!t.reason.empty()) x["reason"] = t.reason;
    if (!t.message.empty()) x["message"] = t.message;
    x["startedAt"] = t.started_at ? json(formatTime(*t.started_at)) : json(nullptr);
    x["finishedAt"] = t.finished_at ? json(formatTime(*t.finished_at)) : json(nullptr);
    if (!t.container_id.empty()) x["containerID"] = t.container_id;
    j["terminated"] = x;
  }
  return j;
}

json encodeContainerStatus(const ContainerStatus& c) {
  json j = {{"name", c.name},
            {"state", encodeState(c.state)},
            {"lastState", encodeState(c.last_state)},
            {"ready", c.ready},
            {"restartCount", c.restart_count},
            {"image", c.image},
            {"imageID", c.image_id}};
  if (!c.container_id.empty()) j["containerID"] = c.container_id;
  if (c.started) j["started"] = *c.started;
  return j;
}

json encodeStatusJson(const PodStatus& s) {
  json j = {{"phase", s.phase}};
  json conds = json::array();
  for (const auto& c : s.conditions) {
    json cj = {{"type", c.type}, {"status", c.status}};
    cj["lastProbeTime"] = c.last_probe_time ? json(formatTime(*c.last_probe_time)) : json(nullptr);
    if (c.last_transition_time) cj["lastTransitionTime"] = formatTime(*c.last_transition_time);
    if (!c.reason.empty()) cj["reason"] = c.reason;
    if (!c.message.empty()) cj["message"] = c.message;
    conds.push_back(cj);
  }
  if (!conds.empty()) j["conditions"] = conds;
  if (!s.message.empty()) j["message"] = s.message;
  if (!s.reason.empty()) j["reason"] = s.reason;
  if (!s.host_ip.empty()) j["hostIP"] = s.host_ip;
  if (!s.host_ips.empty()) {
    j["hostIPs"] = json::array();
    for (const auto& ip : s.host_ips) j["hostIPs"].push_back({{"ip", ip}});
  }
  if (!s.pod_ip.empty()) j["podIP"] = s.pod_ip;
  if (!s.pod_ips.empty()) {
    j["podIPs"] = json::array();
    for (const auto& ip : s.pod_ips) j["podIPs"].push_back({{"ip", ip}});
  }
  if (s.start_time) j["startTime"] = formatTime(*s.start_time);
  if (!s.init_container_statuses.empty()) {
    j["initContainerStatuses"] = json::array();
    for (const auto& c : s.init_container_statuses)
      j["initContainerStatuses"].push_back(encodeContainerStatus(c));
  }
  if (!s.container_statuses.empty()) {
    j["containerStatuses"] = json::array();
    for (const auto& c : s.container_statuses)
      j["containerStatuses"].push_back(encodeContainerStatus(c));
  }
  if (!s.ephemeral_container_statuses.empty()) {
    j["ephemeralContainerStatuses"] = json::array();
    for (const auto& c : s.ephemeral_container_statuses)
      j["ephemeralContainerStatuses"].push_back(encodeContainerStatus(c));
  }
  if (!s.qos_class.empty()) j["qosClass"] = s.qos_class;
  return j;
}

json encodeContainer(const Container& c) {
  json j = {{"name", c.name}, {"image", c.image}};
  if (!c.command.empty()) j["command"] = c.command;
  if (!c.args.empty()) j["args"] = c.args;
  if (!c.working_dir.empty()) j["workingDir"] = c.working_dir;
  if (!c.ports.empty()) {
    j["ports"] = json::array();
    for (const auto& p : c.ports) {
      json pj = {{"containerPort", p.container_port}, {"protocol", p.protocol}};
      if (!p.name.empty()) pj["name"] = p.name;
      if (p.host_port) pj["hostPort"] = p.host_port;
      if (!p.host_ip.empty()) pj["hostIP"] = p.host_ip;
      j["ports"].push_back(pj);
    }
  }
  if (!c.env.empty()) {
    j["env"] = json::array();
    for (const auto& e : c.env) {
      json ej = {{"name", e.name}};
      switch (e.source) {
        case EnvVar::Source::Value:
          ej["value"] = e.value;
          break;
        case EnvVar::Source::FieldRef:
          ej["valueFrom"] = {{"fieldRef", {{"fieldPath", e.field_path}}}};
          break;
        case EnvVar::Source::ResourceFieldRef: {
          json r = {{"resource", e.field_path}};
          if (!e.container_name.empty()) r["containerName"] = e.container_name;
          if (!e.divisor.empty()) r["divisor"] = e.divisor;
          ej["valueFrom"] = {{"resourceFieldRef", r}};
          break;
        }
        case EnvVar::Source::ConfigMapKeyRef:
        case EnvVar::Source::SecretKeyRef: {
          json r = {{"name", e.ref_name}, {"key", e.ref_key}};
          if (e.optional) r["optional"] = true;
          ej["valueFrom"] = {
              {e.source == EnvVar::Source::ConfigMapKeyRef ? "configMapKeyRef" : "secretKeyRef",
               r}};
          break;
        }
      }
      j["env"].push_back(ej);
    }
  }
  if (!c.volume_mounts.empty()) {
    j["volumeMounts"] = json::array();
    for (const auto& m : c.volume_mounts) {
      json mj = {{"name", m.name}, {"mountPath", m.mount_path}};
      if (m.read_only) mj["readOnly"] = true;
      if (!m.sub_path.empty()) mj["subPath"] = m.sub_path;
      if (!m.mount_propagation.empty()) mj["mountPropagation"] = m.mount_propagation;
      j["volumeMounts"].push_back(mj);
    }
  }
  j["resources"] = json::object();
  if (!c.resources.limits.empty()) j["resources"]["limits"] = c.resources.limits;
  if (!c.resources.requests.empty()) j["resources"]["requests"] = c.resources.requests;
  j["terminationMessagePath"] = c.termination_message_path;
  j["terminationMessagePolicy"] = c.termination_message_policy;
  j["imagePullPolicy"] = c.image_pull_policy;
  if (c.restart_policy) j["restartPolicy"] = *c.restart_policy;
  return j;
}

json encodePodJson(const Pod& p) {
  json meta = {
      {"name", p.metadata.name}, {"namespace", p.metadata.namespace_}, {"uid", p.metadata.uid}};
  if (!p.metadata.labels.empty()) meta["labels"] = p.metadata.labels;
  if (!p.metadata.annotations.empty()) meta["annotations"] = p.metadata.annotations;
  meta["creationTimestamp"] = p.metadata.creation_timestamp
                                  ? json(formatTime(*p.metadata.creation_timestamp))
                                  : json(nullptr);
  json spec = {{"restartPolicy", p.spec.restart_policy}, {"dnsPolicy", p.spec.dns_policy}};
  if (p.spec.termination_grace_period_seconds)
    spec["terminationGracePeriodSeconds"] = *p.spec.termination_grace_period_seconds;
  if (!p.spec.node_name.empty()) spec["nodeName"] = p.spec.node_name;
  if (p.spec.host_network) spec["hostNetwork"] = true;
  spec["containers"] = json::array();
  for (const auto& c : p.spec.containers) spec["containers"].push_back(encodeContainer(c));
  if (!p.spec.init_containers.empty()) {
    spec["initContainers"] = json::array();
    for (const auto& c : p.spec.init_containers)
      spec["initContainers"].push_back(encodeContainer(c));
  }
  if (!p.spec.ephemeral_containers.empty()) {
    spec["ephemeralContainers"] = json::array();
    for (const auto& c : p.spec.ephemeral_containers) {
      json e = encodeContainer(c);
      if (!c.target_container_name.empty()) e["targetContainerName"] = c.target_container_name;
      spec["ephemeralContainers"].push_back(std::move(e));
    }
  }
  if (!p.spec.volumes.empty()) {
    spec["volumes"] = json::array();
    for (const auto& v : p.spec.volumes) {
      json vj = {{"name", v.name}};
      switch (v.kind) {
        case Volume::Kind::EmptyDir: {
          json e = json::object();
          if (!v.medium.empty()) e["medium"] = v.medium;
          if (!v.size_limit.empty()) e["sizeLimit"] = v.size_limit;
          vj["emptyDir"] = e;
          break;
        }
        case Volume::Kind::HostPath:
          vj["hostPath"] = {{"path", v.path}, {"type", v.host_path_type}};
          break;
        case Volume::Kind::ConfigMap:
          vj["configMap"] = {{"name", v.ref_name}};
          break;
        case Volume::Kind::Secret:
          vj["secret"] = {{"secretName", v.ref_name}};
          break;
        case Volume::Kind::DownwardAPI:
          vj["downwardAPI"] = json::object();
          break;
        case Volume::Kind::Projected:
          vj["projected"] = json::object();
          break;
        case Volume::Kind::Other:
          vj[v.other_kind] = json::object();
          break;
      }
      spec["volumes"].push_back(vj);
    }
  }
  return {{"kind", "Pod"},
          {"apiVersion", "v1"},
          {"metadata", meta},
          {"spec", spec},
          {"status", encodeStatusJson(p.status)}};
}

}  // namespace

Result<Pod> decodePod(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return fail(ErrorCode::InvalidArgument, "invalid JSON");
  try {
    return decodePodJson(In(j, ""));
  } catch (const DecodeError& e) {
    return fail(ErrorCode::InvalidArgument, (e.path.empty() ? "" : e.path + ": ") + e.what);
  } catch (const json::exception& e) {
    return fail(ErrorCode::InvalidArgument, e.what());
  }
}

std::string encodePod(const Pod& pod) { return encodePodJson(pod).dump(); }
std::string encodePodStatus(const PodStatus& status) { return encodeStatusJson(status).dump(); }
std::string encodePodList(const std::vector<Pod>& pods) {
  json items = json::array();
  for (const auto& p : pods) items.push_back(encodePodJson(p));
  return json{
      {"kind", "PodList"}, {"apiVersion", "v1"}, {"metadata", json::object()}, {"items", items}}
      .dump();
}

std::string formatTime(SysTime t) {
  const std::time_t secs =
      std::chrono::system_clock::to_time_t(std::chrono::time_point_cast<std::chrono::seconds>(t));
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Result<SysTime> parseTime(std::string_view s) {
  std::tm tm{};
  const std::string str(s);
  const char* end = strptime(str.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!end) return fail(ErrorCode::InvalidArgument, "invalid RFC 3339 time \"" + str + "\"");
  int64_t offset = 0;
  std::string_view rest(end);
  if (!rest.empty() && rest[0] == '.') {  // fractional seconds: ignored (second precision)
    size_t i = 1;
    while (i < rest.size() && rest[i] >= '0' && rest[i] <= '9') ++i;
    rest.remove_prefix(i);
  }
  if (rest == "Z" || rest == "z") {
  } else if (rest.size() == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':') {
    const int h = std::stoi(std::string(rest.substr(1, 2)));
    const int m = std::stoi(std::string(rest.substr(4, 2)));
    offset = (rest[0] == '+' ? 1 : -1) * (h * 3600 + m * 60);
  } else {
    return fail(ErrorCode::InvalidArgument, "invalid RFC 3339 time \"" + str + "\"");
  }
  return std::chrono::system_clock::from_time_t(timegm(&tm) - offset);
}

}  // namespace nodelet::api
