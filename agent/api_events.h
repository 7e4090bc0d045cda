#pragma once
// Events to the API server (core/v1, as the kubelet's record broadcaster sends them): logged and
// kept locally like every event, and posted from a background thread. A repeat of an event seen
// in the last 10 minutes becomes a PATCH of count and lastTimestamp on the first one; each
// object may burst 25 events, then one per 5 minutes (client-go's spam filter); API errors drop
// the event (as client-go does), transport errors keep it queued until the server answers.
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>

#include "agent/events.h"
#include "agent/kube/client.h"

namespace nodelet::agent {

class ApiEventRecorder final : public EventRecorder {
 public:
  static constexpr size_t kMaxQueued = 1000;
  ApiEventRecorder(kube::Client& client, Clock& clock, LocalEventRecorder& local,
                   std::string node_name);
  ~ApiEventRecorder() override;

  // nodelet::agent::EventRecorder
  void record(const ObjectRef& object, const std::string& type, const std::string& reason,
              const std::string& message) override;

  void start();
  void stop();
  // Sends what is queued (tests); returns how many were written.
  int flush();
  uint64_t posted() const;
  uint64_t patched() const;

 private:
  struct Pending {
    ObjectRef object;
    std::string type, reason, message;
    SysTime when;
  };
  struct Seen {
    std::string name, namespace_;
    int count{1};
    SysTime first, last;
  };
  bool send(const Pending& p);
  bool allowed(const std::string& object_key, SysTime now);

  kube::Client& client_;
  Clock& clock_;
  LocalEventRecorder& local_;
  std::string node_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  std::map<std::string, Seen> seen_;  // aggregation key -> the event in the API
  std::map<std::string, std::pair<double, SysTime>> tokens_;  // object -> (tokens, last refill)
  uint64_t posted_{0}, patched_{0}, dropped_{0};
  std::jthread thread_;
};

}  // namespace nodelet::agent
