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
#include <functional>
#include <mutex>
#include <optional>
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

// rotateCertificates, as the kubelet's client certificate manager: the certificate is renewed
// at a random point between 70 % and 90 % of its lifetime, with a new key and a CSR
// (generateName "csr-", the same subject, signer and usages) sent with the current identity,
// which kube-controller-manager approves for a node renewing its own certificate. Once issued it
// is stored as the bootstrap stores it (kubelet-client-current.pem) and handed to `on_rotated`,
// which points the API client at it. A failed attempt is retried after 1 s doubling to 5 min.
class ClientCertificateRotator {
 public:
  using OnRotated = std::function<void(const std::string& cert_pem, const std::string& key_pem)>;
  ClientCertificateRotator(kube::Client& client, Clock& clock, std::string cert_dir,
                           std::string node_name, std::string cert_pem, OnRotated on_rotated,
                           uint64_t seed = 0);
  void run(std::stop_token stop);
  // When the current certificate is due (std::nullopt: it does not parse).
  std::optional<SysTime> due() const;
  // One renewal now, waiting at most `timeout` for the certificate.
  Status rotate(std::stop_token stop, Duration timeout = std::chrono::minutes(15));

 private:
  kube::Client& client_;
  Clock& clock_;
  std::string cert_dir_;
  std::string node_;
  OnRotated on_rotated_;
  mutable std::mutex mu_;
  std::string cert_pem_;
  double fraction_;  // of the lifetime after which to renew: [0.7, 0.9)
};

// Writes <cert_dir>/kubelet-client-<time>.pem (certificate, then key; 0600, synced) and points
// kubelet-client-current.pem at it. Returns the symlink's path.
Result<std::string> storeClientCertificate(const std::string& cert_dir, const std::string& cert_pem,
                                           const std::string& key_pem, SysTime now);

// The pieces, for tests.
namespace bootstrap {
// Whether every certificate in `pem` is valid at `now` (false when there is none).
bool certificatesValid(const std::string& pem, SysTime now);
// The first certificate's validity period.
std::optional<std::pair<SysTime, SysTime>> validity(const std::string& pem);
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
