#include "agent/core/log.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace nodelet::log {
namespace {

std::atomic<int> g_min_level{static_cast<int>(Level::Info)};

// Under systemd with stderr in the journal: no timestamp of our own (the journal keeps one)
// and the syslog priority as a "<N>" prefix, which journald turns into the entry's PRIORITY.
const bool g_journal = stderrIsJournal(std::getenv("JOURNAL_STREAM"), STDERR_FILENO);

spdlog::logger& logger() {
  // stderr, flushed per line; the pattern carries the component name.
  static auto* l = [] {
    auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    auto* lg = new spdlog::logger("nodelet", sink);
    lg->set_pattern(std::string(pattern(g_journal)));
    lg->set_level(spdlog::level::trace);
    lg->flush_on(spdlog::level::trace);
    return lg;
  }();
  return *l;
}

spdlog::level::level_enum toSpd(Level l) {
  switch (l) {
    case Level::Trace:
      return spdlog::level::trace;
    case Level::Debug:
      return spdlog::level::debug;
    case Level::Info:
      return spdlog::level::info;
    case Level::Warn:
      return spdlog::level::warn;
    case Level::Error:
      return spdlog::level::err;
  }
  return spdlog::level::info;
}

}  // namespace

std::string_view name(Id id) {
  switch (id) {
    case Id::Agent:
      return "agent";
    case Id::Cri:
      return "cri";
    case Id::StaticPods:
      return "staticpods";
    case Id::Network:
      return "network";
    case Id::Probes:
      return "probes";
    case Id::Server:
      return "server";
    case Id::Api:
      return "api";
  }
  return "?";
}

bool enabled(Level level) { return static_cast<int>(level) >= g_min_level.load(); }

void write(Level level, Id id, std::string_view message) {
  if (g_journal)
    logger().log(toSpd(level), "<{}>{}] {}", syslogPriority(level), name(id), message);
  else
    logger().log(toSpd(level), "{}] {}", name(id), message);
}

bool stderrIsJournal(const char* journal_stream, int fd) {
  if (!journal_stream) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(journal_stream, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st {};
  return ::fstat(fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

int syslogPriority(Level level) {
  switch (level) {
    case Level::Trace:
    case Level::Debug:
      return 7;  // LOG_DEBUG
    case Level::Info:
      return 6;  // LOG_INFO
    case Level::Warn:
      return 4;  // LOG_WARNING
    case Level::Error:
      return 3;  // LOG_ERR
  }
  return 6;
}

std::string_view pattern(bool journal) {
  // A terminal or a file: klog's "I1126 18:34:38.848890 3099 " header. The journal: the
  // thread id only (the journal records the time, the level is the priority).
  return journal ? "%t %v" : "%L%m%d %H:%M:%S.%f %t %v";
}

void setVerbosity(int v) {
  Level l = v >= 4 ? Level::Trace : v >= 2 ? Level::Debug : Level::Info;
  g_min_level.store(static_cast<int>(l));
}

}  // namespace nodelet::log
