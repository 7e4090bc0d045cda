#pragma once
// The serving certificate of the node server when tlsCertFile/tlsPrivateKeyFile are not given:
// a self-signed one in <root-dir>/pki (nodelet.crt, nodelet.key), as the kubelet keeps
// kubelet.crt/kubelet.key in /var/lib/kubelet/pki. Made once, reused while valid.
#include <string>
#include <vector>

#include "agent/core/clock.h"
#include "agent/core/error.h"

namespace nodelet::agent {

struct CertPaths {
  std::string cert;
  std::string key;
};

// Returns the paths of a certificate valid for `host` and `ips` (subject alternative names),
// creating it (EC P-256, one year, CN "<host>@<unix time>", the kubelet's pattern) if missing
// or expired. The key file is 0600.
Result<CertPaths> ensureSelfSignedCert(const std::string& dir, const std::string& host,
                                       const std::vector<std::string>& ips, SysTime now);

}  // namespace nodelet::agent
