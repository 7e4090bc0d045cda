#include "tests/fakes/fake_apiserver.h"

#include <httplib.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <fstream>
#include <regex>

#include "agent/core/api_json.h"
#include "agent/core/base64.h"
#include "agent/kube/strategic_patch.h"
#include "tests/common/test_pki.h"

namespace nodelet::testing {
namespace {

using nlohmann::json;

constexpr size_t kMaxHistory = 20000;

struct ResourceInfo {
  const char* kind;
  const char* api_version;
  const char* qualified;  // for messages: pods, leases.coordination.k8s.io
  const char* group;
  bool namespaced;
};

const ResourceInfo* info(const std::string& resource) {
  static const std::map<std::string, ResourceInfo> m = {
      {"pods", {"Pod", "v1", "pods", "", true}},
      {"nodes", {"Node", "v1", "nodes", "", false}},
      {"events", {"Event", "v1", "events", "", true}},
      {"configmaps", {"ConfigMap", "v1", "configmaps", "", true}},
      {"secrets", {"Secret", "v1", "secrets", "", true}},
      {"services", {"Service", "v1", "services", "", true}},
      {"leases",
       {"Lease", "coordination.k8s.io/v1", "leases.coordination.k8s.io", "coordination.k8s.io",
        true}},
      {"runtimeclasses",
       {"RuntimeClass", "node.k8s.io/v1", "runtimeclasses.node.k8s.io", "node.k8s.io", false}},
      {"certificatesigningrequests",
       {"CertificateSigningRequest", "certificates.k8s.io/v1",
        "certificatesigningrequests.certificates.k8s.io", "certificates.k8s.io", false}},
  };
  auto it = m.find(resource);
  return it == m.end() ? nullptr : &it->second;
}

json status(int code, const std::string& reason, const std::string& message,
            json details = nullptr) {
  json s = {{"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", json::object()},
            {"status", "Failure"}, {"message", message}, {"reason", reason}};
  if (!details.is_null()) s["details"] = std::move(details);
  s["code"] = code;
  return s;
}

json notFound(const std::string& resource, const std::string& name) {
  const auto* ri = info(resource);
  json d = {{"name", name}, {"kind", resource}};
  if (ri && *ri->group) d["group"] = ri->group;
  return status(404, "NotFound",
                std::string(ri ? ri->qualified : resource.c_str()) + " \"" + name + "\" not found",
                d);
}

json conflict(const std::string& resource, const std::string& name) {
  const auto* ri = info(resource);
  json d = {{"name", name}, {"kind", resource}};
  if (ri && *ri->group) d["group"] = ri->group;
  return status(409, "Conflict",
                std::string("Operation cannot be fulfilled on ") +
                    (ri ? ri->qualified : resource.c_str()) + " \"" + name +
                    "\": the object has been modified; please apply your changes to the latest "
                    "version and try again",
                d);
}

// fieldSelector "a=b,c!=d" -> requirements; nullopt with `bad` set for an unsupported field.
struct Requirement {
  std::string field, value;
  bool equal;
};

std::optional<std::vector<Requirement>> parseSelector(const std::string& resource,
                                                      const std::string& sel, std::string* bad) {
  static const std::map<std::string, std::set<std::string>> fields = {
      {"pods",
       {"metadata.name", "metadata.namespace", "spec.nodeName", "spec.restartPolicy",
        "spec.schedulerName", "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
        "status.podIP", "status.podIPs", "status.nominatedNodeName"}},
      {"nodes", {"metadata.name", "spec.unschedulable"}},
  };
  std::vector<Requirement> out;
  if (sel.empty()) return out;
  size_t start = 0;
  while (start <= sel.size()) {
    size_t end = sel.find(',', start);
    if (end == std::string::npos) end = sel.size();
    std::string term = sel.substr(start, end - start);
    Requirement r;
    size_t op = term.find("!=");
    if (op != std::string::npos) {
      r = {term.substr(0, op), term.substr(op + 2), false};
    } else if ((op = term.find("==")) != std::string::npos) {
      r = {term.substr(0, op), term.substr(op + 2), true};
    } else if ((op = term.find('=')) != std::string::npos) {
      r = {term.substr(0, op), term.substr(op + 1), true};
    } else {
      *bad = "invalid selector: '" + sel + "'; can't understand '" + term + "'";
      return std::nullopt;
    }
    auto f = fields.find(resource);
    const bool generic = r.field == "metadata.name" || r.field == "metadata.namespace";
    if (!generic && (f == fields.end() || !f->second.contains(r.field))) {
      *bad = "field label not supported: " + r.field;
      return std::nullopt;
    }
    out.push_back(r);
    start = end + 1;
  }
  return out;
}

std::string fieldValue(const json& obj, const std::string& field) {
  const json* cur = &obj;
  size_t start = 0;
  while (start < field.size()) {
    size_t dot = field.find('.', start);
    std::string part =
        field.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!cur->is_object() || !cur->contains(part)) return "";
    cur = &(*cur)[part];
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  if (cur->is_string()) return cur->get<std::string>();
  if (cur->is_boolean()) return cur->get<bool>() ? "true" : "false";
  return "";
}

bool matches(const json& obj, const std::string& ns, const std::vector<Requirement>& sel) {
  if (!ns.empty() && fieldValue(obj, "metadata.namespace") != ns) return false;
  for (const auto& r : sel)
    if ((fieldValue(obj, r.field) == r.value) != r.equal) return false;
  return true;
}

std::string qosClass(const json& pod) {
  bool any = false, guaranteed = true;
  for (const char* list : {"containers", "initContainers"}) {
    for (const auto& c : pod["spec"].value(list, json::array())) {
      json res = c.value("resources", json::object());
      json lim = res.value("limits", json::object()), req = res.value("requests", json::object());
      if (!lim.empty() || !req.empty()) any = true;
      for (const char* r : {"cpu", "memory"}) {
        if (!lim.contains(r) || (req.contains(r) && req[r] != lim[r])) guaranteed = false;
      }
    }
  }
  if (!any) return "BestEffort";
  return guaranteed ? "Guaranteed" : "Burstable";
}

std::string query(const httplib::Request& req, const std::string& k) {
  return req.has_param(k.c_str()) ? req.get_param_value(k.c_str()) : "";
}

std::string age(const json& obj, SysTime now) {
  auto t = api::parseTime(fieldValue(obj, "metadata.creationTimestamp"));
  if (!t) return "<unknown>";
  auto s = std::chrono::duration_cast<std::chrono::seconds>(now - *t).count();
  if (s < 120) return std::to_string(std::max<int64_t>(0, s)) + "s";
  return std::to_string(s / 60) + "m";
}

// Server-side printing (meta.k8s.io/v1 Table) for kubectl's get.
json table(const std::string& resource, const std::vector<json>& items, SysTime now,
           const std::string& rv) {
  auto col = [](const char* name, const char* type, int priority) {
    return json{{"name", name},
                {"type", type},
                {"format", name == std::string("Name") ? "name" : ""},
                {"description", ""},
                {"priority", priority}};
  };
  json t = {
      {"kind", "Table"}, {"apiVersion", "meta.k8s.io/v1"}, {"metadata", {{"resourceVersion", rv}}}};
  json rows = json::array();
  if (resource == "nodes") {
    t["columnDefinitions"] = {
        col("Name", "string", 0),           col("Status", "string", 0),
        col("Roles", "string", 0),          col("Age", "string", 0),
        col("Version", "string", 0),        col("Internal-IP", "string", 1),
        col("External-IP", "string", 1),    col("OS-Image", "string", 1),
        col("Kernel-Version", "string", 1), col("Container-Runtime", "string", 1)};
    for (const auto& n : items) {
      std::string ready = "Unknown", internal = "<none>";
      for (const auto& c : n["status"].value("conditions", json::array()))
        if (c.value("type", "") == "Ready")
          ready = c.value("status", "") == "True" ? "Ready" : "NotReady";
      for (const auto& a : n["status"].value("addresses", json::array()))
        if (a.value("type", "") == "InternalIP") internal = a.value("address", "");
      json ni = n["status"].value("nodeInfo", json::object());
      rows.push_back({{"cells",
                       {n["metadata"]["name"], ready, "<none>", age(n, now),
                        ni.value("kubeletVersion", ""), internal, "<none>", ni.value("osImage", ""),
                        ni.value("kernelVersion", ""), ni.value("containerRuntimeVersion", "")}},
                      {"object",
                       {{"kind", "PartialObjectMetadata"},
                        {"apiVersion", "meta.k8s.io/v1"},
                        {"metadata", n["metadata"]}}}});
    }
  } else {
    t["columnDefinitions"] = {col("Name", "string", 0),
                              col("Ready", "string", 0),
                              col("Status", "string", 0),
                              col("Restarts", "string", 0),
                              col("Age", "string", 0),
                              col("IP", "string", 1),
                              col("Node", "string", 1),
                              col("Nominated Node", "string", 1),
                              col("Readiness Gates", "string", 1)};
    for (const auto& p : items) {
      const json st = p.value("status", json::object());
      int ready = 0, restarts = 0;
      std::string reason = st.value("reason", st.value("phase", "Unknown"));
      for (const auto& c : st.value("containerStatuses", json::array())) {
        ready += c.value("ready", false) ? 1 : 0;
        restarts += c.value("restartCount", 0);
        if (c.contains("state") && c["state"].contains("waiting"))
          reason = c["state"]["waiting"].value("reason", reason);
        else if (c.contains("state") && c["state"].contains("terminated"))
          reason = c["state"]["terminated"].value("reason", reason);
      }
      if (p["metadata"].contains("deletionTimestamp")) reason = "Terminating";
      const size_t total = p["spec"].value("containers", json::array()).size();
      rows.push_back({{"cells",
                       {p["metadata"]["name"], std::to_string(ready) + "/" + std::to_string(total),
                        reason, restarts, age(p, now), st.value("podIP", "<none>"),
                        p["spec"].value("nodeName", "<none>"), "<none>", "<none>"}},
                      {"object",
                       {{"kind", "PartialObjectMetadata"},
                        {"apiVersion", "meta.k8s.io/v1"},
                        {"metadata", p["metadata"]}}}});
    }
  }
  t["rows"] = rows;
  return t;
}

}  // namespace

// ---- the request handler ----------------------------------------------------------------------
class FakeApiServer::Handler {
 public:
  Handler(FakeApiServer& s, const httplib::Request& req, httplib::Response& res)
      : s_(s), req_(req), res_(res) {}

