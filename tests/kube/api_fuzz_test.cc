// Hostile API replies: real pod objects from the recorded kubelet <-> apiserver traffic (or a
// built-in one when ../shared is absent), mutated at random, through every parser nodelet runs
// on API data. Nothing may crash; decoding either succeeds or names what is wrong.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "agent/core/api_json.h"
#include "agent/kube/strategic_patch.h"

namespace nodelet::kube {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

std::vector<json> seedPods() {
  std::vector<json> out;
  fs::path dir = fs::path(NODELET_SOURCE_DIR) / ".." / "shared" / "spec" / "recorded";
  if (const char* s = std::getenv("NODELET_SHARED_DIR")) dir = fs::path(s) / "spec" / "recorded";
  for (const char* f : {"watch-stream.jsonl", "lifecycle-pod-watch.jsonl"}) {
    std::ifstream in(dir / f);
    std::string line;
    while (std::getline(in, line)) {
      json ev = json::parse(line, nullptr, false);
      if (ev.is_object() && ev.contains("object") && ev["object"].value("kind", "") == "Pod")
        out.push_back(ev["object"]);
    }
  }
  if (out.empty()) {
    out.push_back(
        json::parse(R"({"kind":"Pod","apiVersion":"v1","metadata":{"name":"p","namespace":"default",
      "uid":"u","resourceVersion":"1","deletionTimestamp":"2026-11-26T12:30:23Z","deletionGracePeriodSeconds":30},
      "spec":{"nodeName":"n","containers":[{"name":"c","image":"busybox:1.36","ports":[{"containerPort":80}],
      "readinessProbe":{"httpGet":{"port":"http","path":"/"}},"env":[{"name":"A","value":"b"}]}]},
      "status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}],
      "containerStatuses":[{"name":"c","ready":true,"restartCount":0,"image":"i","imageID":"","state":{"running":{"startedAt":"2026-11-26T12:30:23Z"}}}]}})"));
  }
  return out;
}

// Replaces one random node of the document with a value of another type.
void mutate(json& doc, std::mt19937& rng) {
  std::vector<json*> nodes;
  std::function<void(json&)> walk = [&](json& j) {
    nodes.push_back(&j);
    if (j.is_object())
      for (auto& [k, v] : j.items()) walk(v);
    else if (j.is_array())
      for (auto& v : j) walk(v);
  };
  walk(doc);
  json* target = nodes[rng() % nodes.size()];
  switch (rng() % 7) {
    case 0:
      *target = nullptr;
      break;
    case 1:
      *target = static_cast<int64_t>(rng()) - (1ll << 31);
      break;
    case 2:
      *target = "../../etc/passwd";
      break;
    case 3:
      *target = json::array({1, "x", nullptr});
      break;
    case 4:
      *target = json::object({{"$patch", "delete"}});
      break;
    case 5:
      *target = std::string(1000, 'A');
      break;
    default:
      *target = -1.5e300;
      break;
  }
}

TEST(ApiFuzzTest, MutatedPodsNeverCrashTheDecoderOrThePatchCode) {
  const auto seeds = seedPods();
  ASSERT_FALSE(seeds.empty());
  std::mt19937 rng(20261126);
  int decoded = 0, rejected = 0;
  for (int i = 0; i < 1500; ++i) {
    json pod = seeds[static_cast<size_t>(i) % seeds.size()];
    for (int m = 0; m < 1 + i % 3; ++m) mutate(pod, rng);
    auto p = api::decodePod(pod.dump());
    if (p) {
      ++decoded;
      // What nodelet would send back for it must encode and diff without trouble.
      json status = json::parse(api::encodePodStatus(p->status));
      json patch = twoWayMergePatch({{"status", pod.value("status", json::object())}},
                                    {{"status", status}}, PatchSchema::pod());
      json applied = pod;
      std::string err;
      (void)applyStrategicMergePatch(applied, patch, PatchSchema::pod(), &err);
    } else {
      ++rejected;
      EXPECT_FALSE(p.error().message.empty());
    }
    // The fake server applies client patches: a mutated document used as a patch is either
    // applied or refused, never a crash.
    json target = seeds[0];
    std::string err;
    if (!applyStrategicMergePatch(target, pod, PatchSchema::pod(), &err)) {
      EXPECT_FALSE(err.empty());
    }
  }
  EXPECT_GT(decoded, 0);
  EXPECT_GT(rejected, 0);
}

TEST(ApiFuzzTest, TruncatedAndFlippedBytesAreRejectedCleanly) {
  const auto seeds = seedPods();
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::string text = seeds[static_cast<size_t>(i) % seeds.size()].dump();
    if (i % 2) {
      text.resize(rng() % text.size());
    } else {
      for (int f = 0; f < 4; ++f) text[rng() % text.size()] = static_cast<char>(rng() % 256);
    }
    auto p = api::decodePod(text);
    if (!p) {
      EXPECT_FALSE(p.error().message.empty());
    }
  }
}

}  // namespace
}  // namespace nodelet::kube
