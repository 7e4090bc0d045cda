// LogindInhibitor against a fake systemd-logind (and systemd's KillUnit) on a private D-Bus
// (dbus-daemon started by the test, DBUS_SYSTEM_BUS_ADDRESS pointed at it): the Inhibit call
// nodelet makes, InhibitDelayMaxSec raised through a drop-in and a SIGHUP, the PrepareForShutdown
// signal reaching it, and the lock released by closing its descriptor.
// Skips when dbus-daemon is not installed.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>
#include <vector>

#include "agent/node_shutdown.h"
#include "tests/common/temp_dir.h"

namespace nodelet::agent {
namespace {

// A dbus-daemon of our own, anyone may own any name.
class PrivateBus {
 public:
  explicit PrivateBus(const std::string& dir) {
    const std::string sock = dir + "/bus";
    std::ofstream(dir + "/bus.conf")
        << "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\" "
           "\"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
           "<busconfig><type>custom</type><listen>unix:path="
        << sock
        << "</listen><auth>EXTERNAL</auth><policy context=\"default\"><allow user=\"*\"/>"
           "<allow own=\"*\"/><allow send_destination=\"*\"/><allow receive_sender=\"*\"/>"
           "</policy></busconfig>\n";
    pid_ = ::fork();
    if (pid_ == 0) {
      const std::string cfg = "--config-file=" + dir + "/bus.conf";
      ::execlp("dbus-daemon", "dbus-daemon", cfg.c_str(), "--nofork", nullptr);
      ::_exit(127);
    }
    for (int i = 0; i < 500 && !std::filesystem::exists(sock); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // NOLINT(real-time)
    if (std::filesystem::exists(sock)) address_ = "unix:path=" + sock;
  }
  ~PrivateBus() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  const std::string& address() const { return address_; }

 private:
  pid_t pid_{-1};
  std::string address_;
};

// org.freedesktop.login1.Manager: Inhibit (hands out the write end of a pipe, as logind hands
// out a FIFO) and InhibitDelayMaxUSec (5 s, logind's default, until a reload reads a drop-in);
// PrepareForShutdown on demand. And org.freedesktop.systemd1.Manager.KillUnit: SIGHUP to
// systemd-logind.service makes it read the *.conf drop-ins in `conf_dir` again, as logind does.
class FakeLogind {
 public:
  FakeLogind(const std::string& address, std::string conf_dir) : conf_dir_(std::move(conf_dir)) {
    sd_bus_new(&bus_);
    sd_bus_set_address(bus_, address.c_str());
    sd_bus_set_bus_client(bus_, 1);
    ok_ = sd_bus_start(bus_) >= 0 &&
          sd_bus_add_object_vtable(bus_, nullptr, "/org/freedesktop/login1",
                                   "org.freedesktop.login1.Manager", kVtable, this) >= 0 &&
          sd_bus_request_name(bus_, "org.freedesktop.login1", 0) >= 0 &&
          sd_bus_add_object_vtable(bus_, nullptr, "/org/freedesktop/systemd1",
                                   "org.freedesktop.systemd1.Manager", kSystemdVtable, this) >= 0 &&
          sd_bus_request_name(bus_, "org.freedesktop.systemd1", 0) >= 0;
    thread_ = std::jthread([this](std::stop_token st) {
      while (!st.stop_requested()) {
        {
          std::lock_guard g(mu_);
          if (emit_) {
            sd_bus_emit_signal(bus_, "/org/freedesktop/login1", "org.freedesktop.login1.Manager",
                               "PrepareForShutdown", "b", 1);
            emit_ = false;
          }
        }
        if (sd_bus_process(bus_, nullptr) > 0) continue;
        sd_bus_wait(bus_, 20'000);
      }
    });
  }
  ~FakeLogind() {
    thread_.request_stop();
    thread_.join();
    sd_bus_flush_close_unref(bus_);
    if (lock_read_ >= 0) ::close(lock_read_);
  }
  bool ok() const { return ok_; }
  int lockReadEnd() const { return lock_read_; }
  void prepareForShutdown() {
    std::lock_guard g(mu_);
    emit_ = true;
  }
  // The inhibitor's lock is released once every copy of its write end is closed (the read end
  // is non-blocking: EOF then, EAGAIN while it is held).
  bool released() {
    if (lock_read_ < 0) return false;
    char c;
    for (int i = 0; i < 200; ++i) {  // the bus may still hold a copy for a moment
      if (::read(lock_read_, &c, 1) == 0) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // NOLINT(real-time)
    }
    return false;
  }
  std::string what, who, why, mode;
  uint64_t maxDelayUsec() const { return max_delay_usec_; }
  void setMaxDelayUsec(uint64_t v) { max_delay_usec_ = v; }
  std::vector<std::string> kills() {
    std::lock_guard g(mu_);
    return kills_;
  }

 private:
  static int inhibit(sd_bus_message* m, void* self, sd_bus_error*) {
    auto* l = static_cast<FakeLogind*>(self);
    const char *what = nullptr, *who = nullptr, *why = nullptr, *mode = nullptr;
    sd_bus_message_read(m, "ssss", &what, &who, &why, &mode);
    l->what = what;
    l->who = who;
    l->why = why;
    l->mode = mode;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return -errno;
    l->lock_read_ = fds[0];
    const int r = sd_bus_reply_method_return(m, "h", fds[1]);  // sd-bus sends a copy
    ::close(fds[1]);
    return r;
  }
  static int maxDelay(sd_bus*, const char*, const char*, const char*, sd_bus_message* reply,
                      void* self, sd_bus_error*) {
    return sd_bus_message_append(reply, "t", static_cast<FakeLogind*>(self)->maxDelayUsec());
  }
  static int killUnit(sd_bus_message* m, void* self, sd_bus_error*) {
    auto* l = static_cast<FakeLogind*>(self);
    const char *unit = nullptr, *who = nullptr;
    int32_t sig = 0;
    sd_bus_message_read(m, "ssi", &unit, &who, &sig);
    {
      std::lock_guard g(l->mu_);
      l->kills_.push_back(std::string(unit) + " " + who + " " + std::to_string(sig));
    }
    if (std::string(unit) == "systemd-logind.service" && sig == SIGHUP) l->reload();
    return sd_bus_reply_method_return(m, "");
  }
  // logind's reading of its drop-ins: *.conf in name order, the last setting wins.
  void reload() {
    std::vector<std::filesystem::path> files;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(conf_dir_, ec))
      if (e.path().extension() == ".conf") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      std::ifstream in(f);
      std::string line;
      bool login = false;
      while (std::getline(in, line)) {
        if (line.starts_with("[")) login = line == "[Login]";
        if (login && line.starts_with("InhibitDelayMaxSec="))
          max_delay_usec_ = std::stoull(line.substr(19)) * 1'000'000;
      }
    }
  }
  static constexpr sd_bus_vtable kVtable[] = {
      SD_BUS_VTABLE_START(0), SD_BUS_METHOD("Inhibit", "ssss", "h", &FakeLogind::inhibit, 0),
      SD_BUS_PROPERTY("InhibitDelayMaxUSec", "t", &FakeLogind::maxDelay, 0, 0),
      SD_BUS_SIGNAL("PrepareForShutdown", "b", 0), SD_BUS_VTABLE_END};
  static constexpr sd_bus_vtable kSystemdVtable[] = {
      SD_BUS_VTABLE_START(0), SD_BUS_METHOD("KillUnit", "ssi", "", &FakeLogind::killUnit, 0),
      SD_BUS_VTABLE_END};

