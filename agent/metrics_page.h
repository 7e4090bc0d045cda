#pragma once
// /metrics: nodelet's numbers under the kubelet's metric names (so dashboards and alerts built
// for the kubelet keep working), plus the standard process metrics.
#include <map>
#include <string>

#include "agent/agent.h"
#include "agent/pod_startup.h"
#include "cri/instrumented_service.h"
#include "probes/probe_manager.h"

namespace nodelet::agent {

struct ProcessStats {
  double cpu_seconds{0};
  double resident_bytes{0};
  double start_time_seconds{0};
  double open_fds{0};
};
ProcessStats readProcessStats();

struct MetricsInput {
  AgentMetrics agent;
  std::map<std::string, cri::OperationStats> runtime_ops;
  std::map<std::string, probes::Manager::Counters> probes;  // by probe type, all containers
  uint64_t started_app{0}, started_init{0};
  PodStartupTracker::Histograms startup;  // the pod startup SLI
  std::string node_name;                  // kubelet_node_name
  ProcessStats process;
};

// The Prometheus text exposition (format 0.0.4).
std::string renderMetrics(const MetricsInput& in);
// /metrics/probes: prober_probe_total per container, with the kubelet's labels.
std::string renderProbeMetrics(const std::vector<probes::Manager::ContainerCounters>& counters);

}  // namespace nodelet::agent
