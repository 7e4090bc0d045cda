// The CNI configuration nodelet writes: version negotiation, the conflist, leaving a user's own
// CNI alone, atomic rewrites, and the reclaiming of leaked addresses. Real files in a temp dir;
// plugin VERSION answers scripted (and the real Debian plugins when installed).
#include "network/cni.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <utime.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/common/temp_dir.h"

namespace nodelet::network {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

class ScriptedVersions final : public PluginVersions {
 public:
  std::map<std::string, std::vector<std::string>> answers;  // plugin name -> versions
  Result<std::vector<std::string>> supported(const std::string& binary) override {
    auto it = answers.find(fs::path(binary).filename().string());
    if (it == answers.end()) return std::vector<std::string>{"0.3.0", "0.3.1", "0.4.0", "1.0.0"};
    return it->second;
  }
};

class CniTest : public ::testing::Test {
 protected:
  CniTest() {
    for (const auto& p : requiredPlugins()) {
      const auto path = dir_.write("bin/" + p, "#!/bin/sh\n");
      fs::permissions(path, fs::perms::owner_all);
    }
    o_.conf_dir = dir_.str() + "/net.d";
    o_.bin_dirs = {dir_.str() + "/nowhere", dir_.str() + "/bin"};
    o_.ipam_dir = dir_.str() + "/networks";
    o_.cache_dir = dir_.str() + "/results";
    o_.network = "nodelet";
    o_.bridge = "nodelet0";
  }
  std::string read(const std::string& rel) {
    std::ifstream in(dir_.path() / rel);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  testing::TempDir dir_;
  CniOptions o_;
  ScriptedVersions versions_;
};

TEST_F(CniTest, ChoosesTheHighestVersionEveryPluginSpeaks) {
  EXPECT_EQ(*chooseCniVersion({{"bridge", {"0.3.1", "0.4.0", "1.0.0"}},
                               {"portmap", {"0.3.1", "0.4.0", "1.0.0", "1.1.0"}}}),
            "1.0.0");
  EXPECT_EQ(
      *chooseCniVersion({{"bridge", {"0.3.1", "0.4.0", "1.0.0"}}, {"portmap", {"0.3.1", "0.4.0"}}}),
      "0.4.0");
  auto none = chooseCniVersion({{"bridge", {"1.1.0"}}, {"portmap", {"0.2.0"}}});
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("bridge: 1.1.0"), std::string::npos);
}

TEST_F(CniTest, WritesTheBridgeHostLocalPortmapConflist) {
  CniConfig cni(o_, versions_);
  std::string msg;
  auto r = cni.ensure({"10.244.1.0/24"}, &msg);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, CniConfig::Outcome::Written);
  json c = json::parse(read("net.d/10-nodelet.conflist"));
  EXPECT_EQ(c["cniVersion"], "1.0.0");
  EXPECT_EQ(c["name"], "nodelet");
  ASSERT_EQ(c["plugins"].size(), 2u);
  const json& b = c["plugins"][0];
  EXPECT_EQ(b["type"], "bridge");
  EXPECT_EQ(b["bridge"], "nodelet0");
  EXPECT_EQ(b["isGateway"], true);
  EXPECT_EQ(b["ipMasq"], true);
  EXPECT_EQ(b["hairpinMode"], true);
  EXPECT_EQ(b["ipam"]["type"], "host-local");
  EXPECT_EQ(b["ipam"]["ranges"], json::parse(R"([[{"subnet":"10.244.1.0/24"}]])"));
  EXPECT_EQ(b["ipam"]["routes"], json::parse(R"([{"dst":"0.0.0.0/0"}])"));
  EXPECT_EQ(c["plugins"][1],
            json::parse(R"({"type":"portmap","capabilities":{"portMappings":true}})"));
  EXPECT_TRUE(writtenByNodelet(read("net.d/10-nodelet.conflist")));
  // No temp file left behind; the same CIDR again changes nothing.
  EXPECT_FALSE(fs::exists(dir_.path() / "net.d/.10-nodelet.conflist.tmp"));
  EXPECT_EQ(*cni.ensure({"10.244.1.0/24"}), CniConfig::Outcome::Unchanged);
  // A new CIDR (dual stack here) rewrites it.
  EXPECT_EQ(*cni.ensure({"10.244.2.0/24", "fd00:10:244:2::/64"}), CniConfig::Outcome::Written);
  c = json::parse(read("net.d/10-nodelet.conflist"));
  EXPECT_EQ(c["plugins"][0]["ipam"]["ranges"].size(), 2u);
  EXPECT_EQ(c["plugins"][0]["ipam"]["routes"][1]["dst"], "::/0");
}