  sd_bus* bus_{nullptr};
  bool ok_{false};
  std::mutex mu_;
  bool emit_{false};
  std::atomic<int> lock_read_{-1};  // set on the bus thread
  std::string conf_dir_;
  std::atomic<uint64_t> max_delay_usec_{5'000'000};
  std::vector<std::string> kills_;
  std::jthread thread_;
};

// A private bus with the fake logind on it, and nodelet's bus address pointed at it. The
// drop-in directory may be chosen (one that cannot be created, for a test).
class LogindTest : public ::testing::Test {
 protected:
  void SetUp() override { SetUpWith(dir_.str() + "/logind.conf.d"); }
  void SetUpWith(const std::string& conf_dir) {
    if (std::system("command -v dbus-daemon >/dev/null 2>&1") != 0)
      GTEST_SKIP() << "dbus-daemon is not installed";
    conf_dir_ = conf_dir;
    bus_ = std::make_unique<PrivateBus>(dir_.str());
    ASSERT_FALSE(bus_->address().empty()) << "dbus-daemon did not start";
    logind_ = std::make_unique<FakeLogind>(bus_->address(), conf_dir_);
    ASSERT_TRUE(logind_->ok());
    ::setenv("DBUS_SYSTEM_BUS_ADDRESS", bus_->address().c_str(), 1);
  }
  void TearDown() override {
    ::unsetenv("DBUS_SYSTEM_BUS_ADDRESS");
    logind_.reset();
    bus_.reset();
  }

