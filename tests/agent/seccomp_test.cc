// Seccomp profile choice and Localhost profile validation (libseccomp).
#include "agent/seccomp.h"

#include <gtest/gtest.h>

#include "agent/core/api_json.h"
#include "tests/common/temp_dir.h"

namespace nodelet::agent {
namespace {

api::Pod pod(const std::string& pod_sc, const std::string& container_sc) {
  auto p =
      api::decodePod(R"({"metadata":{"name":"p","namespace":"d","uid":"u"},"spec":{)" + pod_sc +
                     R"("containers":[{"name":"c","image":"i")" + container_sc + "}]}}");
  EXPECT_TRUE(p) << p.error().message;
  return *p;
}

TEST(SeccompTest, ContainerThenPodThenTheNodeDefault) {
  using T = cri::SecurityProfile::Type;
  auto none = pod("", "");
  EXPECT_EQ(seccompFor(none, &none.spec.containers[0], "/r", false)->type, T::Unconfined);
  EXPECT_EQ(seccompFor(none, &none.spec.containers[0], "/r", true)->type, T::RuntimeDefault);
  auto pod_level = pod(R"("securityContext":{"seccompProfile":{"type":"RuntimeDefault"}},)", "");
  EXPECT_EQ(seccompFor(pod_level, &pod_level.spec.containers[0], "/r", false)->type,
            T::RuntimeDefault);
  EXPECT_EQ(seccompFor(pod_level, nullptr, "/r", false)->type, T::RuntimeDefault);
  auto override = pod(R"("securityContext":{"seccompProfile":{"type":"RuntimeDefault"}},)",
                      R"(,"securityContext":{"seccompProfile":{"type":"Unconfined"}})");
  EXPECT_EQ(seccompFor(override, &override.spec.containers[0], "/r", true)->type, T::Unconfined);
  EXPECT_FALSE(api::decodePod(
      R"({"metadata":{"name":"p"},"spec":{"securityContext":{"seccompProfile":{"type":"Strict"}},"containers":[]}})"));
  EXPECT_FALSE(api::decodePod(
      R"({"metadata":{"name":"p"},"spec":{"securityContext":{"seccompProfile":{"type":"Localhost"}},"containers":[]}})"));
}

TEST(SeccompTest, LocalhostProfilesAreCheckedBeforeUse) {
  testing::TempDir d;
  d.write("seccomp/deny-mkdir.json",
          R"({"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],
              "syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]})");
  d.write(
      "seccomp/typo.json",
      R"({"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdri"],"action":"SCMP_ACT_ERRNO"}]})");
  auto good = pod(
      "",
      R"(,"securityContext":{"seccompProfile":{"type":"Localhost","localhostProfile":"deny-mkdir.json"}})");
  auto r = seccompFor(good, &good.spec.containers[0], d.str(), false);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->type, cri::SecurityProfile::Type::Localhost);
  EXPECT_EQ(r->localhost_ref, d.str() + "/seccomp/deny-mkdir.json");
  auto typo = pod(
      "",
      R"(,"securityContext":{"seccompProfile":{"type":"Localhost","localhostProfile":"typo.json"}})");
  r = seccompFor(typo, &typo.spec.containers[0], d.str(), false);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("syscalls[0]: unknown syscall \"mkdri\""), std::string::npos)
      << r.error().message;
  auto missing = pod(
      "",
      R"(,"securityContext":{"seccompProfile":{"type":"Localhost","localhostProfile":"nope.json"}})");
  EXPECT_NE(seccompFor(missing, &missing.spec.containers[0], d.str(), false)
                .error()
                .message.find("cannot load"),
            std::string::npos);
  auto escape = pod(
      "",
      R"(,"securityContext":{"seccompProfile":{"type":"Localhost","localhostProfile":"../../etc/x"}})");
  EXPECT_FALSE(seccompFor(escape, &escape.spec.containers[0], d.str(), false));
}

TEST(SeccompTest, ProfileValidationTable) {
  struct Case {
    const char* profile;
    const char* error;  // "" = valid
  } cases[] = {
      {R"({"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"}]})",
       ""},
      {R"({"defaultAction":"SCMP_ACT_LOG"})", ""},
      {R"({"defaultAction":"SCMP_ACT_MAYBE"})", "defaultAction: unknown action \"SCMP_ACT_MAYBE\""},
      {R"({"syscalls":[]})", "defaultAction: required"},
      {R"({"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_Z80"]})",
       "unknown architecture \"SCMP_ARCH_Z80\""},
      {R"({"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"ALLOW"}]})",
       "syscalls[0].action: unknown action"},
      {R"({"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"action":"SCMP_ACT_ERRNO"}]})",
       "no syscall names"},
      {"not json", "not a JSON object"},
  };
  for (const auto& c : cases) {
    auto s = validateSeccompProfile(c.profile);
    if (std::string(c.error).empty()) {
      EXPECT_TRUE(s) << c.profile << ": " << s.error().message;
    } else {
      ASSERT_FALSE(s) << c.profile;
      EXPECT_NE(s.error().message.find(c.error), std::string::npos) << s.error().message;
    }
  }
}

}  // namespace
}  // namespace nodelet::agent
