#include "tests/fakes/fake_runtime_service.h"

#include <algorithm>
#include <fstream>

namespace nodelet::testing {
namespace {

bool matches(const cri::Labels& selector, const cri::Labels& labels) {
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

cri::ContainerStats statsOf(const std::string& id, const cri::ContainerStatus& st) {
  cri::ContainerStats s;
  s.id = id;
  s.name = st.name;
  s.labels = st.labels;
  return s;
}

cri::PodSandboxStats statsOf(const std::string& id, const cri::PodSandboxStatus& st) {
  cri::PodSandboxStats s;
  s.id = id;
  s.metadata = st.metadata;
  return s;
}

Error notFound(const std::string& what, const std::string& id) {
  return Error{ErrorCode::NotFound, what + " \"" + id + "\" not found"};
}

}  // namespace

std::optional<Error> FakeRuntimeService::enter(const std::string& method) {
  calls_.push_back(method);
  auto it = errors_.find(method);
  if (it == errors_.end() || it->second.empty()) return std::nullopt;
  Error e = it->second.front();
  it->second.pop_front();
  return e;
}

int64_t FakeRuntimeService::nowNs() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_.systemNow().time_since_epoch())
      .count();
}

void FakeRuntimeService::injectError(const std::string& method, Error e) {
  std::lock_guard g(mu_);
  errors_[method].push_back(std::move(e));
}

std::vector<std::string> FakeRuntimeService::calls() const {
  std::lock_guard g(mu_);
  return calls_;
}

void FakeRuntimeService::clearCalls() {
  std::lock_guard g(mu_);
  calls_.clear();
}

size_t FakeRuntimeService::countCalls(const std::string& method) const {
  std::lock_guard g(mu_);
  return static_cast<size_t>(std::count(calls_.begin(), calls_.end(), method));
}

void FakeRuntimeService::exitContainer(const std::string& id, int32_t exit_code,
                                       std::string reason) {
  std::lock_guard g(mu_);
  auto it = containers_.find(id);
  if (it == containers_.end()) return;
  auto& s = it->second.status;
  s.state = cri::ContainerState::Exited;
  s.exit_code = exit_code;
  s.finished_at = nowNs();
  s.reason = reason.empty() ? (exit_code == 0 ? "Completed" : "Error") : std::move(reason);
}

void FakeRuntimeService::setNetworkReady(bool ready, std::string reason) {
  std::lock_guard g(mu_);
  network_ready_ = ready;
  network_reason_ = std::move(reason);
}

std::string FakeRuntimeService::addForeignSandbox(const cri::PodSandboxMetadata& meta,
                                                  cri::Labels labels) {
  std::lock_guard g(mu_);
  const std::string id = "sandbox-" + std::to_string(next_id_++);
  SandboxRec r;
  r.status.id = id;
  r.status.metadata = meta;
  r.status.state = cri::SandboxState::Ready;
  r.status.created_at = nowNs();
  r.status.labels = std::move(labels);
  sandboxes_[id] = r;
  return id;
}

std::string FakeRuntimeService::addForeignContainer(const std::string& sandbox_id,
                                                    const std::string& name, cri::Labels labels,
                                                    cri::ContainerState state) {
  std::lock_guard g(mu_);
  const std::string id = "container-" + std::to_string(next_id_++);
  ContainerRec r;
  r.sandbox_id = sandbox_id;
  r.status.id = id;
  r.status.name = name;
  r.status.state = state;
  r.status.created_at = nowNs();
  r.status.labels = std::move(labels);
  containers_[id] = r;
  return id;
}

std::vector<cri::PodSandbox> FakeRuntimeService::sandboxes() const {
  std::lock_guard g(mu_);
  std::vector<cri::PodSandbox> out;
  for (const auto& [id, r] : sandboxes_) {
    out.push_back({id, r.status.metadata, r.status.state, r.status.created_at, r.status.labels,
                   r.status.annotations, r.runtime_handler});
  }
  return out;
}

std::vector<cri::ContainerStatus> FakeRuntimeService::containers() const {
  std::lock_guard g(mu_);
  std::vector<cri::ContainerStatus> out;
  for (const auto& [id, r] : containers_) out.push_back(r.status);
  return out;
}

std::map<std::string, cri::ContainerConfig> FakeRuntimeService::containerConfigs() const {
  std::lock_guard g(mu_);
  std::map<std::string, cri::ContainerConfig> out;
  for (const auto& [id, r] : containers_) out[id] = r.config;
  return out;
}

