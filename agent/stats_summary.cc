#include "agent/stats_summary.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "agent/core/api_json.h"
#include "agent/core/metrics.h"
#include "agent/labels.h"

namespace nodelet::agent {
namespace {

using nlohmann::json;

std::string timeOf(SysTime t) { return api::formatTime(t); }

// CRI timestamps are nanoseconds since the epoch.
SysTime fromNanos(int64_t ns) {
  return SysTime(std::chrono::duration_cast<SysTime::duration>(std::chrono::nanoseconds(ns)));
}

json cpuJson(const cri::CpuUsage& c) {
  json j = {{"time", timeOf(fromNanos(c.timestamp))}};
  if (c.usage_nano_cores) j["usageNanoCores"] = *c.usage_nano_cores;
  if (c.usage_core_nano_seconds) j["usageCoreNanoSeconds"] = *c.usage_core_nano_seconds;
  return j;
}

json memoryJson(const cri::MemoryUsage& m) {
  json j = {{"time", timeOf(fromNanos(m.timestamp))}};
  if (m.available_bytes) j["availableBytes"] = *m.available_bytes;
  if (m.usage_bytes) j["usageBytes"] = *m.usage_bytes;
  if (m.working_set_bytes) j["workingSetBytes"] = *m.working_set_bytes;
  if (m.rss_bytes) j["rssBytes"] = *m.rss_bytes;
  if (m.page_faults) j["pageFaults"] = *m.page_faults;
  if (m.major_page_faults) j["majorPageFaults"] = *m.major_page_faults;
  return j;
}

std::optional<SysTime> startedAt(const api::ContainerStatus& c) {
  if (c.state.running) return c.state.running->started_at;
  if (c.state.terminated) return c.state.terminated->started_at;
  return std::nullopt;
}

}  // namespace

Result<HostSample> readHostSample(const std::string& proc, const std::string& fs_path,
                                  SysTime now) {
  HostSample s;
  s.time = now;
  std::ifstream stat(proc + "/stat");
  if (!stat) return fail(ErrorCode::Unavailable, "cannot read " + proc + "/stat");
  std::string line;
  const double tick_ns = 1e9 / static_cast<double>(sysconf(_SC_CLK_TCK));
  while (std::getline(stat, line)) {
    std::istringstream in(line);
    std::string key;
    in >> key;
    if (key == "cpu") {
      // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
      uint64_t v[8] = {};
      for (auto& x : v) in >> x;
      const uint64_t busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
      s.cpu_core_ns = static_cast<uint64_t>(static_cast<double>(busy) * tick_ns);
    } else if (key == "btime") {
      int64_t t = 0;
      in >> t;
      s.boot_time = std::chrono::system_clock::from_time_t(t);
    }
  }
  std::ifstream meminfo(proc + "/meminfo");
  if (!meminfo) return fail(ErrorCode::Unavailable, "cannot read " + proc + "/meminfo");
  while (std::getline(meminfo, line)) {
    std::istringstream in(line);
    std::string key;
    uint64_t kib = 0;
    in >> key >> kib;
    if (key == "MemTotal:") s.memory_total = kib * 1024;
    if (key == "MemAvailable:") s.memory_available = kib * 1024;
    if (key == "MemFree:") s.memory_free = kib * 1024;
    if (key == "Inactive(file):") s.inactive_file = kib * 1024;
  }
  struct statvfs fs {};
  if (::statvfs(fs_path.c_str(), &fs) == 0) {
    s.fs_capacity = static_cast<uint64_t>(fs.f_blocks) * fs.f_frsize;
    s.fs_available = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
    s.fs_inodes = fs.f_files;
    s.fs_inodes_free = fs.f_ffree;
  }
  return s;
}

json buildSummary(const std::string& node_name, const HostSample& now,
                  const std::optional<HostSample>& previous,
                  const std::vector<cri::ContainerStats>& containers,
                  const std::vector<api::Pod>& pods) {
  const std::string t = timeOf(now.time);
  json cpu = {{"time", t}, {"usageCoreNanoSeconds", now.cpu_core_ns}};
  if (previous && now.time > previous->time && now.cpu_core_ns >= previous->cpu_core_ns) {
    const auto elapsed =
        std::chrono::duration_cast<std::chrono::nanoseconds>(now.time - previous->time).count();
    cpu["usageNanoCores"] =
        static_cast<uint64_t>(static_cast<double>(now.cpu_core_ns - previous->cpu_core_ns) * 1e9 /
                              static_cast<double>(elapsed));
  }
  // As the kubelet reports the node (its root cgroup): usage is what is not free, the working
  // set leaves out inactive page cache, available is what the working set leaves.
  const uint64_t usage = now.memory_total - std::min(now.memory_free, now.memory_total);
  const uint64_t working_set = usage - std::min(now.inactive_file, usage);
  json node = {{"nodeName", node_name},
               {"startTime", timeOf(now.boot_time)},
               {"cpu", cpu},
               {"memory",
                {{"time", t},
                 {"availableBytes", now.memory_total - std::min(working_set, now.memory_total)},
                 {"usageBytes", usage},
                 {"workingSetBytes", working_set}}},
               {"fs",
                {{"time", t},
                 {"availableBytes", now.fs_available},
                 {"capacityBytes", now.fs_capacity},
                 {"usedBytes", now.fs_capacity - std::min(now.fs_available, now.fs_capacity)},
                 {"inodesFree", now.fs_inodes_free},
                 {"inodes", now.fs_inodes},
                 {"inodesUsed", now.fs_inodes - std::min(now.fs_inodes_free, now.fs_inodes)}}}};

  // Containers by pod UID, from their CRI labels.
  std::map<std::string, std::vector<const cri::ContainerStats*>> by_pod;
  for (const auto& c : containers) {
    auto uid = c.labels.find(std::string(labels::kPodUid));
    if (uid != c.labels.end()) by_pod[uid->second].push_back(&c);
  }
  json out_pods = json::array();
  for (const auto& pod : pods) {
    auto it = by_pod.find(pod.metadata.uid);
    if (it == by_pod.end()) continue;  // nothing in the runtime: no stats to give
    json p = {{"podRef",
               {{"name", pod.metadata.name},
                {"namespace", pod.metadata.namespace_},
                {"uid", pod.metadata.uid}}}};
    if (pod.status.start_time) p["startTime"] = timeOf(*pod.status.start_time);
    json cs = json::array();
    uint64_t pod_cpu_ns = 0, pod_nano_cores = 0, pod_ws = 0, pod_usage = 0;
    bool any_cpu = false, any_mem = false;
    for (const auto* c : it->second) {
      // Only the container the status shows (the newest of its name).
      const std::string name = c->labels.count(std::string(labels::kContainerName))
                                   ? c->labels.at(std::string(labels::kContainerName))
                                   : c->name;
      const api::ContainerStatus* st = nullptr;
      for (const auto* list : {&pod.status.init_container_statuses, &pod.status.container_statuses,
                               &pod.status.ephemeral_container_statuses})
        for (const auto& s : *list)
          if (s.name == name && s.container_id.ends_with(c->id)) st = &s;
      if (!st) continue;
      json cj = {{"name", name}};
      if (auto started = startedAt(*st)) cj["startTime"] = timeOf(*started);
      if (c->cpu) {
        cj["cpu"] = cpuJson(*c->cpu);
        pod_cpu_ns += c->cpu->usage_core_nano_seconds.value_or(0);
        pod_nano_cores += c->cpu->usage_nano_cores.value_or(0);
        any_cpu = true;
      }
      if (c->memory) {
        cj["memory"] = memoryJson(*c->memory);
        pod_ws += c->memory->working_set_bytes.value_or(0);
        pod_usage += c->memory->usage_bytes.value_or(0);
        any_mem = true;
      }
      if (c->writable_layer) {
        json fs = {{"time", timeOf(fromNanos(c->writable_layer->timestamp))}};
        if (c->writable_layer->used_bytes) fs["usedBytes"] = *c->writable_layer->used_bytes;
        if (c->writable_layer->inodes_used) fs["inodesUsed"] = *c->writable_layer->inodes_used;
        cj["rootfs"] = fs;
      }
      cs.push_back(std::move(cj));
    }
    p["containers"] = std::move(cs);
    if (any_cpu)
      p["cpu"] = {
          {"time", t}, {"usageNanoCores", pod_nano_cores}, {"usageCoreNanoSeconds", pod_cpu_ns}};
    if (any_mem)
      p["memory"] = {{"time", t}, {"usageBytes", pod_usage}, {"workingSetBytes", pod_ws}};
    out_pods.push_back(std::move(p));
  }
  return {{"node", std::move(node)}, {"pods", std::move(out_pods)}};
}

SummaryProvider::SummaryProvider(cri::RuntimeService& runtime, Clock& clock, std::string node_name,
                                 std::string root_dir)
    : runtime_(runtime),
      clock_(clock),
      node_name_(std::move(node_name)),
      root_dir_(std::move(root_dir)) {}

Result<json> SummaryProvider::summary(const std::vector<api::Pod>& pods) {
  auto host = readHostSample("/proc", root_dir_, clock_.systemNow());
  if (!host) return std::unexpected(host.error());
  auto stats = runtime_.listContainerStats({.label_selector = labels::ownedSelector(node_name_)});
  if (!stats) return std::unexpected(stats.error().wrap("ListContainerStats"));
  std::lock_guard g(mu_);
  json doc = buildSummary(node_name_, *host, previous_, *stats, pods);
  previous_ = *host;
  return doc;
}

std::string renderResourceMetrics(const json& summary) {
  metrics::Writer w;
  auto num = [](const json& j, const char* a, const char* b) -> std::optional<double> {
    if (!j.is_object() || !j.contains(a) || !j[a].is_object() || !j[a].contains(b) ||
        !j[a][b].is_number())
      return std::nullopt;
    return j[a][b].get<double>();
  };
  const json& node = summary.value("node", json::object());
  const json pods = summary.value("pods", json::array());
  // One sample per container that has the value, labelled as the kubelet labels them.
  auto perContainer = [&](const char* name,
                          const std::function<std::optional<double>(const json&)>& value) {
    for (const auto& p : pods)
      for (const auto& c : p.value("containers", json::array()))
        if (auto v = value(c))
          w.sample(name,
                   {{"container", c.value("name", "")},
                    {"namespace", p["podRef"].value("namespace", "")},
                    {"pod", p["podRef"].value("name", "")}},
                   *v);
  };
  w.family("container_cpu_usage_seconds_total", "counter",
           "[STABLE] Cumulative cpu time consumed by the container in core-seconds");
  perContainer("container_cpu_usage_seconds_total", [&](const json& c) {
    auto v = num(c, "cpu", "usageCoreNanoSeconds");
    return v ? std::optional(*v / 1e9) : std::nullopt;
  });
  w.family("container_memory_working_set_bytes", "gauge",
           "[STABLE] Current working set of the container in bytes");
  perContainer("container_memory_working_set_bytes",
               [&](const json& c) { return num(c, "memory", "workingSetBytes"); });
  w.family("container_start_time_seconds", "gauge",
           "[STABLE] Start time of the container since unix epoch in seconds");
  perContainer("container_start_time_seconds", [](const json& c) -> std::optional<double> {
    if (!c.contains("startTime") || !c["startTime"].is_string()) return std::nullopt;
    auto t = api::parseTime(c["startTime"].get<std::string>());
    if (!t) return std::nullopt;
    return static_cast<double>(std::chrono::system_clock::to_time_t(*t));
  });
  w.family("node_cpu_usage_seconds_total", "counter",
           "[STABLE] Cumulative cpu time consumed by the node in core-seconds");
  if (auto v = num(node, "cpu", "usageCoreNanoSeconds"))
    w.sample("node_cpu_usage_seconds_total", {}, *v / 1e9);
  w.family("node_memory_working_set_bytes", "gauge",
           "[STABLE] Current working set of the node in bytes");
  if (auto v = num(node, "memory", "workingSetBytes"))
    w.sample("node_memory_working_set_bytes", {}, *v);
  // One sample per pod that has `section.field`, divided by `divisor`.
  auto perPod = [&](const char* name, const char* section, const char* field, double divisor) {
    for (const auto& p : pods)
      if (auto v = num(p, section, field))
        w.sample(name,
                 {{"namespace", p["podRef"].value("namespace", "")},
                  {"pod", p["podRef"].value("name", "")}},
                 *v / divisor);
  };
  w.family("pod_cpu_usage_seconds_total", "counter",
           "[STABLE] Cumulative cpu time consumed by the pod in core-seconds");
  perPod("pod_cpu_usage_seconds_total", "cpu", "usageCoreNanoSeconds", 1e9);
  w.family("pod_memory_working_set_bytes", "gauge",
           "[STABLE] Current working set of the pod in bytes");
  perPod("pod_memory_working_set_bytes", "memory", "workingSetBytes", 1);
  w.family("resource_scrape_error", "gauge",
           "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise");
  w.sample("resource_scrape_error", {}, summary.empty() ? 1 : 0);
  return w.text();
}

}  // namespace nodelet::agent
