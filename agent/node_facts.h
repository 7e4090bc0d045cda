#pragma once
// What nodelet reports about this node in cluster mode: the machine (CPUs, memory, the root
// dir's filesystem, hugepages, ids, kernel, OS) and the runtime (readiness, version, images),
// turned into kube::NodeFacts the way the kubelet computes capacity and allocatable
// (allocatable = capacity - systemReserved - kubeReserved - hard eviction threshold; hugepages
// also come off memory).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "agent/config.h"
#include "agent/kube/node_status.h"
#include "cri/runtime_service.h"

namespace nodelet::agent {

struct MachineFacts {
  int64_t cpu_milli{0};
  int64_t memory_bytes{0};
  int64_t storage_bytes{0};                  // the root dir's filesystem
  std::map<std::string, int64_t> hugepages;  // "2Mi" -> bytes reserved
  std::string machine_id, system_uuid, boot_id, kernel_version, os_image, architecture;
  std::string hostname;
};

MachineFacts readMachineFacts(const std::string& root_dir);

// Quantities in the API server's canonical form: memory/storage in BinarySI ("24684084Ki",
// "1Gi", plain bytes when not a multiple of 1024), CPU as cores or millicores ("2", "1500m").
std::string formatBytes(int64_t bytes);
std::string formatCpuMilli(int64_t milli);

struct RuntimeFacts {
  std::string version;    // "containerd://1.6.20"
  std::string not_ready;  // the kubelet's wording, "" when runtime and network are ready
  std::vector<kube::NodeImage> images;
};
RuntimeFacts readRuntimeFacts(cri::RuntimeService& runtime, cri::ImageService& images,
                              int32_t max_images);

// Pure: capacity, allocatable, addresses and nodeInfo from what was read.
Result<kube::NodeFacts> buildNodeFacts(const Config& cfg, const std::string& node_name,
                                       const std::string& node_ip, const MachineFacts& m,
                                       const RuntimeFacts& r);

}  // namespace nodelet::agent
