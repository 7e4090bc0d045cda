#pragma once
// Decorators that time every CRI call and count its errors, then forward to the real service
// (the kubelet's instrumented_services.go). The numbers feed /metrics later
// (kubelet_runtime_operations_duration_seconds, _errors_total) and the shutdown summary now.
#include <map>
#include <mutex>
#include <string>

#include "agent/core/clock.h"
#include "agent/core/metrics.h"
#include "cri/runtime_service.h"

namespace nodelet::cri {

struct OperationStats {
  uint64_t count{0};
  uint64_t errors{0};
  Duration total{};
  Duration max{};
  metrics::Histogram latency{metrics::kRuntimeOperationBuckets};
};

class OperationRecorder {
 public:
  explicit OperationRecorder(Clock& clock) : clock_(clock) {}
  // Times `f` as operation `name`.
  template <class F>
  auto time(const char* name, F&& f) {
    const MonoTime start = clock_.monotonicNow();
    auto r = f();
    record(name, clock_.monotonicNow() - start, !r.has_value());
    return r;
  }
  std::map<std::string, OperationStats> snapshot() const;
  std::string summary() const;

 private:
  void record(const char* name, Duration d, bool error);
  Clock& clock_;
  mutable std::mutex mu_;
  std::map<std::string, OperationStats> ops_;
};

class InstrumentedRuntimeService final : public RuntimeService {
 public:
  InstrumentedRuntimeService(RuntimeServicePtr inner, OperationRecorder& rec)
      : in_(std::move(inner)), rec_(rec) {}

  // cri::RuntimeService
  Result<VersionInfo> version() override {
    return rec_.time("version", [&] { return in_->version(); });
  }
  Result<RuntimeStatus> status(bool v) override {
    return rec_.time("status", [&] { return in_->status(v); });
  }
  Result<std::string> runPodSandbox(const PodSandboxConfig& c, const std::string& h) override {
    return rec_.time("run_podsandbox", [&] { return in_->runPodSandbox(c, h); });
  }
  Status stopPodSandbox(const std::string& id) override {
    return rec_.time("stop_podsandbox", [&] { return in_->stopPodSandbox(id); });
  }
  Status removePodSandbox(const std::string& id) override {
    return rec_.time("remove_podsandbox", [&] { return in_->removePodSandbox(id); });
  }
  Result<PodSandboxStatus> podSandboxStatus(const std::string& id, bool v) override {
    return rec_.time("podsandbox_status", [&] { return in_->podSandboxStatus(id, v); });
  }
  Result<std::vector<PodSandbox>> listPodSandbox(const PodSandboxFilter& f) override {
    return rec_.time("list_podsandbox", [&] { return in_->listPodSandbox(f); });
  }
  Result<std::string> createContainer(const std::string& s, const ContainerConfig& c,
                                      const PodSandboxConfig& sc) override {
    return rec_.time("create_container", [&] { return in_->createContainer(s, c, sc); });
  }
  Status startContainer(const std::string& id) override {
    return rec_.time("start_container", [&] { return in_->startContainer(id); });
  }
  Status stopContainer(const std::string& id, int64_t t) override {
    return rec_.time("stop_container", [&] { return in_->stopContainer(id, t); });
  }
  Status removeContainer(const std::string& id) override {
    return rec_.time("remove_container", [&] { return in_->removeContainer(id); });
  }
  Result<std::vector<Container>> listContainers(const ContainerFilter& f) override {
    return rec_.time("list_containers", [&] { return in_->listContainers(f); });
  }
  Result<ContainerStatus> containerStatus(const std::string& id, bool v) override {
    return rec_.time(v ? "container_status_verbose" : "container_status",
                     [&] { return in_->containerStatus(id, v); });
  }
  Status updateContainerResources(const std::string& id, const LinuxResources& r) override {
    return rec_.time("update_container", [&] { return in_->updateContainerResources(id, r); });
  }
  Status reopenContainerLog(const std::string& id) override {
    return rec_.time("reopen_container_log", [&] { return in_->reopenContainerLog(id); });
  }
  Result<ExecSyncResult> execSync(const std::string& id, const std::vector<std::string>& cmd,
                                  std::chrono::seconds t) override {
    return rec_.time("exec_sync", [&] { return in_->execSync(id, cmd, t); });
  }
  Result<std::string> exec(const StreamingRequest& r) override {
    return rec_.time("exec", [&] { return in_->exec(r); });
  }
  Result<std::string> attach(const StreamingRequest& r) override {
    return rec_.time("attach", [&] { return in_->attach(r); });
  }
  Result<std::string> portForward(const StreamingRequest& r) override {
    return rec_.time("port_forward", [&] { return in_->portForward(r); });
  }
  Result<ContainerStats> containerStats(const std::string& id) override {
    return rec_.time("container_stats", [&] { return in_->containerStats(id); });
  }
  Result<std::vector<ContainerStats>> listContainerStats(const ContainerStatsFilter& f) override {
    return rec_.time("list_container_stats", [&] { return in_->listContainerStats(f); });
  }
  Result<PodSandboxStats> podSandboxStats(const std::string& id) override {
    return rec_.time("podsandbox_stats", [&] { return in_->podSandboxStats(id); });
  }
  Result<std::vector<PodSandboxStats>> listPodSandboxStats(const PodSandboxFilter& f) override {
    return rec_.time("list_podsandbox_stats", [&] { return in_->listPodSandboxStats(f); });
  }
  Status getContainerEvents(const std::function<bool(const ContainerEvent&)>& sink,
                            std::stop_token stop) override {
    return in_->getContainerEvents(sink, stop);  // a stream: not timed
  }

 private:
  RuntimeServicePtr in_;
  OperationRecorder& rec_;
};

class InstrumentedImageService final : public ImageService {
 public:
  InstrumentedImageService(ImageServicePtr inner, OperationRecorder& rec)
      : in_(std::move(inner)), rec_(rec) {}

  // cri::ImageService
  Result<std::vector<Image>> listImages() override {
    return rec_.time("list_images", [&] { return in_->listImages(); });
  }
  Result<std::optional<Image>> imageStatus(const std::string& i) override {
    return rec_.time("image_status", [&] { return in_->imageStatus(i); });
  }
  Result<std::string> pullImage(const std::string& i, const AuthConfig* a,
                                const PodSandboxConfig* s) override {
    return rec_.time("pull_image", [&] { return in_->pullImage(i, a, s); });
  }
  Status removeImage(const std::string& i) override {
    return rec_.time("remove_image", [&] { return in_->removeImage(i); });
  }
  Result<std::vector<FilesystemUsage>> imageFsInfo() override {
    return rec_.time("image_fs_info", [&] { return in_->imageFsInfo(); });
  }

 private:
  ImageServicePtr in_;
  OperationRecorder& rec_;
};

}  // namespace nodelet::cri