std::optional<cri::PodSandboxConfig> FakeRuntimeService::sandboxConfig(
    const std::string& id) const {
  std::lock_guard g(mu_);
  auto it = sandboxes_.find(id);
  if (it == sandboxes_.end()) return std::nullopt;
  return it->second.config;
}

std::vector<std::string> FakeRuntimeService::stoppedNames() const {
  std::lock_guard g(mu_);
  return stopped_names_;
}

Result<cri::VersionInfo> FakeRuntimeService::version() {
  std::lock_guard g(mu_);
  if (auto e = enter("Version")) return std::unexpected(*e);
  return cri::VersionInfo{"0.1.0", "fake-runtime", "1.0.0", "v1"};
}

Result<cri::RuntimeStatus> FakeRuntimeService::status(bool) {
  std::lock_guard g(mu_);
  if (auto e = enter("Status")) return std::unexpected(*e);
  cri::RuntimeStatus s;
  s.conditions.push_back({"RuntimeReady", true, "", ""});
  s.conditions.push_back({"NetworkReady", network_ready_, network_ready_ ? "" : network_reason_,
                          network_ready_ ? "" : "cni plugin not initialized"});
  return s;
}

Result<std::string> FakeRuntimeService::runPodSandbox(const cri::PodSandboxConfig& config,
                                                      const std::string& runtime_handler) {
  std::lock_guard g(mu_);
  if (auto e = enter("RunPodSandbox")) return std::unexpected(*e);
  if (!handlers_.contains(runtime_handler))  // containerd's answer
    return std::unexpected(Error{
        ErrorCode::Unknown,
        "failed to get sandbox runtime: no runtime for \"" + runtime_handler + "\" is configured"});
  const std::string id = "sandbox-" + std::to_string(next_id_++);
  SandboxRec r;
  r.config = config;
  r.runtime_handler = runtime_handler;
  r.status.id = id;
  r.status.metadata = config.metadata;
  r.status.state = cri::SandboxState::Ready;
  r.status.created_at = nowNs();
  r.status.labels = config.labels;
  r.status.annotations = config.annotations;
  if (config.security.namespaces.network != cri::NamespaceMode::Node) r.status.ip = next_ip_;
  sandboxes_[id] = r;
  return id;
}

Status FakeRuntimeService::stopPodSandbox(const std::string& id) {
  std::lock_guard g(mu_);
  if (auto e = enter("StopPodSandbox")) return std::unexpected(*e);
  auto it = sandboxes_.find(id);
  if (it == sandboxes_.end()) return {};  // idempotent, as containerd is
  it->second.status.state = cri::SandboxState::NotReady;
  for (auto& [cid, c] : containers_) {
    if (c.sandbox_id == id && c.status.state == cri::ContainerState::Running) {
      c.status.state = cri::ContainerState::Exited;
      c.status.exit_code = 137;
      c.status.reason = "Error";
      c.status.finished_at = nowNs();
    }
  }
  return {};
}

Status FakeRuntimeService::removePodSandbox(const std::string& id) {
  std::lock_guard g(mu_);
  if (auto e = enter("RemovePodSandbox")) return std::unexpected(*e);
  sandboxes_.erase(id);
  std::erase_if(containers_, [&](const auto& kv) { return kv.second.sandbox_id == id; });
  return {};
}

Result<cri::PodSandboxStatus> FakeRuntimeService::podSandboxStatus(const std::string& id, bool) {
  std::lock_guard g(mu_);
  if (auto e = enter("PodSandboxStatus")) return std::unexpected(*e);
  auto it = sandboxes_.find(id);
  if (it == sandboxes_.end()) return std::unexpected(notFound("sandbox", id));
  return it->second.status;
}

Result<std::vector<cri::PodSandbox>> FakeRuntimeService::listPodSandbox(
    const cri::PodSandboxFilter& f) {
  std::lock_guard g(mu_);
  if (auto e = enter("ListPodSandbox")) return std::unexpected(*e);
  std::vector<cri::PodSandbox> out;
  for (const auto& [id, r] : sandboxes_) {
    if (!f.id.empty() && f.id != id) continue;
    if (f.state && *f.state != r.status.state) continue;
    if (!matches(f.label_selector, r.status.labels)) continue;
    out.push_back({id, r.status.metadata, r.status.state, r.status.created_at, r.status.labels,
                   r.status.annotations, r.runtime_handler});
  }
  return out;
}

