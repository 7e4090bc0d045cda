#include "agent/node_shutdown.h"

#include <fcntl.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include "agent/core/log.h"

namespace nodelet::agent {
namespace {

constexpr const char* kLogind = "org.freedesktop.login1";
constexpr const char* kPath = "/org/freedesktop/login1";
constexpr const char* kManager = "org.freedesktop.login1.Manager";

std::optional<uint64_t> maxDelayUsec(sd_bus* bus) {
  sd_bus_error err = SD_BUS_ERROR_NULL;
  uint64_t usec = 0;
  const int r = sd_bus_get_property_trivial(bus, kLogind, kPath, kManager, "InhibitDelayMaxUSec",
                                            &err, 't', &usec);
  sd_bus_error_free(&err);
  if (r < 0) return std::nullopt;
  return usec;
}

}  // namespace

struct LogindInhibitor::Bus {
  sd_bus* bus{nullptr};
  sd_bus_slot* slot{nullptr};
  ~Bus() {
    sd_bus_slot_unref(slot);
    sd_bus_flush_close_unref(bus);
  }
};

LogindInhibitor::LogindInhibitor(std::string logind_conf_dir)
    : conf_dir_(std::move(logind_conf_dir)), bus_(std::make_unique<Bus>()) {}

void LogindInhibitor::raiseMaxDelay(Duration wanted, uint64_t current_usec) {
  const int64_t want_s = std::chrono::ceil<std::chrono::seconds>(wanted).count();
  const std::string path = conf_dir_ + "/99-nodelet.conf";
  const std::string cut_short = "logind's InhibitDelayMaxUSec is " +
                                std::to_string(current_usec / 1'000'000) +
                                " s, shorter than shutdownGracePeriod (" + std::to_string(want_s) +
                                " s): pods are cut short at shutdown";
  std::error_code ec;
  std::filesystem::create_directories(conf_dir_, ec);
  const std::string tmp = path + ".tmp";
  if (!ec) {
    std::ofstream out(tmp, std::ios::trunc);
    out << "# Written by nodelet: logind lets a shutdown wait for shutdownGracePeriod.\n"
           "[Login]\nInhibitDelayMaxSec="
        << want_s << "\n";
    if (!out.flush()) ec = std::make_error_code(std::errc::io_error);
  }
  if (!ec) std::filesystem::rename(tmp, path, ec);
  if (ec) {
    const std::string why = ec.message();
    std::filesystem::remove(tmp, ec);
    NODELET_LOG(warn, Agent, "{}; cannot write {} to raise it: {}", cut_short, path, why);
    return;
  }
  // logind reads its drop-ins again on SIGHUP.
  sd_bus_error err = SD_BUS_ERROR_NULL;
  const int r =
      sd_bus_call_method(bus_->bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                         "org.freedesktop.systemd1.Manager", "KillUnit", &err, nullptr, "ssi",
                         "systemd-logind.service", "all", int32_t{1});
  if (r < 0) {
    const std::string why = err.message ? err.message : std::strerror(-r);
    sd_bus_error_free(&err);
    NODELET_LOG(warn, Agent, "{}; wrote {} but could not reload logind: {}", cut_short, path, why);
    return;
  }
  // The reload happens after the signal: look again for a moment (at most 1 s).
  std::optional<uint64_t> now;
  for (int i = 0; i < 20; ++i) {
    now = maxDelayUsec(bus_->bus);
    if (now && std::chrono::microseconds(*now) >= wanted) {
      NODELET_LOG(info, Agent, "raised logind's InhibitDelayMaxSec to {} s ({})", want_s, path);
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // NOLINT(real-time): logind's
  }
  NODELET_LOG(warn, Agent,
              "unable to update logind InhibitDelayMaxSec to {} s (shutdownGracePeriod): it is "
              "still {} s after {} and a reload; pods are cut short at shutdown",
              want_s, now ? *now / 1'000'000 : 0, path);
}

LogindInhibitor::~LogindInhibitor() {
  stop();
  release();
}

void LogindInhibitor::stop() {
  if (thread_.joinable()) {
    thread_.request_stop();
    thread_.join();
  }
}

Status LogindInhibitor::start(std::function<void()> on_shutdown, Duration wanted) {
  on_shutdown_ = std::move(on_shutdown);
  int r = sd_bus_open_system(&bus_->bus);
  if (r < 0)
    return fail(
        ErrorCode::Unavailable,
        std::string("graceful node shutdown: cannot reach the system bus: ") + std::strerror(-r));
  if (auto max = maxDelayUsec(bus_->bus); max && std::chrono::microseconds(*max) < wanted)
    raiseMaxDelay(wanted, *max);
  sd_bus_error err = SD_BUS_ERROR_NULL;
  sd_bus_message* reply = nullptr;
  r = sd_bus_call_method(bus_->bus, kLogind, kPath, kManager, "Inhibit", &err, &reply, "ssss",
                         "shutdown", "nodelet", "Kubernetes pods are being terminated", "delay");
  if (r < 0) {
    const std::string why = err.message ? err.message : std::strerror(-r);
    sd_bus_error_free(&err);
    return fail(ErrorCode::Unavailable, "graceful node shutdown: logind Inhibit: " + why);
  }
  int fd = -1;
  r = sd_bus_message_read(reply, "h", &fd);
  {
    std::lock_guard g(mu_);
    // The message owns its descriptor: keep a copy, the lock lives as long as it is open.
    lock_fd_ = r >= 0 ? ::fcntl(fd, F_DUPFD_CLOEXEC, 3) : -1;
  }
  sd_bus_message_unref(reply);
  if (lock_fd_ < 0) return fail(ErrorCode::Internal, "graceful node shutdown: no inhibitor lock");
  r = sd_bus_match_signal(
      bus_->bus, &bus_->slot, kLogind, kPath, kManager, "PrepareForShutdown",
      [](sd_bus_message* m, void* self, sd_bus_error*) -> int {
        int active = 0;
        if (sd_bus_message_read(m, "b", &active) >= 0 && active)
          static_cast<LogindInhibitor*>(self)->on_shutdown_();
        return 0;
      },
      this);
  if (r < 0)
    return fail(ErrorCode::Internal,
                std::string("graceful node shutdown: match signal: ") + std::strerror(-r));
  // sd-bus is not thread-safe: from here on only this thread touches the bus.
  thread_ = std::jthread([this](std::stop_token st) {
    while (!st.stop_requested()) {
      const int n = sd_bus_process(bus_->bus, nullptr);
      if (n < 0) {
        NODELET_LOG(warn, Agent, "graceful node shutdown: system bus: {}", std::strerror(-n));
        return;
      }
      if (n > 0) continue;
      sd_bus_wait(bus_->bus, 200'000);  // µs: how soon a stop is noticed
    }
  });
  NODELET_LOG(info, Agent, "graceful node shutdown: holding a logind delay lock ({} s)",
              std::chrono::duration_cast<std::chrono::seconds>(wanted).count());
  return {};
}

void LogindInhibitor::release() {
  std::lock_guard g(mu_);
  if (lock_fd_ >= 0) ::close(lock_fd_);
  lock_fd_ = -1;
}

NodeShutdownManager::NodeShutdownManager(ShutdownInhibitor& inhibitor, ShutdownHooks hooks,
                                         Clock& clock, Duration grace, Duration critical_grace)
    : inhibitor_(inhibitor),
      hooks_(std::move(hooks)),
      clock_(clock),
      grace_(grace),
      critical_grace_(std::min(critical_grace, grace)) {}

NodeShutdownManager::~NodeShutdownManager() {
  {
    std::lock_guard g(mu_);
    stopping_ = true;  // a shutdown in progress ends its waits
  }
  cv_.notify_all();
  inhibitor_.stop();  // no signal reaches this object any more
  if (worker_.joinable()) worker_.join();
}

Status NodeShutdownManager::start() {
  return inhibitor_.start(
      [this] {
        std::lock_guard g(mu_);
        if (shutting_down_) return;
        shutting_down_ = true;
        worker_ = std::jthread([this] { onShutdown(); });
      },
      grace_);
}

bool NodeShutdownManager::shuttingDown() const {
  std::lock_guard g(mu_);
  return shutting_down_;
}

void NodeShutdownManager::stopClass(bool critical, Duration grace) {
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(grace).count();
  hooks_.stop_pods(critical, secs);
  // Until they are down or their time is up, looking twice a second.
  const MonoTime deadline = clock_.monotonicNow() + grace;
  for (int i = 0; i < 100'000 && hooks_.running(critical) > 0; ++i) {
    std::unique_lock l(mu_);
    if (stopping_ || clock_.monotonicNow() >= deadline) break;
    clock_.waitUntil(cv_, l,
                     std::min(deadline, clock_.monotonicNow() + std::chrono::milliseconds(500)));
  }
}

void NodeShutdownManager::onShutdown() {
  {
    std::lock_guard g(mu_);
    shutting_down_ = true;
  }
  NODELET_LOG(info, Agent, "the node is shutting down: stopping pods (critical ones last)");
  stopClass(false, grace_ - critical_grace_);
  stopClass(true, critical_grace_);
  NODELET_LOG(info, Agent, "pods stopped: letting the shutdown go on");
  inhibitor_.release();
}

}  // namespace nodelet::agent
