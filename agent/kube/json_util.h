#pragma once
// Reading objects from the API server, which may be malformed: a field of the wrong type reads
// as absent. Nothing here throws (nlohmann's value() and const operator[] do, or worse).
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace nodelet::kube::js {

using nlohmann::json;

inline const json& field(const json& j, std::string_view key) {
  static const json null;
  if (!j.is_object()) return null;
  auto it = j.find(key);
  return it == j.end() ? null : *it;
}
inline std::string str(const json& j, std::string_view key) {
  const json& v = field(j, key);
  return v.is_string() ? v.get<std::string>() : std::string();
}
inline int64_t integer(const json& j, std::string_view key, int64_t fallback = 0) {
  const json& v = field(j, key);
  return v.is_number_integer() ? v.get<int64_t>() : fallback;
}
inline bool boolean(const json& j, std::string_view key) {
  const json& v = field(j, key);
  return v.is_boolean() && v.get<bool>();
}
inline const json& object(const json& j, std::string_view key) {
  static const json empty = json::object();
  const json& v = field(j, key);
  return v.is_object() ? v : empty;
}
inline const json& array(const json& j, std::string_view key) {
  static const json empty = json::array();
  const json& v = field(j, key);
  return v.is_array() ? v : empty;
}
// metadata.<key> as a string.
inline std::string meta(const json& obj, std::string_view key) {
  return str(object(obj, "metadata"), key);
}

}  // namespace nodelet::kube::js
