#pragma once
// TLS bootstrapping, as the kubelet's --bootstrap-kubeconfig: a node that has only a bootstrap
// token gets its own client certificate from the API server and writes the kubeconfig it runs
// with.
//   1. The kubeconfig (--kubeconfig) is kept when its client certificate is still valid.
//   2. Otherwise a key is taken from the current certificate (a renewal keeps the key) or from
//      <cert-dir>/kubelet-client.key.tmp, made there (EC P-256) if missing, so a restart while
//      waiting reuses it.
//   3. A CertificateSigningRequest (certificates.k8s.io/v1) for CN=system:node:<node>,
//      O=system:nodes, signer kubernetes.io/kube-apiserver-client-kubelet, usages "digital
//      signature" and "client auth", is created with the bootstrap credentials under a name
//      derived from the key and subject ("node-csr-..."): after a restart the same request is
//      found again (409) and waited for, not repeated.
//   4. The request is watched until a certificate is issued (or it is denied or fails), for at
//      most an hour.
//   5. Certificate and key go to <cert-dir>/kubelet-client-<time>.pem, the symlink
//      kubelet-client-current.pem points to it, and the kubeconfig is written with the bootstrap
//      kubeconfig's server and CA and that file as client certificate and key.
// The file names and the kubeconfig's shape are the kubelet's, so tools that look for them
// (kubeadm certs check-expiration) find them.
#include <stop_token>
#include <string>

#include "agent/core/clock.h"
#include "agent/core/error.h"
#include "agent/kube/client.h"

namespace nodelet::agent {

struct ClientBootstrapOptions {
  std::string kubeconfig;            // --kubeconfig: kept if valid, else written
  std::string bootstrap_kubeconfig;  // --bootstrap-kubeconfig
  std::string cert_dir;              // --cert-dir
  std::string node_name;
  Duration timeout{std::chrono::hours(1)};  // waiting for the certificate, as the kubelet
  kube::ClientOptions client;
};

// Returns once the kubeconfig holds a valid client certificate; an error when the request was
// denied or failed, the wait timed out, or `stop` was requested.
Status bootstrapClientCertificate(const ClientBootstrapOptions& o, Clock& clock,
                                  std::stop_token stop);

// The pieces, for tests.
namespace bootstrap {
// Whether every certificate in `pem` is valid at `now` (false when there is none).
bool certificatesValid(const std::string& pem, SysTime now);
// The kubelet's CSR name for a key, subject and usages ("node-csr-" + a digest).
Result<std::string> csrName(const std::string& key_pem, const std::string& node_name);
// A PEM CERTIFICATE REQUEST for CN=system:node:<node>, O=system:nodes, signed with the key.
Result<std::string> makeCsr(const std::string& key_pem, const std::string& node_name);
// A new EC P-256 key, PEM.
Result<std::string> newKey();
// Whether CSR `request_pem` carries the public key of `key_pem`.
bool sameKey(const std::string& request_pem, const std::string& key_pem);
}  // namespace bootstrap

}  // namespace nodelet::agent
