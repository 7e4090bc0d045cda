// Confinement end to end with real containerd and runc: seccomp (a Localhost profile denying
// mkdir, a bad profile refused with the reason, RuntimeDefault), runAsUser, and a memory limit that
// kills a hog with OOMKilled.
#include <gtest/gtest.h>

#include <fstream>

#include "tests/e2e/nodelet_process.h"

namespace nodelet::e2e {
namespace {

using std::chrono::seconds;

std::string image() { return env("NODELET_E2E_APP_IMAGE", "localhost/nodelet/busybox:1.35"); }
const std::string kIdle = "trap 'exit 0' TERM; while true; do sleep 1 & wait $!; done";

std::string pod(const std::string& name, const std::string& script,
                const std::string& container_extra, const std::string& spec_extra = "") {
  return "apiVersion: v1\nkind: Pod\nmetadata: {name: " + name + "}\nspec:\n" + spec_extra +
         "  containers:\n  - name: app\n    image: " + image() +
         "\n    command: [\"sh\", \"-c\", \"" + script + "\"]\n" + container_extra;
}

class SecurityE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    NODELET_REQUIRE_RIG();
    std::filesystem::create_directories(n_.root() / "seccomp");
    std::ofstream(n_.root() / "seccomp" / "deny-mkdir.json")
        << R"({"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]})";
    std::ofstream(n_.root() / "seccomp" / "typo.json")
        << R"({"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdri"],"action":"SCMP_ACT_ERRNO"}]})";
    n_.start();
  }
  void TearDown() override {
    if (HasFailure()) std::fprintf(stderr, "---- nodelet log ----\n%s\n", n_.log().c_str());
  }
  std::string log(const std::string& name) { return n_.containerLog(name); }
  bool logHas(const std::string& name, const std::string& needle) {
    return n_.containerLogHas(name, needle);
  }
  NodeletProcess n_;
};

TEST_F(SecurityE2eTest, ALocalhostProfileDenyingMkdirMakesMkdirFail) {
  n_.write("deny.yaml", pod("deny", "mkdir /tmp/x || echo mkdir-denied; " + kIdle,
                            "    securityContext:\n      seccompProfile: {type: Localhost, "
                            "localhostProfile: deny-mkdir.json}\n"));
  EXPECT_TRUE(logHas("deny", "mkdir-denied")) << log("deny");
  EXPECT_NE(log("deny").find("Operation not permitted"), std::string::npos) << log("deny");
}

TEST_F(SecurityE2eTest, ABadProfileIsRefusedWithTheReason) {
  n_.write("typo.yaml", pod("typo", kIdle,
                            "    securityContext:\n      seccompProfile: {type: Localhost, "
                            "localhostProfile: typo.json}\n"));
  ASSERT_TRUE(waitFor(
      [&] {
        auto c = n_.container("typo", "app");
        return c && c->contains("state") && (*c)["state"].contains("waiting") &&
               (*c)["state"]["waiting"].value("reason", "") == "CreateContainerError";
      },
      seconds(20)));
  EXPECT_NE((*n_.container("typo", "app"))["state"]["waiting"]["message"].get<std::string>().find(
                "unknown syscall \"mkdri\""),
            std::string::npos);
  EXPECT_TRUE(n_.containers().empty()) << "nothing half-created";
}

TEST_F(SecurityE2eTest, RuntimeDefaultAndRunAsUser) {
  n_.write("confined.yaml",
           pod("confined", "grep Seccomp: /proc/self/status; id -u; " + kIdle,
               "    securityContext: {runAsUser: 1234}\n",
               "  securityContext:\n    seccompProfile: {type: RuntimeDefault}\n"));
  EXPECT_TRUE(logHas("confined", "1234")) << log("confined");
  const std::string l = log("confined");
  EXPECT_NE(l.find("Seccomp:\t2"), std::string::npos) << "filter mode: " << l;
}

TEST_F(SecurityE2eTest, AMemoryLimitKillsAHogWithOOMKilled) {
  n_.write("hog.yaml", pod("hog", "tail /dev/zero", "    resources: {limits: {memory: 16Mi}}\n",
                           "  restartPolicy: Never\n"));
  ASSERT_TRUE(waitFor(
      [&] {
        auto c = n_.container("hog", "app");
        return c && c->contains("state") && (*c)["state"].contains("terminated");
      },
      seconds(30)));
  const auto t = (*n_.container("hog", "app"))["state"]["terminated"];
  EXPECT_EQ(t["reason"], "OOMKilled") << t;
  EXPECT_EQ(t["exitCode"], 137) << t;
}

TEST_F(SecurityE2eTest, FsGroupOwnsThePodsVolumes) {
  n_.write(
      "fsgroup.yaml",
      pod("fsgroup",
          "stat -c 'data=%g' /data; stat -L -c 'info=%g' /info/name; cat /info/name; echo; "
          "touch /data/f && stat -c 'file=%g' /data/f; id -G; " +
              kIdle,
          "    securityContext: {runAsUser: 1000}\n"
          "    volumeMounts: [{name: data, mountPath: /data}, {name: info, mountPath: /info}]\n",
          "  securityContext: {fsGroup: 2000}\n"
          "  volumes:\n  - {name: data, emptyDir: {}}\n"
          "  - {name: info, downwardAPI: {items: [{path: name, fieldRef: {fieldPath: "
          "metadata.name}}]}}\n"));
  ASSERT_TRUE(logHas("fsgroup", "file=")) << log("fsgroup");
  const std::string l = log("fsgroup");
  EXPECT_NE(l.find("data=2000"), std::string::npos) << l;
  EXPECT_NE(l.find("info=2000"), std::string::npos) << l;
  EXPECT_NE(l.find("file=2000"), std::string::npos) << "setgid keeps new files in the group: " << l;
  EXPECT_NE(l.find("fsgroup-" + n_.node()), std::string::npos) << l;
}

}  // namespace
}  // namespace nodelet::e2e
