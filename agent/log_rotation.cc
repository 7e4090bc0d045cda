#include "agent/log_rotation.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
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
    // The rotated files beside the live one, oldest first ("<file>.<stamp>[.gz]").
    std::vector<fs::path> old;
    const fs::path dir = fs::path(path).parent_path();
    const std::string prefix = fs::path(path).filename().string() + ".";
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      const std::string name = e.path().filename().string();
      if (name.starts_with(prefix) && !name.ends_with(".tmp")) old.push_back(e.path());
    }
    std::sort(old.begin(), old.end());
    // Keep the newest maxFiles-1 of them.
    const size_t keep = static_cast<size_t>(std::max(max_files_ - 1, 1));
    while (old.size() > keep) {
      fs::remove(old.front(), ec);
      old.erase(old.begin());
    }
    // Compress all but the newest, as the kubelet does (the runtime may still be finishing
    // its last write to the file it just let go of).
    for (size_t i = 0; i + 1 < old.size(); ++i)
      if (old[i].extension() != ".gz")
        if (auto s = compressLog(old[i].string()); !s)
          NODELET_LOG(warn, Agent, "compress {}: {}", old[i].string(), s.error().message);
  }
  return rotated;
}

Status compressLog(const std::string& path) {
  // Into <path>.gz.tmp, renamed to <path>.gz once complete: a reader never sees half a file,
  // and the original goes only after that.
  const std::string tmp = path + ".gz.tmp";
  FILE* in = std::fopen(path.c_str(), "rb");
  if (!in) return fail(ErrorCode::NotFound, "open " + path);
  gzFile out = gzopen(tmp.c_str(), "wb");
  if (!out) {
    std::fclose(in);
    return fail(ErrorCode::Internal, "create " + tmp);
  }
  char buf[65536];
  bool ok = true;
  for (size_t n; ok && (n = std::fread(buf, 1, sizeof buf, in)) > 0;)
    ok = gzwrite(out, buf, static_cast<unsigned>(n)) == static_cast<int>(n);
  ok = !std::ferror(in) && ok;
  std::fclose(in);
  ok = gzclose(out) == Z_OK && ok;
  std::error_code ec;
  if (!ok) {
    fs::remove(tmp, ec);
    return fail(ErrorCode::Internal, "write " + tmp);
  }
  fs::rename(tmp, path + ".gz", ec);
  if (ec) return fail(ErrorCode::Internal, "rename " + tmp + ": " + ec.message());
  fs::remove(path, ec);
  return {};
}

}  // namespace nodelet::agent
