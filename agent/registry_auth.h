#pragma once
// Registry credentials from imagePullSecrets, matched to an image as the kubelet's
// credentialprovider keyring does:
//   - a kubernetes.io/dockerconfigjson Secret (".dockerconfigjson": {"auths": {...}}) or a
//     legacy kubernetes.io/dockercfg one (".dockercfg": {...}); each entry's username and
//     password, or its "auth" (base64 "user:password");
//   - a key is a registry host, host:port or host/path prefix, with or without a scheme and a
//     /v1/ or /v2/ suffix (https://index.docker.io/v1/ is index.docker.io); a host may use `*`
//     for one DNS label (*.example.com);
//   - an image matches a key when the hosts match label by label, the ports are equal and the
//     image's path starts with the key's; more specific keys come first; Docker Hub images
//     (busybox, library/x, docker.io/x, user/x) use index.docker.io's credentials when nothing
//     else matched.
// The pull tries each matching credential in turn, then (none matching) anonymously.
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "agent/core/error.h"
#include "cri/types.h"

namespace nodelet::agent {

struct RegistryCredential {
  std::string key;  // the normalised registry key: "registry.example.com:5000/team"
  cri::AuthConfig auth;
};

class RegistryKeyring {
 public:
  // Adds the entries of one pull Secret's data (key -> bytes). An error names what is wrong.
  Status addSecret(const std::map<std::string, std::string>& data);
  // The credentials for `image`, most specific first.
  std::vector<cri::AuthConfig> lookup(const std::string& image) const;
  bool empty() const { return creds_.empty(); }

 private:
  void add(const std::string& registry, cri::AuthConfig auth);
  std::vector<RegistryCredential> creds_;  // kept sorted by key, descending
};

}  // namespace nodelet::agent
