#pragma once
// What the runtime holds for one pod: its sandboxes and containers as CRI reports them, with the
// kubelet-compatible annotations already read. Built from ListPodSandbox/ListContainers (+
// ContainerStatus); consumed by the planner and the status computation.
#include <optional>
#include <string>
#include <vector>

#include "cri/types.h"

namespace nodelet::agent {

struct RuntimeSandbox {
  std::string id;
  uint32_t attempt{0};
  cri::SandboxState state{cri::SandboxState::NotReady};
  int64_t created_at{0};
  std::string ip;
  std::vector<std::string> additional_ips;
};

struct RuntimeContainer {
  cri::ContainerStatus status;
  std::string sandbox_id;
  int32_t restart_count{0};
  std::string hash;  // io.kubernetes.container.hash
  std::string type;  // init | sidecar | app
  bool running() const { return status.state == cri::ContainerState::Running; }
  bool exited() const {
    return status.state == cri::ContainerState::Exited ||
           status.state == cri::ContainerState::Unknown;
  }
};

struct PodRuntimeStatus {
  std::string uid;
  std::string name;
  std::string namespace_;
  std::vector<RuntimeSandbox> sandboxes;     // newest first
  std::vector<RuntimeContainer> containers;  // newest first

  const RuntimeSandbox* currentSandbox() const {
    return sandboxes.empty() ? nullptr : &sandboxes[0];
  }
  // The newest container of that name, optionally only in one sandbox.
  const RuntimeContainer* latest(const std::string& container,
                                 const std::string& sandbox_id = "") const {
    for (const auto& c : containers)
      if (c.status.name == container && (sandbox_id.empty() || c.sandbox_id == sandbox_id))
        return &c;
    return nullptr;
  }
  // The one before the newest (the kubelet's lastState).
  const RuntimeContainer* previous(const std::string& container) const {
    bool seen = false;
    for (const auto& c : containers) {
      if (c.status.name != container) continue;
      if (seen) return &c;
      seen = true;
    }
    return nullptr;
  }
  bool anyRunning() const {
    for (const auto& c : containers)
      if (c.running()) return true;
    return false;
  }
};

}  // namespace nodelet::agent
