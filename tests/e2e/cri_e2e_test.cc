// The CRI client against the real containerd of the rig: sandbox with CNI networking, a busybox
// container, status and pod IP, ExecSync, the CRI-format log file, stop and removal, typed errors,
// and a containerd restart under the client.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "cri/runtime_service.h"
#include "tests/e2e/e2e_env.h"

namespace nodelet::e2e {
namespace {

namespace fs = std::filesystem;

class CriE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    NODELET_REQUIRE_RIG();
    cri::GrpcOptions o;
    o.endpoint = env("NODELET_E2E_CRI_ENDPOINT");
    o.request_timeout = std::chrono::seconds(30);
    auto s = cri::connectGrpc(o, o);
    ASSERT_TRUE(s.has_value()) << s.error().message;
    rt_ = std::move(s->runtime);
    img_ = std::move(s->image);
    uid_ = "e2e-" + randomSuffix();
    log_dir_ = fs::path("/var/log/nodelet-e2e") / ("default_cri-" + uid_ + "_" + uid_);
    fs::create_directories(log_dir_);
  }

  void TearDown() override {
    if (!rt_) return;
    // Remove whatever this test created, even when it failed half-way.
    auto items = rt_->listPodSandbox({.label_selector = {{"nodelet-e2e-uid", uid_}}});
    if (items) {
      for (const auto& s : *items) {
        (void)rt_->stopPodSandbox(s.id);
        (void)rt_->removePodSandbox(s.id);
      }
    }
    fs::remove_all(log_dir_);
  }

  cri::PodSandboxConfig sandboxConfig() {
    cri::PodSandboxConfig c;
    c.metadata = {"cri-" + uid_, uid_, "default", 0};
    c.hostname = "cri-" + uid_;
    c.log_directory = log_dir_.string();
    c.labels = {{"nodelet-e2e-uid", uid_}};
    c.cgroup_parent = env("NODELET_E2E_CGROUP_PARENT", "/nodelet-rig") + "/pod" + uid_;
    c.dns_config = cri::DnsConfig{{"127.0.0.53"}, {"example.test"}, {"ndots:5"}};
    return c;
  }

  cri::ContainerConfig appConfig(std::vector<std::string> cmd) {
    cri::ContainerConfig c;
    c.name = "app";
    c.image = env("NODELET_E2E_APP_IMAGE", "localhost/nodelet/busybox:1.35");
    c.command = std::move(cmd);
    c.envs = {{"GREETING", "hello-from-nodelet"}};
    c.labels = {{"nodelet-e2e-uid", uid_}};
    c.log_path = "app/0.log";
    return c;
  }

  cri::RuntimeServicePtr rt_;
  cri::ImageServicePtr img_;
  std::string uid_;
  fs::path log_dir_;
};

TEST_F(CriE2eTest, VersionAndStatus) {
  auto v = rt_->version();
  ASSERT_TRUE(v) << v.error().message;
  EXPECT_EQ(v->runtime_name, "containerd");
  EXPECT_EQ(v->runtime_api_version, "v1");
  auto s = rt_->status(false);
  ASSERT_TRUE(s) << s.error().message;
  ASSERT_NE(s->condition("RuntimeReady"), nullptr);
  EXPECT_TRUE(s->condition("RuntimeReady")->status);
  ASSERT_NE(s->condition("NetworkReady"), nullptr);
  EXPECT_TRUE(s->condition("NetworkReady")->status) << s->condition("NetworkReady")->message;
}

TEST_F(CriE2eTest, ImagesPresentAndAbsent) {
  auto present = img_->imageStatus(env("NODELET_E2E_APP_IMAGE", "localhost/nodelet/busybox:1.35"));
  ASSERT_TRUE(present) << present.error().message;
  ASSERT_TRUE(present->has_value());
  EXPECT_TRUE((*present)->id.starts_with("sha256:"));
  auto absent = img_->imageStatus("localhost/nodelet/does-not-exist:0");
  ASSERT_TRUE(absent) << absent.error().message;
  EXPECT_FALSE(absent->has_value());
  auto list = img_->listImages();
  ASSERT_TRUE(list);
  EXPECT_GE(list->size(), 2u);
  auto fsinfo = img_->imageFsInfo();
  ASSERT_TRUE(fsinfo) << fsinfo.error().message;
  EXPECT_FALSE(fsinfo->empty());
}

