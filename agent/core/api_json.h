#pragma once
// JSON <-> pod model. The only place that knows core/v1's JSON field names for pods.
// Errors name the field path: "spec.containers[1].ports[0].containerPort: expected integer".
#include <string>
#include <string_view>

#include "agent/core/error.h"
#include "agent/core/pod.h"

namespace nodelet::api {

Result<Pod> decodePod(std::string_view json);
// A whole Pod (apiVersion/kind/metadata/spec/status) as the API server would serialise it.
std::string encodePod(const Pod& pod);
std::string encodePodStatus(const PodStatus& status);
// {"kind":"PodList","apiVersion":"v1","metadata":{},"items":[...]} as the kubelet's /pods.
std::string encodePodList(const std::vector<Pod>& pods);

// metav1.Time: RFC 3339 in UTC with second precision ("2026-11-26T13:18:00Z").
std::string formatTime(SysTime t);
Result<SysTime> parseTime(std::string_view s);

}  // namespace nodelet::api
