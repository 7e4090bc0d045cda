#include "agent/registry_auth.h"

#include <fnmatch.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "agent/core/base64.h"

namespace nodelet::agent {

namespace {

using nlohmann::json;

struct SchemelessUrl {
  std::string host;  // without the port
  std::string port;
  std::string path;  // "" or starting with '/'
};

SchemelessUrl parse(std::string s) {
  for (const char* scheme : {"https://", "http://"})
    if (s.starts_with(scheme)) s = s.substr(std::string(scheme).size());
  SchemelessUrl u;
  const auto slash = s.find('/');
  std::string hostport = s.substr(0, slash);
  if (slash != std::string::npos) u.path = s.substr(slash);
  // host:port (an IPv6 literal in brackets keeps its colons).
  const auto colon = hostport.rfind(':');
  if (colon != std::string::npos && hostport.find(']', colon) == std::string::npos) {
    u.port = hostport.substr(colon + 1);
    hostport.resize(colon);
  }
  u.host = hostport;
  return u;
}

std::vector<std::string> labels(const std::string& host) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const auto dot = host.find('.', start);
    out.push_back(host.substr(start, dot - start));
    if (dot == std::string::npos) return out;
    start = dot + 1;
  }
}

// The keyring's URLsMatch: hosts label by label (globs allowed in the key), ports equal, and the
// image's path under the key's.
bool matches(const std::string& key, const std::string& image) {
  const SchemelessUrl k = parse(key), t = parse(image);
  if (k.port != t.port) return false;
  const auto kl = labels(k.host), tl = labels(t.host);
  if (kl.size() != tl.size()) return false;
  for (size_t i = 0; i < kl.size(); ++i)
    if (fnmatch(kl[i].c_str(), tl[i].c_str(), 0) != 0) return false;
  return t.path.starts_with(k.path);
}

// Docker Hub: a name with no registry host in front (a first part without '.' or ':', and
// not localhost), or docker.io / index.docker.io.
bool isDefaultRegistry(const std::string& image) {
  const auto slash = image.find('/');
  const std::string first = image.substr(0, slash);
  if (first.empty()) return false;
  if (slash == std::string::npos) return true;
  if (first == "docker.io" || first == "index.docker.io") return true;
  return first.find_first_of(".:") == std::string::npos && first != "localhost";
}

constexpr char kDefaultRegistryHost[] = "index.docker.io";

}  // namespace

void RegistryKeyring::add(const std::string& registry, cri::AuthConfig auth) {
  const SchemelessUrl u = parse(registry);
  std::string path = u.path;
  // /v1/ and /v2/ name the registry itself, as the docker client treats them.
  if (path.starts_with("/v1/") || path.starts_with("/v2/")) path = path.substr(3);
  std::string key = u.host + (u.port.empty() ? "" : ":" + u.port);
  if (!path.empty() && path != "/") key += path;
  auth.server_address = registry;
  creds_.push_back({key, std::move(auth)});
  // More specific keys first (a reverse sort of the keys, as the kubelet's index); stable, so
  // the credentials of one key stay in the order they came.
  std::stable_sort(creds_.begin(), creds_.end(),
                   [](const auto& a, const auto& b) { return a.key > b.key; });
}

Status RegistryKeyring::addSecret(const std::map<std::string, std::string>& data) {
  json entries;
  if (auto it = data.find(".dockerconfigjson"); it != data.end()) {
    const json doc = json::parse(it->second, nullptr, false);
    if (!doc.is_object() || !doc.contains("auths") || !doc["auths"].is_object())
      return fail(ErrorCode::InvalidArgument, ".dockerconfigjson: expected {\"auths\": {...}}");
    entries = doc["auths"];
  } else if (auto it2 = data.find(".dockercfg"); it2 != data.end()) {
    entries = json::parse(it2->second, nullptr, false);
    if (!entries.is_object())
      return fail(ErrorCode::InvalidArgument, ".dockercfg: expected a map of registries");
  } else {
    return fail(ErrorCode::InvalidArgument, "no .dockerconfigjson or .dockercfg key");
  }
  for (const auto& [registry, e] : entries.items()) {
    if (!e.is_object()) continue;
    cri::AuthConfig a;
    const auto str = [&](const char* k) {
      return e.contains(k) && e[k].is_string() ? e[k].get<std::string>() : std::string();
    };
    a.username = str("username");
    a.password = str("password");
    a.identity_token = str("identitytoken");
    a.registry_token = str("registrytoken");
    if (const std::string auth = str("auth"); !auth.empty()) {
      auto decoded = base64Decode(auth);
      const auto colon = decoded ? decoded->find(':') : std::string::npos;
      if (colon == std::string::npos)
        return fail(ErrorCode::InvalidArgument,
                    "auth of " + registry + ": expected base64 of \"username:password\"");
      if (a.username.empty()) {
        a.username = decoded->substr(0, colon);
        a.password = decoded->substr(colon + 1);
      }
    }
    add(registry, std::move(a));
  }
  return {};
}

std::vector<cri::AuthConfig> RegistryKeyring::lookup(const std::string& image) const {
  std::vector<cri::AuthConfig> out;
  for (const auto& c : creds_)
    if (matches(c.key, image)) out.push_back(c.auth);
  if (out.empty() && isDefaultRegistry(image))
    for (const auto& c : creds_)
      if (c.key == kDefaultRegistryHost) out.push_back(c.auth);
  return out;
}

}  // namespace nodelet::agent
