#pragma once
// Writes pod status to the API server, and keeps mirror pods for static pods (the kubelet's
// status manager and mirror client):
//   - API pods: a strategic-merge PATCH to pods/<name>/status with the UID precondition
//     ({"metadata":{"uid":...}}), computed as the two-way patch from the server's copy (the pod
//     watch's store) to nodelet's status; conditions nodelet does not own are kept; nothing is
//     sent when nothing changed.
//   - A pod being deleted: once terminated, its final status goes out, then a DELETE with
//     gracePeriodSeconds 0 and the UID precondition.
//   - Static pods: a mirror pod (annotation kubernetes.io/config.mirror = config.hash, one owner
//     reference to the Node) is created, recreated when deleted or outdated, deleted when the
//     static pod goes; the static pod's status is written to it.
// Statuses arrive through onStatus (from the status manager) and are kept until written, so an
// API outage loses nothing: everything is sent, newest only, when the server answers again.
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <stop_token>
#include <string>

#include "agent/core/clock.h"
#include "agent/core/pod.h"
#include "agent/kube/client.h"
#include "agent/kube/reflector.h"

namespace nodelet::kube {

struct StatusSyncerOptions {
  std::string node_name;
  Duration resync_period{std::chrono::seconds(10)};
  Duration retry_period{std::chrono::seconds(1)};
};

class StatusSyncer {
 public:
  using NodeUidFn = std::function<std::string()>;
  StatusSyncer(Client& client, Clock& clock, ObjectStore& store, StatusSyncerOptions options,
               NodeUidFn node_uid);

  // The latest status of a pod this node runs (the pod carries it in .status).
  void onStatus(const api::Pod& pod);
  // The pod is no longer on this node.
  void onRemoved(const std::string& uid);
  // A pod whose deletion was requested has stopped: delete it once its final status is out.
  void onTerminated(const std::string& uid);
  // The pod watch changed something: mirror pods may need work.
  void wake();

  void run(std::stop_token stop);
  // One pass over every pod; returns the number of failed writes (0 = all in sync).
  int syncOnce();

 private:
  struct Entry {
    api::Pod pod;
    bool removed{false};
    bool terminated{false};
    bool dirty{true};
  };
  // Returns false when the API server must be asked again later.
  bool syncEntry(const std::string& uid, Entry& e);
  bool syncStatus(const Entry& e, const nlohmann::json& target);
  std::optional<nlohmann::json> ensureMirror(const Entry& e);
  bool deletePod(const nlohmann::json& target, const char* why);

  Client& client_;
  Clock& clock_;
  ObjectStore& store_;
  StatusSyncerOptions o_;
  NodeUidFn node_uid_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool wake_{false};
  std::map<std::string, Entry> pods_;  // by nodelet's UID
};

// Whether a pod from the API server is a mirror pod (kubernetes.io/config.mirror).
bool isMirrorPod(const nlohmann::json& pod);
// The mirror pod nodelet creates for a static pod.
nlohmann::json mirrorPodFor(const api::Pod& static_pod, const std::string& node_name,
                            const std::string& node_uid);
// The status nodelet writes: its own, plus the conditions the server has that nodelet does not
// own (and resourceClaimStatuses), as the kubelet's mergePodStatus keeps them.
nlohmann::json mergedStatus(const nlohmann::json& ours, const nlohmann::json& server);

}  // namespace nodelet::kube