TEST_F(CniTest, AUsersOwnCniIsLeftAloneUnlessForced) {
  dir_.write("net.d/10-flannel.conflist",
             R"({"cniVersion":"0.3.1","name":"cbr0","plugins":[{"type":"flannel"}]})");
  CniConfig cni(o_, versions_);
  std::string msg;
  auto r = cni.ensure({"10.244.1.0/24"}, &msg);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, CniConfig::Outcome::Foreign);
  EXPECT_NE(msg.find("10-flannel.conflist was not written by nodelet"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(dir_.path() / "net.d/10-nodelet.conflist"));
  o_.force = true;
  CniConfig forced(o_, versions_);
  msg.clear();
  EXPECT_EQ(*forced.ensure({"10.244.1.0/24"}, &msg), CniConfig::Outcome::Written);
  EXPECT_TRUE(fs::exists(dir_.path() / "net.d/10-flannel.conflist.disabled-by-nodelet")) << msg;
  EXPECT_TRUE(fs::exists(dir_.path() / "net.d/10-nodelet.conflist"));
}

TEST_F(CniTest, MissingPluginsAndBadCidrsAreNamed) {
  fs::remove(dir_.path() / "bin/portmap");
  fs::remove(dir_.path() / "bin/loopback");
  CniConfig cni(o_, versions_);
  auto r = cni.ensure({"10.244.1.0/24"});
  ASSERT_FALSE(r);
  EXPECT_NE(
      r.error().message.find(": portmap, loopback (Debian package containernetworking-plugins)"),
      std::string::npos)
      << r.error().message;
  for (const char* bad : {"10.244.1.0", "10.244.1.0/33", "banana/24", "10.0.0.0/31", "10.0.0.0/x"})
    EXPECT_FALSE(validateCidr(bad)) << bad;
  EXPECT_TRUE(validateCidr("fd00::/64"));
}

TEST_F(CniTest, LeakedReservationsOfGoneSandboxesAreReclaimed) {
  const std::string live(64, 'a'), gone(64, 'b'), young(64, 'c');
  dir_.write("networks/nodelet/10.244.1.2", live + "\r\neth0");
  dir_.write("networks/nodelet/10.244.1.3", gone + "\r\neth0");
  dir_.write("networks/nodelet/10.244.1.4", young + "\r\neth0");
  dir_.write("networks/nodelet/last_reserved_ip.0", "10.244.1.4");
  dir_.write("networks/nodelet/lock", "");
  dir_.write("results/nodelet-" + gone + "-eth0", "{}");
  dir_.write("results/other-" + gone + "-eth0", "{}");  // another network's: not ours to touch
  // Everything but `young` was written long ago.
  const time_t old = time(nullptr) - 3600;  // NOLINT(real-time): file times, set by the test
  for (const auto& f : {"networks/nodelet/10.244.1.2", "networks/nodelet/10.244.1.3"}) {
    utimbuf t{old, old};
    ::utime((dir_.path() / f).c_str(), &t);
  }
  utimbuf t{old, old};
  ::utime((dir_.path() / ("results/nodelet-" + gone + "-eth0")).c_str(), &t);
  CniConfig cni(o_, versions_);
  const SysTime now = SysTime(std::chrono::seconds(old + 3600));
  EXPECT_EQ(cni.reclaimLeaks({live}, now), 1);
  EXPECT_TRUE(fs::exists(dir_.path() / "networks/nodelet/10.244.1.2"));
  EXPECT_FALSE(fs::exists(dir_.path() / "networks/nodelet/10.244.1.3"));
  EXPECT_TRUE(fs::exists(dir_.path() / "networks/nodelet/10.244.1.4")) << "too young to be a leak";
  EXPECT_TRUE(fs::exists(dir_.path() / "networks/nodelet/last_reserved_ip.0"));
  EXPECT_FALSE(fs::exists(dir_.path() / ("results/nodelet-" + gone + "-eth0")));
  EXPECT_TRUE(fs::exists(dir_.path() / ("results/other-" + gone + "-eth0")));
}

// Debian's real plugins, when installed: they answer VERSION, and 1.0.0 is the most they speak.
TEST(CniPluginsTest, DebiansPluginsNegotiate100) {
  if (access("/usr/lib/cni/bridge", X_OK) != 0)
    GTEST_SKIP() << "containernetworking-plugins not installed";
  ExecPluginVersions exec;
  std::map<std::string, std::vector<std::string>> by;
  for (const char* p : {"bridge", "host-local", "portmap"}) {
    auto v = exec.supported(std::string("/usr/lib/cni/") + p);
    ASSERT_TRUE(v) << v.error().message;
    by[p] = *v;
  }
  EXPECT_EQ(*chooseCniVersion(by), "1.0.0");
}

}  // namespace
}  // namespace nodelet::network
