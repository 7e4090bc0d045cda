#include "agent/status_manager.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "agent/core/api_json.h"
#include "agent/core/log.h"

namespace nodelet::agent {

void StatusManager::setPodStatus(const api::Pod& pod, api::PodStatus status) {
  api::Pod changed;
  {
    std::lock_guard g(mu_);
    auto& p = pods_[pod.metadata.uid];
    if (p.metadata == pod.metadata && p.spec == pod.spec && p.status == status) return;
    p = pod;
    p.status = std::move(status);
    dirty_ = true;
    if (!listener_) return;
    changed = p;
  }
  listener_(changed, false);
}

void StatusManager::removePod(const std::string& uid) {
  api::Pod gone;
  {
    std::lock_guard g(mu_);
    auto it = pods_.find(uid);
    if (it == pods_.end()) return;
    gone = std::move(it->second);
    pods_.erase(it);
    dirty_ = true;
  }
  if (listener_) listener_(gone, true);
}

std::optional<api::PodStatus> StatusManager::podStatus(const std::string& uid) const {
  std::lock_guard g(mu_);
  auto it = pods_.find(uid);
  if (it == pods_.end()) return std::nullopt;
  return it->second.status;
}

std::vector<api::Pod> StatusManager::pods() const {
  std::lock_guard g(mu_);
  std::vector<api::Pod> out;
  for (const auto& [uid, p] : pods_) out.push_back(p);
  std::sort(out.begin(), out.end(), [](const api::Pod& a, const api::Pod& b) {
    return std::tie(a.metadata.namespace_, a.metadata.name) <
           std::tie(b.metadata.namespace_, b.metadata.name);
  });
  return out;
}

std::optional<api::Pod> StatusManager::podByName(const std::string& ns,
                                                 const std::string& name) const {
  std::lock_guard g(mu_);
  for (const auto& [uid, p] : pods_)
    if (p.metadata.namespace_ == ns && p.metadata.name == name) return p;
  return std::nullopt;
}

std::set<std::string> StatusManager::readyContainersInSnapshot() const {
  std::set<std::string> out;
  if (snapshot_path_.empty()) return out;
  std::ifstream in(snapshot_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  auto list = nlohmann::json::parse(ss.str(), nullptr, false);
  if (!list.is_object() || !list.contains("items") || !list["items"].is_array()) return out;
  for (const auto& p : list["items"]) {
    if (!p.is_object() || !p.contains("status") || !p["status"].is_object()) continue;
    for (const char* key : {"containerStatuses", "initContainerStatuses"}) {
      const auto& cs = p["status"].value(key, nlohmann::json::array());
      if (!cs.is_array()) continue;
      for (const auto& c : cs) {
        if (!c.is_object() || !c.value("ready", false)) continue;
        const std::string id = c.value("containerID", "");
        const auto sep = id.find("://");
        if (sep != std::string::npos) out.insert(id.substr(sep + 3));
      }
    }
  }
  return out;
}

void StatusManager::flush() {
  if (snapshot_path_.empty()) return;
  std::string text;
  {
    std::lock_guard g(mu_);
    if (!dirty_) return;
    dirty_ = false;
  }
  text = api::encodePodList(pods());
  const std::string tmp = snapshot_path_ + ".tmp";
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(snapshot_path_).parent_path(), ec);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    NODELET_LOG(warn, Agent, "status snapshot {}: {}", tmp, strerror(errno));
    return;
  }
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), snapshot_path_.c_str()) != 0)
    NODELET_LOG(warn, Agent, "status snapshot {}: write failed", snapshot_path_);
}

}  // namespace nodelet::agent
