#pragma once
// Events: what happened to a pod or to the node, for people. In standalone mode they are logged
// and kept in memory (the newest kMaxEvents, repeated ones counted); cluster mode posts them to
// the API server through the same interface.
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "agent/core/clock.h"
#include "agent/core/pod.h"

namespace nodelet::agent {

struct ObjectRef {
  std::string kind{"Pod"};
  std::string name;
  std::string namespace_;
  std::string uid;
  std::string field_path;  // spec.containers{app}
};
ObjectRef podRef(const api::Pod& pod);
ObjectRef containerRef(const api::Pod& pod, const std::string& container);

struct Event {
  ObjectRef object;
  std::string type;  // Normal | Warning
  std::string reason;
  std::string message;
  SysTime first_seen;
  SysTime last_seen;
  int count{1};
};

class EventRecorder {
 public:
  virtual ~EventRecorder() = default;
  virtual void record(const ObjectRef& object, const std::string& type, const std::string& reason,
                      const std::string& message) = 0;
};

class LocalEventRecorder final : public EventRecorder {
 public:
  static constexpr size_t kMaxEvents = 1000;
  explicit LocalEventRecorder(Clock& clock) : clock_(clock) {}

  // nodelet::agent::EventRecorder
  void record(const ObjectRef& object, const std::string& type, const std::string& reason,
              const std::string& message) override;
  std::vector<Event> events() const;

 private:
  Clock& clock_;
  mutable std::mutex mu_;
  std::deque<Event> events_;
};

}  // namespace nodelet::agent
