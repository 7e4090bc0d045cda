// The exit watcher with real child processes: an exit is reported, a gone process at once.
#include "agent/exit_watcher.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>

namespace nodelet::agent {
namespace {

class ExitWatcherTest : public ::testing::Test {
 protected:
  // Waits (bounded) until the watcher has reported `n` exits.
  bool waitExits(int n) {
    std::unique_lock l(mu_);
    return cv_.wait_for(l, std::chrono::seconds(10), [&] { return exits_ >= n; });
  }
  // A child that lives until its pipe is closed.
  pid_t child(int& write_end) {
    int fds[2];
    EXPECT_EQ(::pipe(fds), 0);
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(fds[1]);
      char c;
      (void)!::read(fds[0], &c, 1);
      ::_exit(0);
    }
    ::close(fds[0]);
    write_end = fds[1];
    return pid;
  }
  std::mutex mu_;
  std::condition_variable cv_;
  int exits_{0};
  ExitWatcher watcher_{[this] {
    std::lock_guard g(mu_);
    ++exits_;
    cv_.notify_all();
  }};
};

TEST_F(ExitWatcherTest, ReportsAnExit) {
  int w = -1;
  const pid_t pid = child(w);
  watcher_.watch("c1", pid);
  EXPECT_TRUE(watcher_.watching("c1"));
  ::close(w);  // the child exits
  ASSERT_TRUE(waitExits(1));
  ::waitpid(pid, nullptr, 0);
  EXPECT_EQ(watcher_.size(), 0u);
  // The runtime may report it running a moment longer: it counts as known, not to be asked
  // for again, until a relist no longer sees it running.
  EXPECT_TRUE(watcher_.watching("c1"));
  watcher_.retain({});
  EXPECT_FALSE(watcher_.watching("c1"));
}

TEST_F(ExitWatcherTest, AProcessAlreadyGoneIsReportedAtOnce) {
  int w = -1;
  const pid_t pid = child(w);
  ::close(w);
  ::waitpid(pid, nullptr, 0);  // reaped: the pid no longer exists
  watcher_.watch("c2", pid);
  EXPECT_TRUE(waitExits(1));
  // Asked again (a relist that still sees it running): no second report, no loop.
  watcher_.watch("c2", pid);
  EXPECT_TRUE(watcher_.watching("c2"));
  std::unique_lock l(mu_);
  EXPECT_EQ(exits_, 1);
}

TEST_F(ExitWatcherTest, RetainForgetsContainersThatAreGone) {
  int w1 = -1, w2 = -1;
  const pid_t p1 = child(w1), p2 = child(w2);
  watcher_.watch("a", p1);
  watcher_.watch("b", p2);
  watcher_.retain({"b"});
  EXPECT_FALSE(watcher_.watching("a"));
  EXPECT_TRUE(watcher_.watching("b"));
  EXPECT_EQ(watcher_.size(), 1u);
  ::close(w1);
  ::close(w2);
  ASSERT_TRUE(waitExits(1));
  ::waitpid(p1, nullptr, 0);
  ::waitpid(p2, nullptr, 0);
}

}  // namespace
}  // namespace nodelet::agent
