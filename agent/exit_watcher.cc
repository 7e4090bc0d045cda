#include "agent/exit_watcher.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent/core/log.h"

namespace nodelet::agent {
namespace {

int pidfdOpen(int pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

}  // namespace

ExitWatcher::ExitWatcher(std::function<void()> on_exit) : on_exit_(std::move(on_exit)) {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = wake_fd_;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  thread_ = std::jthread([this](std::stop_token st) { run(st); });
}

ExitWatcher::~ExitWatcher() {
  thread_.request_stop();
  const uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  std::lock_guard g(mu_);
  for (auto& [id, fd] : fds_) ::close(fd);
  ::close(wake_fd_);
  ::close(epoll_fd_);
}

void ExitWatcher::watch(const std::string& id, int pid) {
  if (pid <= 0) return;
  const int fd = pidfdOpen(pid);
  if (fd < 0) {
    if (errno == ESRCH) {  // already gone: once
      bool first = false;
      {
        std::lock_guard g(mu_);
        first = exited_.insert(id).second;
      }
      if (first) on_exit_();
    }
    return;
  }
  std::lock_guard g(mu_);
  if (fds_.contains(id) || exited_.contains(id)) {
    ::close(fd);
    return;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    ::close(fd);
    return;
  }
  fds_[id] = fd;
}

bool ExitWatcher::watching(const std::string& id) const {
  std::lock_guard g(mu_);
  return fds_.contains(id) || exited_.contains(id);
}

size_t ExitWatcher::size() const {
  std::lock_guard g(mu_);
  return fds_.size();
}

void ExitWatcher::retain(const std::set<std::string>& alive) {
  std::lock_guard g(mu_);
  std::erase_if(exited_, [&](const std::string& id) { return !alive.contains(id); });
  for (auto it = fds_.begin(); it != fds_.end();) {
    if (alive.contains(it->first)) {
      ++it;
      continue;
    }
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, it->second, nullptr);
    ::close(it->second);
    it = fds_.erase(it);
  }
}

void ExitWatcher::run(std::stop_token stop) {
  epoll_event events[32];
  while (!stop.stop_requested()) {
    const int n = ::epoll_wait(epoll_fd_, events, 32, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      NODELET_LOG(error, Agent, "exit watcher: epoll_wait: {}", strerror(errno));
      return;
    }
    bool exited = false;
    {
      std::lock_guard g(mu_);
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd == wake_fd_) continue;
        for (auto it = fds_.begin(); it != fds_.end(); ++it) {
          if (it->second != fd) continue;
          ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
          ::close(fd);
          exited_.insert(it->first);
          fds_.erase(it);
          exited = true;
          break;
        }
      }
    }
    if (exited) on_exit_();
  }
}

}  // namespace nodelet::agent
