// Capacity and allocatable as the kubelet computes them, and the runtime's readiness in its words.
#include "agent/node_facts.h"

#include <gtest/gtest.h>

#include "tests/common/simulated_clock.h"
#include "tests/fakes/fake_runtime_service.h"

namespace nodelet::agent {
namespace {

TEST(NodeFactsTest, QuantitiesInCanonicalForm) {
  EXPECT_EQ(formatBytes(0), "0");
  EXPECT_EQ(formatBytes(24684084LL * 1024), "24684084Ki");
  EXPECT_EQ(formatBytes(1LL << 30), "1Gi");
  EXPECT_EQ(formatBytes(265142110657), "265142110657");
  EXPECT_EQ(formatCpuMilli(2000), "2");
  EXPECT_EQ(formatCpuMilli(1500), "1500m");
}

// The recorded kubelet's node: 2 CPUs, 24684084Ki of memory, evictionHard memory.available
// 100Mi and nodefs.available 2 %.
TEST(NodeFactsTest, AllocatableIsCapacityMinusReservationsAndThresholds) {
  Config cfg;
  cfg.eviction_hard = {{"memory.available", "100Mi"}, {"nodefs.available", "2%"}};
  MachineFacts m;
  m.cpu_milli = 2000;
  m.memory_bytes = 24684084LL * 1024;
  m.storage_bytes = 264212084LL * 1024;
  m.hugepages = {{"2Mi", 0}, {"1Gi", 0}};
  m.hostname = "peer";
  auto f = buildNodeFacts(cfg, "peer", "10.0.0.5", m, {"containerd://1.6.20", "", {}});
  ASSERT_TRUE(f) << f.error().message;
  EXPECT_EQ(f->capacity.at("memory"), "24684084Ki");
  EXPECT_EQ(f->allocatable.at("memory"), "24581684Ki");
  EXPECT_EQ(f->capacity.at("ephemeral-storage"), "264212084Ki");
  EXPECT_EQ(f->allocatable.at("ephemeral-storage"), "265142110657");
  EXPECT_EQ(f->capacity.at("hugepages-2Mi"), "0");
  EXPECT_EQ(f->capacity.at("pods"), "110");
  EXPECT_EQ(f->node_info.at("containerRuntimeVersion"), "containerd://1.6.20");
  EXPECT_EQ(f->addresses[0], (std::pair<std::string, std::string>{"InternalIP", "10.0.0.5"}));

  cfg.system_reserved = {{"cpu", "500m"}, {"memory", "1Gi"}};
  cfg.kube_reserved = {{"cpu", "250m"}};
  m.hugepages = {{"2Mi", 512LL << 20}};
  f = buildNodeFacts(cfg, "peer", "", m, {});
  ASSERT_TRUE(f);
  EXPECT_EQ(f->allocatable.at("cpu"), "1250m");
  // 24684084Ki - 1Gi - 100Mi - 512Mi of hugepages
  EXPECT_EQ(f->allocatable.at("memory"),
            formatBytes(24684084LL * 1024 - (1LL << 30) - (100LL << 20) - (512LL << 20)));
  EXPECT_EQ(f->capacity.at("hugepages-2Mi"), "512Mi");

  cfg.system_reserved = {{"memory", "lots"}};
  auto bad = buildNodeFacts(cfg, "peer", "", m, {});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("systemReserved.memory"), std::string::npos);
}

TEST(NodeFactsTest, RuntimeReadinessInTheKubeletsWords) {
  testing::SimulatedClock clock;
  testing::FakeRuntimeService rt(clock);
  testing::FakeImageService images;
  images.addImage("localhost/nodelet/busybox:1.35");
  auto r = readRuntimeFacts(rt, images, 50);
  EXPECT_EQ(r.not_ready, "");
  ASSERT_EQ(r.images.size(), 1u);
  EXPECT_EQ(r.images[0].names[0], "localhost/nodelet/busybox:1.35");
  rt.setNetworkReady(false);
  r = readRuntimeFacts(rt, images, 50);
  EXPECT_NE(r.not_ready.find("container runtime network not ready: NetworkReady=false reason:"),
            std::string::npos)
      << r.not_ready;
  EXPECT_EQ(kube::runtimeVersionString("containerd", "1.6.20~ds1"), "containerd://1.6.20");
  EXPECT_EQ(kube::runtimeVersionString("containerd", "v1.7.2"), "containerd://1.7.2");
}

}  // namespace
}  // namespace nodelet::agent
