#pragma once
// A collection from the API server (the pods bound to this node; one ConfigMap or Secret a pod
// uses): list, then watch, as client-go's reflector does it (API-FACTS §C): list with
// resourceVersion=0, watch from the list's resourceVersion with bookmarks and a timeoutSeconds
// drawn from [300, 600); re-watch from the last seen version when a watch ends; list again
// after 410 Expired (first from the last version, then unset); back off on errors. A malformed
// event ends the watch (re-watched from the last good version), never the process.
//
// The current set is kept in an ObjectStore that other controllers read (the status syncer
// diffs against the server's copy of each pod).
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "agent/core/clock.h"
#include "agent/kube/client.h"

namespace nodelet::kube {

// The API server's objects, by "namespace/name".
class ObjectStore {
 public:
  void replace(std::map<std::string, nlohmann::json> pods);
  void upsert(const nlohmann::json& pod);
  void erase(const std::string& key);
  std::optional<nlohmann::json> get(const std::string& ns, const std::string& name) const;
  std::vector<nlohmann::json> all() const;
  // A write's reply replaces our copy of the same pod (same UID; a deleted one stays deleted).
  // resourceVersions are opaque, so it cannot tell whether the watch is already further: the
  // watch delivers the write again and any later change after it.
  void updateWithReply(const nlohmann::json& pod);
  static std::string keyOf(const nlohmann::json& pod);

 private:
  mutable std::mutex mu_;
  std::map<std::string, nlohmann::json> objects_;
};

struct ReflectorOptions {
  std::string resource{"pods"};            // plural, for messages
  std::string kind{"Pod"};                 // given to list items (they carry none)
  std::string collection{"/api/v1/pods"};  // listed and watched
  std::string field_selector;              // "spec.nodeName=n1", "metadata.name=app-config"
  // client-go informer watches also send timeout=<Go duration> next to timeoutSeconds; the
  // kubelet's pod watch does not (recorded/README.md §12).
  bool timeout_param{false};
  Duration min_watch_timeout{std::chrono::seconds(300)};
  Duration max_watch_timeout{std::chrono::seconds(600)};
  Duration initial_backoff{std::chrono::milliseconds(200)};
  Duration max_backoff{std::chrono::seconds(30)};
  uint64_t seed{0};
};

class Reflector {
 public:
  // Called after every change with the full current set (the kubelet's SET semantics).
  using OnChange = std::function<void(const std::vector<nlohmann::json>& objects)>;

  Reflector(Client& client, Clock& clock, ObjectStore& store, ReflectorOptions options,
            OnChange on_change);
  // Lists (unless `listed`: list() already succeeded), then watches until `stop`.
  void run(std::stop_token stop, bool listed = false);
  bool synced() const;

  // One list; on success the store holds the result and the list's resourceVersion is kept.
  Status list();
  // One watch until it ends; returns whether a relist is needed (410 or a lost version).
  Result<bool> watch(std::stop_token stop);
  std::string resourceVersion() const;
  uint64_t lists() const { return lists_; }

 private:
  std::string selector() const;
  void publish();
  Duration watchTimeout();
  void waitFor(Duration d, std::stop_token stop);

  Client& client_;
  Clock& clock_;
  ObjectStore& store_;
  ReflectorOptions o_;
  OnChange on_change_;
  mutable std::mutex mu_;
  std::string rv_;
  std::string list_rv_{"0"};  // what the next list asks for: "0", the last version, or ""
  bool synced_{false};
  uint64_t rng_;
  uint64_t lists_{0};
};

}  // namespace nodelet::kube
