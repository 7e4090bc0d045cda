#pragma once
// Strategic-merge patch (application/strategic-merge-patch+json) for the objects nodelet writes:
// the two-way diff the kubelet sends (createTwoWayMergePatch) and the server-side apply the
// fake API server uses. Lists merge by a key where the Kubernetes type says so
// (patchStrategy=merge, patchMergeKey); every other list is atomic and replaced whole.
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

namespace nodelet::kube {

struct PatchSchema {
  // Dotted path of a list ("status.conditions") -> its merge key ("type").
  std::map<std::string, std::string> merge_keys;
  // Merge-keyed lists that are sent whole with a {"$patch":"replace"} element when they change
  // (the kubelet does this for Node status.addresses, whose merge key is not unique).
  std::set<std::string> replace_lists;

  static const PatchSchema& pod();
  static const PatchSchema& node();
};

// The patch that turns `original` into `modified` (both JSON objects). Empty object: no change.
// Keys present in `original` and missing from `modified` become null (deleted).
nlohmann::json twoWayMergePatch(const nlohmann::json& original, const nlohmann::json& modified,
                                const PatchSchema& schema);

// Applies `patch` to `original` as the API server does (null deletes, merge-keyed lists merged,
// $setElementOrder, $patch: delete / replace). Returns false when the patch is malformed.
bool applyStrategicMergePatch(nlohmann::json& original, const nlohmann::json& patch,
                              const PatchSchema& schema, std::string* error = nullptr);

// RFC 7386 JSON merge patch (application/merge-patch+json).
void applyMergePatch(nlohmann::json& original, const nlohmann::json& patch);

}  // namespace nodelet::kube
