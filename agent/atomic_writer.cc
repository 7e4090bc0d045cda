#include "agent/atomic_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "agent/core/api_json.h"

namespace nodelet::agent {
namespace {

namespace fs = std::filesystem;
constexpr const char* kData = "..data";

std::string firstElement(const std::string& path) { return path.substr(0, path.find('/')); }

}  // namespace

Status validatePayloadPath(const std::string& path) {
  if (path.empty()) return fail(ErrorCode::InvalidArgument, "empty path");
  if (path.size() > 4096)
    return fail(ErrorCode::InvalidArgument, "path longer than 4096 characters");
  if (path.find('\0') != std::string::npos)
    return fail(ErrorCode::InvalidArgument, "path contains NUL");
  if (path[0] == '/')
    return fail(ErrorCode::InvalidArgument, "\"" + path + "\": must be a relative path");
  size_t start = 0;
  while (start <= path.size()) {
    const size_t slash = path.find('/', start);
    const std::string elem =
        path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (elem == "..")
      return fail(ErrorCode::InvalidArgument, "\"" + path + "\": must not contain '..'");
    if (elem.starts_with(".."))
      return fail(ErrorCode::InvalidArgument, "\"" + path + "\": must not start with '..'");
    if (elem.empty() && slash != std::string::npos)
      return fail(ErrorCode::InvalidArgument, "\"" + path + "\": empty path element");
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return {};
}

Status validateKey(const std::string& key) {
  if (key.empty() || key.size() > 253 || key == "." || key == ".." ||
      !std::all_of(key.begin(), key.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
      }))
    return fail(ErrorCode::InvalidArgument, "key \"" + key + "\" is not a valid file name");
  if (key.starts_with(".."))
    return fail(ErrorCode::InvalidArgument, "key \"" + key + "\" must not start with '..'");
  return {};
}

Payload readPayload(const std::string& dir) {
  Payload out;
  std::error_code ec;
  const fs::path data = fs::path(dir) / kData;
  if (!fs::is_symlink(data, ec)) return out;
  const fs::path target = fs::path(dir) / fs::read_symlink(data, ec);
  for (auto it = fs::recursive_directory_iterator(target, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    std::ifstream in(it->path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    struct stat st {};
    ::stat(it->path().c_str(), &st);
    out[it->path().lexically_relative(target).string()] = {ss.str(),
                                                           static_cast<int32_t>(st.st_mode & 0777)};
  }
  return out;
}

Result<bool> writeAtomically(const std::string& dir, const Payload& payload, Clock& clock,
                             std::optional<int64_t> gid) {
  for (const auto& [path, f] : payload)
    if (auto s = validatePayloadPath(path); !s) return std::unexpected(s.error());
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return fail(ErrorCode::Internal, "create " + dir + ": " + ec.message());
  if (fs::is_symlink(fs::path(dir) / kData, ec) && readPayload(dir) == payload) return false;

  // 1. The new set, complete, in a fresh directory no reader looks at yet.
  static std::atomic<uint64_t> seq{0};
  std::string stamp = api::formatTime(clock.systemNow());
  std::replace(stamp.begin(), stamp.end(), ':', '_');
  const std::string ts_name =
      ".." + stamp + "." + std::to_string(::getpid()) + "." + std::to_string(++seq);
  const fs::path ts = fs::path(dir) / ts_name;
  fs::create_directories(ts, ec);
  if (ec) return fail(ErrorCode::Internal, "create " + ts.string() + ": " + ec.message());
  for (const auto& [path, f] : payload) {
    const fs::path file = ts / path;
    fs::create_directories(file.parent_path(), ec);
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return fail(ErrorCode::Internal, "write " + file.string() + ": " + strerror(errno));
    bool ok =
        ::write(fd, f.content.data(), f.content.size()) == static_cast<ssize_t>(f.content.size());
    if (ok && gid) ok = ::fchown(fd, static_cast<uid_t>(-1), static_cast<gid_t>(*gid)) == 0;
    ok = ok && ::fchmod(fd, static_cast<mode_t>(f.mode)) == 0;
    ::close(fd);
    if (!ok) return fail(ErrorCode::Internal, "write " + file.string() + ": " + strerror(errno));
  }
  if (gid) {  // the set's directories too, with setgid so new entries keep the group
    for (auto it = fs::recursive_directory_iterator(ts, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
      if (it->is_directory() && !it->is_symlink()) {
        (void)!::lchown(it->path().c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(*gid));
        ::chmod(it->path().c_str(), 02755);
      }
    (void)!::lchown(ts.c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(*gid));
    ::chmod(ts.c_str(), 02755);
  }
  // 2. One rename switches every reader to it.
  const fs::path tmp_link = fs::path(dir) / "..data_tmp";
  fs::remove(tmp_link, ec);
  if (::symlink(ts_name.c_str(), tmp_link.c_str()) != 0)
    return fail(ErrorCode::Internal, "symlink " + tmp_link.string() + ": " + strerror(errno));
  const fs::path data = fs::path(dir) / kData;
  std::string old_ts;
  if (fs::is_symlink(data, ec)) old_ts = fs::read_symlink(data, ec).string();
  if (::rename(tmp_link.c_str(), data.c_str()) != 0)
    return fail(ErrorCode::Internal, "rename " + tmp_link.string() + ": " + strerror(errno));
  // 3. Top-level names through ..data; names no longer in the payload go.
  std::set<std::string> top;
  for (const auto& [path, f] : payload) top.insert(firstElement(path));
  for (const auto& name : top) {
    const fs::path link = fs::path(dir) / name;
    if (fs::is_symlink(link, ec)) continue;
    fs::remove_all(link, ec);
    if (::symlink((std::string(kData) + "/" + name).c_str(), link.c_str()) != 0)
      return fail(ErrorCode::Internal, "symlink " + link.string() + ": " + strerror(errno));
  }
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.starts_with("..")) continue;
    if (!top.contains(name) && fs::is_symlink(e.path(), ec)) fs::remove(e.path(), ec);
  }
  if (!old_ts.empty() && old_ts != ts_name) fs::remove_all(fs::path(dir) / old_ts, ec);
  return true;
}

}  // namespace nodelet::agent
