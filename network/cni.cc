#include "network/cni.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace nodelet::network {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kMarker = "nodelet.io/managed";
// What nodelet writes, best first; all are spoken by Debian's plugins (1.1.1).
const std::vector<std::string> kVersions = {"1.0.0", "0.4.0", "0.3.1"};

std::string readAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool isIp(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

bool isConfigFile(const fs::path& p) {
  const auto ext = p.extension().string();
  return ext == ".conf" || ext == ".conflist" || ext == ".json";
}

// A plugin may answer VERSION without reading its stdin and exit: writing then raises SIGPIPE,
// which would end a process that does not ignore it (nodelet does; its tests and other users of
// this library need not). The signal is blocked for this thread and a pending one discarded.
void writeIgnoringSigpipe(int fd, std::string_view data) {
  sigset_t pipe_only, old;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
  (void)!::write(fd, data.data(), data.size());  // EPIPE: the plugin did not want it
  const timespec now{0, 0};
  while (sigtimedwait(&pipe_only, nullptr, &now) > 0) {
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

}  // namespace

const std::vector<std::string>& requiredPlugins() {
  static const std::vector<std::string> p = {"bridge", "host-local", "portmap", "loopback"};
  return p;
}

Result<std::vector<std::string>> ExecPluginVersions::supported(const std::string& binary) {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0)
    return fail(ErrorCode::Internal, "pipe: " + std::string(strerror(errno)));
  if (pipe2(out, O_CLOEXEC) != 0) {
    close(in[0]);
    close(in[1]);
    return fail(ErrorCode::Internal, "pipe: " + std::string(strerror(errno)));
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  std::string cmd_env = "CNI_COMMAND=VERSION";
  std::string path_env = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
  char* envp[] = {cmd_env.data(), path_env.data(), nullptr};
  std::string arg0 = binary;
  char* argv[] = {arg0.data(), nullptr};
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, binary.c_str(), &fa, nullptr, argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  close(in[0]);
  close(out[1]);
  if (rc != 0) {
    close(in[1]);
    close(out[0]);
    return fail(ErrorCode::Unavailable, binary + ": " + strerror(rc));
  }
  const std::string conf = R"({"cniVersion":"1.0.0"})";
  writeIgnoringSigpipe(in[1], conf);
  close(in[1]);
  std::string output;
  char buf[4096];
  bool timed_out = false;
  for (int i = 0; i < 1000; ++i) {  // bounded: 5 s of silence ends it
    pollfd p{out[0], POLLIN, 0};
    const int n = poll(&p, 1, 5000);
    if (n == 0) {
      timed_out = true;
      break;
    }
    if (n < 0 && errno == EINTR) continue;
    const ssize_t got = n > 0 ? read(out[0], buf, sizeof buf) : -1;
    if (got <= 0) break;
    output.append(buf, static_cast<size_t>(got));
    if (output.size() > (1 << 20)) break;
  }
  close(out[0]);
  if (timed_out) kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  if (timed_out) return fail(ErrorCode::DeadlineExceeded, binary + " VERSION: no answer in 5 s");
  auto j = json::parse(output, nullptr, false);
  if (!j.is_object() || !j.contains("supportedVersions") || !j["supportedVersions"].is_array())
    return fail(ErrorCode::Internal,
                binary + " VERSION: unexpected answer: " + output.substr(0, 200));
  std::vector<std::string> v;
  for (const auto& e : j["supportedVersions"])
    if (e.is_string()) v.push_back(e.get<std::string>());
  return v;
}

Result<std::string> chooseCniVersion(
    const std::map<std::string, std::vector<std::string>>& by_plugin) {
  for (const auto& want : kVersions) {
    bool all = true;
    for (const auto& [plugin, versions] : by_plugin)
      all = all && std::find(versions.begin(), versions.end(), want) != versions.end();
    if (all) return want;
  }
  std::string what;
  for (const auto& [plugin, versions] : by_plugin) {
    std::string list;
    for (const auto& v : versions) list += (list.empty() ? "" : " ") + v;
    what += (what.empty() ? "" : "; ") + plugin + ": " + list;
  }
  return fail(ErrorCode::FailedPrecondition,
              "no CNI version that every plugin supports among 1.0.0, 0.4.0, 0.3.1 (" + what + ")");
}

Status validateCidr(const std::string& cidr) {
  const auto slash = cidr.find('/');
  if (slash == std::string::npos)
    return fail(ErrorCode::InvalidArgument, "pod CIDR \"" + cidr + "\": no prefix length");
  const std::string ip = cidr.substr(0, slash), len = cidr.substr(slash + 1);
  unsigned char buf[16];
  const bool v4 = inet_pton(AF_INET, ip.c_str(), buf) == 1;
  const bool v6 = !v4 && inet_pton(AF_INET6, ip.c_str(), buf) == 1;
  if (!v4 && !v6)
    return fail(ErrorCode::InvalidArgument, "pod CIDR \"" + cidr + "\": not an IP network");
  int bits = -1;
  if (!len.empty() && len.size() <= 3 && std::all_of(len.begin(), len.end(), ::isdigit))
    bits = std::stoi(len);
  if (bits < 0 || bits > (v4 ? 32 : 128))
    return fail(ErrorCode::InvalidArgument, "pod CIDR \"" + cidr + "\": invalid prefix length");
  if (bits > (v4 ? 30 : 126))
    return fail(ErrorCode::InvalidArgument, "pod CIDR \"" + cidr + "\": too small for pods");
  return {};
}

std::string buildConflist(const CniOptions& o, const std::vector<std::string>& cidrs,
                          const std::string& version) {
  json ranges = json::array(), routes = json::array();
  bool v4 = false, v6 = false;
  for (const auto& c : cidrs) {
    ranges.push_back(json::array({{{"subnet", c}}}));
    (c.find(':') == std::string::npos ? v4 : v6) = true;
  }
  if (v4) routes.push_back({{"dst", "0.0.0.0/0"}});
  if (v6) routes.push_back({{"dst", "::/0"}});
  json bridge = {
      {"type", "bridge"},
      {"bridge", o.bridge},
      {"isGateway", true},
      {"ipMasq", true},
      {"hairpinMode", true},
      {"ipam",
       {{"type", "host-local"}, {"dataDir", o.ipam_dir}, {"ranges", ranges}, {"routes", routes}}}};
  json conf = {
      {"cniVersion", version},
      {"name", o.network},
      {kMarker, true},
      {"plugins",
       json::array({bridge, {{"type", "portmap"}, {"capabilities", {{"portMappings", true}}}}})}};
  return conf.dump(2) + "\n";
}

bool writtenByNodelet(const std::string& text) {
  auto j = json::parse(text, nullptr, false);
  return j.is_object() && j.contains(kMarker) && j[kMarker] == true;
}

CniConfig::CniConfig(CniOptions options, PluginVersions& versions)
    : o_(std::move(options)), versions_(versions) {}

std::string CniConfig::findPlugin(const std::string& name) const {
  for (const auto& dir : o_.bin_dirs) {
    const std::string p = dir + "/" + name;
    if (access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

Result<CniConfig::Outcome> CniConfig::ensure(const std::vector<std::string>& cidrs,
                                             std::string* message) {
  if (cidrs.empty()) return fail(ErrorCode::InvalidArgument, "no pod CIDR");
  for (const auto& c : cidrs)
    if (auto s = validateCidr(c); !s) return std::unexpected(s.error());
  std::string dirs, missing;
  for (const auto& d : o_.bin_dirs) dirs += (dirs.empty() ? "" : ":") + d;
  std::map<std::string, std::vector<std::string>> by_plugin;
  for (const auto& name : requiredPlugins()) {
    const std::string path = findPlugin(name);
    if (path.empty()) {
      missing += (missing.empty() ? "" : ", ") + name;
      continue;
    }
    if (name == "loopback") continue;  // containerd runs it with its own version
    auto v = versions_.supported(path);
    if (!v) return std::unexpected(v.error().wrap("CNI plugin " + name));
    by_plugin[name] = *v;
  }
  if (!missing.empty())
    return fail(ErrorCode::FailedPrecondition, "CNI plugins missing from " + dirs + ": " + missing +
                                                   " (Debian package containernetworking-plugins)");
  auto version = chooseCniVersion(by_plugin);
  if (!version) return std::unexpected(version.error());

  std::error_code ec;
  fs::create_directories(o_.conf_dir, ec);
  if (ec)
    return fail(ErrorCode::Unavailable, "CNI config dir " + o_.conf_dir + ": " + ec.message());
  const fs::path ours = fs::path(o_.conf_dir) / o_.fileName();
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(o_.conf_dir, ec))
    if (e.is_regular_file() && isConfigFile(e.path())) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    if (writtenByNodelet(readAll(f))) {
      if (f != ours) fs::remove(f, ec);  // an old name of ours (the network was renamed)
      continue;
    }
    if (!o_.force) {
      if (message)
        *message = "CNI configuration " + f.string() +
                   " was not written by nodelet: leaving pod networking to it (nodelet writes its "
                   "own only "
                   "into a directory without another network; --cni-force replaces it)";
      return Outcome::Foreign;
    }
    const fs::path aside = f.string() + ".disabled-by-nodelet";
    fs::rename(f, aside, ec);
    if (ec) return fail(ErrorCode::Unavailable, "move " + f.string() + " aside: " + ec.message());
    if (message) *message += "moved " + f.string() + " aside to " + aside.string() + "; ";
  }
  const std::string text = buildConflist(o_, cidrs, *version);
  if (fs::exists(ours) && readAll(ours) == text) return Outcome::Unchanged;
  // Beside the final name (a dotfile containerd ignores), then renamed over it.
  const fs::path tmp = fs::path(o_.conf_dir) / ("." + o_.fileName() + ".tmp");
  {
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
      return fail(ErrorCode::Unavailable, "write " + tmp.string() + ": " + strerror(errno));
    const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                    ::fsync(fd) == 0;
    ::close(fd);
    if (!ok) return fail(ErrorCode::Unavailable, "write " + tmp.string() + ": " + strerror(errno));
  }
  fs::rename(tmp, ours, ec);
  if (ec) return fail(ErrorCode::Unavailable, "rename " + tmp.string() + ": " + ec.message());
  if (message) *message += "wrote " + ours.string() + " (CNI " + *version + ")";
  return Outcome::Written;
}

int CniConfig::reclaimLeaks(const std::set<std::string>& live, SysTime now, Duration min_age) {
  int reclaimed = 0;
  const auto now_s =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  const auto age_s = std::chrono::duration_cast<std::chrono::seconds>(min_age).count();
  auto oldEnough = [&](const fs::path& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 && now_s - st.st_mtime >= age_s;
  };
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(fs::path(o_.ipam_dir) / o_.network, ec)) {
    const std::string name = e.path().filename().string();
    if (!e.is_regular_file() || !isIp(name)) continue;  // lock, last_reserved_ip.0
    std::string id = readAll(e.path());
    id = id.substr(0, id.find_first_of("\r\n"));
    if (id.empty() || live.contains(id) || !oldEnough(e.path())) continue;
    if (fs::remove(e.path(), ec)) ++reclaimed;
  }
  const std::string prefix = o_.network + "-";
  for (const auto& e : fs::directory_iterator(o_.cache_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (!name.starts_with(prefix)) continue;
    // <network>-<container id>-<ifname>; ids are 64 hex characters.
    const std::string rest = name.substr(prefix.size());
    const std::string id = rest.substr(0, rest.find('-'));
    if (id.size() != 64 || live.contains(id) || !oldEnough(e.path())) continue;
    fs::remove(e.path(), ec);
  }
  return reclaimed;
}

}  // namespace nodelet::network
