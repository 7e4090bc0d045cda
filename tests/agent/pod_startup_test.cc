// The pod startup SLI: creation to "all containers started" seen on a watch, minus image pulls;
// once per pod, only for pods the node had not acknowledged, never for terminal ones.
#include "agent/pod_startup.h"

#include <gtest/gtest.h>

#include "tests/common/pods.h"
#include "tests/common/simulated_clock.h"

namespace nodelet::agent {
namespace {

using std::chrono::milliseconds;

class PodStartupTest : public ::testing::Test {
 protected:
  PodStartupTest() {
    pod_ = testing::podFromYaml("  containers: [{name: app, image: x}, {name: side, image: y}]\n",
                                "web", "uid-1");
    pod_.metadata.creation_timestamp = clock_.systemNow();
  }
  api::PodStatus status(bool running) const {
    api::PodStatus s;
    s.phase = running ? "Running" : "Pending";
    s.start_time = clock_.systemNow();
    for (const char* name : {"app", "side"}) {
      api::ContainerStatus c;
      c.name = name;
      if (running)
        c.state.running = api::ContainerStateRunning{clock_.systemNow()};
      else
        c.state.waiting = api::ContainerStateWaiting{"ContainerCreating", ""};
      s.container_statuses.push_back(c);
    }
    return s;
  }
  api::Pod watched(const api::PodStatus& s) const {
    api::Pod p = pod_;
    p.status = s;
    return p;
  }

  testing::SimulatedClock clock_;
  PodStartupTracker tracker_{clock_};
  api::Pod pod_;
};

TEST_F(PodStartupTest, CreationToRunningOnTheWatchWithoutTheImagePull) {
  clock_.advance(milliseconds(100));
  tracker_.observedOnWatch(pod_);  // bound to the node, no status yet
  tracker_.statusUpdated("uid-1", status(false));
  clock_.advance(milliseconds(100));
  tracker_.imagePullStarted("uid-1");
  clock_.advance(milliseconds(2000));
  tracker_.imagePullFinished("uid-1");
  tracker_.observedOnWatch(watched(status(false)));
  clock_.advance(milliseconds(800));
  tracker_.statusUpdated("uid-1", status(true));  // t = 3.0 s
  EXPECT_EQ(tracker_.histograms().sli.count, 0u) << "not before the watch shows it";
  clock_.advance(milliseconds(500));
  tracker_.observedOnWatch(watched(status(true)));  // t = 3.5 s
  auto h = tracker_.histograms();
  ASSERT_EQ(h.sli.count, 1u);
  EXPECT_DOUBLE_EQ(h.total.sum, 3.5);
  EXPECT_DOUBLE_EQ(h.sli.sum, 1.5) << "3.5 s less the 2 s image pull";
  EXPECT_EQ(h.sli.buckets[2], 1u) << "le=2";
  // Once per pod.
  clock_.advance(milliseconds(500));
  tracker_.observedOnWatch(watched(status(true)));
  EXPECT_EQ(tracker_.histograms().sli.count, 1u);
}

TEST_F(PodStartupTest, PodsAlreadyAcknowledgedOrOnlyRunningOnTheWatchAreNotMeasured) {
  // A pod the node already started (a restarted nodelet sees its startTime): not measured.
  tracker_.observedOnWatch(watched(status(true)));
  tracker_.statusUpdated("uid-1", status(true));
  tracker_.observedOnWatch(watched(status(true)));
  EXPECT_EQ(tracker_.histograms().total.count, 0u);
  // A new pod whose watch says running before nodelet computed it (someone else's status):
  // nothing until nodelet's own status says so.
  api::Pod other = pod_;
  other.metadata.uid = "uid-2";
  tracker_.observedOnWatch(other);
  api::Pod running = other;
  running.status = status(true);
  tracker_.observedOnWatch(running);
  EXPECT_EQ(tracker_.histograms().total.count, 0u);
  // A pod that ended is dropped, and so is one removed from the node.
  tracker_.statusUpdated("uid-2", status(true));
  running.status.phase = "Succeeded";
  tracker_.observedOnWatch(running);
  running.status.phase = "Running";
  tracker_.observedOnWatch(running);
  EXPECT_EQ(tracker_.histograms().total.count, 0u);
}

TEST(PodStartupSloTest, StartedMeansEveryContainerRunningWithAStartTime) {
  api::PodStatus s;
  EXPECT_TRUE(allContainersStarted(s)) << "no container statuses: vacuously, as the kubelet";
  api::ContainerStatus c;
  c.state.running = api::ContainerStateRunning{};
  s.container_statuses.push_back(c);
  EXPECT_FALSE(allContainersStarted(s)) << "running without startedAt";
  s.container_statuses[0].state.running->started_at = SysTime{};
  EXPECT_TRUE(allContainersStarted(s));
}

}  // namespace
}  // namespace nodelet::agent
