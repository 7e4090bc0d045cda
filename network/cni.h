#pragma once
// The CNI network containerd gives pods, written and kept by nodelet from the node's pod CIDR
// (`podCIDR` standalone, Node.spec.podCIDR in a cluster): a conflist with the `bridge` plugin
// (its own bridge, gateway, masquerade for traffic leaving the pod CIDR, hairpin), `host-local`
// IPAM and `portmap` (hostPorts), in the highest CNI version every plugin supports (asked with the
// VERSION command: Debian's plugins stop at 1.0.0). containerd also needs the `loopback` plugin.
//
// A CNI configuration nodelet did not write (the user's own CNI) is left alone, and said so,
// unless `force`. The file is written beside its final name and renamed in place: containerd 1.6
// notices that, but misses a file renamed into the directory from elsewhere.
//
// Leaks: host-local reservations (and libcni's cached results) of sandboxes that no longer exist
// are reclaimed, so a node that crashed or was stopped uncleanly does not run out of addresses.
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "agent/core/clock.h"
#include "agent/core/error.h"

namespace nodelet::network {

struct CniOptions {
  std::string conf_dir{"/etc/cni/net.d"};
  std::vector<std::string> bin_dirs{"/usr/lib/cni", "/opt/cni/bin"};
  std::string network{"nodelet"};
  std::string bridge{"nodelet0"};
  std::string ipam_dir{"/var/lib/cni/networks"};  // host-local keeps <ipam_dir>/<network>/<ip>
  std::string cache_dir{"/var/lib/cni/results"};  // libcni's result cache
  bool force{false};                              // replace CNI configuration nodelet did not write
  std::string fileName() const { return "10-" + network + ".conflist"; }
};

// The plugins nodelet's conflist uses, and loopback, which containerd runs itself.
const std::vector<std::string>& requiredPlugins();

// Runs a plugin's VERSION command; returns its supportedVersions.
class PluginVersions {
 public:
  virtual ~PluginVersions() = default;
  virtual Result<std::vector<std::string>> supported(const std::string& binary) = 0;
};
// Executes the binary (CNI_COMMAND=VERSION, the config on stdin), with a timeout.
class ExecPluginVersions final : public PluginVersions {
 public:
  Result<std::vector<std::string>> supported(const std::string& binary) override;
};

// The highest version nodelet writes (1.0.0, 0.4.0, 0.3.1) that every plugin supports.
Result<std::string> chooseCniVersion(
    const std::map<std::string, std::vector<std::string>>& by_plugin);

// The conflist text for these pod CIDRs (one per family), marked as nodelet's.
std::string buildConflist(const CniOptions& o, const std::vector<std::string>& pod_cidrs,
                          const std::string& cni_version);
// Whether a CNI configuration file's text was written by nodelet.
bool writtenByNodelet(const std::string& text);
// A pod CIDR ("10.244.1.0/24", "fd00::/64") as the API server would accept it.
Status validateCidr(const std::string& cidr);

class CniConfig {
 public:
  enum class Outcome { Written, Unchanged, Foreign };
  CniConfig(CniOptions options, PluginVersions& versions);

  // Makes the conflist match `pod_cidrs`. Foreign: another configuration is in charge (the
  // message says which); an error names missing plugins or what could not be written.
  Result<Outcome> ensure(const std::vector<std::string>& pod_cidrs, std::string* message = nullptr);
  // Removes reservations of containers not in `live_sandboxes` (every sandbox the runtime knows,
  // not only nodelet's) that are older than `min_age` (a sandbox being created has its address
  // before the runtime lists it). Returns how many addresses were reclaimed.
  int reclaimLeaks(const std::set<std::string>& live_sandboxes, SysTime now,
                   Duration min_age = std::chrono::minutes(2));

 private:
  std::string findPlugin(const std::string& name) const;
  CniOptions o_;
  PluginVersions& versions_;
};

}  // namespace nodelet::network