  void handle() {
    user_ = authenticate();
    // Logged as it arrives (its code filled in below): a watch counts as open while its
    // handler runs, and whoever sees it open must find its request in the log.
    size_t logged = 0;
    uint64_t generation = 0;
    {
      std::lock_guard g(s_.mu_);
      std::string raw_query;
      for (const auto& [k, v] : req_.params)
        raw_query += (raw_query.empty() ? "" : "&") + k + "=" + v;
      logged = s_.requests_.size();
      generation = s_.requests_generation_;
      s_.requests_.push_back({req_.method, req_.path, raw_query,
                              req_.get_header_value("Content-Type"), req_.body, user_,
                              req_.get_header_value("User-Agent"), 0, s_.clock_.monotonicNow()});
    }
    if (user_.empty()) {
      reply(401, status(401, "Unauthorized", "Unauthorized"));
    } else if (!injectedFault()) {
      dispatch();
    }
    std::lock_guard g(s_.mu_);
    if (generation == s_.requests_generation_ && logged < s_.requests_.size())
      s_.requests_[logged].code = res_.status;
  }

 private:
  std::string authenticate() {
    const std::string auth = req_.get_header_value("Authorization");
    if (auth.rfind("Bearer ", 0) == 0) {
      std::lock_guard g(s_.mu_);
      auto it = s_.tokens_.find(auth.substr(7));
      return it == s_.tokens_.end() ? "" : it->second;
    }
    if (!req_.ssl) return "";
    X509* cert = SSL_get1_peer_certificate(req_.ssl);
    if (!cert) return "";
    std::string user;
    if (SSL_get_verify_result(req_.ssl) == X509_V_OK) {
      char cn[256] = {0};
      if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn) > 0)
        user = cn;
    }
    X509_free(cert);
    return user;
  }

  bool injectedFault() {
    Duration stall{0};
    std::optional<std::pair<int, int>> fault;
    {
      std::lock_guard g(s_.mu_);
      stall = s_.stall_;
      for (auto it = s_.faults_.begin(); it != s_.faults_.end(); ++it) {
        if ((it->method == "*" || it->method == req_.method) &&
            req_.path.rfind(it->prefix, 0) == 0) {
          fault = {it->code, it->retry_after};
          if (--it->count <= 0) s_.faults_.erase(it);
          break;
        }
      }
    }
    if (stall > Duration::zero()) std::this_thread::sleep_for(stall);  // NOLINT(real-time)
    if (!fault) return false;
    const int code = fault->first;
    const char* reason = code == 429   ? "TooManyRequests"
                         : code == 503 ? "ServiceUnavailable"
                         : code == 504 ? "Timeout"
                                       : "InternalError";
    json body =
        status(code, reason,
               code == 429 ? "Too many requests, please try again later." : "injected fault");
    if (fault->second >= 0) {
      body["details"] = {{"retryAfterSeconds", fault->second}};
      res_.set_header("Retry-After", std::to_string(fault->second));
    }
    reply(code, body);
    return true;
  }

  void reply(int code, const json& body) {
    res_.status = code;
    res_.set_content(body.dump() + "\n", "application/json");
  }

  bool isNode() const { return user_.rfind("system:node:", 0) == 0; }
  std::string nodeName() const { return isNode() ? user_.substr(12) : ""; }

  void dispatch() {
    const std::string& p = req_.path;
    if (req_.method == "GET" && discovery(p)) return;
    static const std::regex core(
        R"(^/api/v1/(?:namespaces/([^/]+)/)?(pods|nodes|events|configmaps|secrets|services)(?:/([^/]+))?(?:/(status))?$)");
    static const std::regex coord(
        R"(^/apis/coordination\.k8s\.io/v1/(?:namespaces/([^/]+)/)?(leases)(?:/([^/]+))?$)");
    static const std::regex node(
        R"(^/apis/node\.k8s\.io/v1/(?:namespaces/([^/]+)/)?(runtimeclasses)(?:/([^/]+))?$)");
    static const std::regex certs(
        R"(^/apis/certificates\.k8s\.io/v1/(?:namespaces/([^/]+)/)?(certificatesigningrequests)(?:/([^/]+))?$)");
    static const std::regex token(R"(^/api/v1/namespaces/([^/]+)/serviceaccounts/([^/]+)/token$)");
    std::smatch m;
    if (req_.method == "POST" && std::regex_match(p, m, token)) return tokenRequest(m[1], m[2]);
    if (req_.method == "POST" && p == "/apis/authentication.k8s.io/v1/tokenreviews")
      return tokenReview();
    if (req_.method == "POST" && p == "/apis/authorization.k8s.io/v1/subjectaccessreviews")
      return accessReview();
    if (!std::regex_match(p, m, core) && !std::regex_match(p, m, coord) &&
        !std::regex_match(p, m, node) && !std::regex_match(p, m, certs)) {
      reply(404, status(404, "NotFound", "the server could not find the requested resource"));
      return;
    }
    ns_ = m[1];
    resource_ = m[2];
    name_ = m[3];
    sub_ = m.size() > 4 ? std::string(m[4]) : "";
    if (info(resource_)->namespaced == false) ns_.clear();
    if (!authorize()) return;
    if (req_.method == "GET" && name_.empty())
      return query(req_, "watch") == "true" || query(req_, "watch") == "1" ? watch() : list();
    if (req_.method == "GET") return get();
    if (req_.method == "POST" && name_.empty()) return create();
    if (req_.method == "PUT" && !name_.empty()) return update();
    if (req_.method == "PATCH" && !name_.empty()) return patch();
    if (req_.method == "DELETE" && !name_.empty()) return del();
    reply(405, status(405, "MethodNotAllowed",
                      "the server does not allow this method on the requested resource"));
  }

  // Whether a pod bound to `node` in `ns` uses ConfigMap/Secret `name`: in a volume, a
  // projected volume, an env key reference, envFrom or (Secrets) imagePullSecrets (the Node
  // authorizer's graph edges).
  bool usedByPodOf(const std::string& node, const std::string& resource, const std::string& ns,
                   const std::string& name) {
    const bool cm = resource == "configmaps";
    auto named = [&](const json& ref, const char* field) {
      return ref.is_object() && ref.value(field, "") == name;
    };
    std::lock_guard g(s_.mu_);
    for (const auto& [k, st] : s_.objects_) {
      if (k.rfind("pods/", 0) != 0) continue;
      const json& pod = st.obj;
      const json spec = pod.value("spec", json::object());
      if (spec.value("nodeName", "") != node ||
          pod.value("metadata", json::object()).value("namespace", "") != ns)
        continue;
      if (!cm)
        for (const auto& s : spec.value("imagePullSecrets", json::array()))
          if (named(s, "name")) return true;
      for (const auto& v : spec.value("volumes", json::array())) {
        if (cm ? named(v.value("configMap", json()), "name")
               : named(v.value("secret", json()), "secretName"))
          return true;
        for (const auto& src : v.value("projected", json::object()).value("sources", json::array()))
          if (named(src.value(cm ? "configMap" : "secret", json()), "name")) return true;
      }
      for (const char* list : {"initContainers", "containers"}) {
        for (const auto& c : spec.value(list, json::array())) {
          for (const auto& e : c.value("env", json::array()))
            if (named(e.value("valueFrom", json::object())
                          .value(cm ? "configMapKeyRef" : "secretKeyRef", json()),
                      "name"))
              return true;
          for (const auto& e : c.value("envFrom", json::array()))
            if (named(e.value(cm ? "configMapRef" : "secretRef", json()), "name")) return true;
        }
      }
    }
    return false;
  }

  // The parts of NodeRestriction and the Node authorizer that nodelet's requests meet, and the
  // RBAC kubeadm gives bootstrap tokens (system:bootstrappers: create and read CSRs, nothing
  // else).
  bool authorize() {
    const bool bootstrapper = user_.rfind("system:bootstrap:", 0) == 0;
    if (bootstrapper || isNode()) {
      const std::string verb =
          req_.method == "POST" ? "create"
          : req_.method == "GET"
              ? (name_.empty() ? (query(req_, "watch").empty() ? "list" : "watch") : "get")
          : req_.method == "PATCH" ? "patch"
          : req_.method == "PUT"   ? "update"
                                   : "delete";
      const bool csr = resource_ == "certificatesigningrequests";
      if ((bootstrapper && !csr) ||
          (csr && verb != "create" && verb != "get" && verb != "list" && verb != "watch")) {
        const std::string group = info(resource_)->group;
        reply(403,
              status(403, "Forbidden",
                     resource_ + (group.empty() ? "" : "." + group) +
                         (name_.empty() ? "" : " \"" + name_ + "\"") + " is forbidden: User \"" +
                         user_ + "\" cannot " + verb + " resource \"" + resource_ +
                         "\" in API group \"" + group + "\" at the cluster scope",
                     {{"name", name_}, {"kind", resource_}}));
        return false;
      }
    }
    if (!isNode()) return true;
    const std::string self = nodeName();
    auto forbid = [&](const std::string& msg) {
      reply(403, status(403, "Forbidden", msg, {{"name", name_}, {"kind", resource_}}));
      return false;
    };
    if (resource_ == "pods" && name_.empty() && req_.method == "GET" && ns_.empty() &&
        query(req_, "fieldSelector").find("spec.nodeName=" + self) == std::string::npos)
      return forbid("pods is forbidden: User \"" + user_ + "\" cannot " +
                    (query(req_, "watch").empty() ? "list" : "watch") +
                    " resource \"pods\" in API group \"\" at the cluster scope: can only "
                    "list/watch pods with spec.nodeName field selector");
    if ((resource_ == "configmaps" || resource_ == "secrets") && req_.method == "GET") {
      // The Node authorizer: a node reads one ConfigMap or Secret at a time (get, or list/watch
      // with fieldSelector metadata.name=<name>), and only one a pod bound to it uses.
      std::string target = name_;
      const bool listing = name_.empty();
      const std::string sel = query(req_, "fieldSelector");
      if (listing && sel.rfind("metadata.name=", 0) == 0 && sel.find(',') == std::string::npos)
        target = sel.substr(14);
      const std::string verb = !listing ? "get" : query(req_, "watch").empty() ? "list" : "watch";
      if (target.empty() || !usedByPodOf(self, resource_, ns_, target))
        return forbid(resource_ + (listing ? "" : " \"" + name_ + "\"") + " is forbidden: User \"" +
                      user_ + "\" cannot " + verb + " resource \"" + resource_ +
                      "\" in API group \"\" in the namespace \"" + ns_ +
                      "\": no relationship found between node '" + self + "' and this object");
    }
    // The Node authorizer lets a node read RuntimeClasses (get, list, watch), nothing more.
    if (resource_ == "runtimeclasses" && req_.method != "GET")
      return forbid("runtimeclasses.node.k8s.io is forbidden: User \"" + user_ + "\" cannot " +
                    (req_.method == "POST" ? "create" : "update") +
                    " resource \"runtimeclasses\" in API group \"node.k8s.io\" at the cluster "
                    "scope");
    if (resource_ == "nodes" && !name_.empty() && name_ != self && req_.method != "GET")
      return forbid("nodes \"" + name_ + "\" is forbidden: node \"" + self +
                    "\" is not allowed to modify node \"" + name_ + "\"");
    if (resource_ == "leases" && ((!name_.empty() && name_ != self) || ns_ != "kube-node-lease"))
      return forbid(
          "leases.coordination.k8s.io \"" + name_ +
          "\" is forbidden: can only access node lease with the same name as the requesting node");
    if (resource_ == "pods" && req_.method == "POST") {
      json pod = json::parse(req_.body, nullptr, false);
      if (!pod.is_object()) return true;  // create() answers 400
      const json md = pod.value("metadata", json::object());
      if (!md.value("annotations", json::object()).contains("kubernetes.io/config.mirror"))
        return forbid("pod does not have \"kubernetes.io/config.mirror\" annotation, node \"" +
                      self + "\" can only create mirror pods");
      if (pod.value("spec", json::object()).value("nodeName", "") != self)
        return forbid("node \"" + self +
                      "\" can only create pods with spec.nodeName set to itself");
      const json owners = md.value("ownerReferences", json::array());
      if (owners.size() != 1 || owners[0].value("kind", "") != "Node" ||
          owners[0].value("name", "") != self || !owners[0].value("controller", false) ||
          owners[0].value("blockOwnerDeletion", false))
        return forbid("node \"" + self +
                      "\" can only create pods with a single owner reference set to itself");
    }
    return true;
  }

  bool discovery(const std::string& p) {
    json body;
    if (p == "/version") {
      body = {{"major", "1"},
              {"minor", "32"},
              {"gitVersion", "v1.32.13-nodelet-fake"},
              {"platform", "linux/amd64"}};
    } else if (p == "/api") {
      body = {{"kind", "APIVersions"},
              {"versions", {"v1"}},
              {"serverAddressByClientCIDRs",
               {{{"clientCIDR", "0.0.0.0/0"},
                 {"serverAddress", "127.0.0.1:" + std::to_string(s_.port_)}}}}};
    } else if (p == "/apis") {
      json groups = json::array();
      for (const char* g : {"certificates.k8s.io", "coordination.k8s.io", "node.k8s.io"}) {
        json v = {{"groupVersion", std::string(g) + "/v1"}, {"version", "v1"}};
        groups.push_back({{"name", g}, {"versions", {v}}, {"preferredVersion", v}});
      }
      body = {{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", groups}};
    } else if (p == "/api/v1" || p == "/apis/coordination.k8s.io/v1" ||
               p == "/apis/node.k8s.io/v1" || p == "/apis/certificates.k8s.io/v1") {
      auto res = [](const char* name, const char* singular, const char* kind, bool namespaced,
                    json shorts) {
        return json{{"name", name},
                    {"singularName", singular},
                    {"namespaced", namespaced},
                    {"kind", kind},
                    {"verbs", {"create", "delete", "get", "list", "patch", "update", "watch"}},
                    {"shortNames", shorts}};
      };
      json list = json::array();
      if (p == "/api/v1") {
        list = {res("pods", "pod", "Pod", true, {"po"}),
                res("nodes", "node", "Node", false, {"no"}),
                res("events", "event", "Event", true, {"ev"}),
                json{{"name", "pods/status"},
                     {"singularName", ""},
                     {"namespaced", true},
                     {"kind", "Pod"},
                     {"verbs", {"get", "patch", "update"}}},
                json{{"name", "nodes/status"},
                     {"singularName", ""},
                     {"namespaced", false},
                     {"kind", "Node"},
                     {"verbs", {"get", "patch", "update"}}}};
      } else if (p == "/apis/node.k8s.io/v1") {
        list = {res("runtimeclasses", "runtimeclass", "RuntimeClass", false, json::array())};
      } else if (p == "/apis/certificates.k8s.io/v1") {
        list = {res("certificatesigningrequests", "certificatesigningrequest",
                    "CertificateSigningRequest", false, {"csr"})};
      } else {
        list = {res("leases", "lease", "Lease", true, json::array())};
      }
      body = {{"kind", "APIResourceList"},
              {"apiVersion", "v1"},
              {"groupVersion", p == "/api/v1" ? "v1" : p.substr(6)},
              {"resources", list}};
    } else {
      return false;
    }
    reply(200, body);
    return true;
  }

  // TokenRequest (authentication.k8s.io/v1) for a service account, bound to a pod; as
  // NodeRestriction has it, a node may only ask for pods bound to it.
  void tokenRequest(const std::string& ns, const std::string& sa) {
    json b = json::parse(req_.body, nullptr, false);
    if (!b.is_object()) return reply(400, status(400, "BadRequest", "invalid TokenRequest"));
    const json spec = b.value("spec", json::object());
    const json ref = spec.value("boundObjectRef", json::object());
    const int64_t secs = spec.value("expirationSeconds", int64_t{3600});
    std::lock_guard g(s_.mu_);
    if (isNode()) {
      auto it = s_.objects_.find(s_.key("pods", ns, ref.value("name", "")));
      if (ref.value("kind", "") != "Pod" || it == s_.objects_.end() ||
          it->second.obj["spec"].value("nodeName", "") != nodeName() ||
          it->second.obj["metadata"].value("uid", "") != ref.value("uid", ""))
        return reply(
            403,
            status(403, "Forbidden",
                   "serviceaccounts \"" + sa +
                       "\" is forbidden: node requested token bound to a pod not on this node"));
    }
    ++s_.tokens_issued_;
    b["status"] = {
        {"token", "fake-token." + ns + "." + sa + "." + std::to_string(s_.tokens_issued_)},
        {"expirationTimestamp",
         api::formatTime(s_.clock_.systemNow() + std::chrono::seconds(secs))}};
    b["metadata"] = {{"name", sa}, {"namespace", ns}, {"creationTimestamp", nullptr}};
    reply(201, b);
  }

  // TokenReview: the tokens this server knows (the node's own delegated authentication).
  void tokenReview() {
    json b = json::parse(req_.body, nullptr, false);
    if (!b.is_object() || !b.contains("spec") || !b["spec"].is_object())
      return reply(400, status(400, "BadRequest", "invalid TokenReview"));
    const std::string t = b["spec"].value("token", "");
    std::lock_guard g(s_.mu_);
    auto it = s_.tokens_.find(t);
    if (it == s_.tokens_.end()) {
      b["status"] = {{"user", json::object()}, {"error", "invalid bearer token"}};
    } else {
      b["status"] = {{"authenticated", true},
                     {"user",
                      {{"username", it->second},
                       {"uid", "uid-" + it->second},
                       {"groups", {"system:authenticated"}}}},
                     {"audiences", {"https://kubernetes.default.svc.cluster.local"}}};
    }
    b["metadata"] = {{"creationTimestamp", nullptr}};
    reply(201, b);
  }

  // SubjectAccessReview against the policy tests set with allow().
  void accessReview() {
    json b = json::parse(req_.body, nullptr, false);
    if (!b.is_object() || !b.contains("spec") || !b["spec"].is_object())
      return reply(400, status(400, "BadRequest", "invalid SubjectAccessReview"));
    const json spec = b["spec"];
    const json ra = spec.value("resourceAttributes", json::object());
    const std::string key = spec.value("user", "") + "|" + ra.value("verb", "") + "|" +
                            ra.value("resource", "") + "/" + ra.value("subresource", "");
    std::lock_guard g(s_.mu_);
    ++s_.access_reviews_;
    const bool ok = s_.allowed_.contains(key);
    b["status"] = ok ? json{{"allowed", true}, {"reason", "allowed by the test's policy"}}
                     : json{{"allowed", false}};
    b["metadata"] = {{"creationTimestamp", nullptr}};
    reply(201, b);
  }

  bool wantsTable() const {
    return req_.get_header_value("Accept").find("as=Table") != std::string::npos;
  }

  std::optional<std::vector<Requirement>> selector() {
    std::string bad;
    auto sel = parseSelector(resource_, query(req_, "fieldSelector"), &bad);
    if (!sel) reply(400, status(400, "BadRequest", bad));
    return sel;
  }

  void list() {
    auto sel = selector();
    if (!sel) return;
    const std::string rv = query(req_, "resourceVersion");
    const std::string match = query(req_, "resourceVersionMatch");
    std::lock_guard g(s_.mu_);
    if (match == "Exact" && !rv.empty() && std::stoull(rv) < s_.compacted_rv_) {
      reply(410, status(410, "Expired", "The resourceVersion for the provided list is too old."));
      return;
    }
    std::vector<json> items;
    for (const auto& [k, st] : s_.objects_)
      if (k.rfind(resource_ + "/", 0) == 0 && matches(st.obj, ns_, *sel)) items.push_back(st.obj);
    const std::string cur = std::to_string(s_.rv_);
    if (wantsTable()) {
      reply(200, table(resource_, items, s_.clock_.systemNow(), cur));
      return;
    }
    json out = {{"kind", std::string(info(resource_)->kind) + "List"},
                {"apiVersion", info(resource_)->api_version},
                {"metadata", {{"resourceVersion", cur}}},
                {"items", json::array()}};
    for (auto& i : items) {
      i.erase("kind");
      i.erase("apiVersion");
      out["items"].push_back(std::move(i));
    }
    reply(200, out);
  }

  std::string key() const { return s_.key(resource_, ns_, name_); }

  void get() {
    std::lock_guard g(s_.mu_);
    auto it = s_.objects_.find(key());
    if (it == s_.objects_.end()) return reply(404, notFound(resource_, name_));
    if (wantsTable())
      return reply(
          200, table(resource_, {it->second.obj}, s_.clock_.systemNow(), std::to_string(s_.rv_)));
    reply(200, it->second.obj);
  }

  std::optional<json> body() {
    json b = json::parse(req_.body, nullptr, false);
    if (!b.is_object()) {
      reply(400, status(400, "BadRequest",
                        "the object provided is unrecognized (must be of type " +
                            std::string(info(resource_)->kind) + "): couldn't decode JSON"));
      return std::nullopt;
    }
    return b;
  }

  void create() {
    auto b = body();
    if (!b) return;
    auto& md = (*b)["metadata"];
    if (md.is_object() && md.value("name", "").empty() && !md.value("generateName", "").empty()) {
      // The API server's name generator: the prefix and five of [bcdfghjklmnpqrstvwxz2456789].
      static constexpr char kAlphabet[] = "bcdfghjklmnpqrstvwxz2456789";
      std::string name = md["generateName"];
      std::lock_guard g(s_.mu_);
      for (uint64_t i = 0; i < 5; ++i) name += kAlphabet[(s_.generated_++ * 7 + i * 13) % 27];
      md["name"] = name;
    }
    if (!md.is_object() || md.value("name", "").empty()) {
      reply(422,
            status(422, "Invalid",
                   std::string(info(resource_)->kind) + " \"\" is invalid: metadata.name: Required "
                                                        "value: name or generateName is required"));
      return;
    }
    name_ = md["name"];
    if (info(resource_)->namespaced && md.value("namespace", "").empty()) md["namespace"] = ns_;
    if (resource_ == "certificatesigningrequests" && !csrAdmitted(*b)) return;
    std::lock_guard g(s_.mu_);
    if (s_.objects_.contains(key())) {
      json d = {{"name", name_}, {"kind", resource_}};
      if (*info(resource_)->group) d["group"] = info(resource_)->group;
      reply(
          409,
          status(409, "AlreadyExists",
                 std::string(info(resource_)->qualified) + " \"" + name_ + "\" already exists", d));
      return;
    }
    reply(201, s_.createLocked(resource_, ns_, std::move(*b)));
  }

  // CertificateSigningRequest creation: the request must be a PEM CERTIFICATE REQUEST and a
  // signer named; the server records who asked (spec.username, spec.groups) and drops any
  // status a client sent.
  bool csrAdmitted(json& csr) {
    const std::string invalid =
        "CertificateSigningRequest.certificates.k8s.io \"" + name_ + "\" is invalid: ";
    json& spec = csr["spec"];
    if (!spec.is_object()) spec = json::object();
    const auto pem = base64Decode(spec.value("request", ""));
    if (!pem || pem->find("-----BEGIN CERTIFICATE REQUEST-----") == std::string::npos) {
      reply(422, status(422, "Invalid",
                        invalid + "spec.request: Invalid value: []byte{...}: PEM block type must "
                                  "be CERTIFICATE REQUEST"));
      return false;
    }
    if (spec.value("signerName", "").empty()) {
      reply(422, status(422, "Invalid", invalid + "spec.signerName: Required value"));
      return false;
    }
    spec["username"] = user_;
    spec["groups"] = user_.rfind("system:bootstrap:", 0) == 0
                         ? json{"system:bootstrappers", "system:authenticated"}
                         : json{"system:nodes", "system:authenticated"};
    csr.erase("status");
    return true;
  }

  void update() {
    auto b = body();
    if (!b) return;
    std::lock_guard g(s_.mu_);
    auto it = s_.objects_.find(key());
    if (it == s_.objects_.end()) return reply(404, notFound(resource_, name_));
    const std::string rv = b->value("metadata", json::object()).value("resourceVersion", "");
    if (rv.empty() && resource_ == "leases")
      return reply(422, status(422, "Invalid",
                               "Lease.coordination.k8s.io \"" + name_ +
                                   "\" is invalid: metadata.resourceVersion: Invalid value: 0x0: "
                                   "must be specified for an update"));
    if (!rv.empty() && rv != it->second.obj["metadata"].value("resourceVersion", ""))
      return reply(409, conflict(resource_, name_));
    json next = std::move(*b);
    // Immutable and server-owned metadata stays; a status written to the main resource (or a
    // spec written to /status) is ignored, as the registry strategies do.
    for (const char* k :
         {"uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"})
      if (it->second.obj["metadata"].contains(k))
        next["metadata"][k] = it->second.obj["metadata"][k];
    if (sub_ == "status") {
      json whole = it->second.obj;
      whole["status"] = next.value("status", json::object());
      next = std::move(whole);
    } else if (it->second.obj.contains("status") && resource_ != "leases" &&
               resource_ != "events") {
      next["status"] = it->second.obj["status"];
    }
    it->second.obj = s_.stampLocked(resource_, std::move(next), false);
    s_.recordLocked("MODIFIED", resource_, it->second.obj);
    reply(200, it->second.obj);
  }

  void patch() {
    const std::string ct = req_.get_header_value("Content-Type");
    const bool strategic = ct.rfind("application/strategic-merge-patch+json", 0) == 0;
    const bool merge = ct.rfind("application/merge-patch+json", 0) == 0;
    if (!strategic && !merge)
      return reply(
          415, status(415, "UnsupportedMediaType", "415: Unsupported Media Type", json::object()));
    auto b = body();
    if (!b) return;
    std::lock_guard g(s_.mu_);
    auto it = s_.objects_.find(key());
    if (it == s_.objects_.end()) return reply(404, notFound(resource_, name_));
    const json& cur = it->second.obj;
    const std::string want_uid = b->value("metadata", json::object()).value("uid", "");
    if (!want_uid.empty() && want_uid != cur["metadata"].value("uid", "")) {
      const std::string msg = "Invalid value: \"" + want_uid + "\": field is immutable";
      return reply(422, status(422, "Invalid",
                               std::string(info(resource_)->kind) + " \"" + name_ +
                                   "\" is invalid: metadata.uid: " + msg,
                               {{"name", name_},
                                {"kind", info(resource_)->kind},
                                {"causes",
                                 {{{"reason", "FieldValueInvalid"},
                                   {"message", msg},
                                   {"field", "metadata.uid"}}}}}));
    }
    json next = cur;
    std::string err;
    const auto& schema =
        resource_ == "nodes" ? kube::PatchSchema::node() : kube::PatchSchema::pod();
    if (strategic) {
      if (!kube::applyStrategicMergePatch(next, *b, schema, &err))
        return reply(400, status(400, "BadRequest", err));
    } else {
      kube::applyMergePatch(next, *b);
    }
    if (sub_ == "status") {
      json whole = cur;
      whole["status"] = next.value("status", json::object());
      if (resource_ == "pods") {
        for (const auto& c : whole["status"].value("conditions", json::array())) {
          if (!c.is_object() || c.value("type", "").empty())
            return reply(422, status(422, "Invalid",
                                     "Pod \"" + name_ +
                                         "\" is invalid: status.conditions.type: Required value"));
        }
        if (whole["status"].value("qosClass", "").empty())
          whole["status"]["qosClass"] = qosClass(whole);
      }
      next = std::move(whole);
    } else if (cur.contains("status") && resource_ != "events") {
      next["status"] = cur["status"];
    }
    for (const char* k : {"uid", "creationTimestamp", "name", "namespace"})
      if (cur["metadata"].contains(k)) next["metadata"][k] = cur["metadata"][k];
    if (next == cur) return reply(200, cur);  // a no-op patch does not bump resourceVersion
    it->second.obj = s_.stampLocked(resource_, std::move(next), false);
    s_.recordLocked("MODIFIED", resource_, it->second.obj);
    reply(200, it->second.obj);
  }

  void del() {
    json opts = req_.body.empty() ? json::object() : json::parse(req_.body, nullptr, false);
    if (!opts.is_object()) return reply(400, status(400, "BadRequest", "invalid DeleteOptions"));
    std::lock_guard g(s_.mu_);
    auto it = s_.objects_.find(key());
    if (it == s_.objects_.end()) return reply(404, notFound(resource_, name_));
    json& obj = it->second.obj;
    const std::string pre_uid = opts.value("preconditions", json::object()).value("uid", "");
    if (!pre_uid.empty() && pre_uid != obj["metadata"].value("uid", "")) {
      return reply(409, status(409, "Conflict",
                               "Precondition failed: UID in precondition: " + pre_uid +
                                   ", UID in object meta: " + obj["metadata"].value("uid", ""),
                               {{"name", name_}, {"kind", resource_}}));
    }
    std::optional<int64_t> grace;
    if (opts.contains("gracePeriodSeconds") && opts["gracePeriodSeconds"].is_number_integer())
      grace = opts["gracePeriodSeconds"].get<int64_t>();
    if (resource_ == "pods") {
      if (!grace)
        grace =
            obj["metadata"].value("deletionGracePeriodSeconds",
                                  obj["spec"].value("terminationGracePeriodSeconds", int64_t{30}));
      const bool bound = !obj["spec"].value("nodeName", "").empty();
      const bool terminal = obj["status"].value("phase", "") == "Succeeded" ||
                            obj["status"].value("phase", "") == "Failed";
      if (bound && *grace > 0 && !terminal) {
        const auto cur_grace = obj["metadata"].value("deletionGracePeriodSeconds", int64_t{-1});
        if (cur_grace < 0 || *grace < cur_grace) {
          obj["metadata"]["deletionTimestamp"] =
              api::formatTime(s_.clock_.systemNow() + std::chrono::seconds(*grace));
          obj["metadata"]["deletionGracePeriodSeconds"] = *grace;
          obj = s_.stampLocked(resource_, std::move(obj), false);
          s_.recordLocked("MODIFIED", resource_, obj);
        }
        return reply(200, obj);
      }
    }
    json gone = s_.stampLocked(resource_, obj, false);
    s_.objects_.erase(it);
    s_.recordLocked("DELETED", resource_, gone);
    reply(200, gone);
  }

  void watch() {
    auto sel = selector();
    if (!sel) return;
    struct State {
      std::string resource, ns;
      std::vector<Requirement> sel;
      uint64_t rv{0};
      bool expired{false};
      uint64_t from{0};
      bool bookmarks{false};
      MonoTime deadline, next_bookmark;
      uint64_t generation{0}, garbage{0};
      std::deque<std::string> initial;
      bool done{false};
    };
    auto st = std::make_shared<State>();
    st->resource = resource_;
    st->ns = ns_;
    st->sel = *sel;
    st->bookmarks = query(req_, "allowWatchBookmarks") == "true";
    const std::string rv = query(req_, "resourceVersion");
    const std::string timeout = query(req_, "timeoutSeconds");
    {
      std::lock_guard g(s_.mu_);
      const MonoTime now = s_.clock_.monotonicNow();
      st->deadline = now + std::chrono::seconds(timeout.empty() ? 1800 : std::stoll(timeout));
      st->next_bookmark = now + std::chrono::seconds(1);
      st->generation = s_.watch_generation_;
      st->garbage = s_.garbage_generation_;
      if (rv.empty() || rv == "0") {
        for (const auto& [k, o] : s_.objects_)
          if (k.rfind(resource_ + "/", 0) == 0 && matches(o.obj, ns_, st->sel))
            st->initial.push_back(json{{"type", "ADDED"}, {"object", o.obj}}.dump() + "\n");
        st->rv = s_.rv_;
      } else {
        st->rv = std::stoull(rv);
        if (st->rv < s_.compacted_rv_) {
          st->expired = true;
          st->from = s_.compacted_rv_;
        }
      }
    }
    FakeApiServer& s = s_;
    ++s.open_watches_;
    res_.set_chunked_content_provider("application/json", [&s, st](size_t,
                                                                   httplib::DataSink& sink) {
      std::string out;
      {
        std::unique_lock l(s.mu_);
        for (int spins = 0; out.empty() && spins < 100000; ++spins) {
          if (s.stopping_ || s.watch_generation_ != st->generation) break;
          if (st->expired) {
            out = json{{"type", "ERROR"},
                       {"object", status(410, "Expired",
                                         "too old resource version: " + std::to_string(st->rv) +
                                             " (" + std::to_string(st->from) + ")")}}
                      .dump() +
                  "\n";
            st->done = true;
            break;
          }
          if (s.garbage_generation_ != st->garbage) {
            st->garbage = s.garbage_generation_;
            out = "{\"type\":\"MODIFIED\",\"object\":{not json at all\n";
            break;
          }
          while (!st->initial.empty()) {
            out += st->initial.front();
            st->initial.pop_front();
          }
          for (const auto& e : s.history_) {
            if (e.rv <= st->rv || e.resource != st->resource) continue;
            if (matches(e.obj, st->ns, st->sel))
              out += json{{"type", e.type}, {"object", e.obj}}.dump() + "\n";
          }
          if (!s.history_.empty()) st->rv = std::max(st->rv, s.history_.back().rv);
          if (!out.empty()) break;
          const MonoTime now = s.clock_.monotonicNow();
          if (now >= st->deadline) break;
          if (st->bookmarks && now >= st->next_bookmark) {
            const auto* ri = info(st->resource);
            out = json{{"type", "BOOKMARK"},
                       {"object",
                        {{"kind", ri->kind},
                         {"apiVersion", ri->api_version},
                         {"metadata", {{"resourceVersion", std::to_string(s.rv_)}}}}}}
                      .dump() +
                  "\n";
            st->rv = std::max(st->rv, s.rv_);
            st->next_bookmark = now + std::chrono::seconds(1);
            break;
          }
          s.clock_.waitUntil(
              s.cv_, l, st->bookmarks ? std::min(st->deadline, st->next_bookmark) : st->deadline);
        }
      }
      if (out.empty() || !sink.write(out.data(), out.size())) {
        --s.open_watches_;
        sink.done();
        return out.empty();
      }
      if (st->done) {
        --s.open_watches_;
        sink.done();
      }
      return true;
    });
    res_.status = 200;
  }

  FakeApiServer& s_;
  const httplib::Request& req_;
  httplib::Response& res_;
  std::string user_, ns_, resource_, name_, sub_;
};

// ---- FakeApiServer ------------------------------------------------------------------------
FakeApiServer::FakeApiServer(std::string dir, Clock& clock) : dir_(std::move(dir)), clock_(clock) {
  TestPki pki(dir_);
  if (!pki.ok()) return;
  listen(0);
}

FakeApiServer::~FakeApiServer() { goDown(); }

std::string FakeApiServer::caFile() const { return dir_ + "/ca.crt"; }

bool FakeApiServer::listen(int port) {
  const std::string crt = dir_ + "/server.crt", key = dir_ + "/server.key", ca = dir_ + "/ca.crt";
  auto server = std::make_unique<httplib::SSLServer>([crt, key, ca](SSL_CTX& ctx) {
    bool ok = SSL_CTX_use_certificate_chain_file(&ctx, crt.c_str()) == 1 &&
              SSL_CTX_use_PrivateKey_file(&ctx, key.c_str(), SSL_FILETYPE_PEM) == 1 &&
              SSL_CTX_load_verify_locations(&ctx, ca.c_str(), nullptr) == 1;
    SSL_CTX_set_client_CA_list(&ctx, SSL_load_client_CA_file(ca.c_str()));
    // A client certificate is optional (bearer tokens work too), but verified when given.
    SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER, nullptr);
    // With client certificates, OpenSSL resumes sessions only with a session id context set
    // (Go's TLS server, the real API server's, resumes them).
    static const unsigned char kContext[] = "nodelet-fake-apiserver";
    SSL_CTX_set_session_id_context(&ctx, kContext, sizeof kContext - 1);
    return ok;
  });
  server->new_task_queue = [] { return new httplib::ThreadPool(48); };
  server->set_keep_alive_max_count(1000);
  server->set_keep_alive_timeout(1);  // an outage (goDown) waits for idle connections this long
  auto handler = [this](const httplib::Request& req, httplib::Response& res) {
    Handler(*this, req, res).handle();
  };
  server->Get(".*", handler);
  server->Post(".*", handler);
  server->Put(".*", handler);
  server->Patch(".*", handler);
  server->Delete(".*", handler);
  int bound = port == 0 ? server->bind_to_any_port("127.0.0.1")
                        : (server->bind_to_port("127.0.0.1", port) ? port : -1);
  if (bound <= 0) return false;
  {
    std::lock_guard g(mu_);
    stopping_ = false;
  }
  port_ = bound;
  server_ = std::move(server);
  thread_ = std::jthread([srv = server_.get()] { srv->listen_after_bind(); });
  // Until the accept loop runs, stop() would not stop it (and goDown would wait forever).
  for (int i = 0; i < 2000 && !server_->is_running(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // NOLINT(real-time): a real socket
  return true;
}

void FakeApiServer::goDown() {
  {
    std::lock_guard g(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

bool FakeApiServer::comeBack() {
  if (server_) return true;
  for (int i = 0; i < 50; ++i) {
    if (listen(port_)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // NOLINT(real-time): port reuse
  }
  return false;
}

std::string FakeApiServer::writeNodeKubeconfig(const std::string& path, const std::string& node) {
  TestPki pki(dir_);
  pki.issue("node-" + node, "/CN=system:node:" + node + "/O=system:nodes");
  std::ofstream(path)
      << "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: " << url()
      << "\n    certificate-authority: " << caFile() << "\nusers:\n- name: node\n  user:\n"
      << "    client-certificate: " << pki.path("node-" + node + ".crt")
      << "\n    client-key: " << pki.path("node-" + node + ".key")
      << "\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n"
      << "    user: node\ncurrent-context: fake\n";
  return path;
}

std::string FakeApiServer::writeTokenKubeconfig(const std::string& path, const std::string& token,
                                                const std::string& user) {
  {
    std::lock_guard g(mu_);
    tokens_[token] = user;
  }
  std::ofstream(path)
      << "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: " << url()
      << "\n    certificate-authority: " << caFile()
      << "\nusers:\n- name: u\n  user:\n    token: " << token
      << "\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: u\n"
      << "current-context: fake\n";
  return path;
}

std::string FakeApiServer::key(const std::string& resource, const std::string& ns,
                               const std::string& name) const {
  return resource + "/" + ns + "/" + name;
}

nlohmann::json FakeApiServer::stampLocked(const std::string& resource, nlohmann::json obj,
                                          bool create) {
  const auto* ri = info(resource);
  obj["kind"] = ri->kind;
  obj["apiVersion"] = ri->api_version;
  auto& md = obj["metadata"];
  if (create) {
    char uid[40];
    ++uid_counter_;
    std::snprintf(uid, sizeof uid, "00000000-0000-4000-8000-%012llx",
                  static_cast<unsigned long long>(uid_counter_));
    md["uid"] = uid;
    md["creationTimestamp"] = api::formatTime(clock_.systemNow());
  }
  md["resourceVersion"] = std::to_string(++rv_);
  return obj;
}

void FakeApiServer::recordLocked(const std::string& type, const std::string& resource,
                                 const nlohmann::json& obj) {
  history_.push_back({rv_, type, resource, obj});
  while (history_.size() > kMaxHistory) {
    compacted_rv_ = history_.front().rv;
    history_.pop_front();
  }
  cv_.notify_all();
}

nlohmann::json FakeApiServer::createLocked(const std::string& resource, const std::string& ns,
                                           nlohmann::json obj) {
  auto& md = obj["metadata"];
  const std::string name = md.value("name", "");
  if (info(resource)->namespaced && md.value("namespace", "").empty())
    md["namespace"] = ns.empty() ? "default" : ns;
  if (resource == "pods") {
    md["generation"] = 1;
    auto& spec = obj["spec"];
    if (!spec.contains("restartPolicy")) spec["restartPolicy"] = "Always";
    if (!spec.contains("terminationGracePeriodSeconds")) spec["terminationGracePeriodSeconds"] = 30;
    if (!spec.contains("dnsPolicy")) spec["dnsPolicy"] = "ClusterFirst";
    if (!spec.contains("schedulerName")) spec["schedulerName"] = "default-scheduler";
    if (!spec.contains("enableServiceLinks")) spec["enableServiceLinks"] = true;
    for (const char* list : {"containers", "initContainers"}) {
      if (!spec.contains(list) || !spec[list].is_array()) continue;
      for (auto& c : spec[list]) {  // the API server's container defaults
        if (!c.is_object()) continue;
        const std::string image = c.value("image", "");
        const auto colon = image.rfind(':');
        const bool latest = colon == std::string::npos ||
                            image.find('/', colon) != std::string::npos ||
                            image.substr(colon + 1) == "latest";
        if (!c.contains("imagePullPolicy"))
          c["imagePullPolicy"] = latest ? "Always" : "IfNotPresent";
        if (!c.contains("terminationMessagePath"))
          c["terminationMessagePath"] = "/dev/termination-log";
        if (!c.contains("terminationMessagePolicy")) c["terminationMessagePolicy"] = "File";
        if (!c.contains("resources")) c["resources"] = json::object();
      }
    }
    obj["status"] = {{"phase", "Pending"}, {"qosClass", qosClass(obj)}};
  }
  const std::string final_ns = info(resource)->namespaced ? md.value("namespace", "") : "";
  obj = stampLocked(resource, std::move(obj), true);
  objects_[key(resource, final_ns, name)] = {obj};
  recordLocked("ADDED", resource, obj);
  return obj;
}

nlohmann::json FakeApiServer::create(const std::string& resource, const std::string& ns,
                                     nlohmann::json obj) {
  std::lock_guard g(mu_);
  return createLocked(resource, info(resource)->namespaced ? ns : "", std::move(obj));
}

std::optional<nlohmann::json> FakeApiServer::get(const std::string& resource, const std::string& ns,
                                                 const std::string& name) const {
  std::lock_guard g(mu_);
  auto it = objects_.find(key(resource, info(resource)->namespaced ? ns : "", name));
  if (it == objects_.end()) return std::nullopt;
  return it->second.obj;
}

std::vector<nlohmann::json> FakeApiServer::list(const std::string& resource) const {
  std::lock_guard g(mu_);
  std::vector<nlohmann::json> out;
  for (const auto& [k, o] : objects_)
    if (k.rfind(resource + "/", 0) == 0) out.push_back(o.obj);
  return out;
}

void FakeApiServer::put(const std::string& resource, const std::string& ns, nlohmann::json obj) {
  std::lock_guard g(mu_);
  const std::string k =
      key(resource, info(resource)->namespaced ? ns : "", obj["metadata"].value("name", ""));
  if (info(resource)->namespaced) obj["metadata"]["namespace"] = ns;
  obj = stampLocked(resource, std::move(obj), false);
  objects_[k] = {obj};
  recordLocked("MODIFIED", resource, obj);
}

bool FakeApiServer::issueCsr(const std::string& name, int days) {
  auto csr = get("certificatesigningrequests", "", name);
  if (!csr) return false;
  auto request = base64Decode((*csr)["spec"].value("request", ""));
  if (!request) return false;
  // The approver (kube-controller-manager's csrapproving) first, then the signer: two updates,
  // as a watcher of the CSR sees them.
  (*csr)["status"]["conditions"] = {{{"type", "Approved"},
                                     {"status", "True"},
                                     {"reason", "AutoApproved"},
                                     {"message",
                                      "Auto approving kubelet client certificate after "
                                      "SubjectAccessReview."},
                                     {"lastUpdateTime", api::formatTime(clock_.systemNow())}}};
  put("certificatesigningrequests", "", *csr);
  TestPki pki(dir_);
  const std::string cert = pki.sign(*request, "csr-" + name, days);
  if (cert.empty()) return false;
  (*csr)["status"]["certificate"] = base64Encode(cert);
  put("certificatesigningrequests", "", *csr);
  return true;
}

bool FakeApiServer::denyCsr(const std::string& name, const std::string& message) {
  auto csr = get("certificatesigningrequests", "", name);
  if (!csr) return false;
  (*csr)["status"]["conditions"] = {{{"type", "Denied"},
                                     {"status", "True"},
                                     {"reason", "AdminDenied"},
                                     {"message", message},
                                     {"lastUpdateTime", api::formatTime(clock_.systemNow())}}};
  put("certificatesigningrequests", "", *csr);
  return true;
}

void FakeApiServer::remove(const std::string& resource, const std::string& ns,
                           const std::string& name, std::optional<int64_t> grace) {
  std::lock_guard g(mu_);
  auto it = objects_.find(key(resource, info(resource)->namespaced ? ns : "", name));
  if (it == objects_.end()) return;
  json& obj = it->second.obj;
  if (resource == "pods" && !obj["spec"].value("nodeName", "").empty() && grace.value_or(1) > 0) {
    const int64_t g2 =
        grace.value_or(obj["spec"].value("terminationGracePeriodSeconds", int64_t{30}));
    obj["metadata"]["deletionTimestamp"] =
        api::formatTime(clock_.systemNow() + std::chrono::seconds(g2));
    obj["metadata"]["deletionGracePeriodSeconds"] = g2;
    obj = stampLocked(resource, std::move(obj), false);
    recordLocked("MODIFIED", resource, obj);
    return;
  }
  json gone = stampLocked(resource, obj, false);
  objects_.erase(it);
  recordLocked("DELETED", resource, gone);
}

std::string FakeApiServer::resourceVersion() const {
  std::lock_guard g(mu_);
  return std::to_string(rv_);
}

std::vector<FakeApiServer::Recorded> FakeApiServer::requests() const {
  std::lock_guard g(mu_);
  return requests_;
}

void FakeApiServer::clearRequests() {
  std::lock_guard g(mu_);
  requests_.clear();
  ++requests_generation_;  // requests in flight no longer have their entry
}

void FakeApiServer::failNext(const std::string& method, const std::string& prefix, int code,
                             int count, int retry_after) {
  std::lock_guard g(mu_);
  faults_.push_back({method, prefix, code, count, retry_after});
}

void FakeApiServer::stall(Duration d) {
  std::lock_guard g(mu_);
  stall_ = d;
}

void FakeApiServer::dropWatches() {
  {
    std::lock_guard g(mu_);
    ++watch_generation_;
  }
  cv_.notify_all();
}

void FakeApiServer::garbageOnWatches() {
  {
    std::lock_guard g(mu_);
    ++garbage_generation_;
  }
  cv_.notify_all();
}

void FakeApiServer::compact() {
  std::lock_guard g(mu_);
  compacted_rv_ = rv_;
  history_.clear();
}

}  // namespace nodelet::testing