TEST_F(CriE2eTest, PodLifecycleWithNetworkExecAndLogs) {
  const auto sbc = sandboxConfig();
  auto sid = rt_->runPodSandbox(sbc, "");
  ASSERT_TRUE(sid) << sid.error().message;

  auto sst = rt_->podSandboxStatus(*sid, true);
  ASSERT_TRUE(sst) << sst.error().message;
  EXPECT_EQ(sst->state, cri::SandboxState::Ready);
  EXPECT_EQ(sst->metadata.uid, uid_);
  // The pod got an address from the rig's CNI network (host-local IPAM on the pod CIDR).
  const std::string cidr = env("NODELET_E2E_POD_CIDR", "10.86.0.0/16");
  EXPECT_TRUE(sst->ip.starts_with(cidr.substr(0, cidr.find(".0.0/")) + ".")) << sst->ip;
  EXPECT_FALSE(sst->info.empty()) << "verbose status carries runtime info";

  auto cid = rt_->createContainer(
      *sid, appConfig({"/bin/sh", "-c", "echo $GREETING; echo to-stderr >&2; exec /pause"}), sbc);
  ASSERT_TRUE(cid) << cid.error().message;
  ASSERT_TRUE(rt_->startContainer(*cid));

  auto cst = rt_->containerStatus(*cid, false);
  ASSERT_TRUE(cst) << cst.error().message;
  EXPECT_EQ(cst->state, cri::ContainerState::Running);
  EXPECT_EQ(cst->name, "app");
  EXPECT_GT(cst->started_at, 0);
  EXPECT_EQ(cst->labels.at("nodelet-e2e-uid"), uid_);
  EXPECT_EQ(cst->log_path, (log_dir_ / "app/0.log").string());

  auto listed = rt_->listContainers({.pod_sandbox_id = *sid});
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].id, *cid);

  auto ex = rt_->execSync(*cid, {"echo", "hi"}, std::chrono::seconds(5));
  ASSERT_TRUE(ex) << ex.error().message;
  EXPECT_EQ(ex->exit_code, 0);
  EXPECT_EQ(ex->stdout_, "hi\n");
  auto ex3 = rt_->execSync(*cid, {"sh", "-c", "echo oops >&2; exit 3"}, std::chrono::seconds(5));
  ASSERT_TRUE(ex3) << ex3.error().message;
  EXPECT_EQ(ex3->exit_code, 3);
  EXPECT_EQ(ex3->stderr_, "oops\n");
  // A command that outlives its timeout is a typed DeadlineExceeded, not an exit code.
  auto slow = rt_->execSync(*cid, {"sleep", "5"}, std::chrono::seconds(1));
  ASSERT_FALSE(slow);
  EXPECT_EQ(slow.error().code, ErrorCode::DeadlineExceeded) << slow.error().message;

  // The log file is in CRI format: "<RFC3339Nano> <stream> <F|P> <line>".
  const fs::path log = log_dir_ / "app/0.log";
  std::string content;
  EXPECT_TRUE(waitForFileContaining(log.string(), "to-stderr", content)) << content;
  EXPECT_NE(content.find(" stdout F hello-from-nodelet\n"), std::string::npos) << content;
  EXPECT_NE(content.find(" stderr F to-stderr\n"), std::string::npos) << content;
  EXPECT_TRUE(rt_->reopenContainerLog(*cid));

  auto stats = rt_->containerStats(*cid);
  ASSERT_TRUE(stats) << stats.error().message;
  EXPECT_EQ(stats->id, *cid);
  auto url = rt_->exec({.container_id = *cid, .cmd = {"true"}});
  ASSERT_TRUE(url) << url.error().message;
  EXPECT_TRUE(url->starts_with("http://127.0.0.1:")) << *url;

  // containerd 1.6 has no evented PLEG: the answer is a typed Unimplemented.
  std::stop_source stop;
  auto ev =
      rt_->getContainerEvents([](const cri::ContainerEvent&) { return false; }, stop.get_token());
  if (!ev) {
    EXPECT_EQ(ev.error().code, ErrorCode::Unimplemented) << ev.error().message;
  }

  // /pause handles SIGTERM, so a stop returns quickly with a clean exit.
  ASSERT_TRUE(rt_->stopContainer(*cid, 10));
  cst = rt_->containerStatus(*cid, false);
  ASSERT_TRUE(cst);
  EXPECT_EQ(cst->state, cri::ContainerState::Exited);
  EXPECT_EQ(cst->exit_code, 0);
  ASSERT_TRUE(rt_->removeContainer(*cid));
  auto gone = rt_->containerStatus(*cid, false);
  ASSERT_FALSE(gone);

  ASSERT_TRUE(rt_->stopPodSandbox(*sid));
  ASSERT_TRUE(rt_->stopPodSandbox(*sid)) << "StopPodSandbox is idempotent";
  ASSERT_TRUE(rt_->removePodSandbox(*sid));
  auto sgone = rt_->podSandboxStatus(*sid, false);
  ASSERT_FALSE(sgone);
  EXPECT_EQ(sgone.error().code, ErrorCode::NotFound) << sgone.error().message;
}

TEST_F(CriE2eTest, SurvivesContainerdRestart) {
  const std::string rig = env("NODELET_E2E_RIG");
  if (rig.empty()) GTEST_SKIP() << "NODELET_E2E_RIG not set";
  auto sbc = sandboxConfig();
  auto sid = rt_->runPodSandbox(sbc, "");
  ASSERT_TRUE(sid) << sid.error().message;
  ASSERT_TRUE(rt_->version());

  // kill -9 containerd and start it again, under the same client and channel.
  ASSERT_EQ(runCommand(rig + " restart >/dev/null"), 0);
  EXPECT_TRUE(waitFor([&] { return rt_->version().has_value(); }, std::chrono::seconds(15)))
      << "the client did not reconnect to the restarted containerd";
  auto sst = rt_->podSandboxStatus(*sid, false);
  ASSERT_TRUE(sst) << sst.error().message;
  EXPECT_EQ(sst->state, cri::SandboxState::Ready) << "the sandbox survived the restart";
}

TEST_F(CriE2eTest, UnreachableRuntimeIsUnavailable) {
  cri::GrpcOptions o;
  o.endpoint = "unix:///run/nodelet-e2e-no-such.sock";
  o.request_timeout = std::chrono::seconds(2);
  auto s = cri::connectGrpc(o, o);
  ASSERT_TRUE(s);
  auto v = s->runtime->version();
  ASSERT_FALSE(v);
  EXPECT_TRUE(v.error().code == ErrorCode::Unavailable ||
              v.error().code == ErrorCode::DeadlineExceeded)
      << toString(v.error().code) << ": " << v.error().message;
}

}  // namespace
}  // namespace nodelet::e2e
