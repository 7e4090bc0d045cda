#pragma once
// Per-pod workers. Every pod UID has one serial strand of work on a small fixed thread pool:
// updates for a UID never run concurrently, a newer update replaces a pending one ("latest
// wins"), and a pending kill is never replaced by an update.
//
// Lifecycle of one UID (transitions only along the arrows; canTransition() is the table):
//
//     Syncing ──kill──▶ Terminating ──stopped──▶ Terminated ──removed──▶ Finished (forgotten)
//        │                  ▲                        │
//        └──pod completed───┘                        └── kept while a completed pod stays wanted
//
// A pod may only start once no other UID with the same full name (name_namespace) is still
// between Syncing and Finished: an edited static pod's new UID waits for the old one to stop
// (as the kubelet does, so host ports and names never overlap).
//
// A UID added again while its old self is being removed (a static pod's manifest deleted and put
// back unchanged: same content, same UID) starts afresh as soon as the removal is done, as the
// kubelet restarts such a pod (kubelet_restarted_pods_total).
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent/core/clock.h"
#include "agent/core/error.h"
#include "agent/core/pod.h"

namespace nodelet::agent {

enum class PodWorkerState { Syncing, Terminating, Terminated, Finished };
std::string_view toString(PodWorkerState s);
constexpr bool canTransition(PodWorkerState from, PodWorkerState to) {
  switch (from) {
    case PodWorkerState::Syncing:
      return to == PodWorkerState::Terminating;
    case PodWorkerState::Terminating:
      return to == PodWorkerState::Terminated;
    case PodWorkerState::Terminated:
      return to == PodWorkerState::Finished;
    case PodWorkerState::Finished:
      return false;
  }
  return false;
}

struct SyncOutcome {
  std::optional<Duration> requeue_after;
  bool pod_done{false};  // ran to completion: terminate it (but keep it while wanted)
  Status error;
};

// Why a pod syncs, the kubelet's SyncPodType (its operation_type label): the pod was just added
// to its source, its spec (or labels, or deletion) changed, or neither (a resync, a runtime
// event, a referenced object's change).
enum class SyncReason { Sync, Update, Create };  // in rising strength: a merge keeps the strongest
std::string_view toString(SyncReason r);         // "sync", "create", "update"

// What the workers call; the agent implements it (the kubelet's podSyncer seam).
class PodSyncer {
 public:
  virtual ~PodSyncer() = default;
  virtual SyncOutcome syncPod(const api::Pod& pod, SyncReason reason) = 0;
  // Stop everything of the pod; `pod` is null for a pod known only from the runtime.
  virtual Status syncTerminatingPod(const std::string& uid, const api::Pod* pod,
                                    std::optional<int64_t> grace_seconds) = 0;
  // After termination; `remove` when the pod is gone for good (delete its leftovers).
  virtual Status syncTerminatedPod(const std::string& uid, const api::Pod* pod, bool remove) = 0;
  // The pod's UID was added again while it was being removed, and now starts afresh.
  virtual void podRestarted(const api::Pod& /*pod*/) {}
};

struct PodUpdate {
  enum class Type { Sync, Kill };
  Type type{Type::Sync};
  std::string uid;
  std::optional<api::Pod> pod;  // Sync: the wanted pod; Kill: the pod if known
  std::optional<int64_t> grace_seconds;
  bool remove{true};                    // Kill: remove the pod's leftovers once stopped
  SyncReason reason{SyncReason::Sync};  // Sync: why
};

class PodWorkers {
 public:
  PodWorkers(PodSyncer& syncer, Clock& clock, size_t threads);
  ~PodWorkers();
  PodWorkers(const PodWorkers&) = delete;
  PodWorkers& operator=(const PodWorkers&) = delete;

  void updatePod(PodUpdate update);
  // Queues a Sync for every pod whose delayed resync (back-off end) is due; returns the next
  // due time, if any. The sync loop calls it on every iteration.
  std::optional<MonoTime> tick();
  std::optional<PodWorkerState> state(const std::string& uid) const;
  bool known(const std::string& uid) const;
  std::vector<std::string> uids() const;
  // Blocks until no work is queued or running (tests and orderly shutdown).
  void waitIdle();
  void stop();

 private:
  struct Worker {
    PodWorkerState state{PodWorkerState::Syncing};
    std::optional<PodUpdate> pending;
    std::optional<api::Pod> pod;  // latest wanted spec
    bool active{false};
    bool queued{false};
    bool remove{true};
    std::optional<int64_t> grace;
    std::optional<MonoTime> resync_at;  // a delayed Sync (or, with retry_kill, Kill) is due
    bool retry_kill{false};
    bool restart{false};  // added again while being removed: start afresh once removed
    std::string full_name;
  };
  void enqueueLocked(const std::string& uid);
  void run(std::stop_token stop);
  void process(const std::string& uid, PodUpdate update);
  bool blockedByOtherLocked(const std::string& uid, const Worker& w) const;
  void transitionLocked(Worker& w, PodWorkerState to);
  // Forgets a Finished worker (or starts it afresh when it was added again); may unlock `l`.
  void finishLocked(std::unique_lock<std::mutex>& l, const std::string& uid);

  PodSyncer& syncer_;
  Clock& clock_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable idle_cv_;
  std::map<std::string, Worker> workers_;
  std::deque<std::string> queue_;
  size_t busy_{0};
  bool stopping_{false};
  std::vector<std::jthread> threads_;
};

}  // namespace nodelet::agent
