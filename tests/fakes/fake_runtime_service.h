#pragma once
// Stateful in-memory CRI: sandboxes and containers with their states, a call log, and errors
// queued per method. Timestamps come from the injected Clock. Thread-safe.
//
//   FakeRuntimeService rt(clock);
//   rt.injectError("StartContainer", Error{ErrorCode::Unknown, "boom"});
//   ... code under test ...
//   EXPECT_EQ(rt.calls(), (std::vector<std::string>{"RunPodSandbox", "CreateContainer"}));
//   rt.exitContainer(id, 1);   // the container's process ends
#include <deque>
#include <map>
#include <mutex>
#include <set>

#include "agent/core/clock.h"
#include "cri/runtime_service.h"

namespace nodelet::testing {

class FakeRuntimeService final : public cri::RuntimeService {
 public:
  explicit FakeRuntimeService(Clock& clock) : clock_(clock) {}

  // ---- test controls ----
  void injectError(const std::string& method, Error e);
  std::vector<std::string> calls() const;
  void clearCalls();
  size_t countCalls(const std::string& method) const;
  // Ends a running container's process with `exit_code` (reason "Completed" or "Error").
  void exitContainer(const std::string& id, int32_t exit_code, std::string reason = "");
  void setSandboxIp(std::string ip) {
    std::lock_guard g(mu_);
    next_ip_ = std::move(ip);
  }
  void setNetworkReady(bool ready, std::string reason = "NetworkPluginNotReady");
  // The runtime handlers RunPodSandbox knows (default: "" and "runc", as containerd's config).
  void setRuntimeHandlers(std::set<std::string> handlers) {
    std::lock_guard g(mu_);
    handlers_ = std::move(handlers);
  }
  // Adds a sandbox/container that nodelet did not create (for "never touch others" tests).
  std::string addForeignSandbox(const cri::PodSandboxMetadata& meta, cri::Labels labels);
  std::string addForeignContainer(const std::string& sandbox_id, const std::string& name,
                                  cri::Labels labels, cri::ContainerState state);
  std::vector<cri::PodSandbox> sandboxes() const;
  std::vector<cri::ContainerStatus> containers() const;
  std::map<std::string, cri::ContainerConfig> containerConfigs() const;
  std::optional<cri::PodSandboxConfig> sandboxConfig(const std::string& id) const;
  // Names of the containers StopContainer was called for, in call order.
  std::vector<std::string> stoppedNames() const;

  // cri::RuntimeService
  Result<cri::VersionInfo> version() override;
  Result<cri::RuntimeStatus> status(bool verbose) override;
  Result<std::string> runPodSandbox(const cri::PodSandboxConfig& config,
                                    const std::string& runtime_handler) override;
  Status stopPodSandbox(const std::string& id) override;
  Status removePodSandbox(const std::string& id) override;
  Result<cri::PodSandboxStatus> podSandboxStatus(const std::string& id, bool verbose) override;
  Result<std::vector<cri::PodSandbox>> listPodSandbox(const cri::PodSandboxFilter& filter) override;
  Result<std::string> createContainer(const std::string& sandbox_id,
                                      const cri::ContainerConfig& config,
                                      const cri::PodSandboxConfig& sandbox_config) override;
  Status startContainer(const std::string& id) override;
  Status stopContainer(const std::string& id, int64_t timeout_seconds) override;
  Status removeContainer(const std::string& id) override;
  Result<std::vector<cri::Container>> listContainers(const cri::ContainerFilter& filter) override;
  Result<cri::ContainerStatus> containerStatus(const std::string& id, bool verbose) override;
  Status updateContainerResources(const std::string& id, const cri::LinuxResources& r) override;
  Status reopenContainerLog(const std::string& id) override;
  Result<cri::ExecSyncResult> execSync(const std::string& id, const std::vector<std::string>& cmd,
                                       std::chrono::seconds timeout) override;
  Result<std::string> exec(const cri::StreamingRequest& req) override;
  Result<std::string> attach(const cri::StreamingRequest& req) override;
  Result<std::string> portForward(const cri::StreamingRequest& req) override;
  Result<cri::ContainerStats> containerStats(const std::string& id) override;
  Result<std::vector<cri::ContainerStats>> listContainerStats(
      const cri::ContainerStatsFilter& f) override;
  Result<cri::PodSandboxStats> podSandboxStats(const std::string& id) override;
  Result<std::vector<cri::PodSandboxStats>> listPodSandboxStats(
      const cri::PodSandboxFilter& f) override;
  Status getContainerEvents(const std::function<bool(const cri::ContainerEvent&)>& sink,
                            std::stop_token stop) override;

