#include "agent/core/yaml_json.h"

#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>
#include <regex>

namespace nodelet {
namespace {

using nlohmann::json;

// Plain-scalar resolution as go-yaml v2 (used by sigs.k8s.io/yaml) does it.
json resolvePlain(const std::string& s) {
  static const std::regex kInt(R"(^[-+]?(0|[1-9][0-9]*)$)");
  static const std::regex kFloat(R"(^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$)");
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE" || s == "yes" || s == "Yes" || s == "YES" ||
      s == "on" || s == "On" || s == "ON")
    return true;
  if (s == "false" || s == "False" || s == "FALSE" || s == "no" || s == "No" || s == "NO" ||
      s == "off" || s == "Off" || s == "OFF")
    return false;
  if (std::regex_match(s, kInt)) {
    try {
      return std::stoll(s);
    } catch (const std::out_of_range&) {
      return std::stod(s);
    }
  }
  if (std::regex_match(s, kFloat)) return std::stod(s);
  return s;
}

json toJson(const YAML::Node& n, int depth) {
  if (depth > 64) throw std::runtime_error("document nested deeper than 64 levels");
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Scalar:
      // Tag "!" marks a quoted (non-plain) scalar: always a string.
      if (n.Tag() == "!" || n.Tag() == "tag:yaml.org,2002:str") return n.Scalar();
      return resolvePlain(n.Scalar());
    case YAML::NodeType::Sequence: {
      json a = json::array();
      for (const auto& item : n) a.push_back(toJson(item, depth + 1));
      return a;
    }
    case YAML::NodeType::Map: {
      json o = json::object();
      for (const auto& kv : n) {
        if (!kv.first.IsScalar()) throw std::runtime_error("mapping keys must be scalars");
        const std::string key = kv.first.Scalar();
        if (o.contains(key)) throw std::runtime_error("duplicate key \"" + key + "\"");
        o[key] = toJson(kv.second, depth + 1);
      }
      return o;
    }
  }
  return nullptr;
}

void emit(YAML::Emitter& out, const json& j) {
  if ((j.is_object() || j.is_array()) && j.empty()) {
    out << YAML::Flow << (j.is_object() ? YAML::BeginMap : YAML::BeginSeq)
        << (j.is_object() ? YAML::EndMap : YAML::EndSeq);
  } else if (j.is_object()) {
    out << YAML::BeginMap;
    for (const auto& [k, v] : j.items()) {
      out << YAML::Key << k << YAML::Value;
      emit(out, v);
    }
    out << YAML::EndMap;
  } else if (j.is_array()) {
    out << YAML::BeginSeq;
    for (const auto& v : j) emit(out, v);
    out << YAML::EndSeq;
  } else if (j.is_string()) {
    const auto& s = j.get_ref<const std::string&>();
    // Quote strings that would read back as another type.
    if (!resolvePlain(s).is_string()) {
      out << YAML::DoubleQuoted << s;
    } else {
      out << s;
    }
  } else if (j.is_null()) {
    out << YAML::Null;
  } else {
    out << j.dump();
  }
}

}  // namespace

Result<std::string> yamlToJson(std::string_view yaml) {
  try {
    auto docs = YAML::LoadAll(std::string(yaml));
    std::vector<YAML::Node> real;
    for (auto& d : docs) {
      if (!d.IsNull()) real.push_back(d);
    }
    if (real.empty()) return fail(ErrorCode::InvalidArgument, "empty document");
    if (real.size() > 1) {
      return fail(ErrorCode::InvalidArgument,
                  "found " + std::to_string(real.size()) + " documents, expected one");
    }
    return toJson(real.front(), 0).dump();
  } catch (const YAML::Exception& e) {
    return fail(ErrorCode::InvalidArgument, std::string("invalid YAML: ") + e.what());
  } catch (const std::exception& e) {
    return fail(ErrorCode::InvalidArgument, std::string("invalid YAML: ") + e.what());
  }
}

std::string jsonToYaml(std::string_view text) {
  YAML::Emitter out;
  emit(out, json::parse(text));
  return std::string(out.c_str()) + "\n";
}

}  // namespace nodelet
