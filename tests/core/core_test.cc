// The shared pieces: YAML -> JSON, quantities, times, the pod codec's errors.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "agent/core/api_json.h"
#include "agent/core/quantity.h"
#include "agent/core/yaml_json.h"

namespace nodelet {
namespace {

using nlohmann::json;

TEST(YamlToJsonTest, ResolvesPlainScalarsAndKeepsQuotedStrings) {
  auto j = yamlToJson(
      "a: 1\nb: '1'\nc: true\nd: \"true\"\ne: 1.5\nf: null\ng: ~\nh: text\ni: yes\nj: 010x\n");
  ASSERT_TRUE(j) << j.error().message;
  const json v = json::parse(*j);
  EXPECT_EQ(v["a"], 1);
  EXPECT_EQ(v["b"], "1");
  EXPECT_EQ(v["c"], true);
  EXPECT_EQ(v["d"], "true");
  EXPECT_EQ(v["e"], 1.5);
  EXPECT_TRUE(v["f"].is_null());
  EXPECT_TRUE(v["g"].is_null());
  EXPECT_EQ(v["h"], "text");
  EXPECT_EQ(v["i"], true);
  EXPECT_EQ(v["j"], "010x");
}

TEST(YamlToJsonTest, GarbageAfterATopLevelScalarTerminates) {
  // yaml-cpp reads the scalar and then yields empty documents forever; the call must return.
  auto j = yamlToJson("\"x\", y");
  if (j) {
    EXPECT_FALSE(json::parse(*j).is_object());
  }
}

TEST(YamlToJsonTest, ExpandsAnchorsAndAliases) {
  auto j = yamlToJson("base: &b {image: x, ports: [1, 2]}\ncopy: *b\nname: &n web\nother: *n\n");
  ASSERT_TRUE(j) << j.error().message;
  const json v = json::parse(*j);
  EXPECT_EQ(v["copy"], v["base"]);
  EXPECT_EQ(v["other"], "web");
}

TEST(YamlToJsonTest, AcceptsJson) {
  auto j = yamlToJson(R"({"kind":"Pod","spec":{"containers":[{"name":"a"}]}})");
  ASSERT_TRUE(j);
  EXPECT_EQ(json::parse(*j)["spec"]["containers"][0]["name"], "a");
}

TEST(YamlToJsonTest, RejectsWhatIsNotOneDocument) {
  struct Case {
    const char* name;
    const char* yaml;
    const char* error;
  } cases[] = {
      {"empty", "", "empty document"},
      {"comment only", "# nothing\n", "empty document"},
      {"two documents", "a: 1\n---\nb: 2\n", "found 2 documents"},
      {"duplicate key", "a: 1\na: 2\n", "duplicate key"},
      {"syntax", "a: [1, 2\n", "invalid YAML"},
      {"tab indentation", "a:\n\t- b\n", "invalid YAML"},
      // yaml-cpp 0.7 loops forever (allocating) on a top-level flow entry: must fail fast.
      {"top-level comma", ",", "empty document"},
      {"comma then map", ", a: 1}\nb: c\n", "empty document"},
      {"complex key", "? [a, b]\n: c\n", "mapping keys must be scalars"},
  };
  for (const auto& c : cases) {
    auto j = yamlToJson(c.yaml);
    ASSERT_FALSE(j) << c.name;
    EXPECT_NE(j.error().message.find(c.error), std::string::npos)
        << c.name << ": " << j.error().message;
  }
}

TEST(YamlToJsonTest, RefusesAliasBombsAndDeepNesting) {
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (char c = 'b'; c <= 'i'; ++c) {
    bomb += std::string(1, c) + ": &" + c + " [";
    for (int i = 0; i < 10; ++i)
      bomb += std::string(i ? ", " : "") + "*" + static_cast<char>(c - 1);
    bomb += "]\n";
  }
  auto j = yamlToJson(bomb);
  ASSERT_FALSE(j);
  EXPECT_NE(j.error().message.find("expands to more than"), std::string::npos) << j.error().message;
  std::string deep(200, '[');
  deep += std::string(200, ']');
  ASSERT_FALSE(yamlToJson(deep));
}

TEST(JsonToYamlTest, RoundTripsAndQuotesAmbiguousStrings) {
  const std::string in = R"({"a":"true","b":true,"c":"123","d":[],"e":{},"f":"plain"})";
  const std::string yaml = jsonToYaml(in);
  auto back = yamlToJson(yaml);
  ASSERT_TRUE(back) << yaml;
  EXPECT_EQ(json::parse(*back), json::parse(in)) << yaml;
}

TEST(QuantityTest, ParsesTheKubernetesForms) {
  struct Case {
    const char* q;
    int64_t milli;
  } cases[] = {{"100m", 100},
               {"1", 1000},
               {"0.5", 500},
               {"2", 2000},
               {"1k", 1'000'000},
               {"64Mi", 64LL * 1024 * 1024 * 1000},
               {"1Gi", 1073741824000LL},
               {"1e3", 1'000'000},
               {"1.5Gi", 1610612736000LL},
               {"0", 0},
               {"1m", 1},
               {"0.0001", 1}};
  for (const auto& c : cases) {
    auto v = api::parseQuantityMilli(c.q);
    ASSERT_TRUE(v) << c.q;
    EXPECT_EQ(*v, c.milli) << c.q;
  }
  EXPECT_EQ(api::parseQuantity("64Mi").value(), 64LL * 1024 * 1024);
  EXPECT_EQ(api::parseQuantity("100m").value(), 1) << "Value() rounds up";
  for (const char* bad : {"", "abc", "1x", "Mi", "1.2.3", "--1", "1e999"})
    EXPECT_FALSE(api::parseQuantityMilli(bad)) << bad;
}

TEST(TimeTest, FormatsAndParsesRfc3339) {
  const SysTime t = std::chrono::system_clock::from_time_t(1'764'163'080);
  EXPECT_EQ(api::formatTime(t), "2025-11-26T13:18:00Z");
  EXPECT_EQ(api::parseTime("2025-11-26T13:18:00Z").value(), t);
  EXPECT_EQ(api::parseTime("2025-11-26T13:18:00.123456Z").value(), t);
  EXPECT_EQ(api::parseTime("2025-11-26T15:18:00+02:00").value(), t);
  EXPECT_FALSE(api::parseTime("yesterday"));
  EXPECT_FALSE(api::parseTime("2025-11-26T13:18:00"));
}

TEST(DecodePodTest, ErrorsNameTheFieldPath) {
  struct Case {
    const char* json;
    const char* error;
  } cases[] = {
      {R"({"spec":{"containers":[{"name":"a","ports":[{"containerPort":"eighty"}]}]}})",
       "spec.containers[0].ports[0].containerPort: expected integer, got string"},
      {R"({"spec":{"containers":{"name":"a"}}})", "spec.containers: expected array, got object"},
      {R"({"metadata":{"labels":{"a":1}},"spec":{}})",
       "metadata.labels.a: expected string, got number"},
      {R"({"spec":{"containers":[{"name":"a","livenessProbe":{"periodSeconds":3}}]}})",
       "spec.containers[0].livenessProbe: must specify exactly one handler type, found 0"},
      {R"({"spec":{"volumes":[{"name":"v","emptyDir":{},"hostPath":{"path":"/x"}}]}})",
       "spec.volumes[0]: must specify exactly one volume source, found 2"},
      {R"({"kind":"Service","spec":{}})", "kind: expected \"Pod\", got \"Service\""},
      {R"({"metadata":{}})", "spec: Required value"},
      {R"([1,2])", "expected object"},
      {R"(not json)", "invalid JSON"},
  };
  for (const auto& c : cases) {
    auto p = api::decodePod(c.json);
    ASSERT_FALSE(p) << c.json;
    EXPECT_NE(p.error().message.find(c.error), std::string::npos)
        << c.json << " -> " << p.error().message;
  }
}

TEST(DecodePodTest, ContainerHashFollowsTheSpec) {
  auto a = api::decodePod(R"({"spec":{"containers":[{"name":"a","image":"x:1"}]}})");
  auto b = api::decodePod(R"({"spec":{"containers":[{"image":"x:1","name":"a"}]}})");
  auto c = api::decodePod(R"({"spec":{"containers":[{"name":"a","image":"x:2"}]}})");
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(a->spec.containers[0].hash, b->spec.containers[0].hash) << "key order does not matter";
  EXPECT_NE(a->spec.containers[0].hash, c->spec.containers[0].hash);
}

}  // namespace
}  // namespace nodelet

namespace nodelet {
namespace {

TEST(DecodePodTest, StatusRoundTrips) {
  api::Pod p;
  p.metadata.name = "web";
  p.spec.containers.push_back({});
  p.spec.containers[0].name = "app";
  p.status.phase = "Running";
  p.status.pod_ip = "10.0.0.5";
  p.status.start_time = api::parseTime("2025-11-26T13:18:00Z").value();
  api::ContainerStatus c;
  c.name = "app";
  c.ready = true;
  c.started = true;
  c.restart_count = 2;
  c.container_id = "containerd://abc";
  c.state.running = api::ContainerStateRunning{p.status.start_time};
  api::ContainerStateTerminated t;
  t.exit_code = 137;
  t.reason = "Error";
  t.finished_at = p.status.start_time;
  t.started_at = p.status.start_time;
  c.last_state.terminated = t;
  p.status.container_statuses.push_back(c);
  p.status.conditions.push_back({"Ready", "True", "", "", p.status.start_time, std::nullopt});
  auto back = api::decodePod(api::encodePod(p));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->status.phase, "Running");
  EXPECT_EQ(back->status.pod_ip, "10.0.0.5");
  EXPECT_EQ(back->status.start_time, p.status.start_time);
  ASSERT_EQ(back->status.container_statuses.size(), 1u);
  EXPECT_EQ(back->status.container_statuses[0], c);
  EXPECT_EQ(back->status.conditions.at(0).type, "Ready");
}

}  // namespace
}  // namespace nodelet