Result<std::string> FakeRuntimeService::createContainer(const std::string& sandbox_id,
                                                        const cri::ContainerConfig& config,
                                                        const cri::PodSandboxConfig&) {
  std::lock_guard g(mu_);
  if (auto e = enter("CreateContainer")) return std::unexpected(*e);
  auto sb = sandboxes_.find(sandbox_id);
  if (sb == sandboxes_.end()) return std::unexpected(notFound("sandbox", sandbox_id));
  if (sb->second.status.state != cri::SandboxState::Ready)
    return fail(ErrorCode::Unknown, "sandbox " + sandbox_id + " is not ready");
  const std::string id = "container-" + std::to_string(next_id_++);
  ContainerRec r;
  r.sandbox_id = sandbox_id;
  r.config = config;
  r.status.id = id;
  r.status.name = config.name;
  r.status.attempt = config.attempt;
  r.status.state = cri::ContainerState::Created;
  r.status.created_at = nowNs();
  r.status.image = config.image;
  r.status.image_ref = "sha256:fake-" + config.image;
  r.status.labels = config.labels;
  r.status.annotations = config.annotations;
  r.status.log_path = sb->second.config.log_directory + "/" + config.log_path;
  containers_[id] = r;
  return id;
}

Status FakeRuntimeService::startContainer(const std::string& id) {
  std::lock_guard g(mu_);
  if (auto e = enter("StartContainer")) return std::unexpected(*e);
  auto it = containers_.find(id);
  if (it == containers_.end()) return std::unexpected(notFound("container", id));
  if (it->second.status.state != cri::ContainerState::Created)
    return fail(ErrorCode::Unknown, "container " + id + " is not in created state");
  it->second.status.state = cri::ContainerState::Running;
  it->second.status.started_at = nowNs();
  return {};
}

Status FakeRuntimeService::stopContainer(const std::string& id, int64_t) {
  std::lock_guard g(mu_);
  if (auto e = enter("StopContainer")) return std::unexpected(*e);
  auto it = containers_.find(id);
  if (it == containers_.end()) return std::unexpected(notFound("container", id));
  auto& s = it->second.status;
  stopped_names_.push_back(s.name);
  if (s.state == cri::ContainerState::Running || s.state == cri::ContainerState::Created) {
    s.state = cri::ContainerState::Exited;
    s.exit_code = 143;
    s.reason = "Error";
    s.finished_at = nowNs();
  }
  return {};
}

Status FakeRuntimeService::removeContainer(const std::string& id) {
  std::lock_guard g(mu_);
  if (auto e = enter("RemoveContainer")) return std::unexpected(*e);
  containers_.erase(id);
  return {};
}

Result<std::vector<cri::Container>> FakeRuntimeService::listContainers(
    const cri::ContainerFilter& f) {
  std::lock_guard g(mu_);
  if (auto e = enter("ListContainers")) return std::unexpected(*e);
  std::vector<cri::Container> out;
  for (const auto& [id, r] : containers_) {
    if (!f.id.empty() && f.id != id) continue;
    if (!f.pod_sandbox_id.empty() && f.pod_sandbox_id != r.sandbox_id) continue;
    if (f.state && *f.state != r.status.state) continue;
    if (!matches(f.label_selector, r.status.labels)) continue;
    out.push_back({id, r.sandbox_id, r.status.name, r.status.attempt, r.status.image,
                   r.status.image_ref, r.status.state, r.status.created_at, r.status.labels,
                   r.status.annotations});
  }
  return out;
}

Result<cri::ContainerStatus> FakeRuntimeService::containerStatus(const std::string& id, bool) {
  std::lock_guard g(mu_);
  if (auto e = enter("ContainerStatus")) return std::unexpected(*e);
  auto it = containers_.find(id);
  if (it == containers_.end()) return std::unexpected(notFound("container", id));
  return it->second.status;
}

Status FakeRuntimeService::updateContainerResources(const std::string& id,
                                                    const cri::LinuxResources&) {
  std::lock_guard g(mu_);
  if (auto e = enter("UpdateContainerResources")) return std::unexpected(*e);
  if (!containers_.contains(id)) return std::unexpected(notFound("container", id));
  return {};
}

void FakeRuntimeService::setContainerLogPath(const std::string& id, std::string path) {
  std::lock_guard g(mu_);
  containers_.at(id).status.log_path = std::move(path);
}

