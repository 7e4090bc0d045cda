#pragma once
// Container log rotation with the kubelet's rules (containerLogMaxSize, containerLogMaxFiles):
// when a running container's log file has reached the maximum, the oldest rotated files are
// deleted so that maxFiles-2 remain, those are compressed (<file>.<timestamp>.gz), and then the
// live file is renamed to <file>.<UTC timestamp> and the runtime asked to reopen the log
// (ReopenContainerLog). In that order there are never more than maxFiles files, the live one
// included. A live file that has gone missing is recreated through ReopenContainerLog.
#include <cstdint>
#include <string>
#include <vector>

#include "agent/core/clock.h"
#include "agent/core/error.h"
#include "cri/runtime_service.h"

namespace nodelet::agent {

class LogRotator {
 public:
  LogRotator(cri::RuntimeService& runtime, Clock& clock, int64_t max_bytes, int32_t max_files)
      : runtime_(runtime), clock_(clock), max_bytes_(max_bytes), max_files_(max_files) {}
  // One pass over the running containers (log paths from the runtime). Returns how many logs
  // were rotated.
  int rotate(const std::vector<std::pair<std::string, std::string>>& container_logs);

 private:
  cri::RuntimeService& runtime_;
  Clock& clock_;
  int64_t max_bytes_;
  int32_t max_files_;
};

// Compresses a rotated log to <path>.gz (through <path>.gz.tmp) and removes the original.
Status compressLog(const std::string& path);

}  // namespace nodelet::agent
