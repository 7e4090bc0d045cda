#include "staticpods/file_source.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "agent/core/log.h"

namespace nodelet::staticpods {
namespace {

namespace fs = std::filesystem;

// Reads at most kMaxManifestBytes + 1 bytes of a regular file (symlinks followed).
Result<std::string> readManifest(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return fail(ErrorCode::NotFound, std::string("open: ") + strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return fail(ErrorCode::InvalidArgument, "not a regular file");
  }
  std::string out;
  char buf[16384];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxManifestBytes) break;
  }
  ::close(fd);
  return out;
}

}  // namespace

FileSource::FileSource(std::string path, std::string node_name, Clock& clock, Duration period)
    : path_(std::move(path)), node_name_(std::move(node_name)), clock_(clock), period_(period) {}

FileSource::~FileSource() { stop(); }

std::vector<std::string> FileSource::candidates() const {
  std::vector<std::string> out;
  std::error_code ec;
  const auto status = fs::status(path_, ec);
  if (ec) return out;
  if (fs::is_regular_file(status)) {
    out.push_back(path_);
    return out;
  }
  if (!fs::is_directory(status)) return out;
  for (const auto& e : fs::directory_iterator(path_, ec)) {
    const std::string name = e.path().filename().string();
    if (!isManifestCandidate(name)) continue;
    std::error_code ec2;
    if (!fs::is_regular_file(e.path(), ec2)) continue;  // not recursive; follows symlinks
    out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

FileSnapshot FileSource::scan() {
  std::lock_guard g(mu_);
  FileSnapshot snap;
  const auto files = candidates();
  std::set<std::string> present(files.begin(), files.end());
  std::erase_if(cache_, [&](const auto& kv) { return !present.contains(kv.first); });
  std::set<std::string> names;  // namespace/name: two files must not define the same pod
  for (const auto& file : files) {
    auto content = readManifest(file);
    if (!content) continue;  // vanished between listing and reading
    Cached& c = cache_[file];
    auto w = writing_.find(file);
    const bool mid_write = w != writing_.end() && clock_.monotonicNow() - w->second < period_;
    const bool good = c.pod || c.object;
    if (good && mid_write) {
      // Being written right now: the content may be a prefix. Keep the last version.
    } else if (!good || c.content != *content) {
      auto parsed = parseManifestFile(*content, {node_name_, file, clock_.systemNow()});
      if (parsed) {
        c.content = *content;
        c.pod = std::move(parsed->pod);
        c.object = std::move(parsed->object);
      } else {
        snap.errors.push_back({file, parsed.error().message});
        if (!good) continue;  // never had a good version: nothing to run
        // Keep running the last good version of this file.
      }
    }
    if (c.object) {
      const auto key = c.object->resource + "/" + c.object->namespace_ + "/" + c.object->name;
      if (!names.insert(key).second) {
        snap.errors.push_back({file, key + " is already defined by another manifest"});
        continue;
      }
      snap.objects.push_back(*c.object);
      continue;
    }
    const auto key = c.pod->pod.metadata.namespace_ + "/" + c.pod->pod.metadata.name;
    if (!names.insert(key).second) {
      snap.errors.push_back({file, "pod " + key + " is already defined by another manifest"});
      continue;
    }
    snap.pods.push_back(*c.pod);
  }
  return snap;
}

void FileSource::noteWriting(const std::string& path, bool writing) {
  std::lock_guard g(mu_);
  if (writing)
    writing_.try_emplace(path, clock_.monotonicNow());
  else
    writing_.erase(path);
}

void FileSource::start(std::function<void(FileSnapshot)> sink) {
  sink_ = std::move(sink);
  inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  thread_ = std::jthread([this](std::stop_token st) { run(st); });
}

void FileSource::stop() {
  if (thread_.joinable()) {
    thread_.request_stop();
    const uint64_t one = 1;
    if (wake_fd_ >= 0) (void)!::write(wake_fd_, &one, sizeof one);
    thread_.join();
  }
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
  inotify_fd_ = wake_fd_ = -1;
}

void FileSource::run(std::stop_token stop) {
  int watch = -1;
  std::string watched;
  MonoTime next_scan = clock_.monotonicNow();
  bool dirty = true;
  while (!stop.stop_requested()) {
    // (Re)arm the watch: the directory may appear later, or be replaced.
    std::error_code ec;
    const std::string dir =
        fs::is_directory(path_, ec) ? path_ : fs::path(path_).parent_path().string();
    if (inotify_fd_ >= 0 && (watch < 0 || watched != dir) && fs::exists(dir, ec)) {
      if (watch >= 0) inotify_rm_watch(inotify_fd_, watch);
      watch = inotify_add_watch(inotify_fd_, dir.c_str(),
                                IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM |
                                    IN_DELETE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF);
      watched = dir;
      dirty = true;
    }
    const MonoTime now = clock_.monotonicNow();
    if (dirty || now >= next_scan) {
      FileSnapshot snap = scan();
      if (sink_) sink_(std::move(snap));
      next_scan = clock_.monotonicNow() + period_;
      dirty = false;
    }
    const auto wait_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(next_scan - clock_.monotonicNow())
            .count();
    pollfd fds[2] = {{inotify_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    const int n = ::poll(fds, 2, static_cast<int>(std::clamp<int64_t>(wait_ms, 0, 60'000)));
    if (n <= 0) continue;
    if (fds[0].revents & POLLIN) {
      alignas(inotify_event) char buf[8192];
      ssize_t len;
      while ((len = ::read(inotify_fd_, buf, sizeof buf)) > 0) {
        for (char* p = buf; p < buf + len;) {
          auto* ev = reinterpret_cast<inotify_event*>(p);
          if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) watch = -1;
          if (ev->len > 0) {
            const std::string file = (fs::path(watched) / ev->name).string();
            if (ev->mask & IN_MODIFY) {
              noteWriting(file, true);
              p += sizeof(inotify_event) + ev->len;
              continue;  // not a reason to rescan: wait for the close
            }
            if (ev->mask & (IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO))
              noteWriting(file, false);
          }
          dirty = true;
          p += sizeof(inotify_event) + ev->len;
        }
      }
    }
  }
  if (watch >= 0) inotify_rm_watch(inotify_fd_, watch);
}

}  // namespace nodelet::staticpods
