#pragma once
// Files of configMap, secret, downwardAPI and projected volumes, written the kubelet's way
// (AtomicWriter): the payload goes into a fresh timestamped directory inside the volume, then the
// `..data` symlink is switched to it with one rename, and each top-level name is a symlink
// through `..data`. A reader never sees a half-updated set; an unchanged payload touches nothing.
// Paths come from users and API objects: anything that could leave the volume is refused.
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "agent/core/clock.h"
#include "agent/core/error.h"

namespace nodelet::agent {

struct VolumeFile {
  std::string content;
  int32_t mode{0644};
  bool operator==(const VolumeFile&) const = default;
};
using Payload = std::map<std::string, VolumeFile>;  // relative path -> file

// A payload path: relative, not empty, no ".." element, no element starting with "..", no NUL.
Status validatePayloadPath(const std::string& path);
// A configMap/secret key used as a file name (the API server's rule: [-._a-zA-Z0-9]+, not "."
// or "..", at most 253 characters).
Status validateKey(const std::string& key);

// Writes `payload` into volume directory `dir` (created if missing). Returns whether anything
// changed. With `gid` (the pod's fsGroup) the files and directories belong to that group.
Result<bool> writeAtomically(const std::string& dir, const Payload& payload, Clock& clock,
                             std::optional<int64_t> gid = std::nullopt);
// What the volume's ..data holds now (empty when never written).
Payload readPayload(const std::string& dir);

}  // namespace nodelet::agent
