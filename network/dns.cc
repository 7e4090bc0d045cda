#include "network/dns.h"

#include <algorithm>
#include <sstream>

namespace nodelet::network {
namespace {

// The kubelet's limits (pkg/apis/core/validation: MaxDNSNameservers, MaxDNSSearchPaths,
// MaxDNSSearchListChars).
constexpr size_t kMaxNameservers = 3;
constexpr size_t kMaxSearchPaths = 32;
constexpr size_t kMaxSearchChars = 2048;

void appendUnique(std::vector<std::string>& to, const std::vector<std::string>& from) {
  for (const auto& x : from)
    if (std::find(to.begin(), to.end(), x) == to.end()) to.push_back(x);
}

std::string optionName(const std::string& opt) { return opt.substr(0, opt.find(':')); }

}  // namespace

ResolvConf parseResolvConf(std::string_view text) {
  ResolvConf r;
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    if (auto hash = line.find_first_of("#;"); hash != std::string::npos) line.resize(hash);
    std::istringstream words(line);
    std::string key;
    if (!(words >> key)) continue;
    std::string w;
    if (key == "nameserver") {
      if (words >> w) r.nameservers.push_back(w);
    } else if (key == "search" || key == "domain") {
      r.searches.clear();  // the last search/domain line wins
      while (words >> w) r.searches.push_back(w);
    } else if (key == "options") {
      while (words >> w) r.options.push_back(w);
    }
  }
  return r;
}

PodDns podDnsConfig(const api::Pod& pod, const DnsSettings& s) {
  PodDns out;
  std::string policy = pod.spec.dns_policy;
  if (policy == "ClusterFirstWithHostNet")
    policy = "ClusterFirst";
  else if (policy == "ClusterFirst" && pod.spec.host_network)
    policy = "Default";
  if (policy == "ClusterFirst" && s.cluster_dns.empty()) {
    out.warnings.emplace_back(
        "MissingClusterDNS",
        "pod: \"" + pod.metadata.name + "_" + pod.metadata.namespace_ + "(" + pod.metadata.uid +
            ")\". kubelet does not have ClusterDNS IP configured and cannot create Pod using "
            "\"ClusterFirst\" policy. Falling back to \"Default\" policy.");
    policy = "Default";
  }
  auto& c = out.config;
  if (policy == "ClusterFirst") {
    c.servers = s.cluster_dns;
    if (!s.cluster_domain.empty()) {
      const std::string& d = s.cluster_domain;
      c.searches = {pod.metadata.namespace_ + ".svc." + d, "svc." + d, d};
    }
    appendUnique(c.searches, s.host.searches);
    c.options = {"ndots:5"};
  } else if (policy == "Default") {
    c.servers = s.host.nameservers;
    c.searches = s.host.searches;
    c.options = s.host.options;
  }
  if (pod.spec.dns_config) {
    const auto& pc = *pod.spec.dns_config;
    appendUnique(c.servers, pc.nameservers);
    appendUnique(c.searches, pc.searches);
    for (const auto& o : pc.options) {
      const std::string opt = o.value ? o.name + ":" + *o.value : o.name;
      auto same = std::find_if(c.options.begin(), c.options.end(),
                               [&](const std::string& x) { return optionName(x) == o.name; });
      if (same != c.options.end())
        *same = opt;
      else
        c.options.push_back(opt);
    }
  }
  if (c.servers.size() > kMaxNameservers) {
    out.warnings.emplace_back(
        "DNSConfigForming", "Nameserver limits were exceeded, some nameservers have been omitted");
    c.servers.resize(kMaxNameservers);
  }
  size_t chars = 0, keep = 0;
  for (; keep < c.searches.size() && keep < kMaxSearchPaths; ++keep) {
    chars += c.searches[keep].size() + (keep ? 1 : 0);
    if (chars > kMaxSearchChars) break;
  }
  if (keep < c.searches.size()) {
    out.warnings.emplace_back(
        "DNSConfigForming",
        "Search Line limits were exceeded, some search paths have been omitted");
    c.searches.resize(keep);
  }
  return out;
}

std::string managedHostsFile(const std::vector<std::string>& pod_ips, const std::string& hostname,
                             const std::string& fqdn, const std::vector<api::HostAlias>& aliases) {
  std::string s =
      "# Kubernetes-managed hosts file.\n"
      "127.0.0.1\tlocalhost\n"
      "::1\tlocalhost ip6-localhost ip6-loopback\n"
      "fe00::0\tip6-localnet\n"
      "fe00::0\tip6-mcastprefix\n"
      "fe00::1\tip6-allnodes\n"
      "fe00::2\tip6-allrouters\n";
  for (const auto& ip : pod_ips) {
    if (fqdn.empty())
      s += ip + "\t" + hostname + "\n";
    else
      s += ip + "\t" + fqdn + "\t" + hostname + "\n";
  }
  if (!aliases.empty()) {
    s += "\n# Entries added by HostAliases.\n";
    for (const auto& a : aliases) {
      s += a.ip;
      for (const auto& h : a.hostnames) s += "\t" + h;
      s += "\n";
    }
  }
  return s;
}

std::string podDomain(const api::Pod& pod, const std::string& cluster_domain) {
  if (pod.spec.subdomain.empty()) return "";
  return pod.spec.subdomain + "." + pod.metadata.namespace_ + ".svc." + cluster_domain;
}

Result<std::string> kernelHostname(const api::Pod& pod, const std::string& cluster_domain) {
  const std::string host = podHostname(pod);
  const std::string domain = podDomain(pod, cluster_domain);
  if (!pod.spec.set_hostname_as_fqdn || domain.empty()) return host;
  const std::string fqdn = host + "." + domain;
  if (fqdn.size() > 64)
    return fail(ErrorCode::InvalidArgument,
                "failed to construct FQDN from pod hostname and cluster domain, FQDN " + fqdn +
                    " is too long (64 characters is the max, " + std::to_string(fqdn.size()) +
                    " characters requested)");
  return fqdn;
}

std::string podHostname(const api::Pod& pod) {
  std::string h = pod.spec.hostname.empty() ? pod.metadata.name : pod.spec.hostname;
  if (h.size() > 63) {
    h.resize(63);
    while (!h.empty() && (h.back() == '-' || h.back() == '.')) h.pop_back();
  }
  return h;
}

}  // namespace nodelet::network
