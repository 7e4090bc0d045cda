#include "agent/log_rotation.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>

#include "agent/core/log.h"

namespace nodelet::agent {

namespace fs = std::filesystem;

namespace {

// The rotated files beside a live log ("<file>.<stamp>[.gz]"), oldest first, after the kubelet's
// cleanup: leftovers of an interrupted compression (".tmp") go, and so does an uncompressed file
// whose ".gz" was completed.
std::vector<fs::path> rotatedLogs(const std::string& path) {
  std::vector<fs::path> all;
  std::error_code ec;
  const std::string prefix = fs::path(path).filename().string() + ".";
  for (const auto& e : fs::directory_iterator(fs::path(path).parent_path(), ec))
    if (e.path().filename().string().starts_with(prefix)) all.push_back(e.path());
  std::vector<fs::path> kept;
  for (const auto& f : all) {
    const std::string name = f.string();
    const bool superseded =
        !name.ends_with(".gz") && std::find(all.begin(), all.end(), name + ".gz") != all.end();
    if (name.ends_with(".tmp") || superseded)
      fs::remove(f, ec);
    else
      kept.push_back(f);
  }
  std::sort(kept.begin(), kept.end());
  return kept;
}

}  // namespace

int LogRotator::rotate(const std::vector<std::pair<std::string, std::string>>& container_logs) {
  int rotated = 0;
  for (const auto& [id, path] : container_logs) {
    if (path.empty()) continue;
    std::error_code ec;
    auto size = fs::file_size(path, ec);
    if (ec == std::errc::no_such_file_or_directory) {
      // Gone (a failed rotation, or someone deleted it): the runtime writes into nothing
      // visible until it reopens the path, so ask it to, as the kubelet does.
      if (auto s = runtime_.reopenContainerLog(id); !s) {
        NODELET_LOG(warn, Agent, "{} is missing and ReopenContainerLog {} failed: {}", path, id,
                    s.error().message);
        continue;
      }
      size = fs::file_size(path, ec);
    }
    if (ec || static_cast<int64_t>(size) < max_bytes_) continue;
    // The kubelet's order, which never has more than maxFiles files on disk: first make room
    // (the live file and the one about to be rotated are two of them, so keep maxFiles-2
    // rotated ones), compress what is kept, and only then rename the live file and let the
    // runtime create a new one.
    std::vector<fs::path> old = rotatedLogs(path);
    const size_t keep = static_cast<size_t>(std::max(max_files_ - 2, 0));
    while (old.size() > keep) {
      if (!fs::remove(old.front(), ec) && ec)
        NODELET_LOG(warn, Agent, "remove {}: {}", old.front().string(), ec.message());
      old.erase(old.begin());
    }
    for (const auto& f : old)
      if (f.extension() != ".gz")
        if (auto s = compressLog(f.string()); !s)
          NODELET_LOG(warn, Agent, "compress {}: {}", f.string(), s.error().message);
    // <file>.<YYYYMMDD-HHMMSS>, the kubelet's rotated-file suffix. The newest rotated file stays
    // uncompressed until the next rotation: the runtime may still finish its last write to it.
    const std::time_t now = std::chrono::system_clock::to_time_t(
        std::chrono::time_point_cast<std::chrono::seconds>(clock_.systemNow()));
    std::tm tm{};
    gmtime_r(&now, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    std::string target = path + "." + stamp;
    for (int n = 1; fs::exists(target, ec) || fs::exists(target + ".gz", ec); ++n)
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
