#include "agent/kube/strategic_patch.h"

#include <algorithm>

#include "agent/kube/json_util.h"

namespace nodelet::kube {
namespace {

using nlohmann::json;

constexpr std::string_view kOrderPrefix = "$setElementOrder/";

std::string join(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

const std::string* mergeKey(const PatchSchema& s, const std::string& path) {
  auto it = s.merge_keys.find(path);
  return it == s.merge_keys.end() ? nullptr : &it->second;
}

json diffMaps(const json& o, const json& m, const PatchSchema& s, const std::string& path);

// Merge-keyed list: changed and new elements, deletions, and the new order.
void diffList(const std::string& k, const json& o, const json& m, const std::string& key,
              const PatchSchema& s, const std::string& path, json& patch) {
  json items = json::array();
  auto find = [&](const json& list, const json& kv) -> const json* {
    for (const auto& e : list)
      if (e.is_object() && e.contains(key) && e[key] == kv) return &e;
    return nullptr;
  };
  json order = json::array();
  for (const auto& e : m) {
    if (!e.is_object() || !e.contains(key)) {  // not keyed: cannot merge; send the list whole
      patch[k] = m;
      return;
    }
    order.push_back({{key, e[key]}});
    const json* prev = find(o, e[key]);
    if (!prev) {
      items.push_back(e);
    } else if (*prev != e) {
      json d = diffMaps(*prev, e, s, path);
      d[key] = e[key];
      items.push_back(std::move(d));
    }
  }
  for (const auto& e : o)
    if (e.is_object() && e.contains(key) && !find(m, e[key]))
      items.push_back({{"$patch", "delete"}, {key, e[key]}});
  json old_order = json::array();
  for (const auto& e : o)
    if (e.is_object() && e.contains(key)) old_order.push_back({{key, e[key]}});
  if (items.empty() && old_order == order) return;
  if (!items.empty()) patch[k] = std::move(items);
  patch[std::string(kOrderPrefix) + k] = std::move(order);
}

json diffMaps(const json& o, const json& m, const PatchSchema& s, const std::string& path) {
  json patch = json::object();
  for (const auto& [k, v] : m.items()) {
    const std::string p = join(path, k);
    auto it = o.find(k);
    if (it == o.end()) {
      patch[k] = v;
      continue;
    }
    if (*it == v) continue;
    if (it->is_object() && v.is_object()) {
      json d = diffMaps(*it, v, s, p);
      if (!d.empty()) patch[k] = std::move(d);
    } else if (it->is_array() && v.is_array() && mergeKey(s, p)) {
      if (s.replace_lists.contains(p)) {
        json whole = v;
        whole.push_back({{"$patch", "replace"}});
        patch[k] = std::move(whole);
      } else {
        diffList(k, *it, v, *mergeKey(s, p), s, p, patch);
      }
    } else {
      patch[k] = v;
    }
  }
  for (const auto& [k, v] : o.items())
    if (!m.contains(k)) patch[k] = nullptr;
  return patch;
}

json stripDirectives(const json& v) {
  if (v.is_object()) {
    json out = json::object();
    for (const auto& [k, e] : v.items())
      if (!k.starts_with("$")) out[k] = stripDirectives(e);
    return out;
  }
  if (v.is_array()) {
    json out = json::array();
    for (const auto& e : v)
      if (!(e.is_object() && e.contains("$patch"))) out.push_back(stripDirectives(e));
    return out;
  }
  return v;
}

bool applyMap(json& o, const json& patch, const PatchSchema& s, const std::string& path,
              std::string* error);

bool mergeList(json& o, const json& patch, const json* order, const std::string& key,
               const PatchSchema& s, const std::string& path, std::string* error) {
  for (const auto& e : patch)
    if (js::str(e, "$patch") == "replace") {
      o = stripDirectives(patch);
      return true;
    }
  if (!o.is_array()) o = json::array();
  for (const auto& e : patch) {
    if (!e.is_object() || !e.contains(key)) {
      if (error) *error = path + ": element without merge key \"" + key + "\"";
      return false;
    }
    auto it = std::find_if(o.begin(), o.end(), [&](const json& x) {
      return x.is_object() && x.contains(key) && x[key] == e[key];
    });
    if (js::str(e, "$patch") == "delete") {
      if (it != o.end()) o.erase(it);
    } else if (it == o.end()) {
      o.push_back(stripDirectives(e));
    } else if (!applyMap(*it, e, s, path, error)) {
      return false;
    }
  }
  if (order && order->is_array()) {
    json sorted = json::array();
    std::vector<bool> used(o.size(), false);
    for (const auto& want : *order) {
      if (!want.is_object() || !want.contains(key)) continue;
      for (size_t i = 0; i < o.size(); ++i)
        if (!used[i] && o[i].is_object() && o[i].contains(key) && o[i][key] == want[key]) {
          sorted.push_back(o[i]);
          used[i] = true;
          break;
        }
    }
    for (size_t i = 0; i < o.size(); ++i)
      if (!used[i]) sorted.push_back(o[i]);
    o = std::move(sorted);
  }
  return true;
}

bool applyMap(json& o, const json& patch, const PatchSchema& s, const std::string& path,
              std::string* error) {
  if (!patch.is_object()) {
    if (error) *error = (path.empty() ? "patch" : path) + ": expected an object";
    return false;
  }
  if (!o.is_object()) o = json::object();
  if (js::str(patch, "$patch") == "replace") {
    o = stripDirectives(patch);
    return true;
  }
  for (const auto& [k, v] : patch.items()) {
    if (k.starts_with("$")) continue;
    const std::string p = join(path, k);
    if (v.is_null()) {
      o.erase(k);
    } else if (v.is_object()) {
      if (!o.contains(k) || !o[k].is_object()) o[k] = json::object();
      if (!applyMap(o[k], v, s, p, error)) return false;
    } else if (v.is_array() && mergeKey(s, p)) {
      auto ord = patch.find(std::string(kOrderPrefix) + k);
      if (!mergeList(o[k], v, ord == patch.end() ? nullptr : &*ord, *mergeKey(s, p), s, p, error))
        return false;
    } else {
      o[k] = stripDirectives(v);
    }
  }
  // An order for a list the patch does not otherwise touch still reorders it.
  for (const auto& [k, v] : patch.items()) {
    if (!k.starts_with(kOrderPrefix)) continue;
    const std::string list = k.substr(kOrderPrefix.size());
    const std::string p = join(path, list);
    if (patch.contains(list) || !mergeKey(s, p) || !o.contains(list)) continue;
    if (!mergeList(o[list], json::array(), &v, *mergeKey(s, p), s, p, error)) return false;
  }
  return true;
}

}  // namespace

const PatchSchema& PatchSchema::pod() {
  static const PatchSchema s{{{"status.conditions", "type"},
                              {"status.podIPs", "ip"},
                              {"status.hostIPs", "ip"},
                              {"metadata.ownerReferences", "uid"},
                              {"spec.containers", "name"},
                              {"spec.initContainers", "name"},
                              {"spec.volumes", "name"}},
                             {}};
  return s;
}

const PatchSchema& PatchSchema::node() {
  static const PatchSchema s{{{"status.conditions", "type"},
                              {"status.addresses", "type"},
                              {"status.volumesAttached", "name"},
                              {"metadata.ownerReferences", "uid"}},
                             {"status.addresses"}};
  return s;
}

json twoWayMergePatch(const json& original, const json& modified, const PatchSchema& schema) {
  return diffMaps(original, modified, schema, "");
}

bool applyStrategicMergePatch(json& original, const json& patch, const PatchSchema& schema,
                              std::string* error) {
  return applyMap(original, patch, schema, "", error);
}

void applyMergePatch(json& original, const json& patch) {
  if (!patch.is_object()) {
    original = patch;
    return;
  }
  if (!original.is_object()) original = json::object();
  for (const auto& [k, v] : patch.items()) {
    if (v.is_null())
      original.erase(k);
    else
      applyMergePatch(original[k], v);
  }
}

}  // namespace nodelet::kube
