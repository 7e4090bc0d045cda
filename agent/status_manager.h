#pragma once
// The pods' statuses as last computed, for everything that reports them: /pods, `nodelet pods`
// (through an atomic snapshot file under the root dir, readable by root only), and in cluster
// mode the API server.
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/core/pod.h"

namespace nodelet::agent {

class StatusManager {
 public:
  explicit StatusManager(std::string snapshot_path = "")
      : snapshot_path_(std::move(snapshot_path)) {}

  // Told of every change (the pod carries its new status) and every removal, outside the lock:
  // in cluster mode, the API status syncer. Set before any status arrives.
  using Listener = std::function<void(const api::Pod& pod, bool removed)>;
  void setListener(Listener l) { listener_ = std::move(l); }

  void setPodStatus(const api::Pod& pod, api::PodStatus status);
  void removePod(const std::string& uid);
  std::optional<api::PodStatus> podStatus(const std::string& uid) const;
  // Every pod with its status, sorted by namespace and name.
  std::vector<api::Pod> pods() const;
  // The pod with this namespace and name, with its status (what the node server looks up).
  std::optional<api::Pod> podByName(const std::string& ns, const std::string& name) const;
  // Writes the snapshot if anything changed since the last write.
  void flush();
  // Runtime ids ("containerd://" stripped) of the containers the snapshot reported ready: what a
  // restarted nodelet keeps reporting ready until their probes say otherwise.
  std::set<std::string> readyContainersInSnapshot() const;

 private:
  std::string snapshot_path_;
  Listener listener_;
  mutable std::mutex mu_;
  std::map<std::string, api::Pod> pods_;  // by UID, status included
  bool dirty_{false};
};

}  // namespace nodelet::agent