  testing::TempDir dir_;
  std::string conf_dir_;
  std::unique_ptr<PrivateBus> bus_;
  std::unique_ptr<FakeLogind> logind_;
};

TEST_F(LogindTest, TakesADelayLockHearsTheShutdownAndLetsGo) {
  auto& logind = *logind_;
  std::mutex mu;
  std::condition_variable cv;
  bool heard = false;
  LogindInhibitor inhibitor(conf_dir_);
  auto s = inhibitor.start(
      [&] {
        std::lock_guard g(mu);
        heard = true;
        cv.notify_all();
      },
      std::chrono::seconds(30));
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(logind.what, "shutdown");
  EXPECT_EQ(logind.who, "nodelet");
  EXPECT_EQ(logind.mode, "delay");
  // logind's 5 s would cut the 30 s short: raised with a drop-in and a reload, as the kubelet
  // raises it.
  std::ifstream in(conf_dir_ + "/99-nodelet.conf");
  const std::string dropin((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(dropin.find("[Login]\nInhibitDelayMaxSec=30\n"), std::string::npos) << dropin;
  EXPECT_EQ(logind.kills(), std::vector<std::string>{"systemd-logind.service all 1"});
  EXPECT_EQ(logind.maxDelayUsec(), 30'000'000u);
  char c;
  EXPECT_EQ(::read(logind.lockReadEnd(), &c, 1), -1) << "held while nodelet runs";
  EXPECT_EQ(errno, EAGAIN);
  logind.prepareForShutdown();
  {
    std::unique_lock l(mu);
    EXPECT_TRUE(
        cv.wait_for(l, std::chrono::seconds(10), [&] { return heard; }));  // NOLINT(real-time)
  }
  inhibitor.release();
  EXPECT_TRUE(logind.released());
}

TEST_F(LogindTest, ALongEnoughLogindDelayIsLeftAlone) {
  logind_->setMaxDelayUsec(60'000'000);
  LogindInhibitor inhibitor(conf_dir_);
  ASSERT_TRUE(inhibitor.start([] {}, std::chrono::seconds(30)));
  EXPECT_FALSE(std::filesystem::exists(conf_dir_));
  EXPECT_TRUE(logind_->kills().empty());
}

class LogindUnwritableTest : public LogindTest {
 protected:
  void SetUp() override {
    std::ofstream(dir_.str() + "/a-file") << "not a directory\n";
    SetUpWith(dir_.str() + "/a-file/logind.conf.d");  // cannot be created
  }
};

TEST_F(LogindUnwritableTest, ADropInThatCannotBeWrittenStillLeavesTheLock) {
  LogindInhibitor inhibitor(conf_dir_);
  auto s = inhibitor.start([] {}, std::chrono::seconds(30));
  ASSERT_TRUE(s) << "a shorter delay is better than none: " << s.error().message;
  EXPECT_EQ(logind_->what, "shutdown");
  EXPECT_TRUE(logind_->kills().empty()) << "no reload without a drop-in";
  EXPECT_EQ(logind_->maxDelayUsec(), 5'000'000u);
}

TEST(LogindInhibitorTest, NoSystemBusIsAClearError) {
  ::setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/nodelet-test-bus", 1);
  LogindInhibitor inhibitor;
  auto s = inhibitor.start([] {}, std::chrono::seconds(30));
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("graceful node shutdown"), std::string::npos)
      << s.error().message;
  ::unsetenv("DBUS_SYSTEM_BUS_ADDRESS");
}

}  // namespace
}  // namespace nodelet::agent
