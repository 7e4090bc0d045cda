#include "agent/flags.h"

#include <algorithm>
#include <charconv>

namespace nodelet::agent {

std::vector<std::string> splitList(const std::string& v, const char* seps, bool keep_empty) {
  std::vector<std::string> out;
  for (size_t start = 0; start <= v.size();) {
    const size_t sep = v.find_first_of(seps, start);
    std::string item = v.substr(start, sep == std::string::npos ? std::string::npos : sep - start);
    if (keep_empty || !item.empty()) out.push_back(std::move(item));
    if (sep == std::string::npos) break;
    start = sep + 1;
  }
  return out;
}

namespace {

enum class Kind { String, Int, Bool, Duration, List };
struct Flag {
  const char* name;
  Kind kind;
  const char* help;
};

const std::vector<Flag>& flagTable() {
  static const std::vector<Flag> t = {
      {"config", Kind::String, "KubeletConfiguration file (YAML or JSON)"},
      {"pod-manifest-path", Kind::String, "directory or file of static pod manifests"},
      {"container-runtime-endpoint", Kind::String, "CRI runtime endpoint (unix:///path)"},
      {"image-service-endpoint", Kind::String, "CRI image endpoint (default: runtime endpoint)"},
      {"hostname-override", Kind::String, "node name to use instead of the host name"},
      {"root-dir", Kind::String, "state directory (default /var/lib/nodelet)"},
      {"kubeconfig", Kind::String, "kubeconfig of the API server (cluster mode)"},
      {"bootstrap-kubeconfig", Kind::String,
       "kubeconfig with bootstrap credentials: a client certificate is requested (CSR) and "
       "--kubeconfig written when it holds no valid one"},
      {"cert-dir", Kind::String, "where certificates and keys go (default <root-dir>/pki)"},
      {"node-ip", Kind::String, "IP address of the node"},
      {"v", Kind::Int, "log verbosity (0-10)"},
      {"max-pods", Kind::Int, "maximum number of pods"},
      {"pod-cidr", Kind::String, "pod CIDR in standalone mode"},
      {"cluster-dns", Kind::List, "comma-separated DNS server IPs for pods"},
      {"cluster-domain", Kind::String, "cluster DNS domain"},
      {"cgroup-driver", Kind::String, "cgroupfs"},
      {"cgroup-root", Kind::String, "root cgroup for pods"},
      {"runtime-request-timeout", Kind::Duration, "timeout of CRI requests (default 2m)"},
      {"resolv-conf", Kind::String, "resolver file pods with dnsPolicy Default get"},
      {"fail-swap-on", Kind::Bool, "refuse to start when swap is on (default true)"},
      {"address", Kind::String, "node server address"},
      {"port", Kind::Int, "node server port"},
      {"healthz-bind-address", Kind::String, "healthz address (default 127.0.0.1)"},
      {"healthz-port", Kind::Int, "healthz port (default 10248, 0 disables)"},
      {"read-only-port", Kind::Int, "unauthenticated read-only port (default 0: off)"},
      {"tls-cert-file", Kind::String, "node server certificate (default: self-signed)"},
      {"tls-private-key-file", Kind::String, "node server private key"},
      {"client-ca-file", Kind::String, "CA bundle that authenticates client certificates"},
      {"anonymous-auth", Kind::Bool, "allow anonymous requests to the node server"},
      {"authentication-token-webhook", Kind::Bool, "authenticate bearer tokens (TokenReview)"},
      {"authorization-mode", Kind::String, "Webhook (SubjectAccessReview) or AlwaysAllow"},
      {"streaming-connection-idle-timeout", Kind::Duration,
       "end exec/attach/port-forward sessions idle this long (default 4h, 0: never)"},
      {"file-check-frequency", Kind::Duration, "full rescan period of the manifest path"},
      {"sync-frequency", Kind::Duration, "period of the full pod resync"},
      {"node-labels", Kind::List, "labels to register the node with (key=value,...)"},
      {"register-node", Kind::Bool, "register the node with the API server (default true)"},
      {"rotate-certificates", Kind::Bool,
       "renew the client certificate (CSR) before it expires (rotateCertificates)"},
      {"register-with-taints", Kind::List,
       "taints to register the node with (key=value:Effect,...)"},
      {"kube-api-qps", Kind::Int, "API server requests per second (default 50)"},
      {"kube-api-burst", Kind::Int, "API server request burst (default 100)"},
      {"node-status-update-frequency", Kind::Duration,
       "how often node status is computed (default 10s)"},
      {"cni-conf-dir", Kind::String,
       "where nodelet writes its CNI network (default /etc/cni/net.d)"},
      {"cni-bin-dir", Kind::List, "CNI plugin directories (default /usr/lib/cni,/opt/cni/bin)"},
      {"cni-network", Kind::String, "name of nodelet's CNI network (default nodelet)"},
      {"cni-bridge", Kind::String, "bridge of nodelet's CNI network (default nodelet0)"},
      {"cni-ipam-dir", Kind::String, "host-local IPAM data dir (default /var/lib/cni/networks)"},
      {"cni-force", Kind::Bool, "replace CNI configuration nodelet did not write"},
      {"container-log-max-size", Kind::String,
       "rotate a container's log at this size (default 10Mi; containerLogMaxSize)"},
      {"container-log-max-files", Kind::Int,
       "rotated log files kept per container, the live one included (default 5)"},
      {"container-log-links-dir", Kind::String,
       "where container log links for log shippers go (default /var/log/containers, \"\": none)"},
  };
  return t;
}

const Flag* findFlag(const std::string& name) {
  for (const auto& f : flagTable())
    if (name == f.name) return &f;
  return nullptr;
}

Result<int32_t> toInt(const std::string& name, const std::string& v) {
  int32_t out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || p != v.data() + v.size())
    return fail(ErrorCode::InvalidArgument, "flag --" + name + ": invalid integer \"" + v + "\"");
  return out;
}

}  // namespace

