#pragma once
// Pod DNS as the kubelet gives it: the resolver configuration for the sandbox (containerd writes
// /etc/resolv.conf from it) and the pod's /etc/hosts.
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/error.h"
#include "agent/core/pod.h"
#include "cri/types.h"

namespace nodelet::network {

struct ResolvConf {
  std::vector<std::string> nameservers;
  std::vector<std::string> searches;
  std::vector<std::string> options;
};
// Parses a resolv.conf (the node's `resolvConf`).
ResolvConf parseResolvConf(std::string_view text);

struct DnsSettings {
  std::vector<std::string> cluster_dns;  // clusterDNS
  std::string cluster_domain;            // clusterDomain
  ResolvConf host;                       // the node's resolvConf, parsed
};

struct PodDns {
  cri::DnsConfig config;
  // Problems worth an event (reason, message): MissingClusterDNS, DNSConfigForming.
  std::vector<std::pair<std::string, std::string>> warnings;
};

PodDns podDnsConfig(const api::Pod& pod, const DnsSettings& settings);

// The kubelet's managed /etc/hosts for a pod (not used for hostNetwork pods).
std::string managedHostsFile(const std::vector<std::string>& pod_ips, const std::string& hostname,
                             const std::string& fqdn, const std::vector<api::HostAlias>& aliases);
// The pod's hostname: spec.hostname, else the pod name, cut to 63 characters (as the kubelet).
std::string podHostname(const api::Pod& pod);
// The pod's DNS domain when it has a subdomain ("<subdomain>.<namespace>.svc.<clusterDomain>"),
// else "": its FQDN is <hostname>.<domain>, in /etc/hosts and (setHostnameAsFQDN) as the kernel
// hostname.
std::string podDomain(const api::Pod& pod, const std::string& cluster_domain);
// The hostname the sandbox gets: the pod's, or its FQDN with setHostnameAsFQDN (an error beyond
// the kernel's 64 characters, with the kubelet's message).
Result<std::string> kernelHostname(const api::Pod& pod, const std::string& cluster_domain);

}  // namespace nodelet::network
