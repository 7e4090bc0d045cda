#include "agent/pod_status.h"

#include <algorithm>

#include "agent/core/quantity.h"

namespace nodelet::agent {
namespace {

SysTime fromNs(int64_t ns) {
  return SysTime(std::chrono::duration_cast<SysTime::duration>(std::chrono::nanoseconds(ns)));
}

api::ContainerState stateOf(const RuntimeContainer& c, const std::string& runtime) {
  api::ContainerState s;
  switch (c.status.state) {
    case cri::ContainerState::Running:
      s.running = api::ContainerStateRunning{fromNs(c.status.started_at)};
      break;
    case cri::ContainerState::Created:
      s.waiting = api::ContainerStateWaiting{"ContainerCreating", ""};
      break;
    case cri::ContainerState::Exited: {
      api::ContainerStateTerminated t;
      t.exit_code = c.status.exit_code;
      t.reason = c.status.reason;
      t.message = c.status.message;
      if (c.status.started_at > 0) t.started_at = fromNs(c.status.started_at);
      if (c.status.finished_at > 0) t.finished_at = fromNs(c.status.finished_at);
      t.container_id = runtime + "://" + c.status.id;
      s.terminated = t;
      break;
    }
    case cri::ContainerState::Unknown: {
      api::ContainerStateTerminated t;
      t.exit_code = 137;
      t.reason = "ContainerStatusUnknown";
      t.message = "The container could not be located when the pod was terminated";
      t.container_id = runtime + "://" + c.status.id;
      s.terminated = t;
      break;
    }
  }
  return s;
}

api::ContainerStatus containerStatus(const api::Container& spec, const StatusInput& in,
                                     const std::string& sandbox_id, const char* default_waiting) {
  api::ContainerStatus cs;
  cs.name = spec.name;
  cs.image = spec.image;
  cs.started = false;
  const RuntimeContainer* last = in.runtime->latest(spec.name, sandbox_id);
  const RuntimeContainer* prev = nullptr;
  if (last) {
    // lastState: the container before this one (any sandbox).
    bool seen = false;
    for (const auto& c : in.runtime->containers) {
      if (c.status.name != spec.name) continue;
      if (seen) {
        prev = &c;
        break;
      }
      if (&c == last) seen = true;
    }
  }
  auto waiting = in.waiting ? in.waiting->find(spec.name) : decltype(in.waiting->end()){};
  const bool has_waiting = in.waiting && waiting != in.waiting->end();
  if (!last) {
    cs.state.waiting =
        has_waiting ? api::ContainerStateWaiting{waiting->second.reason, waiting->second.message}
                    : api::ContainerStateWaiting{default_waiting, ""};
    if (const RuntimeContainer* old = in.runtime->latest(spec.name)) {  // from an older sandbox
      cs.last_state = stateOf(*old, in.runtime_name);
      cs.restart_count = old->restart_count + 1;
    }
    return cs;
  }
  cs.container_id = in.runtime_name + "://" + last->status.id;
  cs.image_id = last->status.image_ref;
  cs.restart_count = last->restart_count;
  if (has_waiting && !last->running()) {
    // Backing off (or failing to start again): waiting now, the exit it backs off from as
    // lastState.
    cs.state.waiting = api::ContainerStateWaiting{waiting->second.reason, waiting->second.message};
    cs.last_state = stateOf(*last, in.runtime_name);
    return cs;
  }
  cs.state = stateOf(*last, in.runtime_name);
  if (prev) cs.last_state = stateOf(*prev, in.runtime_name);
  if (last->running()) {
    cs.started = true;
    if (in.started) {
      auto st = in.started->find(spec.name);
      if (st != in.started->end()) cs.started = st->second;
    }
    bool ready = true;
    if (in.readiness) {
      auto r = in.readiness->find(spec.name);
      if (r != in.readiness->end()) ready = r->second;
    }
    cs.ready = ready;
  }
  return cs;
}

void setCondition(api::PodStatus& s, const api::PodStatus* prev, SysTime now,
                  const std::string& type, bool ok, std::string reason, std::string message) {
  api::PodCondition c{type, ok ? "True" : "False", std::move(reason), std::move(message),
                      now,  std::nullopt};
  if (prev) {
    for (const auto& p : prev->conditions)
      if (p.type == type && p.status == c.status && p.last_transition_time)
        c.last_transition_time = p.last_transition_time;
  }
  s.conditions.push_back(std::move(c));
}

std::string joinNames(const std::vector<std::string>& names) {
  std::string out = "[";
  for (size_t i = 0; i < names.size(); ++i) out += (i ? " " : "") + names[i];
  return out + "]";
}

}  // namespace

bool initDone(const api::Pod& pod, const PodRuntimeStatus& rt) {
  const RuntimeSandbox* sb = rt.currentSandbox();
  if (!sb) return pod.spec.init_containers.empty();
  for (const auto& c : pod.spec.init_containers) {
    const RuntimeContainer* last = rt.latest(c.name, sb->id);
    if (api::isSidecar(c)) {
      if (!last) return false;
      continue;
    }
    if (!last || !last->exited() || last->status.exit_code != 0) return false;
  }
  return true;
}

std::string qosClass(const api::PodSpec& spec) {
  bool any = false, guaranteed = true;
  auto visit = [&](const api::Container& c) {
    const auto& req = c.resources.requests;
    const auto& lim = c.resources.limits;
    if (!req.empty() || !lim.empty()) any = true;
    for (const char* r : {"cpu", "memory"}) {
      auto l = lim.find(r);
      if (l == lim.end()) {
        guaranteed = false;
        continue;
      }
      auto q = req.find(r);
      if (q != req.end()) {
        auto lv = api::parseQuantityMilli(l->second), qv = api::parseQuantityMilli(q->second);
        if (!lv || !qv || *lv != *qv) guaranteed = false;
      }
    }
  };
  for (const auto& c : spec.init_containers) visit(c);
  for (const auto& c : spec.containers) visit(c);
  if (!any) return "BestEffort";
  return guaranteed ? "Guaranteed" : "Burstable";
}

api::PodStatus computePodStatus(const StatusInput& in) {
  const api::Pod& pod = *in.pod;
  const PodRuntimeStatus& rt = *in.runtime;
  api::PodStatus s;
  const RuntimeSandbox* sb = rt.currentSandbox();
  const std::string sandbox_id = sb ? sb->id : "";
  const bool init_complete = initDone(pod, rt);

  for (const auto& c : pod.spec.init_containers)
    s.init_container_statuses.push_back(containerStatus(c, in, sandbox_id, "PodInitializing"));
  for (const auto& c : pod.spec.containers)
    s.container_statuses.push_back(
        containerStatus(c, in, "", init_complete ? "ContainerCreating" : "PodInitializing"));
  // Ephemeral containers are reported but count for neither the phase nor readiness; no probe
  // ever says they started or are ready (the kubelet's leave both unset).
  for (const auto& c : pod.spec.ephemeral_containers) {
    s.ephemeral_container_statuses.push_back(containerStatus(c, in, "", "ContainerCreating"));
    s.ephemeral_container_statuses.back().ready = false;
    s.ephemeral_container_statuses.back().started.reset();
  }

  // ---- phase (the kubelet's getPhase) ----
  const std::string& policy = pod.spec.restart_policy;
  bool init_failed = false;
  for (size_t i = 0; i < pod.spec.init_containers.size(); ++i) {
    const auto& c = pod.spec.init_containers[i];
    const auto& st = s.init_container_statuses[i];
    const bool failed = st.state.terminated && st.state.terminated->exit_code != 0;
    const bool backing_off =
        st.state.waiting && st.last_state.terminated && st.last_state.terminated->exit_code != 0;
    if (!api::isSidecar(c) && (failed || backing_off) && policy == "Never") init_failed = true;
  }
  int running = 0, waiting = 0, stopped = 0, succeeded = 0;
  for (const auto& st : s.container_statuses) {
    if (st.state.running) {
      ++running;
    } else if (st.state.terminated) {
      ++stopped;
      if (st.state.terminated->exit_code == 0) ++succeeded;
    } else if (st.state.waiting) {
      if (st.last_state.terminated) {
        ++stopped;
        if (st.last_state.terminated->exit_code == 0) ++succeeded;
      } else {
        ++waiting;
      }
    }
  }
  const bool was_terminal =
      in.previous && (in.previous->phase == "Succeeded" || in.previous->phase == "Failed");
  if (was_terminal) {
    s.phase = in.previous->phase;  // terminal phases never change
  } else if (init_failed) {
    s.phase = "Failed";
  } else if (in.pod_terminal && running == 0) {
    s.phase = stopped > 0 && stopped == succeeded ? "Succeeded" : "Failed";
  } else if (!init_complete && running == 0 && stopped == 0) {
    s.phase = "Pending";
  } else if (waiting > 0) {
    s.phase = "Pending";
  } else if (running > 0) {
    s.phase = "Running";
  } else if (stopped > 0) {
    if (policy == "Always")
      s.phase = "Running";
    else if (stopped == succeeded)
      s.phase = "Succeeded";
    else if (policy == "Never")
      s.phase = "Failed";
    else
      s.phase = "Running";
  } else {
    s.phase = "Pending";
  }

  // ---- conditions ----
  const bool sandbox_ready = sb && sb->state == cri::SandboxState::Ready;
  const bool terminal = s.phase == "Succeeded" || s.phase == "Failed";
  setCondition(s, in.previous, in.now, "PodReadyToStartContainers", sandbox_ready && !terminal, "",
               "");
  std::vector<std::string> incomplete;
  for (size_t i = 0; i < pod.spec.init_containers.size(); ++i) {
    const auto& st = s.init_container_statuses[i];
    const bool done = api::isSidecar(pod.spec.init_containers[i])
                          ? st.started.value_or(false) || init_complete
                          : st.state.terminated && st.state.terminated->exit_code == 0;
    if (!done && !init_complete) incomplete.push_back(st.name);
  }
  if (incomplete.empty()) {
    setCondition(s, in.previous, in.now, "Initialized", true, "", "");
  } else {
    setCondition(s, in.previous, in.now, "Initialized", false, "ContainersNotInitialized",
                 "containers with incomplete status: " + joinNames(incomplete));
  }
  std::vector<std::string> unready;
  for (size_t i = 0; i < pod.spec.init_containers.size(); ++i)
    if (api::isSidecar(pod.spec.init_containers[i]) && !s.init_container_statuses[i].ready)
      unready.push_back(s.init_container_statuses[i].name);
  for (const auto& st : s.container_statuses)
    if (!st.ready) unready.push_back(st.name);
  if (terminal) {
    setCondition(s, in.previous, in.now, "Ready", false, "PodCompleted", "");
    setCondition(s, in.previous, in.now, "ContainersReady", false, "PodCompleted", "");
  } else if (unready.empty()) {
    // Ready also waits for the readiness gates: conditions other controllers set on the pod.
    std::string gates;
    for (const auto& type : pod.spec.readiness_gates) {
      const auto c = std::find_if(pod.status.conditions.begin(), pod.status.conditions.end(),
                                  [&](const api::PodCondition& pc) { return pc.type == type; });
      std::string m;
      if (c == pod.status.conditions.end())
        m = "corresponding condition of pod readiness gate \"" + type + "\" does not exist.";
      else if (c->status != "True")
        m = "the status of pod readiness gate \"" + type + "\" is not \"True\", but " + c->status;
      if (!m.empty()) gates += (gates.empty() ? "" : ", ") + m;
    }
    if (gates.empty())
      setCondition(s, in.previous, in.now, "Ready", true, "", "");
    else
      setCondition(s, in.previous, in.now, "Ready", false, "ReadinessGatesNotReady", gates);
    setCondition(s, in.previous, in.now, "ContainersReady", true, "", "");
  } else {
    const std::string msg = "containers with unready status: " + joinNames(unready);
    setCondition(s, in.previous, in.now, "Ready", false, "ContainersNotReady", msg);
    setCondition(s, in.previous, in.now, "ContainersReady", false, "ContainersNotReady", msg);
  }
  setCondition(s, in.previous, in.now, "PodScheduled", true, "", "");

  // ---- addresses, times, QoS ----
  if (!in.host_ip.empty()) {
    s.host_ip = in.host_ip;
    s.host_ips = {in.host_ip};
  }
  if (pod.spec.host_network) {
    if (!in.host_ip.empty()) {
      s.pod_ip = in.host_ip;
      s.pod_ips = {in.host_ip};
    }
  } else if (sb && !sb->ip.empty()) {
    s.pod_ip = sb->ip;
    s.pod_ips.push_back(sb->ip);
    for (const auto& ip : sb->additional_ips) s.pod_ips.push_back(ip);
  } else if (in.previous && terminal) {
    s.pod_ip = in.previous->pod_ip;
    s.pod_ips = in.previous->pod_ips;
  }
  s.start_time =
      in.previous && in.previous->start_time ? in.previous->start_time : std::optional(in.now);
  s.qos_class = qosClass(pod.spec);
  return s;
}

}  // namespace nodelet::agent
