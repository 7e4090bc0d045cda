#include "agent/planner.h"

#include "agent/labels.h"

namespace nodelet::agent {
namespace {

struct Planner {
  const api::Pod& pod;
  const PodRuntimeStatus& st;
  const PlanContext& ctx;
  PodActions a;

  // Restarts `c` unless it is backing off; returns whether it was scheduled.
  bool restartUnlessBackingOff(const api::Container& c, const RuntimeContainer& last, bool init) {
    Duration left = Duration::zero();
    if (ctx.backoff) {
      const MonoTime finished = toMonotonic(last.status.finished_at, ctx.now, ctx.now_system);
      left = ctx.backoff->remaining(backoffKey(pod, c), finished, ctx.now);
    }
    if (left > Duration::zero()) {
      const auto secs = std::chrono::duration_cast<std::chrono::seconds>(
          ctx.backoff->current(backoffKey(pod, c)));
      a.waiting[c.name] = {"CrashLoopBackOff", "back-off " + std::to_string(secs.count()) +
                                                   "s restarting failed container=" + c.name +
                                                   " pod=" + pod.metadata.name + "_" +
                                                   pod.metadata.namespace_ + "(" +
                                                   pod.metadata.uid + ")"};
      a.requeue_after = a.requeue_after ? std::min(*a.requeue_after, left) : left;
      return false;
    }
    (init ? a.init_to_start : a.containers_to_start).push_back(c.name);
    return true;
  }

  void killIfChanged(const api::Container& c, const RuntimeContainer& running, bool& restart) {
    restart = false;
    if (ctx.unhealthy) {
      auto u = ctx.unhealthy->find(running.status.id);
      if (u != ctx.unhealthy->end()) {
        a.containers_to_kill.push_back(
            {running.status.id, c.name, "Killing", u->second.message, u->second.grace_seconds});
        // A probe kill is a failure exit: the restart policy decides (sidecars always restart),
        // and a container killed again soon after its last exit waits out its back-off.
        restart = api::isSidecar(c) || shouldRestart(pod.spec.restart_policy, 1);
        if (restart) {
          const RuntimeContainer* prev = st.previous(c.name);
          if (prev && prev->exited() && ctx.backoff) {
            const MonoTime finished =
                toMonotonic(prev->status.finished_at, ctx.now, ctx.now_system);
            if (ctx.backoff->remaining(backoffKey(pod, c), finished, ctx.now) > Duration::zero()) {
              // The normal restart path picks it up (with CrashLoopBackOff) once it has exited.
              restart = false;
              a.requeue_after = std::chrono::seconds(1);
            }
          }
        }
        return;
      }
    }
    if (running.hash != labels::hashString(c.hash)) {
      a.containers_to_kill.push_back(
          {running.status.id, c.name, "Killing",
           "Container " + c.name + " definition changed, will be restarted"});
      restart = true;
    }
  }

  // Init containers, one at a time; sidecars (restartable init containers) are started in order
  // and must be running before the next init container. Returns whether initialisation is done.
  bool planInit(const std::string& sandbox_id) {
    for (const auto& c : pod.spec.init_containers) {
      const RuntimeContainer* last = st.latest(c.name, sandbox_id);
      if (api::isSidecar(c)) {
        if (last && last->running()) {
          bool restart = false;
          killIfChanged(c, *last, restart);
          if (restart) {
            a.init_to_start.push_back(c.name);
            return false;
          }
          continue;
        }
        if (!last) {
          a.init_to_start.push_back(c.name);
          return false;
        }
        restartUnlessBackingOff(c, *last, true);  // sidecars always restart
        return false;
      }
      if (!last) {
        a.init_to_start.push_back(c.name);
        return false;
      }
      if (last->running()) return false;
      if (last->status.state == cri::ContainerState::Created) {
        a.containers_to_kill.push_back({last->status.id, c.name, "", ""});
        a.init_to_start.push_back(c.name);
        return false;
      }
      if (last->status.exit_code == 0) continue;
      if (pod.spec.restart_policy == "Never") {  // a failed init container fails the pod
        a.pod_done = true;
        return false;
      }
      restartUnlessBackingOff(c, *last, true);
      return false;
    }
    return true;
  }

  // Sidecars that died after initialisation restart (with back-off) without blocking the pod.
  void planSidecarsAfterInit(const std::string& sandbox_id) {
    for (const auto& c : pod.spec.init_containers) {
      if (!api::isSidecar(c)) continue;
      const RuntimeContainer* last = st.latest(c.name, sandbox_id);
      if (!last) continue;
      if (last->running()) {
        bool restart = false;
        killIfChanged(c, *last, restart);
        if (restart) a.init_to_start.push_back(c.name);
      } else {
        restartUnlessBackingOff(c, *last, true);
      }
    }
  }

