#include "agent/events.h"

#include "agent/core/log.h"

namespace nodelet::agent {

ObjectRef podRef(const api::Pod& pod) {
  return {"Pod", pod.metadata.name, pod.metadata.namespace_, pod.metadata.uid, ""};
}

ObjectRef containerRef(const api::Pod& pod, const std::string& container) {
  ObjectRef r = podRef(pod);
  const bool init = [&] {
    for (const auto& c : pod.spec.init_containers)
      if (c.name == container) return true;
    return false;
  }();
  r.field_path = std::string(init ? "spec.initContainers{" : "spec.containers{") + container + "}";
  return r;
}

void LocalEventRecorder::record(const ObjectRef& o, const std::string& type,
                                const std::string& reason, const std::string& message) {
  const auto level = type == "Warning" ? log::Level::Warn : log::Level::Info;
  if (log::enabled(level)) {
    log::write(level, log::Id::Agent,
               fmt::format("event {} {}{}{} {}: {}: {}", type, o.namespace_,
                           o.namespace_.empty() ? "" : "/", o.name,
                           o.field_path.empty() ? "" : o.field_path, reason, message));
  }
  std::lock_guard g(mu_);
  const SysTime now = clock_.systemNow();
  for (auto& e : events_) {  // a repeat of a recent event is counted, not stored again
    if (e.object.uid == o.uid && e.object.field_path == o.field_path && e.reason == reason &&
        e.message == message) {
      ++e.count;
      e.last_seen = now;
      return;
    }
  }
  events_.push_back(Event{o, type, reason, message, now, now, 1});
  if (events_.size() > kMaxEvents) events_.pop_front();
}

std::vector<Event> LocalEventRecorder::events() const {
  std::lock_guard g(mu_);
  return {events_.begin(), events_.end()};
}

}  // namespace nodelet::agent