Result<Args> parseArgs(const std::vector<std::string>& argv) {
  Args a;
  size_t i = 1;
  if (argv.size() > 1 && !argv[1].starts_with("-")) {
    if (argv[1] == "check")
      a.command = Command::Check;
    else if (argv[1] == "pods")
      a.command = Command::Pods;
    else if (argv[1] == "cni-config")
      a.command = Command::CniConfig;
    else if (argv[1] == "version")
      a.command = Command::Version;
    else if (argv[1] == "help")
      a.command = Command::Help;
    else
      return fail(ErrorCode::InvalidArgument, "unknown command \"" + argv[1] + "\" (see --help)");
    i = 2;
  }
  for (; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (arg == "--") {
      a.positional.insert(a.positional.end(), argv.begin() + static_cast<long>(i) + 1, argv.end());
      break;
    }
    if (!arg.starts_with("-") || arg == "-") {
      a.positional.push_back(arg);
      continue;
    }
    std::string body = arg.substr(arg.starts_with("--") ? 2 : 1);
    std::optional<std::string> value;
    if (auto eq = body.find('='); eq != std::string::npos) {
      value = body.substr(eq + 1);
      body = body.substr(0, eq);
    }
    if (body == "help" || body == "h") {
      a.command = Command::Help;
      continue;
    }
    if (body == "version") {
      a.command = Command::Version;
      continue;
    }
    if (a.command == Command::Check && (body == "o" || body == "output")) {
      if (!value) {
        if (i + 1 >= argv.size()) return fail(ErrorCode::InvalidArgument, "flag -o needs a value");
        value = argv[++i];
      }
      if (*value != "yaml" && *value != "json")
        return fail(ErrorCode::InvalidArgument, "-o must be yaml or json, got \"" + *value + "\"");
      a.output = *value;
      continue;
    }
    const Flag* f = findFlag(body);
    if (!f) return fail(ErrorCode::InvalidArgument, "unknown flag: " + arg + " (see --help)");
    if (!value) {
      if (f->kind == Kind::Bool) {
        value = "true";
      } else {
        if (i + 1 >= argv.size())
          return fail(ErrorCode::InvalidArgument, "flag needs an argument: --" + body);
        value = argv[++i];
      }
    }
    a.flags.emplace_back(body, *value);
  }
  if (a.command == Command::Run && !a.positional.empty())
    return fail(ErrorCode::InvalidArgument, "unexpected argument \"" + a.positional[0] + "\"");
  return a;
}

