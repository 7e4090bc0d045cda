#include "agent/kube/kubeconfig.h"

#include <openssl/evp.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "agent/core/yaml_json.h"

namespace nodelet::kube {
namespace {

using nlohmann::json;

Result<std::string> readWhole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(ErrorCode::NotFound, "cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The entry called `name` in kubeconfig list `list` ("clusters", "users", "contexts").
const json* named(const json& doc, const char* list, const std::string& name) {
  auto it = doc.find(list);
  if (it == doc.end() || !it->is_array()) return nullptr;
  for (const auto& e : *it)
    if (e.is_object() && e.value("name", "") == name) return &e;
  return nullptr;
}

Result<std::string> str(const json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::string();
  if (!it->is_string())
    return fail(ErrorCode::InvalidArgument, where + "." + key + ": not a string");
  return it->get<std::string>();
}

// A PEM given as a file (`file_key`) or inline base64 (`data_key`); data wins, as in client-go.
Result<std::string> pem(const json& obj, const char* file_key, const char* data_key,
                        const std::string& where, const std::string& dir) {
  auto data = str(obj, data_key, where);
  if (!data) return data;
  if (!data->empty()) {
    auto decoded = base64Decode(*data);
    if (!decoded) return std::unexpected(decoded.error().wrap(where + "." + data_key));
    return decoded;
  }
  auto file = str(obj, file_key, where);
  if (!file || file->empty()) return file;
  std::filesystem::path p(*file);
  if (p.is_relative() && !dir.empty()) p = std::filesystem::path(dir) / p;
  auto text = readWhole(p.string());
  if (!text) return std::unexpected(text.error().wrap(where + "." + file_key));
  return text;
}

}  // namespace

Result<KubeConfig> parseKubeconfig(std::string_view text, const std::string& dir) {
  auto as_json = yamlToJson(text);
  if (!as_json) return std::unexpected(as_json.error());
  const json doc = json::parse(*as_json, nullptr, false);
  if (!doc.is_object()) return fail(ErrorCode::InvalidArgument, "not a kubeconfig object");
  KubeConfig kc;
  auto ctx_name = str(doc, "current-context", "");
  if (!ctx_name) return std::unexpected(ctx_name.error());
  if (ctx_name->empty()) return fail(ErrorCode::InvalidArgument, "current-context: not set");
  kc.context = *ctx_name;
  const json* ctx = named(doc, "contexts", *ctx_name);
  if (!ctx || !ctx->contains("context") || !(*ctx)["context"].is_object())
    return fail(ErrorCode::InvalidArgument,
                "current-context: no context named \"" + *ctx_name + "\" in contexts");
  const json& c = (*ctx)["context"];
  const std::string cluster_name = c.value("cluster", "");
  const json* cluster = named(doc, "clusters", cluster_name);
  if (!cluster || !cluster->contains("cluster") || !(*cluster)["cluster"].is_object())
    return fail(
        ErrorCode::InvalidArgument,
        "contexts[" + *ctx_name + "].context.cluster: no cluster named \"" + cluster_name + "\"");
  const json& cl = (*cluster)["cluster"];
  const std::string cw = "clusters[" + cluster_name + "].cluster";
  auto server = str(cl, "server", cw);
  if (!server) return std::unexpected(server.error());
  if (server->empty()) return fail(ErrorCode::InvalidArgument, cw + ".server: not set");
  if (server->rfind("https://", 0) != 0 && server->rfind("http://", 0) != 0)
    return fail(ErrorCode::InvalidArgument,
                cw + ".server: \"" + *server + "\" is not an http(s) URL");
  while (server->ends_with('/')) server->pop_back();
  kc.server = *server;
  auto ca = pem(cl, "certificate-authority", "certificate-authority-data", cw, dir);
  if (!ca) return std::unexpected(ca.error());
  kc.ca_pem = *ca;
  if (auto it = cl.find("insecure-skip-tls-verify"); it != cl.end() && !it->is_null()) {
    if (!it->is_boolean())
      return fail(ErrorCode::InvalidArgument, cw + ".insecure-skip-tls-verify: not a boolean");
    kc.insecure_skip_tls_verify = it->get<bool>();
  }

  const std::string user_name = c.value("user", "");
  if (!user_name.empty()) {
    const json* user = named(doc, "users", user_name);
    if (!user)
      return fail(ErrorCode::InvalidArgument,
                  "contexts[" + *ctx_name + "].context.user: no user named \"" + user_name + "\"");
    const json empty = json::object();
    const json& u = user->contains("user") && (*user)["user"].is_object() ? (*user)["user"] : empty;
    const std::string uw = "users[" + user_name + "].user";
    auto cert = pem(u, "client-certificate", "client-certificate-data", uw, dir);
    if (!cert) return std::unexpected(cert.error());
    auto key = pem(u, "client-key", "client-key-data", uw, dir);
    if (!key) return std::unexpected(key.error());
    if (cert->empty() != key->empty())
      return fail(ErrorCode::InvalidArgument,
                  uw + ": client-certificate and client-key must be given together");
    kc.client_cert_pem = *cert;
    kc.client_key_pem = *key;
    auto token = str(u, "token", uw);
    if (!token) return std::unexpected(token.error());
    kc.token = *token;
    auto token_file = str(u, "tokenFile", uw);
    if (!token_file) return std::unexpected(token_file.error());
    if (!token_file->empty()) {
      std::filesystem::path p(*token_file);
      if (p.is_relative() && !dir.empty()) p = std::filesystem::path(dir) / p;
      kc.token_file = p.string();
      if (auto t = readWhole(kc.token_file); !t)
        return std::unexpected(t.error().wrap(uw + ".tokenFile"));
    }
  }
  return kc;
}

Result<KubeConfig> loadKubeconfig(const std::string& path) {
  auto text = readWhole(path);
  if (!text) return std::unexpected(text.error().wrap("--kubeconfig"));
  auto kc = parseKubeconfig(*text, std::filesystem::path(path).parent_path().string());
  if (!kc) return std::unexpected(kc.error().wrap("kubeconfig " + path));
  return kc;
}

}  // namespace nodelet::kube
