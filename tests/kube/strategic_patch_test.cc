// Strategic-merge patches: the two-way diff nodelet sends and the apply the fake server does,
// table-driven and against the real kubelet's recorded patches (../shared/spec/recorded).
#include "agent/kube/strategic_patch.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace nodelet::kube {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

TEST(StrategicPatchTest, DiffOfConditionsMergesByTypeWithElementOrder) {
  json orig = {{"status",
                {{"conditions",
                  {{{"type", "Ready"}, {"status", "False"}, {"reason", "KubeletNotReady"}},
                   {{"type", "PodScheduled"}, {"status", "True"}}}}}}};
  json mod = orig;
  mod["status"]["conditions"][0] = {{"type", "Ready"}, {"status", "True"}};
  const json want = {
      {"status",
       {{"$setElementOrder/conditions", {{{"type", "Ready"}}, {{"type", "PodScheduled"}}}},
        {"conditions", {{{"type", "Ready"}, {"status", "True"}, {"reason", nullptr}}}}}}};
  EXPECT_EQ(twoWayMergePatch(orig, mod, PatchSchema::pod()), want);
}

TEST(StrategicPatchTest, AtomicListsAreSentWholeAndUnchangedObjectsNotAtAll) {
  json orig = {{"status",
                {{"phase", "Pending"},
                 {"containerStatuses", {{{"name", "a"}, {"ready", false}}, {{"name", "b"}}}}}}};
  json mod = orig;
  mod["status"]["containerStatuses"][0]["ready"] = true;
  EXPECT_EQ(twoWayMergePatch(orig, mod, PatchSchema::pod()),
            (json{{"status", {{"containerStatuses", mod["status"]["containerStatuses"]}}}}));
  EXPECT_TRUE(twoWayMergePatch(orig, orig, PatchSchema::pod()).empty());
}

TEST(StrategicPatchTest, RemovedKeysAndListElementsAreDeleted) {
  json orig = {
      {"status", {{"podIP", "10.0.0.1"}, {"podIPs", {{{"ip", "10.0.0.1"}}, {{"ip", "fd00::1"}}}}}}};
  json mod = {{"status", {{"podIPs", {{{"ip", "fd00::1"}}}}}}};
  json patch = twoWayMergePatch(orig, mod, PatchSchema::pod());
  EXPECT_EQ(patch["status"]["podIP"], nullptr);
  EXPECT_EQ(patch["status"]["podIPs"], (json{{{"$patch", "delete"}, {"ip", "10.0.0.1"}}}));
  json applied = orig;
  ASSERT_TRUE(applyStrategicMergePatch(applied, patch, PatchSchema::pod()));
  EXPECT_EQ(applied, mod);
}

TEST(StrategicPatchTest, NodeAddressesAreReplacedWhole) {
  json orig = {{"status", {{"addresses", {{{"type", "InternalIP"}, {"address", "10.0.0.1"}}}}}}};
  json mod = {{"status",
               {{"addresses",
                 {{{"type", "InternalIP"}, {"address", "10.0.0.2"}},
                  {{"type", "Hostname"}, {"address", "n"}}}}}}};
  json patch = twoWayMergePatch(orig, mod, PatchSchema::node());
  ASSERT_EQ(patch["status"]["addresses"].size(), 3u);
  EXPECT_EQ(patch["status"]["addresses"][2], (json{{"$patch", "replace"}}));
  ASSERT_TRUE(applyStrategicMergePatch(orig, patch, PatchSchema::node()));
  EXPECT_EQ(orig, mod);
}

TEST(StrategicPatchTest, ApplyKeepsElementsThePatchDoesNotMention) {
  // Conditions another controller owns survive a kubelet status patch.
  json server = {{"status",
                  {{"conditions",
                    {{{"type", "Ready"}, {"status", "False"}},
                     {{"type", "example.com/Gate"}, {"status", "True"}}}}}}};
  json patch = {{"status", {{"conditions", {{{"type", "Ready"}, {"status", "True"}}}}}}};
  ASSERT_TRUE(applyStrategicMergePatch(server, patch, PatchSchema::pod()));
  ASSERT_EQ(server["status"]["conditions"].size(), 2u);
  EXPECT_EQ(server["status"]["conditions"][0]["status"], "True");
  EXPECT_EQ(server["status"]["conditions"][1]["type"], "example.com/Gate");
}

TEST(StrategicPatchTest, MalformedPatchesAreErrorsNotCrashes) {
  json o = {{"status", {{"conditions", json::array()}}}};
  std::string err;
  EXPECT_FALSE(applyStrategicMergePatch(o, json::array(), PatchSchema::pod(), &err));
  EXPECT_FALSE(applyStrategicMergePatch(o, {{"status", {{"conditions", {1, 2}}}}},
                                        PatchSchema::pod(), &err));
  EXPECT_NE(err.find("status.conditions"), std::string::npos);
  EXPECT_TRUE(applyStrategicMergePatch(o, {{"status", {{"conditions", nullptr}}}},
                                       PatchSchema::pod(), &err));
}

// The real kubelet's pod status patches: each was computed from the pod as the server last
// returned it. Our diff of (previous response, next response) must be the patch it sent, and our
// apply of its patch must give the server's next response.
TEST(StrategicPatchTest, MatchesTheRecordedKubeletPodStatusPatches) {
  fs::path file = fs::path(NODELET_SOURCE_DIR) / ".." / "shared" / "spec" / "recorded" /
                  "pod-status-patches.json";
  if (const char* s = std::getenv("NODELET_SHARED_DIR"))
    file = fs::path(s) / "spec" / "recorded" / "pod-status-patches.json";
  std::ifstream in(file);
  if (!in) GTEST_SKIP() << file << " not present";
  json doc = json::parse(in);
  std::map<std::string, json> last;  // pod -> last response
  int compared = 0, applied = 0;
  for (const auto& p : doc["patches"]) {
    const std::string pod = p["pod"];
    const json& resp = p["responseBody"];
    auto prev = last.find(pod);
    if (prev != last.end() && prev->second["metadata"]["uid"] == resp["metadata"]["uid"]) {
      json server = {{"status", prev->second["status"]}};
      json sent = p["requestBody"];
      sent.erase("metadata");
      json got = twoWayMergePatch(server, json{{"status", resp["status"]}}, PatchSchema::pod());
      // The server adds nothing to a status patch but qosClass, which both copies carry.
      EXPECT_EQ(got, sent) << "patch seq " << p["seq"];
      ++compared;
      json after = server;
      ASSERT_TRUE(applyStrategicMergePatch(after, sent, PatchSchema::pod()));
      EXPECT_EQ(after["status"], resp["status"]) << "patch seq " << p["seq"];
      ++applied;
    }
    last[pod] = resp;
  }
  EXPECT_GE(compared, 10);
  EXPECT_EQ(compared, applied);
}

}  // namespace
}  // namespace nodelet::kube
