#pragma once
// Labels and annotations nodelet puts on CRI sandboxes and containers. The io.kubernetes.* keys
// and their values are the kubelet's, so tools that read them (crictl, log shippers, monitoring)
// see nodelet's pods as they see the kubelet's. nodelet.io/* keys mark what nodelet owns: it
// never touches a sandbox or container without them.
#include <cstdint>
#include <optional>
#include <string>

#include "agent/core/pod.h"
#include "cri/types.h"

namespace nodelet::agent::labels {

inline constexpr const char* kPodName = "io.kubernetes.pod.name";
inline constexpr const char* kPodNamespace = "io.kubernetes.pod.namespace";
inline constexpr const char* kPodUid = "io.kubernetes.pod.uid";
inline constexpr const char* kContainerName = "io.kubernetes.container.name";
inline constexpr const char* kContainerHash = "io.kubernetes.container.hash";
inline constexpr const char* kRestartCount = "io.kubernetes.container.restartCount";
inline constexpr const char* kTerminationMessagePath =
    "io.kubernetes.container.terminationMessagePath";
inline constexpr const char* kTerminationMessagePolicy =
    "io.kubernetes.container.terminationMessagePolicy";
inline constexpr const char* kTerminationGracePeriod = "io.kubernetes.pod.terminationGracePeriod";
inline constexpr const char* kPreStopHandler = "io.kubernetes.container.preStopHandler";
inline constexpr const char* kContainerPorts = "io.kubernetes.container.ports";
// nodelet's own: ownership (the node it runs as) and what it needs to adopt pods after a restart.
inline constexpr const char* kManagedBy = "nodelet.io/managed-by";
inline constexpr const char* kNode = "nodelet.io/node";
inline constexpr const char* kContainerType = "nodelet.io/container-type";  // init|sidecar|app

// The selector that lists exactly what this nodelet (as node `node`) owns.
cri::Labels ownedSelector(const std::string& node);

cri::Labels sandboxLabels(const api::Pod& pod, const std::string& node);
cri::Labels sandboxAnnotations(const api::Pod& pod);
cri::Labels containerLabels(const api::Pod& pod, const api::Container& c, const std::string& node,
                            const char* type);
cri::Labels containerAnnotations(const api::Pod& pod, const api::Container& c,
                                 int32_t restart_count);

// Reads an integer annotation; nullopt when absent or malformed.
std::optional<int64_t> intAnnotation(const cri::Labels& a, const char* key);
std::string hashString(uint64_t h);

}  // namespace nodelet::agent::labels