  // The container's log path (status.logPath); ReopenContainerLog creates it as containerd does.
  void setContainerLogPath(const std::string& id, std::string path);
  // Called after each successful ReopenContainerLog, outside the fake's lock.
  void setReopenObserver(std::function<void(const std::string& id)> f) {
    std::lock_guard g(mu_);
    reopen_observer_ = std::move(f);
  }

  // Exec results scripted per command line (joined by spaces); default exit 0, empty output.
  void scriptExec(const std::string& cmdline, cri::ExecSyncResult result);
  // Where Exec/Attach/PortForward point ("http://host:port"; a test's own streaming server).
  void setStreamingBase(std::string base) {
    std::lock_guard g(mu_);
    streaming_base_ = std::move(base);
  }
  // The last Exec/Attach/PortForward request.
  cri::StreamingRequest lastStreamingRequest() const {
    std::lock_guard g(mu_);
    return last_streaming_;
  }

 private:
  struct SandboxRec {
    cri::PodSandboxStatus status;
    cri::PodSandboxConfig config;
    std::string runtime_handler;
  };
  struct ContainerRec {
    cri::ContainerStatus status;
    std::string sandbox_id;
    cri::ContainerConfig config;
  };
  Result<std::string> streamingUrl(const char* method, const cri::StreamingRequest& r);
  // Records the call and pops an injected error; must hold mu_.
  std::optional<Error> enter(const std::string& method);
  int64_t nowNs() const;

  Clock& clock_;
  mutable std::mutex mu_;
  std::vector<std::string> calls_;
  std::map<std::string, std::deque<Error>> errors_;
  std::map<std::string, SandboxRec> sandboxes_;
  std::map<std::string, ContainerRec> containers_;
  std::map<std::string, cri::ExecSyncResult> exec_script_;
  std::vector<std::string> stopped_names_;
  std::string streaming_base_{"http://127.0.0.1:1"};
  cri::StreamingRequest last_streaming_;
  std::function<void(const std::string&)> reopen_observer_;
  std::string next_ip_{"10.86.0.2"};
  bool network_ready_{true};
  std::set<std::string> handlers_{"", "runc"};
  std::string network_reason_;
  uint64_t next_id_{1};
};

class FakeImageService final : public cri::ImageService {
 public:
  void addImage(const std::string& ref, const std::string& id = "");
  // The image's configured user (USER in its config): a uid, or a name.
  void setImageUser(const std::string& ref, std::optional<int64_t> uid,
                    const std::string& username = "");
  void injectError(const std::string& method, Error e);
  std::vector<std::string> calls() const;
  // When false, PullImage fails as it does with no registry reachable.
  void setPullable(bool p) {
    std::lock_guard g(mu_);
    pullable_ = p;
  }
  // A private image: pulls without this username and password are refused, as a registry does.
  void requireAuth(const std::string& image, std::string user, std::string password) {
    std::lock_guard g(mu_);
    private_[image] = {std::move(user), std::move(password)};
  }
  // The username every pull came with, in order ("" for an anonymous one).
  std::vector<std::string> pullUsers() const {
    std::lock_guard g(mu_);
    return pull_users_;
  }

  // cri::ImageService
  Result<std::vector<cri::Image>> listImages() override;
  Result<std::optional<cri::Image>> imageStatus(const std::string& image) override;
  Result<std::string> pullImage(const std::string& image, const cri::AuthConfig* auth,
                                const cri::PodSandboxConfig* sandbox_config) override;
  Status removeImage(const std::string& image) override;
  Result<std::vector<cri::FilesystemUsage>> imageFsInfo() override;

 private:
  std::optional<Error> enter(const std::string& method);
  mutable std::mutex mu_;
  std::vector<std::string> calls_;
  std::map<std::string, std::deque<Error>> errors_;
  std::map<std::string, cri::Image> images_;  // by ref
  bool pullable_{true};
  std::map<std::string, std::pair<std::string, std::string>> private_;  // image -> credentials
  std::vector<std::string> pull_users_;
};

}  // namespace nodelet::testing
