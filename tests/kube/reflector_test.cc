// The pod list+watch against the fake API server: initial list, events, bookmarks, re-watch
// after a dropped stream, relist after 410, garbage on the stream.
#include "agent/kube/reflector.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "tests/kube/fixture.h"

namespace nodelet::kube {
namespace {

using nlohmann::json;

json pod(const std::string& name, const std::string& node = "n1") {
  return {{"metadata", {{"name", name}, {"namespace", "default"}}},
          {"spec", {{"nodeName", node}, {"containers", {{{"name", "c"}, {"image", "busybox"}}}}}}};
}

class ReflectorTest : public ApiFixture {
 protected:
  std::unique_ptr<Reflector> make() {
    ReflectorOptions o;
    o.field_selector = "spec.nodeName=n1";
    return std::make_unique<Reflector>(*client_, clock_, store_, o,
                                       [this](const std::vector<json>& pods) {
                                         std::lock_guard g(mu_);
                                         ++changes_;
                                         names_.clear();
                                         for (const auto& p : pods)
                                           names_.insert(p["metadata"]["name"].get<std::string>());
                                       });
  }
  std::set<std::string> names() {
    std::lock_guard g(mu_);
    return names_;
  }
  // Bounded real-time wait for the watch to deliver (a real socket is involved).
  bool waitFor(const std::function<bool()>& done) {
    for (int i = 0; i < 3000; ++i) {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));  // NOLINT(real-time)
    }
    return done();
  }

  ObjectStore store_;
  std::mutex mu_;
  int changes_{0};
  std::set<std::string> names_;
};

TEST_F(ReflectorTest, ListsOnlyThisNodesPodsWithTheKubeletsQuery) {
  api_->create("pods", "default", pod("a"));
  api_->create("pods", "default", pod("elsewhere", "n2"));
  auto r = make();
  ASSERT_TRUE(r->list());
  EXPECT_EQ(names(), (std::set<std::string>{"a"}));
  EXPECT_EQ(r->resourceVersion(), api_->resourceVersion());
  auto lists = sent("GET", "/api/v1/pods");
  ASSERT_EQ(lists.size(), 1u);
  EXPECT_NE(lists[0].query.find("fieldSelector=spec.nodeName=n1"), std::string::npos)
      << lists[0].query;
  EXPECT_NE(lists[0].query.find("resourceVersion=0"), std::string::npos) << lists[0].query;
  auto got = store_.get("default", "a");
  ASSERT_TRUE(got);
  EXPECT_EQ((*got)["kind"], "Pod");
}

TEST_F(ReflectorTest, WatchAppliesEventsAndSurvivesDropsGarbageAndExpiry) {
  api_->create("pods", "default", pod("a"));
  auto r = make();
  std::jthread t([&](std::stop_token st) { r->run(st); });
  ASSERT_TRUE(
      waitFor([&] { return names() == std::set<std::string>{"a"} && api_->openWatches() == 1; }));
  auto w = sent("GET", "/api/v1/pods");
  ASSERT_EQ(w.size(), 2u);
  EXPECT_NE(w[1].query.find("watch=true"), std::string::npos);
  EXPECT_NE(w[1].query.find("allowWatchBookmarks=true"), std::string::npos);
  EXPECT_NE(w[1].query.find("timeoutSeconds="), std::string::npos);

  api_->create("pods", "default", pod("b"));
  ASSERT_TRUE(waitFor([&] { return names().size() == 2; }));
  api_->remove("pods", "default", "a", 0);
  ASSERT_TRUE(waitFor([&] { return names() == std::set<std::string>{"b"}; }));

  // A dropped stream: re-watched from the last version, nothing missed, no relist.
  api_->dropWatches();
  api_->create("pods", "default", pod("c"));
  ASSERT_TRUE(waitFor([&] { return names().size() == 2 && api_->openWatches() == 1; }));
  EXPECT_EQ(r->lists(), 1u);

  // Garbage on the stream: the watch ends and restarts; the process does not.
  api_->garbageOnWatches();
  api_->create("pods", "default", pod("d"));
  ASSERT_TRUE(waitFor([&] { return names().size() == 3; }));

  // 410: history is gone; the stream is dropped and the reflector lists again.
  const uint64_t lists_before = r->lists();
  api_->compact();
  api_->create("pods", "default", pod("e"));
  api_->compact();
  api_->dropWatches();
  ASSERT_TRUE(waitFor([&] { return names().size() == 4; }));
  t.request_stop();
  t.join();
  EXPECT_GE(r->lists(), lists_before);
  EXPECT_EQ(names(), (std::set<std::string>{"b", "c", "d", "e"}));
}

TEST_F(ReflectorTest, ExpiredWatchRelists) {
  api_->create("pods", "default", pod("a"));
  auto r = make();
  ASSERT_TRUE(r->list());
  api_->create("pods", "default", pod("b"));
  api_->compact();  // the list's version is now too old
  auto relist = r->watch({});
  ASSERT_TRUE(relist) << relist.error().message;
  EXPECT_TRUE(*relist);
  ASSERT_TRUE(r->list());
  EXPECT_EQ(names(), (std::set<std::string>{"a", "b"}));
}

TEST_F(ReflectorTest, ServerErrorsAreRetriedWithBackoff) {
  api_->failNext("GET", "/api/v1/pods", 500, 4);
  api_->create("pods", "default", pod("a"));
  auto r = make();
  std::jthread t([&](std::stop_token st) { r->run(st); });
  ASSERT_TRUE(waitFor([&] { return names().size() == 1; }));
  t.request_stop();
  api_->dropWatches();
  t.join();
  EXPECT_GE(r->lists(), 2u);
}

}  // namespace
}  // namespace nodelet::kube
