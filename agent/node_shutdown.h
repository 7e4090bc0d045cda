#pragma once
// Graceful node shutdown, as the kubelet does it with shutdownGracePeriod: a systemd-logind
// "delay" inhibitor lock holds the machine's shutdown back while nodelet stops its pods —
// regular pods first with shutdownGracePeriod - shutdownGracePeriodCriticalPods, then critical
// ones (static pods and pods of priority >= 2000000000) with shutdownGracePeriodCriticalPods —
// and is released when they are down (or the time is up). Pods get phase Failed, reason
// Terminated, "Pod was terminated in response to imminent node shutdown.".
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>

#include "agent/core/clock.h"
#include "agent/core/error.h"

namespace nodelet::agent {

// The seam to logind: a test plays it with a fake on a private bus (or without any bus).
class ShutdownInhibitor {
 public:
  virtual ~ShutdownInhibitor() = default;
  // Takes the delay lock for shutdowns (nodelet wants `wanted` of delay); `on_shutdown` is
  // called (from another thread) when the machine begins to shut down.
  virtual Status start(std::function<void()> on_shutdown, Duration wanted) = 0;
  // Lets the shutdown go on (closes the lock). Idempotent.
  virtual void release() = 0;
  // No more on_shutdown calls after this returns (the lock stays as it is).
  virtual void stop() {}
};

// org.freedesktop.login1 on the system bus (DBUS_SYSTEM_BUS_ADDRESS is honoured), through
// libsystemd's sd-bus: Manager.Inhibit("shutdown", "nodelet", why, "delay") and the
// PrepareForShutdown signal. logind holds a delay lock for at most InhibitDelayMaxUSec (5 s by
// default): when that is shorter than the delay wanted, nodelet raises it as the kubelet does, with
// a drop-in in `logind_conf_dir` (99-nodelet.conf, InhibitDelayMaxSec=) and a SIGHUP to
// systemd-logind.service through systemd's Manager.KillUnit.
class LogindInhibitor final : public ShutdownInhibitor {
 public:
  explicit LogindInhibitor(std::string logind_conf_dir = "/etc/systemd/logind.conf.d");
  ~LogindInhibitor() override;
  Status start(std::function<void()> on_shutdown, Duration wanted) override;
  void release() override;
  void stop() override;

 private:
  struct Bus;
  // Raises logind's InhibitDelayMaxUSec to `wanted` (a drop-in, then a reload); says how it went.
  void raiseMaxDelay(Duration wanted, uint64_t current_usec);
  std::string conf_dir_;
  std::unique_ptr<Bus> bus_;
  std::mutex mu_;
  int lock_fd_{-1};
  std::function<void()> on_shutdown_;
  std::jthread thread_;  // last: stops first
};

struct ShutdownHooks {
  // Stops the pods of one class (critical or not) with `grace` seconds, marking their status.
  std::function<void(bool critical, int64_t grace_seconds)> stop_pods;
  // How many pods of that class still have a running container.
  std::function<size_t(bool critical)> running;
};

class NodeShutdownManager {
 public:
  NodeShutdownManager(ShutdownInhibitor& inhibitor, ShutdownHooks hooks, Clock& clock,
                      Duration grace, Duration critical_grace);
  ~NodeShutdownManager();
  Status start();
  // What the machine's shutdown signal runs (a thread of its own: it waits).
  void onShutdown();
  bool shuttingDown() const;

 private:
  void stopClass(bool critical, Duration grace);
  ShutdownInhibitor& inhibitor_;
  ShutdownHooks hooks_;
  Clock& clock_;
  Duration grace_;
  Duration critical_grace_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool shutting_down_{false};
  bool stopping_{false};  // nodelet itself is stopping
  std::jthread worker_;
};

}  // namespace nodelet::agent
