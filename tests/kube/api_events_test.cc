// Events to the API server: the kubelet's shape, aggregation of repeats, the per-object spam
// filter, and no loss while the API server is away.
#include "agent/api_events.h"

#include <gtest/gtest.h>

#include "tests/kube/fixture.h"

namespace nodelet::agent {
namespace {

using nlohmann::json;

class ApiEventsTest : public kube::ApiFixture {
 protected:
  ObjectRef pod() { return {"Pod", "web", "default", "uid-1", "spec.containers{app}"}; }
  LocalEventRecorder local_{clock_};
};

TEST_F(ApiEventsTest, PostsTheKubeletsEventShape) {
  ApiEventRecorder rec(*client_, clock_, local_, "n1");
  rec.record(pod(), "Normal", "Started", "Started container app");
  rec.record({"Node", "n1", "", "n1", ""}, "Normal", "NodeReady",
             "Node n1 status is now: NodeReady");
  EXPECT_EQ(rec.flush(), 2);
  auto events = api_->list("events");
  ASSERT_EQ(events.size(), 2u);
  json ev;
  for (const auto& e : events)
    if (e["reason"] == "Started") ev = e;
  ASSERT_TRUE(ev.is_object());
  EXPECT_EQ(ev["metadata"]["namespace"], "default");
  EXPECT_EQ(ev["metadata"]["name"].get<std::string>().rfind("web.", 0), 0u);
  EXPECT_EQ(ev["involvedObject"]["fieldPath"], "spec.containers{app}");
  EXPECT_EQ(ev["involvedObject"]["uid"], "uid-1");
  EXPECT_EQ(ev["source"], (json{{"component", "kubelet"}, {"host", "n1"}}));
  EXPECT_EQ(ev["count"], 1);
  EXPECT_EQ(ev["firstTimestamp"], ev["lastTimestamp"]);
  for (const auto& e : events)
    if (e["reason"] == "NodeReady") {
      EXPECT_EQ(e["metadata"]["namespace"], "default");  // node events land in default
      EXPECT_EQ(e["involvedObject"]["uid"], "n1");
    }
  // Every event is also kept locally.
  EXPECT_EQ(local_.events().size(), 2u);
}

TEST_F(ApiEventsTest, RepeatsArePatchedWithACount) {
  ApiEventRecorder rec(*client_, clock_, local_, "n1");
  for (int i = 0; i < 3; ++i) {
    rec.record(pod(), "Warning", "BackOff", "Back-off restarting failed container app");
    clock_.advance(std::chrono::seconds(10));
  }
  EXPECT_EQ(rec.flush(), 3);
  auto events = api_->list("events");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["count"], 3);
  EXPECT_NE(events[0]["firstTimestamp"], events[0]["lastTimestamp"]);
  EXPECT_EQ(rec.posted(), 1u);
  EXPECT_EQ(rec.patched(), 2u);
  // A repeat whose event expired from the API server is posted anew.
  api_->remove("events", "default", events[0]["metadata"]["name"]);
  rec.record(pod(), "Warning", "BackOff", "Back-off restarting failed container app");
  EXPECT_EQ(rec.flush(), 1);
  EXPECT_EQ(api_->list("events").size(), 1u);
}

TEST_F(ApiEventsTest, OneObjectCannotFloodTheApiServer) {
  ApiEventRecorder rec(*client_, clock_, local_, "n1");
  for (int i = 0; i < 40; ++i)
    rec.record(pod(), "Normal", "Pulled", "message " + std::to_string(i));
  EXPECT_EQ(rec.flush(), 25);  // the burst
  clock_.advance(std::chrono::minutes(5));
  for (int i = 0; i < 5; ++i) rec.record(pod(), "Normal", "Pulled", "later " + std::to_string(i));
  EXPECT_EQ(rec.flush(), 1);               // refilled at one per 5 minutes
  EXPECT_EQ(local_.events().size(), 45u);  // nothing is lost locally
}

TEST_F(ApiEventsTest, EventsWaitForTheApiServer) {
  ApiEventRecorder rec(*client_, clock_, local_, "n1");
  api_->goDown();
  rec.record(pod(), "Normal", "Started", "Started container app");
  EXPECT_EQ(rec.flush(), 0);
  ASSERT_TRUE(api_->comeBack());
  EXPECT_EQ(rec.flush(), 1);
  EXPECT_EQ(api_->list("events").size(), 1u);
}

}  // namespace
}  // namespace nodelet::agent
