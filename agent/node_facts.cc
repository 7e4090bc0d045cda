#include "agent/node_facts.h"

#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "agent/core/quantity.h"
#include "agent/node_info.h"
#include "nodelet/version.h"

namespace nodelet::agent {
namespace {

std::string readLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
  return line;
}

std::string osImage() {
  std::ifstream in("/etc/os-release");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("PRETTY_NAME=", 0) != 0) continue;
    std::string v = line.substr(12);
    if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'')) v = v.substr(1, v.size() - 2);
    return v;
  }
  return "Linux";
}

// Reserved + threshold for one resource: a quantity, or a percentage of capacity.
Result<int64_t> amount(const std::string& field, const std::string& v, int64_t capacity,
                       bool milli) {
  if (!v.empty() && v.back() == '%') {
    double pct = 0;
    try {
      pct = std::stod(v.substr(0, v.size() - 1));
    } catch (...) {
      return fail(ErrorCode::InvalidArgument, field + ": invalid percentage \"" + v + "\"");
    }
    // As the kubelet: a float32 fraction, applied in float64 and truncated.
    const float fraction = static_cast<float>(pct) / 100.0f;
    return static_cast<int64_t>(static_cast<double>(capacity) * static_cast<double>(fraction));
  }
  auto q = milli ? api::parseQuantityMilli(v) : api::parseQuantity(v);
  if (!q) return fail(ErrorCode::InvalidArgument, field + ": invalid quantity \"" + v + "\"");
  return *q;
}

}  // namespace

std::string formatBytes(int64_t bytes) {
  if (bytes == 0) return "0";
  static const char* suffix[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
  int i = 0;
  while (i < 6 && bytes % 1024 == 0) {
    bytes /= 1024;
    ++i;
  }
  return std::to_string(bytes) + suffix[i];
}

std::string formatCpuMilli(int64_t milli) {
  if (milli % 1000 == 0) return std::to_string(milli / 1000);
  return std::to_string(milli) + "m";
}

MachineFacts readMachineFacts(const std::string& root_dir) {
  MachineFacts m;
  m.cpu_milli = cpuMilli();
  m.memory_bytes = memoryBytes();
  struct statvfs vfs {};
  if (statvfs(root_dir.c_str(), &vfs) == 0)
    m.storage_bytes = static_cast<int64_t>(vfs.f_blocks) * static_cast<int64_t>(vfs.f_frsize);
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/sys/kernel/mm/hugepages", ec)) {
    const std::string name = e.path().filename().string();  // hugepages-2048kB
    if (name.rfind("hugepages-", 0) != 0 || !name.ends_with("kB")) continue;
    const int64_t kb = std::atoll(name.substr(10, name.size() - 12).c_str());
    const int64_t pages = std::atoll(readLine(e.path().string() + "/nr_hugepages").c_str());
    if (kb > 0) m.hugepages[formatBytes(kb * 1024)] = kb * 1024 * pages;
  }
  m.machine_id = readLine("/etc/machine-id");
  m.system_uuid = readLine("/sys/class/dmi/id/product_uuid");
  std::transform(m.system_uuid.begin(), m.system_uuid.end(), m.system_uuid.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  m.boot_id = readLine("/proc/sys/kernel/random/boot_id");
  struct utsname u {};
  if (uname(&u) == 0) {
    m.kernel_version = u.release;
    const std::string machine = u.machine;
    m.architecture = machine == "x86_64" ? "amd64" : machine == "aarch64" ? "arm64" : machine;
  }
  m.os_image = osImage();
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) == 0) m.hostname = host;
  return m;
}

