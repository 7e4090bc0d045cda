// The probe manager's rules with a simulated clock, probes run inline, results scripted.
#include "probes/probe_manager.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <deque>

#include "tests/common/simulated_clock.h"

namespace nodelet::probes {
namespace {

using std::chrono::seconds;

// Scripted results per probe kind (by handler: exec command[0] names the kind).
class ScriptedRunner final : public Runner {
 public:
  Outcome run(const api::Handler& h, const std::string&, const Endpoint&, Duration) override {
    const std::string key = h.exec->command.at(0);
    ++runs[key];
    auto& q = script[key];
    ProbeResult r = fallback;
    if (!q.empty()) {
      r = q.front();
      q.pop_front();
    }
    return {r, r == ProbeResult::Failure ? key + " failed" : ""};
  }
  std::map<std::string, std::deque<ProbeResult>> script;
  std::map<std::string, int> runs;
  ProbeResult fallback{ProbeResult::Success};
};

api::Probe probe(const std::string& kind, int period = 10, int failure = 3, int success = 1,
                 int delay = 0) {
  api::Probe p;
  p.handler.exec = api::ExecAction{{kind}};
  p.period_seconds = period;
  p.failure_threshold = failure;
  p.success_threshold = success;
  p.initial_delay_seconds = delay;
  return p;
}

class ProbeManagerTest : public ::testing::Test {
 protected:
  Target target(std::optional<api::Probe> live, std::optional<api::Probe> ready,
                std::optional<api::Probe> start = {}) {
    return {"uid", "web_default", "app",           "c1", clock_.monotonicNow(), live,
            ready, start,         {"10.0.0.1", {}}};
  }
  // Advances time in 1 s steps, ticking, for `secs` seconds.
  void run(int secs) {
    for (int i = 0; i < secs; ++i) {
      clock_.advance(seconds(1));
      mgr_.tick();
    }
  }
  std::vector<ProbeEvent> changes() {
    std::vector<ProbeEvent> out;
    for (const auto& e : events_)
      if (e.changed) out.push_back(e);
    return out;
  }
  testing::SimulatedClock clock_;
  ScriptedRunner runner_;
  std::vector<ProbeEvent> events_;
  Manager mgr_{runner_, clock_, [this](const ProbeEvent& e) { events_.push_back(e); }, 0, 42};
};

TEST_F(ProbeManagerTest, ReadinessStartsFalseAndFollowsItsProbe) {
  mgr_.add(target({}, probe("ready", 1)));
  EXPECT_FALSE(mgr_.ready("c1")) << "not ready before the first success";
  EXPECT_TRUE(mgr_.started("c1")) << "no startup probe";
  run(2);
  EXPECT_TRUE(mgr_.ready("c1"));
  runner_.script["ready"] = {ProbeResult::Failure, ProbeResult::Failure};
  run(2);
  EXPECT_TRUE(mgr_.ready("c1")) << "two failures are under the threshold of 3";
  runner_.fallback = ProbeResult::Failure;
  run(1);
  EXPECT_FALSE(mgr_.ready("c1"));
  ASSERT_EQ(changes().size(), 2u);
  EXPECT_EQ(changes()[1].result, ProbeResult::Failure);
  EXPECT_EQ(changes()[1].kind, Kind::Readiness);
}

TEST_F(ProbeManagerTest, SuccessThresholdNeedsConsecutiveSuccesses) {
  mgr_.add(target({}, probe("ready", 1, 3, 3)));
  runner_.script["ready"] = {ProbeResult::Success, ProbeResult::Success, ProbeResult::Failure,
                             ProbeResult::Success, ProbeResult::Success};
  run(5);  // one run per second: S S F S S
  EXPECT_FALSE(mgr_.ready("c1"));
  run(1);  // the third success in a row
  EXPECT_TRUE(mgr_.ready("c1"));
}

TEST_F(ProbeManagerTest, TheFirstRunIsJitteredWithinOnePeriod) {
  mgr_.add(target({}, probe("ready", 10)));
  auto next = mgr_.tick();
  ASSERT_TRUE(next);
  EXPECT_GE(*next, clock_.monotonicNow());
  EXPECT_LT(*next, clock_.monotonicNow() + seconds(10));
  run(10);
  EXPECT_EQ(runner_.runs["ready"], 1) << "then once per period";
}

TEST_F(ProbeManagerTest, InitialDelayIsHonoured) {
  mgr_.add(target({}, probe("ready", 1, 3, 1, 5)));
  run(4);
  EXPECT_EQ(runner_.runs["ready"], 0);
  run(2);
  EXPECT_GE(runner_.runs["ready"], 1);
}

TEST_F(ProbeManagerTest, StartupGatesLivenessAndReadiness) {
  mgr_.add(target(probe("live", 1), probe("ready", 1), probe("start", 1, 30)));
  runner_.script["start"] = {ProbeResult::Failure, ProbeResult::Failure, ProbeResult::Failure};
  run(3);
  EXPECT_EQ(runner_.runs["live"], 0);
  EXPECT_EQ(runner_.runs["ready"], 0);
  EXPECT_FALSE(mgr_.started("c1"));
  EXPECT_FALSE(mgr_.ready("c1"));
  run(3);
  EXPECT_TRUE(mgr_.started("c1"));
  EXPECT_GE(runner_.runs["live"], 1);
  EXPECT_GE(runner_.runs["ready"], 1);
  const int startups = runner_.runs["start"];
  run(5);
  EXPECT_EQ(runner_.runs["start"], startups) << "a startup probe that succeeded runs no more";
}

TEST_F(ProbeManagerTest, LivenessFailurePastTheThresholdIsReportedOnceThenHolds) {
  mgr_.add(target(probe("live", 1, 3), {}));
  runner_.fallback = ProbeResult::Failure;
  run(10);
  auto c = changes();
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].kind, Kind::Liveness);
  EXPECT_EQ(c[0].result, ProbeResult::Failure);
  EXPECT_EQ(c[0].output, "live failed");
  EXPECT_EQ(runner_.runs["live"], 3) << "held after the failure until the container is replaced";
  EXPECT_EQ(events_.size(), 3u) << "every failure is an event (Unhealthy)";
}

