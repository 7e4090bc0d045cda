#pragma once
// The CRI as nodelet sees it: two interfaces, nodelet's own types, errors as values.
// Implementations must be thread-safe. UNIMPLEMENTED answers map to ErrorCode::Unimplemented,
// an expired deadline to DeadlineExceeded, a runtime that cannot be reached to Unavailable, and
// a missing object (from the *Status calls) to NotFound.
#include <chrono>
#include <functional>
#include <memory>
#include <stop_token>
#include <string>
#include <vector>

#include "agent/core/error.h"
#include "cri/types.h"

namespace nodelet::cri {

class RuntimeService {
 public:
  virtual ~RuntimeService() = default;

  virtual Result<VersionInfo> version() = 0;
  virtual Result<RuntimeStatus> status(bool verbose) = 0;

  virtual Result<std::string> runPodSandbox(const PodSandboxConfig& config,
                                            const std::string& runtime_handler) = 0;
  virtual Status stopPodSandbox(const std::string& id) = 0;
  virtual Status removePodSandbox(const std::string& id) = 0;
  virtual Result<PodSandboxStatus> podSandboxStatus(const std::string& id, bool verbose) = 0;
  virtual Result<std::vector<PodSandbox>> listPodSandbox(const PodSandboxFilter& filter) = 0;

  virtual Result<std::string> createContainer(const std::string& sandbox_id,
                                              const ContainerConfig& config,
                                              const PodSandboxConfig& sandbox_config) = 0;
  virtual Status startContainer(const std::string& id) = 0;
  // timeout: seconds the runtime waits after the stop signal before SIGKILL (0 = at once).
  virtual Status stopContainer(const std::string& id, int64_t timeout_seconds) = 0;
  virtual Status removeContainer(const std::string& id) = 0;
  virtual Result<std::vector<Container>> listContainers(const ContainerFilter& filter) = 0;
  virtual Result<ContainerStatus> containerStatus(const std::string& id, bool verbose) = 0;
  virtual Status updateContainerResources(const std::string& id,
                                          const LinuxResources& resources) = 0;
  virtual Status reopenContainerLog(const std::string& id) = 0;

  // A command that exceeds `timeout` is DeadlineExceeded, not an exit code.
  virtual Result<ExecSyncResult> execSync(const std::string& id,
                                          const std::vector<std::string>& cmd,
                                          std::chrono::seconds timeout) = 0;
  // The streaming calls return the URL of the runtime's streaming server.
  virtual Result<std::string> exec(const StreamingRequest& req) = 0;
  virtual Result<std::string> attach(const StreamingRequest& req) = 0;
  virtual Result<std::string> portForward(const StreamingRequest& req) = 0;

  virtual Result<ContainerStats> containerStats(const std::string& id) = 0;
  virtual Result<std::vector<ContainerStats>> listContainerStats(
      const ContainerStatsFilter& filter) = 0;
  virtual Result<PodSandboxStats> podSandboxStats(const std::string& id) = 0;
  virtual Result<std::vector<PodSandboxStats>> listPodSandboxStats(
      const PodSandboxFilter& filter) = 0;

  // Streams container events into `sink` until the stream ends, `sink` returns false, or `stop`
  // is requested. Runtimes without evented PLEG (containerd 1.6) answer Unimplemented.
  virtual Status getContainerEvents(const std::function<bool(const ContainerEvent&)>& sink,
                                    std::stop_token stop) = 0;
};

class ImageService {
 public:
  virtual ~ImageService() = default;
  virtual Result<std::vector<Image>> listImages() = 0;
  // An absent image is not an error: the result is std::nullopt.
  virtual Result<std::optional<Image>> imageStatus(const std::string& image) = 0;
  // Returns the image reference (digest) the runtime resolved.
  virtual Result<std::string> pullImage(const std::string& image, const AuthConfig* auth,
                                        const PodSandboxConfig* sandbox_config) = 0;
  virtual Status removeImage(const std::string& image) = 0;
  virtual Result<std::vector<FilesystemUsage>> imageFsInfo() = 0;
};

using RuntimeServicePtr = std::unique_ptr<RuntimeService>;
using ImageServicePtr = std::unique_ptr<ImageService>;

struct GrpcOptions {
  // The kubelet's spelling: unix:///run/containerd/containerd.sock (a bare path works too).
  std::string endpoint{"unix:///run/containerd/containerd.sock"};
  // runtimeRequestTimeout: the deadline of every call that has no longer one of its own.
  std::chrono::milliseconds request_timeout{std::chrono::minutes(2)};
  // Deadline of PullImage (images can be large).
  std::chrono::milliseconds pull_timeout{std::chrono::minutes(15)};
  // Longest wait between reconnection attempts while the runtime is down.
  std::chrono::milliseconds max_reconnect_backoff{std::chrono::seconds(2)};
};

// Both services share one channel when they share an endpoint.
struct GrpcServices {
  RuntimeServicePtr runtime;
  ImageServicePtr image;
};
Result<GrpcServices> connectGrpc(const GrpcOptions& runtime, const GrpcOptions& image);

// Normalises an endpoint to gRPC's target syntax ("unix:///path"); rejects other schemes.
Result<std::string> grpcTarget(const std::string& endpoint);

}  // namespace nodelet::cri
