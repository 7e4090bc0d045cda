// Pod workers: serial per UID, latest wins, kills are never lost, the lifecycle's edges, and
// static pod replacement waiting for the old pod.
#include "agent/pod_workers.h"

#include <gtest/gtest.h>

#include <condition_variable>

#include "tests/common/pods.h"
#include "tests/common/simulated_clock.h"

namespace nodelet::agent {
namespace {

using testing::podFromYaml;

// Records every call; can hold the first syncPod until released, so updates pile up behind it.
class FakePodSyncer final : public PodSyncer {
 public:
  SyncOutcome syncPod(const api::Pod& pod, SyncReason reason) override {
    std::unique_lock l(mu_);
    calls_.push_back("sync " + pod.metadata.uid + " " + pod.spec.containers[0].image);
    reasons_.emplace_back(toString(reason));
    cv_.notify_all();
    cv_.wait(l, [&] { return !hold_; });
    return next_outcome_;
  }
  Status syncTerminatingPod(const std::string& uid, const api::Pod*,
                            std::optional<int64_t> grace) override {
    std::lock_guard l(mu_);
    calls_.push_back("terminating " + uid + (grace ? " grace=" + std::to_string(*grace) : ""));
    if (fail_terminating_ > 0) {
      --fail_terminating_;
      return fail(ErrorCode::Unavailable, "runtime down");
    }
    return {};
  }
  Status syncTerminatedPod(const std::string& uid, const api::Pod*, bool remove) override {
    std::lock_guard l(mu_);
    calls_.push_back("terminated " + uid + (remove ? " remove" : " keep"));
    return {};
  }
  void podRestarted(const api::Pod& pod) override {
    std::lock_guard l(mu_);
    calls_.push_back("restarted " + pod.metadata.uid);
  }
  std::vector<std::string> calls() {
    std::lock_guard l(mu_);
    return calls_;
  }
  void hold() {
    std::lock_guard l(mu_);
    hold_ = true;
  }
  void waitForCalls(size_t n) {
    std::unique_lock l(mu_);
    cv_.wait(l, [&] { return calls_.size() >= n; });
  }
  void release() {
    std::lock_guard l(mu_);
    hold_ = false;
    cv_.notify_all();
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> calls_;
  std::vector<std::string> reasons_;  // of the syncPod calls, in order
  bool hold_{false};
  int fail_terminating_{0};
  SyncOutcome next_outcome_;
};

api::Pod pod(const std::string& uid, const std::string& image = "x:1",
             const std::string& name = "web") {
  return podFromYaml("  containers: [{name: app, image: \"" + image + "\"}]\n", name, uid);
}
PodUpdate sync(const api::Pod& p) {
  return {PodUpdate::Type::Sync, p.metadata.uid, p, std::nullopt, true};
}
PodUpdate create(const api::Pod& p) {
  return {PodUpdate::Type::Sync, p.metadata.uid, p, std::nullopt, true, SyncReason::Create};
}
PodUpdate kill(const std::string& uid, bool remove = true) {
  return {PodUpdate::Type::Kill, uid, std::nullopt, std::nullopt, remove};
}

class PodWorkersTest : public ::testing::Test {
 protected:
  FakePodSyncer syncer_;
  testing::SimulatedClock clock_;
  PodWorkers workers_{syncer_, clock_, 2};
};

TEST_F(PodWorkersTest, LatestUpdateWins) {
  syncer_.hold();
  workers_.updatePod(sync(pod("a", "x:1")));
  syncer_.waitForCalls(1);
  workers_.updatePod(sync(pod("a", "x:2")));
  workers_.updatePod(sync(pod("a", "x:3")));
  syncer_.release();
  workers_.waitIdle();
  EXPECT_EQ(syncer_.calls(), (std::vector<std::string>{"sync a x:1", "sync a x:3"}));
}

TEST_F(PodWorkersTest, TheSyncSaysWhyAndAMergeKeepsTheStrongestReason) {
  syncer_.hold();
  workers_.updatePod(create(pod("a", "x:1")));
  syncer_.waitForCalls(1);
  PodUpdate update = sync(pod("a", "x:2"));
  update.reason = SyncReason::Update;
  workers_.updatePod(update);
  workers_.updatePod(sync(pod("a", "x:3")));  // merged into the pending update
  syncer_.release();
  workers_.waitIdle();
  workers_.updatePod(sync(pod("a", "x:3")));
  workers_.waitIdle();
  EXPECT_EQ(syncer_.reasons_, (std::vector<std::string>{"create", "update", "sync"}));
}

TEST_F(PodWorkersTest, KillIsNeverOverwrittenByUpdate) {
  syncer_.hold();
  workers_.updatePod(sync(pod("a")));
  syncer_.waitForCalls(1);
  workers_.updatePod(kill("a"));
  workers_.updatePod(sync(pod("a", "x:2")));
  syncer_.release();
  workers_.waitIdle();
  EXPECT_EQ(syncer_.calls(),
            (std::vector<std::string>{"sync a x:1", "terminating a", "terminated a remove"}));
  EXPECT_FALSE(workers_.known("a")) << "finished workers are forgotten";
}

TEST_F(PodWorkersTest, ATerminatingPodDoesNotSyncAgain) {
  syncer_.fail_terminating_ = 1;
  workers_.updatePod(sync(pod("a")));
  workers_.waitIdle();
  workers_.updatePod(kill("a"));
  workers_.waitIdle();
  EXPECT_EQ(workers_.state("a"), PodWorkerState::Terminating);
  workers_.updatePod(sync(pod("a", "x:9")));
  workers_.waitIdle();
  // The failed termination is retried one second later.
  clock_.advance(std::chrono::seconds(1));
  workers_.tick();
  workers_.waitIdle();
  EXPECT_EQ(syncer_.calls(), (std::vector<std::string>{"sync a x:1", "terminating a",
                                                       "terminating a", "terminated a remove"}));
}

TEST_F(PodWorkersTest, APodAddedAgainWhileBeingRemovedStartsAfreshOnceRemoved) {
  // A static pod's manifest deleted and put back unchanged: same content, same UID.
  syncer_.fail_terminating_ = 1;
  workers_.updatePod(create(pod("a")));
  workers_.waitIdle();
  workers_.updatePod(kill("a"));
  workers_.waitIdle();
  ASSERT_EQ(workers_.state("a"), PodWorkerState::Terminating);
  workers_.updatePod(create(pod("a")));
  workers_.updatePod(sync(pod("a")));  // a resync changes nothing
  workers_.waitIdle();
  clock_.advance(std::chrono::seconds(1));
  workers_.tick();
  workers_.waitIdle();
  EXPECT_EQ(syncer_.calls(),
            (std::vector<std::string>{"sync a x:1", "terminating a", "terminating a",
                                      "terminated a remove", "restarted a", "sync a x:1"}));
  EXPECT_EQ(workers_.state("a"), PodWorkerState::Syncing);
  // Added back before its kill was even taken up: the same.
  syncer_.hold();
  workers_.updatePod(sync(pod("a", "x:2")));
  syncer_.waitForCalls(7);
  workers_.updatePod(kill("a"));
  workers_.updatePod(create(pod("a", "x:2")));
  syncer_.release();
  workers_.waitIdle();
  auto calls = syncer_.calls();
  EXPECT_EQ(std::vector<std::string>(calls.begin() + 6, calls.end()),
            (std::vector<std::string>{"sync a x:2", "terminating a", "terminated a remove",
                                      "restarted a", "sync a x:2"}));
}

TEST_F(PodWorkersTest, ANewPodOfTheSameNameWaitsForTheOldOne) {
  syncer_.fail_terminating_ = 1;
  workers_.updatePod(sync(pod("old")));
  workers_.waitIdle();
  workers_.updatePod(kill("old"));
  workers_.updatePod(sync(pod("new")));
  workers_.waitIdle();
  auto calls = syncer_.calls();
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "sync new x:1"), 0)
      << "old is still terminating";
  clock_.advance(std::chrono::seconds(1));
  workers_.tick();
  workers_.waitIdle();
  EXPECT_EQ(syncer_.calls(),
            (std::vector<std::string>{"sync old x:1", "terminating old", "terminating old",
                                      "terminated old remove", "sync new x:1"}));
}

TEST_F(PodWorkersTest, PodsOfOtherNamesDoNotWait) {
  syncer_.fail_terminating_ = 1;
  workers_.updatePod(sync(pod("old")));
  workers_.waitIdle();
  workers_.updatePod(kill("old"));
  workers_.updatePod(sync(pod("other", "x:1", "db")));
  workers_.waitIdle();
  auto calls = syncer_.calls();
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "sync other x:1"), 1);
}

