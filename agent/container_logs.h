#pragma once
// Container logs as `kubectl logs` gets them from the kubelet (/containerLogs/{ns}/{pod}/{c}):
// the CRI log file decoded ("<RFC3339Nano> <stdout|stderr> <P|F> <text>" per line, partial
// lines joined), with the options of PodLogOptions: tailLines, limitBytes, sinceSeconds,
// sinceTime, timestamps, previous and follow.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "agent/core/clock.h"
#include "agent/core/error.h"

namespace nodelet::agent {

struct LogOptions {
  bool follow{false};
  bool timestamps{false};
  bool previous{false};
  std::optional<int64_t> tail_lines;
  std::optional<int64_t> limit_bytes;
  std::optional<SysTime> since;  // sinceTime, or now - sinceSeconds
};

// From the query parameters; errors (400) name the parameter. `now` turns sinceSeconds into a
// time.
Result<LogOptions> parseLogOptions(const std::multimap<std::string, std::string>& params,
                                   SysTime now);

// Decodes CRI log text into what the user sees, keeping state across calls (a partial line
// at the end of one read continues in the next). Returns false once limitBytes is reached.
class LogDecoder {
 public:
  explicit LogDecoder(const LogOptions& o) : o_(o) {}
  // `in` holds complete lines only; appends the output to `out`.
  bool decode(std::string_view in, std::string& out);
  bool limited() const { return limited_; }

 private:
  const LogOptions& o_;
  bool at_line_start_{true};
  int64_t written_{0};
  bool limited_{false};
};

// Where `tailLines` lines from the end of the file begin (an offset into the file).
Result<uint64_t> tailOffset(const std::string& path, int64_t lines);

// Writes the log of one container to `write` (which returns false when the client is gone).
// With `follow`, keeps writing what is appended until `running` says the container stopped,
// the client is gone, or `stop` is set; it polls the file every `poll` on `clock`.
Status streamLog(const std::string& path, const LogOptions& o,
                 const std::function<bool(std::string_view)>& write,
                 const std::function<bool()>& running, Clock& clock,
                 Duration poll = std::chrono::milliseconds(100));

}  // namespace nodelet::agent
