// Registry credentials from imagePullSecrets: both Secret formats, the "auth" field, and the
// kubelet keyring's matching (hosts with globs, ports, path prefixes, Docker Hub's names).
#include "agent/registry_auth.h"

#include <gtest/gtest.h>

#include "agent/core/base64.h"

namespace nodelet::agent {
namespace {

std::map<std::string, std::string> dockerconfigjson(const std::string& auths) {
  return {{".dockerconfigjson", R"({"auths":{)" + auths + "}}"}};
}

std::vector<std::string> users(const RegistryKeyring& k, const std::string& image) {
  std::vector<std::string> out;
  for (const auto& a : k.lookup(image)) out.push_back(a.username);
  return out;
}

TEST(RegistryAuthTest, BothSecretFormatsAndTheAuthField) {
  RegistryKeyring k;
  ASSERT_TRUE(
      k.addSecret(dockerconfigjson(R"("registry.example.com":{"username":"u1","password":"p1"},)"
                                   R"("quay.example.com":{"auth":")" +
                                   base64Encode("u2:p:2") + R"("})")));
  ASSERT_TRUE(
      k.addSecret({{".dockercfg", R"({"legacy.example.com":{"username":"u3","password":"p3"}})"}}));
  auto a = k.lookup("registry.example.com/app:1");
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].username, "u1");
  EXPECT_EQ(a[0].password, "p1");
  EXPECT_EQ(a[0].server_address, "registry.example.com");
  auto b = k.lookup("quay.example.com/team/app");
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].username, "u2");
  EXPECT_EQ(b[0].password, "p:2") << "only the first colon separates";
  EXPECT_EQ(users(k, "legacy.example.com/x"), std::vector<std::string>{"u3"});
  EXPECT_TRUE(k.lookup("other.example.com/x").empty());

  for (const auto& bad : std::vector<std::map<std::string, std::string>>{
           {{".dockerconfigjson", "not json"}},
           {{".dockerconfigjson", R"({"registry":{}})"}},
           {{".dockercfg", "[]"}},
           {{"token", "x"}},
           dockerconfigjson(R"("r.example.com":{"auth":"bm9jb2xvbg=="})")})  // "nocolon"
    EXPECT_FALSE(RegistryKeyring().addSecret(bad));
}

TEST(RegistryAuthTest, TheKeyringsMatchingRules) {
  RegistryKeyring k;
  ASSERT_TRUE(k.addSecret(dockerconfigjson(R"("https://index.docker.io/v1/":{"username":"hub"},)"
                                           R"("*.example.com":{"username":"glob"},)"
                                           R"("registry.example.com:5000":{"username":"port"},)"
                                           R"("registry.example.com/team":{"username":"team"},)"
                                           R"("registry.example.com":{"username":"host"},)"
                                           R"("localhost:5000":{"username":"local"})")));
  struct Case {
    const char* image;
    std::vector<std::string> users;
  } cases[] = {
      // Docker Hub names use index.docker.io's credentials.
      {"busybox", {"hub"}},
      {"library/busybox:1.35", {"hub"}},
      {"someone/app", {"hub"}},
      {"docker.io/library/busybox", {"hub"}},
      // The most specific key first, then the host's, then the glob's.
      {"registry.example.com/team/app:2", {"team", "host", "glob"}},
      {"registry.example.com/other/app", {"host", "glob"}},
      // A port must be the same; a glob is one label.
      {"registry.example.com:5000/app", {"port"}},
      {"a.b.example.com/app", {}},
      {"cdn.example.com/app", {"glob"}},
      {"localhost:5000/app", {"local"}},
      {"localhost/app", {}},
      {"example.org/app", {}},
  };
  for (const auto& c : cases) EXPECT_EQ(users(k, c.image), c.users) << c.image;
}

}  // namespace
}  // namespace nodelet::agent
