#pragma once
// kubeconfig: how to reach and authenticate to the API server. The current context's cluster and
// user are resolved into one flat description; relative file paths are relative to the
// kubeconfig's directory (as client-go resolves them). Errors name the offending field.
#include <string>
#include <string_view>

#include "agent/core/base64.h"
#include "agent/core/error.h"

namespace nodelet::kube {

struct KubeConfig {
  std::string server;  // https://host:port
  std::string ca_pem;  // certificate-authority(-data); empty: the system's trust store
  std::string client_cert_pem;
  std::string client_key_pem;
  std::string token;       // a bearer token given inline
  std::string token_file;  // re-read while running (tokens are rotated)
  bool insecure_skip_tls_verify{false};
  std::string context;  // the context used, for messages
};

// `text` is the kubeconfig (YAML or JSON); `dir` resolves relative paths.
Result<KubeConfig> parseKubeconfig(std::string_view text, const std::string& dir);
Result<KubeConfig> loadKubeconfig(const std::string& path);

}  // namespace nodelet::kube
