#include "agent/core/log.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>

namespace nodelet::log {
namespace {

std::atomic<int> g_min_level{static_cast<int>(Level::Info)};

spdlog::logger& logger() {
  // stderr, unbuffered enough for journald; the pattern carries the component name.
  static auto* l = [] {
    auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    auto* lg = new spdlog::logger("nodelet", sink);
    lg->set_pattern("%L%m%d %H:%M:%S.%f %t %v");
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
  logger().log(toSpd(level), "{}] {}", name(id), message);
}

void setVerbosity(int v) {
  Level l = v >= 4 ? Level::Trace : v >= 2 ? Level::Debug : Level::Info;
  g_min_level.store(static_cast<int>(l));
}

}  // namespace nodelet::log