Status FakeRuntimeService::reopenContainerLog(const std::string& id) {
  std::function<void(const std::string&)> observer;
  {
    std::lock_guard g(mu_);
    if (auto e = enter("ReopenContainerLog")) return std::unexpected(*e);
    auto c = containers_.find(id);
    if (c == containers_.end()) return std::unexpected(notFound("container", id));
    if (c->second.status.state != cri::ContainerState::Running)
      return std::unexpected(Error{ErrorCode::FailedPrecondition, "container is not running"});
    // containerd closes the old file and opens the path again, creating it.
    if (const auto& path = c->second.status.log_path; !path.empty())
      std::ofstream(path, std::ios::app).flush();
    observer = reopen_observer_;
  }
  if (observer) observer(id);
  return {};
}

void FakeRuntimeService::scriptExec(const std::string& cmdline, cri::ExecSyncResult result) {
  std::lock_guard g(mu_);
  exec_script_[cmdline] = std::move(result);
}

Result<cri::ExecSyncResult> FakeRuntimeService::execSync(const std::string& id,
                                                         const std::vector<std::string>& cmd,
                                                         std::chrono::seconds) {
  std::lock_guard g(mu_);
  if (auto e = enter("ExecSync")) return std::unexpected(*e);
  auto it = containers_.find(id);
  if (it == containers_.end() || it->second.status.state != cri::ContainerState::Running)
    return fail(ErrorCode::Unknown, "container " + id + " is not running");
  std::string line;
  for (const auto& c : cmd) line += (line.empty() ? "" : " ") + c;
  auto s = exec_script_.find(line);
  return s == exec_script_.end() ? cri::ExecSyncResult{} : s->second;
}

// As containerd checks them: the streams asked for, and a running container.
Result<std::string> FakeRuntimeService::streamingUrl(const char* method,
                                                     const cri::StreamingRequest& r) {
  if (auto e = enter(method)) return std::unexpected(*e);
  last_streaming_ = r;
  const std::string kind = std::string(method) == "PortForward" ? "portforward"
                           : std::string(method) == "Exec"      ? "exec"
                                                                : "attach";
  if (kind == "portforward") {
    if (!sandboxes_.contains(r.pod_sandbox_id))
      return std::unexpected(notFound("sandbox", r.pod_sandbox_id));
    return streaming_base_ + "/portforward/" + r.pod_sandbox_id;
  }
  auto it = containers_.find(r.container_id);
  if (it == containers_.end()) return std::unexpected(notFound("container", r.container_id));
  if (it->second.status.state != cri::ContainerState::Running)
    return fail(ErrorCode::Unknown, "container " + r.container_id + " is not running");
  if (!r.stdin_ && !r.stdout_ && !r.stderr_)
    return fail(ErrorCode::InvalidArgument, "one of stdin, stdout, or stderr must be set");
  if (r.tty && r.stderr_)
    return fail(ErrorCode::InvalidArgument, "tty and stderr cannot both be true");
  return streaming_base_ + "/" + kind + "/" + r.container_id;
}

Result<std::string> FakeRuntimeService::exec(const cri::StreamingRequest& r) {
  std::lock_guard g(mu_);
  return streamingUrl("Exec", r);
}
Result<std::string> FakeRuntimeService::attach(const cri::StreamingRequest& r) {
  std::lock_guard g(mu_);
  return streamingUrl("Attach", r);
}
Result<std::string> FakeRuntimeService::portForward(const cri::StreamingRequest& r) {
  std::lock_guard g(mu_);
  return streamingUrl("PortForward", r);
}

Result<cri::ContainerStats> FakeRuntimeService::containerStats(const std::string& id) {
  std::lock_guard g(mu_);
  if (auto e = enter("ContainerStats")) return std::unexpected(*e);
  auto it = containers_.find(id);
  if (it == containers_.end()) return std::unexpected(notFound("container", id));
  return statsOf(id, it->second.status);
}

Result<std::vector<cri::ContainerStats>> FakeRuntimeService::listContainerStats(
    const cri::ContainerStatsFilter&) {
  std::lock_guard g(mu_);
  if (auto e = enter("ListContainerStats")) return std::unexpected(*e);
  std::vector<cri::ContainerStats> out;
  for (const auto& [id, r] : containers_) out.push_back(statsOf(id, r.status));
  return out;
}

