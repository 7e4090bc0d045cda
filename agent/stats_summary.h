#pragma once
// /stats/summary: the kubelet's Summary API (stats/v1alpha1) from the host (/proc, statvfs of
// the root directory) and the runtime (CRI ListContainerStats). What metrics-server and
// `kubectl top` read from older kubelets, and what people curl on a node.
#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/clock.h"
#include "agent/core/error.h"
#include "agent/core/pod.h"
#include "cri/runtime_service.h"

namespace nodelet::agent {

// One reading of the host.
struct HostSample {
  SysTime time{};
  SysTime boot_time{};
  uint64_t cpu_core_ns{0};  // busy CPU time since boot, all cores
  uint64_t memory_total{0}, memory_available{0}, memory_free{0}, inactive_file{0};
  uint64_t fs_capacity{0}, fs_available{0}, fs_inodes{0}, fs_inodes_free{0};
};
// `proc` is /proc (a directory of fakes in tests); `fs_path` is the root directory.
Result<HostSample> readHostSample(const std::string& proc, const std::string& fs_path, SysTime now);

// The Summary object. `previous` (the last sample) gives the node's usageNanoCores; the pods'
// start times and names come from their statuses, container numbers from the runtime.
nlohmann::json buildSummary(const std::string& node_name, const HostSample& now,
                            const std::optional<HostSample>& previous,
                            const std::vector<cri::ContainerStats>& containers,
                            const std::vector<api::Pod>& pods);

// /metrics/resource (what metrics-server scrapes for `kubectl top`) from a Summary document:
// node_, pod_ and container_cpu_usage_seconds_total, ..._memory_working_set_bytes,
// container_start_time_seconds and resource_scrape_error, with the kubelet's labels.
std::string renderResourceMetrics(const nlohmann::json& summary);

class SummaryProvider {
 public:
  SummaryProvider(cri::RuntimeService& runtime, Clock& clock, std::string node_name,
                  std::string root_dir);
  // The Summary document, or an error when the runtime cannot say.
  Result<nlohmann::json> summary(const std::vector<api::Pod>& pods);

 private:
  cri::RuntimeService& runtime_;
  Clock& clock_;
  std::string node_name_;
  std::string root_dir_;
  std::mutex mu_;
  std::optional<HostSample> previous_;
};

}  // namespace nodelet::agent