TEST_F(ProbeManagerTest, AStartupProbeThatNeverSucceedsFails) {
  mgr_.add(target({}, {}, probe("start", 1, 4)));
  runner_.fallback = ProbeResult::Failure;
  run(6);
  auto c = changes();
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].kind, Kind::Startup);
  EXPECT_EQ(c[0].result, ProbeResult::Failure);
}

TEST_F(ProbeManagerTest, AReadyContainerStaysReadyAcrossARestartOfNodelet) {
  mgr_.add(target({}, probe("ready", 1)));
  mgr_.seedReady("c1");
  EXPECT_TRUE(mgr_.ready("c1")) << "no flap to not-ready while the first probe is pending";
  runner_.fallback = ProbeResult::Failure;
  run(3);
  EXPECT_FALSE(mgr_.ready("c1")) << "until the probe says otherwise";
}

TEST_F(ProbeManagerTest, CountersPerContainerContinueAcrossARestartAndGoWithThePod) {
  mgr_.add(target({}, probe("ready", 1)));
  run(3);
  auto first = mgr_.containerCounters();
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].pod_name, "web");
  EXPECT_EQ(first[0].pod_namespace, "default");
  EXPECT_EQ(first[0].container, "app");
  EXPECT_EQ(first[0].kind, Kind::Readiness);
  const uint64_t before = first[0].counters.success;
  EXPECT_GE(before, 2u);
  // The container restarts (a new id, same pod and name): the series goes on.
  auto again = target({}, probe("ready", 1));
  again.container_id = "c2";
  mgr_.retain({"c1"});
  mgr_.add(again);
  mgr_.retain({"c2"});
  run(2);
  auto second = mgr_.containerCounters();
  ASSERT_EQ(second.size(), 1u);
  EXPECT_GT(second[0].counters.success, before);
  mgr_.retain({});
  EXPECT_TRUE(mgr_.containerCounters().empty()) << "the pod is gone";
}

TEST_F(ProbeManagerTest, ContainersWithoutProbesAreReadyAndRetainForgets) {
  EXPECT_TRUE(mgr_.ready("unknown"));
  mgr_.add(target({}, probe("ready", 1)));
  EXPECT_TRUE(mgr_.watching("c1"));
  mgr_.retain({});
  EXPECT_FALSE(mgr_.watching("c1"));
  run(3);
  EXPECT_EQ(runner_.runs["ready"], 0);
  EXPECT_EQ(mgr_.counters().size(), 0u);
}

// A runner whose probes run on "its own loop": start() keeps the completion for the test.
class AsyncRunner final : public Runner {
 public:
  Outcome run(const api::Handler&, const std::string&, const Endpoint&, Duration) override {
    ADD_FAILURE() << "a probe that can start() must not take a pool thread";
    return {};
  }
  bool start(const api::Handler&, const Endpoint&, Duration, Done& done) override {
    std::lock_guard g(mu);
    pending.push_back(std::move(done));
    cv.notify_all();
    return true;
  }
  // Waits (bounded) for the scheduler thread to start a probe.
  Done next() {
    std::unique_lock l(mu);
    cv.wait_for(l, seconds(10), [&] { return !pending.empty(); });  // NOLINT(real-time)
    if (pending.empty()) return nullptr;
    Done d = std::move(pending.front());
    pending.pop_front();
    return d;
  }
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Done> pending;
};

TEST(ProbeManagerAsyncTest, CompletionsApplyAndAManagerThatIsGoneIsNeverCalled) {
  testing::SimulatedClock clock;
  AsyncRunner runner;
  std::atomic<int> events{0};
  auto mgr = std::make_unique<Manager>(
      runner, clock, [&](const ProbeEvent&) { ++events; }, 1, 7);
  mgr->add({"uid",
            "web_default",
            "app",
            "c1",
            clock.monotonicNow(),
            {},
            probe("ready", 1),
            {},
            {"10.0.0.1", {}}});
  clock.advance(seconds(2));  // past the jittered first run
  auto first = runner.next();
  ASSERT_TRUE(first);
  first(Outcome{ProbeResult::Success, ""});
  EXPECT_TRUE(mgr->ready("c1")) << "a completion from the runner's loop is applied";
  EXPECT_EQ(events.load(), 1);
  clock.advance(seconds(2));
  auto late = runner.next();
  ASSERT_TRUE(late);
  mgr.reset();
  late(Outcome{ProbeResult::Failure, "late"});  // must neither crash nor reach the sink
  EXPECT_EQ(events.load(), 1);
}

}  // namespace
}  // namespace nodelet::probes