RuntimeFacts readRuntimeFacts(cri::RuntimeService& runtime, cri::ImageService& images,
                              int32_t max_images) {
  RuntimeFacts r;
  if (auto v = runtime.version())
    r.version = kube::runtimeVersionString(v->runtime_name, v->runtime_version);
  auto st = runtime.status(false);
  if (!st) {
    r.not_ready = "container runtime is down: " + st.error().message;
  } else {
    std::vector<std::string> problems;
    for (const char* type : {"RuntimeReady", "NetworkReady"}) {
      const auto* c = st->condition(type);
      if (c && c->status) continue;
      const std::string what = std::string(type) == "RuntimeReady"
                                   ? "container runtime not ready"
                                   : "container runtime network not ready";
      problems.push_back(what + ": " + type + "=false reason:" + (c ? c->reason : "") +
                         " message:" + (c ? c->message : "not reported"));
    }
    for (const auto& p : problems) r.not_ready += (r.not_ready.empty() ? "" : ", ") + p;
  }
  if (auto list = images.listImages()) {
    std::vector<cri::Image> sorted = *list;
    std::sort(sorted.begin(), sorted.end(),
              [](const auto& a, const auto& b) { return a.size > b.size; });
    for (const auto& i : sorted) {
      if (max_images >= 0 && static_cast<int32_t>(r.images.size()) >= max_images) break;
      kube::NodeImage ni;
      for (const auto& n : i.repo_digests) ni.names.push_back(n);
      for (const auto& n : i.repo_tags) ni.names.push_back(n);
      if (ni.names.size() > 5) ni.names.resize(5);
      if (ni.names.empty()) continue;
      ni.size_bytes = i.size;
      r.images.push_back(std::move(ni));
    }
  }
  return r;
}

Result<kube::NodeFacts> buildNodeFacts(const Config& cfg, const std::string& node_name,
                                       const std::string& node_ip, const MachineFacts& m,
                                       const RuntimeFacts& r) {
  kube::NodeFacts f;
  f.name = node_name;
  int64_t hugepages_total = 0;
  for (const auto& [size, bytes] : m.hugepages) hugepages_total += bytes;
  struct Res {
    const char* name;
    int64_t capacity;
    bool milli;
    const char* eviction;  // the evictionHard signal for it
  };
  const Res resources[] = {{"cpu", m.cpu_milli, true, nullptr},
                           {"memory", m.memory_bytes, false, "memory.available"},
                           {"ephemeral-storage", m.storage_bytes, false, "nodefs.available"}};
  for (const auto& res : resources) {
    if (res.capacity <= 0) continue;
    int64_t alloc = res.capacity;
    for (const auto* reserved : {&cfg.system_reserved, &cfg.kube_reserved}) {
      auto it = reserved->find(res.name);
      if (it == reserved->end()) continue;
      auto a = amount(
          std::string(reserved == &cfg.system_reserved ? "systemReserved." : "kubeReserved.") +
              res.name,
          it->second, res.capacity, res.milli);
      if (!a) return std::unexpected(a.error());
      alloc -= *a;
    }
    if (res.eviction) {
      if (auto it = cfg.eviction_hard.find(res.eviction); it != cfg.eviction_hard.end()) {
        auto a =
            amount(std::string("evictionHard.") + res.eviction, it->second, res.capacity, false);
        if (!a) return std::unexpected(a.error());
        alloc -= *a;
      }
    }
    if (std::string(res.name) == "memory") alloc -= hugepages_total;
    alloc = std::max<int64_t>(alloc, 0);
    f.capacity[res.name] = res.milli ? formatCpuMilli(res.capacity) : formatBytes(res.capacity);
    f.allocatable[res.name] = res.milli ? formatCpuMilli(alloc) : formatBytes(alloc);
  }
  for (const auto& [size, bytes] : m.hugepages) {
    f.capacity["hugepages-" + size] = formatBytes(bytes);
    f.allocatable["hugepages-" + size] = formatBytes(bytes);
  }
  f.capacity["pods"] = f.allocatable["pods"] = std::to_string(cfg.max_pods);
  if (!node_ip.empty()) f.addresses.emplace_back("InternalIP", node_ip);
  f.addresses.emplace_back("Hostname", cfg.hostname_override.empty() ? m.hostname : node_name);
  f.node_info = {{"machineID", m.machine_id},
                 {"systemUUID", m.system_uuid},
                 {"bootID", m.boot_id},
                 {"kernelVersion", m.kernel_version},
                 {"osImage", m.os_image},
                 {"containerRuntimeVersion", r.version},
                 {"kubeletVersion", kKubeVersion},
                 {"kubeProxyVersion", ""},
                 {"operatingSystem", "linux"},
                 {"architecture", m.architecture}};
  f.kubelet_port = cfg.port;
  f.images = r.images;
  f.not_ready = r.not_ready;
  return f;
}

}  // namespace nodelet::agent
