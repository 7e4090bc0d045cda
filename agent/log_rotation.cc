#include "agent/log_rotation.h"

#include <algorithm>
#include <ctime>
#include <filesystem>

#include "agent/core/log.h"

namespace nodelet::agent {

namespace fs = std::filesystem;

int LogRotator::rotate(const std::vector<std::pair<std::string, std::string>>& container_logs) {
  int rotated = 0;
  for (const auto& [id, path] : container_logs) {
    if (path.empty()) continue;
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    if (ec || static_cast<int64_t>(size) <= max_bytes_) continue;
    // <file>.<YYYYMMDD-HHMMSS>, the kubelet's rotated-file suffix.
    const std::time_t now = std::chrono::system_clock::to_time_t(
        std::chrono::time_point_cast<std::chrono::seconds>(clock_.systemNow()));
    std::tm tm{};
    gmtime_r(&now, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    std::string target = path + "." + stamp;
    for (int n = 1; fs::exists(target, ec); ++n)
      target = path + "." + stamp + "." + std::to_string(n);
    fs::rename(path, target, ec);
    if (ec) {
      NODELET_LOG(warn, Agent, "rotate {}: {}", path, ec.message());
      continue;
    }
    if (auto s = runtime_.reopenContainerLog(id); !s) {
      // The runtime keeps writing to the renamed file; put it back so nothing is lost.
      fs::rename(target, path, ec);
      NODELET_LOG(warn, Agent, "ReopenContainerLog {}: {}", id, s.error().message);
      continue;
    }
    ++rotated;
    // Keep the newest maxFiles-1 rotated files beside the live one.
    std::vector<fs::path> old;
    const fs::path dir = fs::path(path).parent_path();
    const std::string prefix = fs::path(path).filename().string() + ".";
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.path().filename().string().starts_with(prefix)) old.push_back(e.path());
    std::sort(old.begin(), old.end());
    const size_t keep = static_cast<size_t>(std::max(max_files_ - 1, 1));
    for (size_t i = 0; i + keep < old.size(); ++i) fs::remove(old[i], ec);
  }
  return rotated;
}

}  // namespace nodelet::agent