  void planApps() {
    bool any_active = false;  // running, or going to run
    for (const auto& c : pod.spec.containers) {
      const RuntimeContainer* last = st.latest(c.name);
      if (!last) {
        a.containers_to_start.push_back(c.name);
        any_active = true;
        continue;
      }
      if (last->running()) {
        any_active = true;
        bool restart = false;
        killIfChanged(c, *last, restart);
        if (restart) a.containers_to_start.push_back(c.name);
        continue;
      }
      if (last->status.state == cri::ContainerState::Created) {
        // Created but never started (nodelet stopped in between): replace it.
        a.containers_to_kill.push_back({last->status.id, c.name, "", ""});
        a.containers_to_start.push_back(c.name);
        any_active = true;
        continue;
      }
      if (!shouldRestart(pod.spec.restart_policy, last->status.exit_code)) continue;
      any_active = true;
      restartUnlessBackingOff(c, *last, false);
    }
    if (!any_active && pod.spec.restart_policy != "Always") a.pod_done = true;
  }

  void plan() {
    const RuntimeSandbox* sb = st.currentSandbox();
    const bool sandbox_ready = sb && sb->state == cri::SandboxState::Ready;
    if (!sandbox_ready) {
      if (sb && pod.spec.restart_policy == "Never" && !st.containers.empty()) {
        // The pod has run and its sandbox is gone: with Never nothing starts again.
        a.kill_pod = st.anyRunning();
        a.pod_done = true;
        return;
      }
      a.kill_pod = sb != nullptr;
      a.create_sandbox = true;
      a.attempt = sb ? sb->attempt + 1 : 0;
      if (!pod.spec.init_containers.empty()) {
        a.init_to_start.push_back(pod.spec.init_containers.front().name);
        return;
      }
      for (const auto& c : pod.spec.containers) {
        const RuntimeContainer* last = st.latest(c.name);
        if (last && last->exited() &&
            !shouldRestart(pod.spec.restart_policy, last->status.exit_code))
          continue;
        a.containers_to_start.push_back(c.name);
      }
      if (a.containers_to_start.empty() && pod.spec.restart_policy != "Always") {
        a.create_sandbox = false;
        a.pod_done = true;
      }
      return;
    }
    a.sandbox_id = sb->id;
    // Containers of this pod left running in older sandboxes are stopped.
    for (const auto& c : st.containers) {
      if (c.sandbox_id != sb->id && c.running())
        a.containers_to_kill.push_back({c.status.id, c.status.name, "", ""});
    }
    // Ephemeral containers (kubectl debug) start once, even before initialisation is done,
    // and never again: one that ran and exited stays exited.
    for (const auto& c : pod.spec.ephemeral_containers)
      if (!st.latest(c.name)) a.ephemeral_to_start.push_back(c.name);
    if (!planInit(sb->id)) {
      if (a.pod_done) a.kill_pod = true;
      return;
    }
    planSidecarsAfterInit(sb->id);
    planApps();
    if (a.pod_done) {
      // Completed pods keep their sandbox until deleted, but their sidecars stop.
      a.init_to_start.clear();
      a.ephemeral_to_start.clear();
      for (const auto& c : pod.spec.init_containers) {
        const RuntimeContainer* last = st.latest(c.name, sb->id);
        if (api::isSidecar(c) && last && last->running())
          a.containers_to_kill.push_back({last->status.id, c.name, "", ""});
      }
      a.waiting.clear();
      a.requeue_after.reset();
    }
  }
};

}  // namespace

std::string backoffKey(const api::Pod& pod, const api::Container& c) {
  return pod.metadata.name + "_" + pod.metadata.namespace_ + "_" + pod.metadata.uid + "_" + c.name +
         "_" + labels::hashString(c.hash);
}

MonoTime toMonotonic(int64_t unix_ns, MonoTime now, SysTime now_system) {
  if (unix_ns <= 0) return now;
  const auto ts =
      SysTime(std::chrono::duration_cast<SysTime::duration>(std::chrono::nanoseconds(unix_ns)));
  return now - std::chrono::duration_cast<Duration>(now_system - ts);
}

bool shouldRestart(const std::string& restart_policy, int32_t exit_code) {
  if (restart_policy == "Always") return true;
  if (restart_policy == "OnFailure") return exit_code != 0;
  return false;
}

PodActions computePodActions(const api::Pod& pod, const PodRuntimeStatus& status,
                             const PlanContext& ctx) {
  Planner p{pod, status, ctx, {}};
  p.plan();
  return p.a;
}

}  // namespace nodelet::agent
