// /metrics: the exposition parses back (families typed before their samples, histograms
// cumulative with +Inf = count) and carries the kubelet's metric names.
#include <gtest/gtest.h>

#include <regex>
#include <sstream>

#include "agent/metrics_page.h"

namespace nodelet::agent {
namespace {

TEST(MetricsTest, TheExpositionParsesBack) {
  MetricsInput in;
  in.agent.running_pods = 3;
  in.agent.containers = {{"running", 4}, {"exited", 1}};
  in.agent.relist.observe(std::chrono::milliseconds(3));
  in.agent.relist.observe(std::chrono::milliseconds(40));
  in.agent.relist.observe(std::chrono::seconds(20));
  in.agent.worker["sync"].observe(std::chrono::milliseconds(120));
  cri::OperationStats run;
  run.count = 2;
  run.errors = 1;
  run.latency.observe(std::chrono::milliseconds(200));
  run.latency.observe(std::chrono::milliseconds(700));
  in.runtime_ops["run_podsandbox"] = run;
  in.probes["readiness"] = {5, 2, 0, {}};
  in.started_app = 7;
  in.agent.restarted_pods["true"] = 2;
  in.startup.sli.observeSeconds(1.5);
  in.node_name = "n1";
  in.process = readProcessStats();
  const std::string text = renderMetrics(in);

  static const std::regex sample(
      R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? (-?[0-9.e+]+|\+Inf|NaN)$)");
  std::map<std::string, std::string> types;
  std::map<std::string, double> values;
  std::istringstream lines(text);
  std::string line, last_le_family;
  double last_bucket = -1;
  for (int n = 0; std::getline(lines, line) && n < 10000; ++n) {
    if (line.starts_with("# TYPE ")) {
      std::istringstream f(line.substr(7));
      std::string name, type;
      f >> name >> type;
      types[name] = type;
      continue;
    }
    if (line.starts_with("# HELP ")) continue;
    std::smatch m;
    ASSERT_TRUE(std::regex_match(line, m, sample)) << line;
    std::string family = m[1];
    for (const char* suffix : {"_bucket", "_sum", "_count"})
      if (family.ends_with(suffix) &&
          types.contains(family.substr(0, family.size() - std::string(suffix).size())))
        family = family.substr(0, family.size() - std::string(suffix).size());
    EXPECT_TRUE(types.contains(family)) << "sample before its TYPE: " << line;
    values[line.substr(0, line.rfind(' '))] = m[5] == "+Inf" ? 1e308 : std::stod(m[5]);
    if (std::string(m[1]).ends_with("_bucket")) {
      const double v = std::stod(m[5]);
      const std::string fam = m[1];
      if (fam == last_le_family) {
        EXPECT_GE(v, last_bucket) << "buckets are cumulative: " << line;
      }
      last_le_family = fam;
      last_bucket = v;
      if (line.find("le=\"+Inf\"") != std::string::npos) last_le_family.clear();
    }
  }
  EXPECT_EQ(values["kubelet_running_pods"], 3);
  EXPECT_EQ(values["kubelet_running_containers{container_state=\"running\"}"], 4);
  EXPECT_EQ(values["kubelet_pleg_relist_duration_seconds_count"], 3);
  EXPECT_EQ(values["kubelet_pleg_relist_duration_seconds_bucket{le=\"0.005\"}"], 1);
  EXPECT_EQ(values["kubelet_pleg_relist_duration_seconds_bucket{le=\"0.05\"}"], 2);
  EXPECT_EQ(values["kubelet_pleg_relist_duration_seconds_bucket{le=\"+Inf\"}"], 3);
  EXPECT_EQ(values["kubelet_runtime_operations_errors_total{operation_type=\"run_podsandbox\"}"],
            1);
  // The kubelet's buckets for runtime operations (0.005 * 2.5^n), written as Go writes them.
  EXPECT_EQ(values["kubelet_runtime_operations_duration_seconds_bucket{le=\"0.48828125\","
                   "operation_type=\"run_podsandbox\"}"],
            1);
  EXPECT_EQ(values["kubelet_runtime_operations_duration_seconds_bucket{le=\"1.220703125\","
                   "operation_type=\"run_podsandbox\"}"],
            2);
  EXPECT_TRUE(
      values.contains("kubelet_runtime_operations_duration_seconds_bucket{le=\""
                      "745.0580596923828\",operation_type=\"run_podsandbox\"}"));
  EXPECT_TRUE(values.contains(
      "kubelet_pod_worker_duration_seconds_bucket{le=\"0.25\",operation_type=\"sync\"}"));
  EXPECT_EQ(values["kubelet_started_containers_total{container_type=\"container\"}"], 7);
  EXPECT_EQ(values["prober_probe_total{probe_type=\"Readiness\",result=\"failed\"}"], 2);
  EXPECT_EQ(values["kubelet_restarted_pods_total{static=\"true\"}"], 2);
  // The SLI's own buckets (0.5 ... 3600 s).
  EXPECT_EQ(values["kubelet_pod_start_sli_duration_seconds_bucket{le=\"1\"}"], 0);
  EXPECT_EQ(values["kubelet_pod_start_sli_duration_seconds_bucket{le=\"2\"}"], 1);
  EXPECT_EQ(values["kubelet_pod_start_sli_duration_seconds_bucket{le=\"3600\"}"], 1);
  EXPECT_EQ(values["kubelet_pod_start_total_duration_seconds_count"], 0);
  EXPECT_EQ(values["kubelet_node_name{node=\"n1\"}"], 1);
  EXPECT_TRUE(values.contains("kubelet_restarted_pods_total{static=\"\"}")) << "both series, 0 too";
  EXPECT_GT(values["process_resident_memory_bytes"], 0);
  EXPECT_EQ(types["kubelet_pod_worker_duration_seconds"], "histogram");
}

TEST(MetricsTest, ProbeMetricsArePerContainerWithTheKubeletsLabels) {
  probes::Manager::ContainerCounters c{"u1", "web", "default", "app", probes::Kind::Readiness, {}};
  c.counters.success = 5;
  c.counters.failure = 1;
  const std::string text = renderProbeMetrics({c});
  EXPECT_NE(text.find("# TYPE prober_probe_total counter"), std::string::npos) << text;
  EXPECT_NE(text.find("prober_probe_total{container=\"app\",namespace=\"default\",pod=\"web\","
                      "pod_uid=\"u1\",probe_type=\"Readiness\",result=\"successful\"} 5"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("result=\"failed\"} 1"), std::string::npos) << text;
}

}  // namespace
}  // namespace nodelet::agent
