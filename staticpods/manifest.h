#pragma once
// A static pod manifest -> the pod nodelet runs. Defaulting and validation are the API server's
// (the parts a node agent relies on); naming, UID and annotations are the kubelet's file source:
//   name        <metadata.name>-<node name, lowercased>
//   uid         hash of the defaulted content + node name + source path (kept if set in the file)
//   annotations kubernetes.io/config.hash (= uid), config.source ("file"), config.seen
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/clock.h"
#include "agent/core/error.h"
#include "agent/core/pod.h"

namespace nodelet::staticpods {

// Manifests larger than this are refused (a pod spec is kilobytes).
inline constexpr size_t kMaxManifestBytes = 1 << 20;

struct StaticPod {
  api::Pod pod;
  std::string object_json;  // the defaulted object, as `nodelet check` prints it
  std::string source_path;
};

struct ManifestContext {
  std::string node_name;
  std::string source_path;
  SysTime seen;
};

// Errors name the field path and the reason: "spec.containers[0].image: Required value".
Result<StaticPod> parseManifest(std::string_view content, const ManifestContext& ctx);

// A ConfigMap, Secret or RuntimeClass defined beside the static pods, for them to use (beyond
// the kubelet, whose static pods can use none without an API server): validated and defaulted
// as the API server would (namespace "default"; a Secret's stringData merged over its data;
// type Opaque), data decoded. A RuntimeClass has no namespace and one datum, "handler".
struct StaticObject {
  std::string resource;  // "configmaps", "secrets" or "runtimeclasses"
  std::string namespace_;
  std::string name;
  std::map<std::string, std::string> data;  // key -> bytes
  std::string object_json;                  // the defaulted object, as `nodelet check` prints it
  std::string source_path;
  bool operator==(const StaticObject&) const = default;
};

// What one file in the static pod directory defines: a Pod, a ConfigMap, a Secret or a
// RuntimeClass.
struct Manifest {
  std::optional<StaticPod> pod;
  std::optional<StaticObject> object;
};
Result<Manifest> parseManifestFile(std::string_view content, const ManifestContext& ctx);

// Validation alone (also used for pods from the API server): returns every problem found.
std::vector<std::string> validatePod(const api::Pod& pod);

// Whether the file source should look at a directory entry at all: dotfiles and editor
// leftovers (*.swp, *~, .#*) are ignored, as are names that are not manifests.
bool isManifestCandidate(std::string_view filename);

}  // namespace nodelet::staticpods