TEST_F(PodWorkersTest, ACompletedPodIsTerminatedButKept) {
  syncer_.next_outcome_.pod_done = true;
  workers_.updatePod(sync(pod("a")));
  workers_.waitIdle();
  EXPECT_EQ(syncer_.calls(),
            (std::vector<std::string>{"sync a x:1", "terminating a", "terminated a keep"}));
  EXPECT_EQ(workers_.state("a"), PodWorkerState::Terminated);
  // Removing the manifest later removes it for good.
  workers_.updatePod(kill("a"));
  workers_.waitIdle();
  EXPECT_EQ(syncer_.calls().back(), "terminated a remove");
  EXPECT_FALSE(workers_.known("a"));
}

TEST_F(PodWorkersTest, RequeueAfterIsHonouredOnTheClock) {
  syncer_.next_outcome_.requeue_after = std::chrono::seconds(10);
  workers_.updatePod(sync(pod("a")));
  workers_.waitIdle();
  EXPECT_EQ(workers_.tick(), clock_.monotonicNow() + std::chrono::seconds(10));
  clock_.advance(std::chrono::seconds(9));
  workers_.tick();
  workers_.waitIdle();
  EXPECT_EQ(syncer_.calls().size(), 1u);
  clock_.advance(std::chrono::seconds(1));
  workers_.tick();
  workers_.waitIdle();
  EXPECT_EQ(syncer_.calls().size(), 2u);
}

TEST(PodWorkerStateTest, TransitionTable) {
  using P = PodWorkerState;
  EXPECT_TRUE(canTransition(P::Syncing, P::Terminating));
  EXPECT_TRUE(canTransition(P::Terminating, P::Terminated));
  EXPECT_TRUE(canTransition(P::Terminated, P::Finished));
  EXPECT_FALSE(canTransition(P::Syncing, P::Terminated));
  EXPECT_FALSE(canTransition(P::Terminating, P::Syncing));
  EXPECT_FALSE(canTransition(P::Terminated, P::Syncing));
  EXPECT_FALSE(canTransition(P::Finished, P::Syncing));
  EXPECT_EQ(toString(P::Terminating), "Terminating");
}

}  // namespace
}  // namespace nodelet::agent
