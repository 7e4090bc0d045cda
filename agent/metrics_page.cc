#include "agent/metrics_page.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

namespace nodelet::agent {

ProcessStats readProcessStats() {
  ProcessStats p;
  std::ifstream stat("/proc/self/stat");
  std::string line;
  std::getline(stat, line);
  // Fields after the command (which may hold spaces): state is field 3; utime 14, stime 15,
  // starttime 22 (clock ticks since boot).
  const auto close = line.rfind(')');
  if (close != std::string::npos) {
    std::istringstream rest(line.substr(close + 2));
    std::vector<std::string> f((std::istream_iterator<std::string>(rest)),
                               std::istream_iterator<std::string>());
    const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
    if (f.size() > 19) {
      p.cpu_seconds = (std::stod(f[11]) + std::stod(f[12])) / ticks;
      double uptime = 0;
      std::ifstream up("/proc/uptime");
      up >> uptime;
      const double boot =
          static_cast<double>(::time(nullptr)) - uptime;  // NOLINT(real-time): process metric
      p.start_time_seconds = boot + std::stod(f[19]) / ticks;
    }
  }
  std::ifstream status("/proc/self/status");
  while (std::getline(status, line))
    if (line.starts_with("VmRSS:")) p.resident_bytes = std::stod(line.substr(6)) * 1024;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++p.open_fds;
  return p;
}

std::string renderProbeMetrics(const std::vector<probes::Manager::ContainerCounters>& counters) {
  metrics::Writer w;
  w.family("prober_probe_total", "counter",
           "Cumulative number of a liveness, readiness or startup probe for a container by result");
  for (const auto& c : counters) {
    const std::string type(probes::toString(c.kind));
    for (auto [result, n] : {std::pair{"successful", c.counters.success},
                             {"failed", c.counters.failure},
                             {"unknown", c.counters.unknown}})
      w.sample("prober_probe_total",
               {{"container", c.container},
                {"namespace", c.pod_namespace},
                {"pod", c.pod_name},
                {"pod_uid", c.pod_uid},
                {"probe_type", type},
                {"result", result}},
               static_cast<double>(n));
  }
  return w.text();
}

std::string renderMetrics(const MetricsInput& in) {
  metrics::Writer w;
  if (!in.node_name.empty()) {
    w.family("kubelet_node_name", "gauge", "The node's name; the value is always 1");
    w.sample("kubelet_node_name", {{"node", in.node_name}}, 1);
  }
  w.family("kubelet_running_pods", "gauge", "Number of pods that have a running pod sandbox");
  w.sample("kubelet_running_pods", {}, static_cast<double>(in.agent.running_pods));
  w.family("kubelet_running_containers", "gauge", "Number of containers currently running");
  for (const auto& [state, n] : in.agent.containers)
    w.sample("kubelet_running_containers", {{"container_state", state}}, static_cast<double>(n));
  w.family("kubelet_desired_pods", "gauge",
           "The number of pods the kubelet is being instructed to run");
  w.sample("kubelet_desired_pods", {}, static_cast<double>(in.agent.desired_pods));
  w.family("kubelet_pod_start_duration_seconds", "histogram",
           "Duration in seconds from the kubelet seeing a pod for the first time to the pod "
           "starting to run");
  w.histogram("kubelet_pod_start_duration_seconds", {}, in.agent.pod_start);
  w.family("kubelet_pod_start_sli_duration_seconds", "histogram",
           "Seconds from a pod's creation to a watch showing all its containers started, image "
           "pulls not counted");
  w.histogram("kubelet_pod_start_sli_duration_seconds", {}, in.startup.sli);
  w.family("kubelet_pod_start_total_duration_seconds", "histogram",
           "Seconds from a pod's creation to a watch showing all its containers started");
  w.histogram("kubelet_pod_start_total_duration_seconds", {}, in.startup.total);
  w.family("kubelet_pod_worker_duration_seconds", "histogram",
           "Duration in seconds to sync a single pod. Broken down by operation type");
  for (const auto& [op, h] : in.agent.worker)
    w.histogram("kubelet_pod_worker_duration_seconds", {{"operation_type", op}}, h);
  w.family("kubelet_pleg_relist_duration_seconds", "histogram",
           "Duration in seconds for relisting pods in PLEG");
  w.histogram("kubelet_pleg_relist_duration_seconds", {}, in.agent.relist);
  w.family("kubelet_runtime_operations_total", "counter",
           "Cumulative number of runtime operations by operation type");
  for (const auto& [op, s] : in.runtime_ops)
    w.sample("kubelet_runtime_operations_total", {{"operation_type", op}},
             static_cast<double>(s.count));
  w.family("kubelet_runtime_operations_errors_total", "counter",
           "Cumulative number of runtime operation errors by operation type");
  for (const auto& [op, s] : in.runtime_ops)
    w.sample("kubelet_runtime_operations_errors_total", {{"operation_type", op}},
             static_cast<double>(s.errors));
  w.family("kubelet_runtime_operations_duration_seconds", "histogram",
           "Duration in seconds of runtime operations. Broken down by operation type");
  for (const auto& [op, s] : in.runtime_ops)
    w.histogram("kubelet_runtime_operations_duration_seconds", {{"operation_type", op}}, s.latency);
  w.family("kubelet_restarted_pods_total", "counter",
           "Pods started again after being removed and added back with the same UID while the "
           "node agent still knew them (usual for static pods, rare for API pods)");
  for (const char* is_static : {"true", ""}) {
    auto it = in.agent.restarted_pods.find(is_static);
    w.sample("kubelet_restarted_pods_total", {{"static", is_static}},
             static_cast<double>(it == in.agent.restarted_pods.end() ? 0 : it->second));
  }
  w.family("kubelet_started_containers_total", "counter",
           "Cumulative number of containers started");
  w.sample("kubelet_started_containers_total", {{"container_type", "container"}},
           static_cast<double>(in.started_app));
  w.sample("kubelet_started_containers_total", {{"container_type", "init_container"}},
           static_cast<double>(in.started_init));
  w.family("prober_probe_total", "counter",
           "Cumulative number of a liveness, readiness or startup probe for a container by result");
  for (const auto& [kind, c] : in.probes) {
    std::string type = kind;
    if (!type.empty())
      type[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(type[0])));
    w.sample("prober_probe_total", {{"probe_type", type}, {"result", "successful"}},
             static_cast<double>(c.success));
    w.sample("prober_probe_total", {{"probe_type", type}, {"result", "failed"}},
             static_cast<double>(c.failure));
    w.sample("prober_probe_total", {{"probe_type", type}, {"result", "unknown"}},
             static_cast<double>(c.unknown));
  }
  w.family("process_cpu_seconds_total", "counter",
           "Total user and system CPU time spent in seconds");
  w.sample("process_cpu_seconds_total", {}, in.process.cpu_seconds);
  w.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes");
  w.sample("process_resident_memory_bytes", {}, in.process.resident_bytes);
  w.family("process_start_time_seconds", "gauge",
           "Start time of the process since unix epoch in seconds");
  w.sample("process_start_time_seconds", {}, in.process.start_time_seconds);
  w.family("process_open_fds", "gauge", "Number of open file descriptors");
  w.sample("process_open_fds", {}, in.process.open_fds);
  return w.text();
}

}  // namespace nodelet::agent
