#pragma once
// One logger per component, over spdlog (which stays out of every header but log.cc).
//   NODELET_LOG(info, Agent, "pod {} started in {} ms", name, ms);
// Verbosity follows the kubelet's -v: 0..1 info, 2..3 adds debug, 4+ adds trace.
#include <fmt/format.h>

#include <string_view>

namespace nodelet::log {

enum class Id { Agent, Cri, StaticPods, Network, Probes, Server, Api };
enum class Level { Trace, Debug, Info, Warn, Error };

std::string_view name(Id id);
bool enabled(Level level);
void write(Level level, Id id, std::string_view message);
// -v N as the kubelet spells it; also sets the format nodelet logs in.
void setVerbosity(int v);
// Whether `fd` is the stream systemd connected to the journal (JOURNAL_STREAM="dev:inode").
bool stderrIsJournal(const char* journal_stream, int fd);
// The syslog priority of a level (journald reads a "<N>" prefix as the entry's PRIORITY).
int syslogPriority(Level level);
// The spdlog pattern: klog-like with a timestamp, or for the journal without one.
std::string_view pattern(bool journal);

template <class... Args>
void logf(Level level, Id id, fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(level)) write(level, id, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace nodelet::log

#define NODELET_LOG(LEVEL, ID, ...)                                                              \
  ::nodelet::log::logf(::nodelet::log::Level::NODELET_LOG_LEVEL_##LEVEL, ::nodelet::log::Id::ID, \
                       __VA_ARGS__)
#define NODELET_LOG_LEVEL_trace Trace
#define NODELET_LOG_LEVEL_debug Debug
#define NODELET_LOG_LEVEL_info Info
#define NODELET_LOG_LEVEL_warn Warn
#define NODELET_LOG_LEVEL_error Error