Status applyFlags(const Args& args, Config& c) {
  for (const auto& [name, v] : args.flags) {
    const Flag* f = findFlag(name);
    if (!f) return fail(ErrorCode::InvalidArgument, "unknown flag --" + name);
    std::chrono::milliseconds dur{};
    int32_t n = 0;
    bool b = false;
    switch (f->kind) {
      case Kind::Duration: {
        auto d = parseDuration(v);
        if (!d) return std::unexpected(d.error().wrap("flag --" + name));
        dur = *d;
        break;
      }
      case Kind::Int: {
        auto r = toInt(name, v);
        if (!r) return std::unexpected(r.error());
        n = *r;
        break;
      }
      case Kind::Bool:
        if (v != "true" && v != "false")
          return fail(ErrorCode::InvalidArgument, "flag --" + name + ": expected true or false");
        b = v == "true";
        break;
      case Kind::String:
      case Kind::List:
        break;
    }
    if (name == "config")
      c.config_file = v;
    else if (name == "pod-manifest-path")
      c.static_pod_path = v;
    else if (name == "container-runtime-endpoint")
      c.container_runtime_endpoint = v;
    else if (name == "image-service-endpoint")
      c.image_service_endpoint = v;
    else if (name == "hostname-override")
      c.hostname_override = v;
    else if (name == "root-dir")
      c.root_dir = v;
    else if (name == "kubeconfig")
      c.kubeconfig = v;
    else if (name == "bootstrap-kubeconfig")
      c.bootstrap_kubeconfig = v;
    else if (name == "cert-dir")
      c.cert_dir = v;
    else if (name == "node-ip")
      c.node_ip = v;
    else if (name == "v")
      c.verbosity = n;
    else if (name == "max-pods")
      c.max_pods = n;
    else if (name == "pod-cidr")
      c.pod_cidr = v;
    else if (name == "cluster-dns") {
      c.cluster_dns = splitList(v, ",");
    } else if (name == "cluster-domain")
      c.cluster_domain = v;
    else if (name == "cgroup-driver")
      c.cgroup_driver = v;
    else if (name == "cgroup-root")
      c.cgroup_root = v;
    else if (name == "runtime-request-timeout")
      c.runtime_request_timeout = dur;
    else if (name == "resolv-conf")
      c.resolv_conf = v;
    else if (name == "fail-swap-on")
      c.fail_swap_on = b;
    else if (name == "address")
      c.address = v;
    else if (name == "port")
      c.port = n;
    else if (name == "healthz-bind-address")
      c.healthz_bind_address = v;
    else if (name == "healthz-port")
      c.healthz_port = n;
    else if (name == "read-only-port")
      c.read_only_port = n;
    else if (name == "tls-cert-file")
      c.tls_cert_file = v;
    else if (name == "tls-private-key-file")
      c.tls_private_key_file = v;
    else if (name == "client-ca-file")
      c.client_ca_file = v;
    else if (name == "anonymous-auth")
      c.anonymous_auth = b;
    else if (name == "authentication-token-webhook")
      c.webhook_authn = b;
    else if (name == "authorization-mode")
      c.authorization_mode = v;
    else if (name == "streaming-connection-idle-timeout")
      c.streaming_connection_idle_timeout = dur;
    else if (name == "container-log-max-size")
      c.container_log_max_size = v;
    else if (name == "container-log-max-files")
      c.container_log_max_files = n;
    else if (name == "file-check-frequency")
      c.file_check_frequency = dur;
    else if (name == "sync-frequency")
      c.sync_frequency = dur;
    else if (name == "cni-conf-dir")
      c.cni_conf_dir = v;
    else if (name == "cni-network")
      c.cni_network = v;
    else if (name == "cni-bridge")
      c.cni_bridge = v;
    else if (name == "cni-ipam-dir")
      c.cni_ipam_dir = v;
    else if (name == "cni-force")
      c.cni_force = b;
    else if (name == "container-log-links-dir")
      c.container_log_links_dir = v;
    else if (name == "cni-bin-dir") {
      c.cni_bin_dirs = splitList(v, ",:");
    } else if (name == "register-node")
      c.register_node = b;
    else if (name == "rotate-certificates")
      c.rotate_certificates = b;
    else if (name == "kube-api-qps")
      c.kube_api_qps = n;
    else if (name == "kube-api-burst")
      c.kube_api_burst = n;
    else if (name == "node-status-update-frequency")
      c.node_status_update_frequency = dur;
    else if (name == "register-with-taints" || name == "node-labels") {
      const std::vector<std::string> items = splitList(v, ",");
      if (name == "register-with-taints") {
        c.register_with_taints = items;
      } else {
        for (const auto& item : items) {
          const auto eq = item.find('=');
          if (eq == std::string::npos || eq == 0)
            return fail(ErrorCode::InvalidArgument,
                        "flag --node-labels: \"" + item + "\" is not key=value");
          c.node_labels[item.substr(0, eq)] = item.substr(eq + 1);
        }
      }
    }
  }
  return {};
}

std::string usage() {
  std::string u =
      "nodelet: a kubelet-compatible node agent for containerd (CRI).\n\n"
      "Usage:\n"
      "  nodelet [flags]                       run the agent\n"
      "  nodelet check [-o yaml|json] FILE...  validate pod manifests and print each pod as\n"
      "                                        nodelet would run it (exit 1 on any error)\n"
      "  nodelet pods [--root-dir DIR]         list this node's pods (name, ready, status,\n"
      "                                        restarts, age, IP), like kubectl get pods -o wide\n"
      "  nodelet cni-config --pod-cidr CIDR[,CIDR] [--cni-* flags]\n"
      "                                        write the CNI network nodelet runs from that pod\n"
      "                                        CIDR, as the agent does, and exit\n"
      "  nodelet --version | --help\n\n"
      "Flags (the kubelet's; flags override the --config file):\n";
  for (const auto& f : flagTable()) {
    std::string left = std::string("  --") + f.name;
    if (f.kind != Kind::Bool) left += " value";
    left.resize(std::max<size_t>(left.size() + 1, 40), ' ');
    u += left + f.help + "\n";
  }
  return u;
}

}  // namespace nodelet::agent
