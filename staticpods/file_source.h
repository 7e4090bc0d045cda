#pragma once
// Static pods from a directory (or one file) of manifests: inotify for prompt updates plus a full
// rescan every fileCheckFrequency. Not recursive; dotfiles and editor leftovers are ignored.
//
// A file that fails to parse or validate is reported (FileSnapshot::errors) and skipped; if it
// held a good pod before, that pod is kept until the file is fixed or removed, so a half-written
// file (in-place write, truncate-then-write) or a broken edit never stops a running pod.
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/core/clock.h"
#include "staticpods/manifest.h"

namespace nodelet::staticpods {

struct ManifestError {
  std::string path;
  std::string message;
  bool operator==(const ManifestError&) const = default;
};

struct FileSnapshot {
  std::vector<StaticPod> pods;        // sorted by source path
  std::vector<StaticObject> objects;  // ConfigMaps and Secrets for these pods, by source path
  std::vector<ManifestError> errors;
};

class FileSource {
 public:
  FileSource(std::string path, std::string node_name, Clock& clock, Duration period);
  ~FileSource();
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;

  // One full scan; what start()'s thread does on every event and every period.
  FileSnapshot scan();
  // Marks a file as being written (the watcher does this on IN_MODIFY) or done (IN_CLOSE_WRITE).
  void noteWriting(const std::string& path, bool writing);
  // Scans now, then watches; every scan's snapshot goes to `sink` (from the watcher thread).
  void start(std::function<void(FileSnapshot)> sink);
  void stop();

 private:
  struct Cached {
    std::string content;
    std::optional<StaticPod> pod;        // last good pod of this file
    std::optional<StaticObject> object;  // ...or last good ConfigMap/Secret
  };
  void run(std::stop_token stop);
  std::vector<std::string> candidates() const;

  std::string path_;
  std::string node_name_;
  Clock& clock_;
  Duration period_;
  std::mutex mu_;
  std::map<std::string, Cached> cache_;
  // Files being written in place (IN_MODIFY seen, IN_CLOSE_WRITE not yet), with when the write
  // began: their last version is kept until the writer closes (or a full period has passed).
  std::map<std::string, MonoTime> writing_;
  std::function<void(FileSnapshot)> sink_;
  int inotify_fd_{-1};
  int wake_fd_{-1};
  std::jthread thread_;
};

}  // namespace nodelet::staticpods
