#include "agent/seccomp.h"

#include <seccomp.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "agent/atomic_writer.h"

namespace nodelet::agent {
namespace {

using nlohmann::json;

const std::set<std::string>& actions() {
  static const std::set<std::string> a = {
      "SCMP_ACT_KILL",  "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
      "SCMP_ACT_TRAP",  "SCMP_ACT_ERRNO",        "SCMP_ACT_TRACE",
      "SCMP_ACT_ALLOW", "SCMP_ACT_LOG",          "SCMP_ACT_NOTIFY"};
  return a;
}

Status checkArch(const std::string& arch) {
  if (!arch.starts_with("SCMP_ARCH_"))
    return fail(ErrorCode::InvalidArgument, "unknown architecture \"" + arch + "\"");
  std::string name = arch.substr(10);
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (seccomp_arch_resolve_name(name.c_str()) == 0)
    return fail(ErrorCode::InvalidArgument, "unknown architecture \"" + arch + "\"");
  return {};
}

}  // namespace

Status validateSeccompProfile(const std::string& text) {
  json p = json::parse(text, nullptr, false);
  if (!p.is_object()) return fail(ErrorCode::InvalidArgument, "not a JSON object");
  auto action = [](const json& v, const std::string& where) -> Status {
    if (!v.is_string() || !actions().contains(v.get<std::string>()))
      return fail(ErrorCode::InvalidArgument,
                  where + ": unknown action " +
                      (v.is_string() ? "\"" + v.get<std::string>() + "\"" : v.dump()));
    return {};
  };
  if (!p.contains("defaultAction"))
    return fail(ErrorCode::InvalidArgument, "defaultAction: required");
  if (auto s = action(p["defaultAction"], "defaultAction"); !s) return s;
  if (p.contains("architectures")) {
    if (!p["architectures"].is_array())
      return fail(ErrorCode::InvalidArgument, "architectures: not a list");
    for (const auto& a : p["architectures"]) {
      if (!a.is_string()) return fail(ErrorCode::InvalidArgument, "architectures: not a string");
      if (auto s = checkArch(a.get<std::string>()); !s) return s;
    }
  }
  if (p.contains("archMap") && p["archMap"].is_array()) {
    for (const auto& m : p["archMap"]) {
      if (m.is_object() && m.contains("architecture") && m["architecture"].is_string())
        if (auto s = checkArch(m["architecture"].get<std::string>()); !s) return s;
    }
  }
  if (p.contains("syscalls")) {
    if (!p["syscalls"].is_array()) return fail(ErrorCode::InvalidArgument, "syscalls: not a list");
    for (size_t i = 0; i < p["syscalls"].size(); ++i) {
      const json& sc = p["syscalls"][i];
      const std::string at = "syscalls[" + std::to_string(i) + "]";
      if (!sc.is_object()) return fail(ErrorCode::InvalidArgument, at + ": not an object");
      if (auto s = action(sc.contains("action") ? sc["action"] : json(), at + ".action"); !s)
        return s;
      std::vector<std::string> names;
      if (sc.contains("names") && sc["names"].is_array())
        for (const auto& n : sc["names"])
          if (n.is_string()) names.push_back(n.get<std::string>());
      if (sc.contains("name") && sc["name"].is_string())
        names.push_back(sc["name"].get<std::string>());
      if (names.empty()) return fail(ErrorCode::InvalidArgument, at + ": no syscall names");
      for (const auto& n : names)
        if (seccomp_syscall_resolve_name(n.c_str()) == __NR_SCMP_ERROR)
          return fail(ErrorCode::InvalidArgument, at + ": unknown syscall \"" + n + "\"");
    }
  }
  return {};
}

Result<cri::SecurityProfile> seccompFor(const api::Pod& pod, const api::Container* c,
                                        const std::string& root_dir, bool seccomp_default) {
  std::optional<api::SeccompProfile> chosen;
  if (c && c->security_context && c->security_context->seccomp_profile)
    chosen = c->security_context->seccomp_profile;
  if (!chosen && pod.spec.security_context && pod.spec.security_context->seccomp_profile)
    chosen = pod.spec.security_context->seccomp_profile;
  if (!chosen) {
    // A privileged container is never confined by the default profile (as the kubelet).
    const bool privileged =
        c && c->security_context && c->security_context->privileged.value_or(false);
    return cri::SecurityProfile{seccomp_default && !privileged
                                    ? cri::SecurityProfile::Type::RuntimeDefault
                                    : cri::SecurityProfile::Type::Unconfined,
                                ""};
  }
  if (chosen->type == "RuntimeDefault")
    return cri::SecurityProfile{cri::SecurityProfile::Type::RuntimeDefault, ""};
  if (chosen->type == "Unconfined")
    return cri::SecurityProfile{cri::SecurityProfile::Type::Unconfined, ""};
  if (auto s = validatePayloadPath(chosen->localhost_profile); !s)
    return std::unexpected(s.error().wrap("seccomp localhostProfile"));
  const std::string path = root_dir + "/seccomp/" + chosen->localhost_profile;
  std::ifstream in(path);
  if (!in)
    return fail(ErrorCode::NotFound, "cannot load seccomp profile \"" + path + "\": no such file");
  std::stringstream ss;
  ss << in.rdbuf();
  if (auto s = validateSeccompProfile(ss.str()); !s)
    return std::unexpected(s.error().wrap("seccomp profile \"" + path + "\""));
  return cri::SecurityProfile{cri::SecurityProfile::Type::Localhost, path};
}

}  // namespace nodelet::agent
