#pragma once
// Notices a container's exit the moment it happens. containerd 1.6 has no CRI event stream
// (GetContainerEvents is UNIMPLEMENTED), and polling faster costs CPU on an idle node; instead
// each running container's init process is watched through a pidfd in one epoll loop. An exit
// wakes the sync loop at once; the periodic relist stays as the safety net.
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

namespace nodelet::agent {

class ExitWatcher {
 public:
  explicit ExitWatcher(std::function<void()> on_exit);
  ~ExitWatcher();
  ExitWatcher(const ExitWatcher&) = delete;
  ExitWatcher& operator=(const ExitWatcher&) = delete;

  // Watches `pid` as container `id`'s process. A process already gone calls on_exit at once.
  void watch(const std::string& id, int pid);
  // Whether `id` is watched or its exit was already seen (the runtime may still report it
  // running for a moment: asking for its pid again would find nothing and loop).
  bool watching(const std::string& id) const;
  // Drops watches (and seen exits) of containers not in `alive`.
  void retain(const std::set<std::string>& alive);
  size_t size() const;

 private:
  void run(std::stop_token stop);

  std::function<void()> on_exit_;
  int epoll_fd_{-1};
  int wake_fd_{-1};
  mutable std::mutex mu_;
  std::map<std::string, int> fds_;  // container id -> pidfd
  std::set<std::string> exited_;    // exits seen, until the runtime stops reporting them running
  std::jthread thread_;
};

}  // namespace nodelet::agent
