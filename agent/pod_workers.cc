#include "agent/pod_workers.h"

#include "agent/core/log.h"

namespace nodelet::agent {

std::string_view toString(SyncReason r) {
  switch (r) {
    case SyncReason::Create:
      return "create";
    case SyncReason::Update:
      return "update";
    case SyncReason::Sync:
      return "sync";
  }
  return "sync";
}

std::string_view toString(PodWorkerState s) {
  switch (s) {
    case PodWorkerState::Syncing:
      return "Syncing";
    case PodWorkerState::Terminating:
      return "Terminating";
    case PodWorkerState::Terminated:
      return "Terminated";
    case PodWorkerState::Finished:
      return "Finished";
  }
  return "?";
}

PodWorkers::PodWorkers(PodSyncer& syncer, Clock& clock, size_t threads)
    : syncer_(syncer), clock_(clock) {
  for (size_t i = 0; i < threads; ++i)
    threads_.emplace_back([this](std::stop_token st) { run(st); });
}

PodWorkers::~PodWorkers() { stop(); }

void PodWorkers::stop() {
  {
    std::lock_guard g(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) {
    t.request_stop();
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

void PodWorkers::transitionLocked(Worker& w, PodWorkerState to) {
  if (w.state == to) return;
  if (!canTransition(w.state, to)) {
    NODELET_LOG(error, Agent, "pod worker {}: illegal transition {} -> {}", w.full_name,
                toString(w.state), toString(to));
    return;
  }
  w.state = to;
}

void PodWorkers::enqueueLocked(const std::string& uid) {
  Worker& w = workers_[uid];
  if (w.active || w.queued) return;
  w.queued = true;
  queue_.push_back(uid);
  cv_.notify_one();
}

void PodWorkers::updatePod(PodUpdate u) {
  std::lock_guard g(mu_);
  if (stopping_) return;
  const std::string uid = u.uid;
  Worker& w = workers_[uid];
  if (u.pod) {
    w.pod = u.pod;
    w.full_name = u.pod->fullName();
  }
  if (u.type == PodUpdate::Type::Kill) {
    w.remove = u.remove;
    if (u.grace_seconds) w.grace = w.grace ? std::min(*w.grace, *u.grace_seconds) : u.grace_seconds;
    w.pending = std::move(u);
  } else {
    const bool stopping = w.state != PodWorkerState::Syncing ||
                          (w.pending && w.pending->type == PodUpdate::Type::Kill);
    if (stopping) {
      // A terminating pod does not sync again; added anew while it is being removed, it starts
      // afresh once the removal is done.
      if (u.reason == SyncReason::Create && w.remove) w.restart = true;
      return;
    }
    // Latest wins, but a create or update merged into a later sync is still reported as one.
    if (w.pending && w.pending->reason > u.reason) u.reason = w.pending->reason;
    w.pending = std::move(u);
  }
  enqueueLocked(uid);
}

std::optional<MonoTime> PodWorkers::tick() {
  std::lock_guard g(mu_);
  const MonoTime now = clock_.monotonicNow();
  std::optional<MonoTime> next;
  for (auto& [uid, w] : workers_) {
    if (!w.resync_at) continue;
    if (*w.resync_at <= now) {
      w.resync_at.reset();
      if (w.retry_kill && !w.pending) {
        w.retry_kill = false;
        w.pending = PodUpdate{PodUpdate::Type::Kill, uid, std::nullopt, w.grace, w.remove};
        enqueueLocked(uid);
      } else if (w.state == PodWorkerState::Syncing && w.pod && !w.pending) {
        w.pending = PodUpdate{PodUpdate::Type::Sync, uid, w.pod, std::nullopt, true};
        enqueueLocked(uid);
      }
    } else {
      next = next ? std::min(*next, *w.resync_at) : *w.resync_at;
    }
  }
  return next;
}

std::optional<PodWorkerState> PodWorkers::state(const std::string& uid) const {
  std::lock_guard g(mu_);
  auto it = workers_.find(uid);
  if (it == workers_.end()) return std::nullopt;
  return it->second.state;
}

bool PodWorkers::known(const std::string& uid) const {
  std::lock_guard g(mu_);
  return workers_.contains(uid);
}

std::vector<std::string> PodWorkers::uids() const {
  std::lock_guard g(mu_);
  std::vector<std::string> out;
  for (const auto& [uid, w] : workers_) out.push_back(uid);
  return out;
}

void PodWorkers::waitIdle() {
  std::unique_lock l(mu_);
  idle_cv_.wait(l, [&] { return queue_.empty() && busy_ == 0; });
}

bool PodWorkers::blockedByOtherLocked(const std::string& uid, const Worker& w) const {
  if (w.full_name.empty()) return false;
  for (const auto& [other_uid, o] : workers_) {
    if (other_uid == uid || o.full_name != w.full_name) continue;
    // Another pod of this name that is terminating, or that a pending kill will terminate.
    if (o.state == PodWorkerState::Terminating ||
        (o.state == PodWorkerState::Syncing && o.pending &&
         o.pending->type == PodUpdate::Type::Kill) ||
        (o.state == PodWorkerState::Terminated && o.remove))
      return true;
  }
  return false;
}

void PodWorkers::run(std::stop_token stop) {
  std::unique_lock l(mu_);
  while (!stop.stop_requested() && !stopping_) {
    if (queue_.empty()) {
      cv_.wait(l);
      continue;
    }
    const std::string uid = queue_.front();
    queue_.pop_front();
    auto it = workers_.find(uid);
    if (it == workers_.end() || !it->second.pending) {
      if (it != workers_.end()) it->second.queued = false;
      if (queue_.empty() && busy_ == 0) idle_cv_.notify_all();
      continue;
    }
    Worker& w = it->second;
    w.queued = false;
    if (w.pending->type == PodUpdate::Type::Sync && w.state == PodWorkerState::Syncing &&
        blockedByOtherLocked(uid, w)) {
      // Waits for the other pod of the same name; it re-queues this one when it finishes.
      if (queue_.empty() && busy_ == 0) idle_cv_.notify_all();
      continue;
    }
    PodUpdate u = std::move(*w.pending);
    w.pending.reset();
    // A kill taken off the queue makes the pod Terminating now, under the lock: otherwise, for
    // a moment, a new pod of the same name would see it neither pending a kill nor terminating.
    if (u.type == PodUpdate::Type::Kill && w.state == PodWorkerState::Syncing)
      transitionLocked(w, PodWorkerState::Terminating);
    w.active = true;
    ++busy_;
    l.unlock();
    process(uid, std::move(u));
    l.lock();
    // The worker is still this thread's (active): a removal finished in process() is forgotten
    // here, under the same lock that releases it, so that no update can slip a second worker
    // thread onto the UID in between.
    auto again = workers_.find(uid);
    if (again != workers_.end()) {
      if (again->second.state == PodWorkerState::Finished) {
        finishLocked(l, uid);
      } else {
        again->second.active = false;
        if (again->second.pending) enqueueLocked(uid);
      }
    }
    --busy_;
    if (queue_.empty() && busy_ == 0) idle_cv_.notify_all();
  }
}

void PodWorkers::process(const std::string& uid, PodUpdate u) {
  std::unique_lock l(mu_);
  Worker* w = &workers_[uid];
  std::optional<api::Pod> pod = w->pod;
  if (u.type == PodUpdate::Type::Sync && w->state == PodWorkerState::Syncing && pod) {
    l.unlock();
    SyncOutcome out = syncer_.syncPod(*pod, u.reason);
    l.lock();
    w = &workers_[uid];
    if (!out.error) {
      NODELET_LOG(warn, Agent, "sync pod {}: {}", pod->fullName(), out.error.error().message);
    }
    if (out.pod_done && w->state == PodWorkerState::Syncing && !w->pending) {
      // Completed: stop what is left (sidecars, sandbox) but keep the pod while it is wanted.
      w->remove = false;
      w->pending = PodUpdate{PodUpdate::Type::Kill, uid, std::nullopt, std::nullopt, false};
    } else if (out.requeue_after && *out.requeue_after <= Duration::zero()) {
      if (!w->pending)
        w->pending = PodUpdate{PodUpdate::Type::Sync, uid, w->pod, std::nullopt, true};
    } else if (out.requeue_after || !out.error) {
      const Duration d = out.requeue_after.value_or(std::chrono::seconds(10));
      w->resync_at = clock_.monotonicNow() + d;
    }
    return;
  }
  if (u.type == PodUpdate::Type::Kill &&
      (w->state == PodWorkerState::Syncing || w->state == PodWorkerState::Terminating)) {
    transitionLocked(*w, PodWorkerState::Terminating);
    const auto grace = w->grace;
    l.unlock();
    Status s = syncer_.syncTerminatingPod(uid, pod ? &*pod : nullptr, grace);
    l.lock();
    w = &workers_[uid];
    if (!s) {
      NODELET_LOG(warn, Agent, "terminate pod {}: {} (retrying in 1s)", uid, s.error().message);
      w->retry_kill = true;
      w->resync_at = clock_.monotonicNow() + std::chrono::seconds(1);
      return;
    }
    transitionLocked(*w, PodWorkerState::Terminated);
  }
  if (w->state == PodWorkerState::Terminated && (u.type == PodUpdate::Type::Kill)) {
    const bool remove = w->remove;
    l.unlock();
    Status s = syncer_.syncTerminatedPod(uid, pod ? &*pod : nullptr, remove);
    l.lock();
    w = &workers_[uid];
    if (!s) {
      NODELET_LOG(warn, Agent, "clean up pod {}: {} (retrying in 1s)", uid, s.error().message);
      w->retry_kill = true;
      w->resync_at = clock_.monotonicNow() + std::chrono::seconds(1);
      return;
    }
    if (remove) transitionLocked(*w, PodWorkerState::Finished);  // run() forgets it
  }
}

void PodWorkers::finishLocked(std::unique_lock<std::mutex>& l, const std::string& uid) {
  Worker& w = workers_.at(uid);
  const std::string name = w.full_name;
  std::optional<api::Pod> again;
  if (w.restart) again = w.pod;
  workers_.erase(uid);  // forgotten
  if (again) {
    Worker& fresh = workers_[uid];
    fresh.pod = again;
    fresh.full_name = name;
    fresh.pending =
        PodUpdate{PodUpdate::Type::Sync, uid, again, std::nullopt, true, SyncReason::Create};
    fresh.active = true;  // not queued before the syncer has heard of the restart
    l.unlock();
    syncer_.podRestarted(*again);
    l.lock();
    workers_.at(uid).active = false;  // only this thread removes a worker
    enqueueLocked(uid);
  }
  // Pods of the same name that waited for this one may start now.
  for (auto& [other, o] : workers_)
    if (o.full_name == name && o.pending && !o.active) enqueueLocked(other);
}

}  // namespace nodelet::agent