Result<cri::PodSandboxStats> FakeRuntimeService::podSandboxStats(const std::string& id) {
  std::lock_guard g(mu_);
  if (auto e = enter("PodSandboxStats")) return std::unexpected(*e);
  auto it = sandboxes_.find(id);
  if (it == sandboxes_.end()) return std::unexpected(notFound("sandbox", id));
  return statsOf(id, it->second.status);
}

Result<std::vector<cri::PodSandboxStats>> FakeRuntimeService::listPodSandboxStats(
    const cri::PodSandboxFilter&) {
  std::lock_guard g(mu_);
  if (auto e = enter("ListPodSandboxStats")) return std::unexpected(*e);
  std::vector<cri::PodSandboxStats> out;
  for (const auto& [id, r] : sandboxes_) out.push_back(statsOf(id, r.status));
  return out;
}

Status FakeRuntimeService::getContainerEvents(
    const std::function<bool(const cri::ContainerEvent&)>&, std::stop_token) {
  std::lock_guard g(mu_);
  if (auto e = enter("GetContainerEvents")) return std::unexpected(*e);
  return fail(ErrorCode::Unimplemented,
              "GetContainerEvents: not implemented (fake, like containerd 1.6)");
}

// ---- images ------------------------------------------------------------------------------

std::optional<Error> FakeImageService::enter(const std::string& method) {
  calls_.push_back(method);
  auto it = errors_.find(method);
  if (it == errors_.end() || it->second.empty()) return std::nullopt;
  Error e = it->second.front();
  it->second.pop_front();
  return e;
}

void FakeImageService::addImage(const std::string& ref, const std::string& id) {
  std::lock_guard g(mu_);
  cri::Image img;
  img.id = id.empty() ? "sha256:" + std::to_string(std::hash<std::string>{}(ref)) : id;
  img.repo_tags = {ref};
  img.size = 1024 * 1024;
  images_[ref] = img;
}

void FakeImageService::setImageUser(const std::string& ref, std::optional<int64_t> uid,
                                    const std::string& username) {
  std::lock_guard g(mu_);
  images_[ref].uid = uid;
  images_[ref].username = username;
}

void FakeImageService::injectError(const std::string& method, Error e) {
  std::lock_guard g(mu_);
  errors_[method].push_back(std::move(e));
}

std::vector<std::string> FakeImageService::calls() const {
  std::lock_guard g(mu_);
  return calls_;
}

Result<std::vector<cri::Image>> FakeImageService::listImages() {
  std::lock_guard g(mu_);
  if (auto e = enter("ListImages")) return std::unexpected(*e);
  std::vector<cri::Image> out;
  for (const auto& [ref, img] : images_) out.push_back(img);
  return out;
}

Result<std::optional<cri::Image>> FakeImageService::imageStatus(const std::string& image) {
  std::lock_guard g(mu_);
  if (auto e = enter("ImageStatus")) return std::unexpected(*e);
  auto it = images_.find(image);
  if (it == images_.end()) return std::optional<cri::Image>();
  return std::optional<cri::Image>(it->second);
}

Result<std::string> FakeImageService::pullImage(const std::string& image,
                                                const cri::AuthConfig* auth,
                                                const cri::PodSandboxConfig*) {
  std::unique_lock g(mu_);
  if (auto e = enter("PullImage")) return std::unexpected(*e);
  pull_users_.push_back(auth ? auth->username : "");
  if (!pullable_)
    return fail(ErrorCode::Unknown, "failed to pull \"" + image + "\": connection refused");
  if (auto it = private_.find(image);
      it != private_.end() &&
      (!auth || auth->username != it->second.first || auth->password != it->second.second))
    return fail(ErrorCode::Unknown, "failed to pull and unpack image \"" + image +
                                        "\": failed to authorize: 401 Unauthorized");
  g.unlock();
  addImage(image);
  g.lock();
  return images_[image].id;
}

Status FakeImageService::removeImage(const std::string& image) {
  std::lock_guard g(mu_);
  if (auto e = enter("RemoveImage")) return std::unexpected(*e);
  images_.erase(image);
  return {};
}

Result<std::vector<cri::FilesystemUsage>> FakeImageService::imageFsInfo() {
  std::lock_guard g(mu_);
  if (auto e = enter("ImageFsInfo")) return std::unexpected(*e);
  return std::vector<cri::FilesystemUsage>{{0, "/var/lib/fake", 1024, 10}};
}

}  // namespace nodelet::testing
