#include "agent/core/yaml_json.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <sstream>

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

// Builds JSON straight from the parser's events. yaml-cpp's own loaders are not used: on some
// malformed input (a top-level ',' for one) its parser yields an endless stream of empty
// documents, and LoadAll collects them until memory runs out. Here documents are counted and
// every node (aliases expanded) is counted against a cap, so hostile input fails fast.
constexpr size_t kMaxNodes = 200'000;
constexpr size_t kMaxDepth = 64;

class JsonBuilder final : public YAML::EventHandler {
 public:
  std::optional<json> root;

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t anchor) override {
    if (expectingKey()) throw std::runtime_error("mapping keys must not be null");
    add(nullptr, anchor, 1);
  }
  void OnAlias(const YAML::Mark&, YAML::anchor_t anchor) override {
    auto it = anchors_.find(anchor);
    if (it == anchors_.end()) throw std::runtime_error("unknown alias");
    if (expectingKey()) {
      if (!it->second.first.is_string()) throw std::runtime_error("mapping keys must be scalars");
      stack_.back().key = it->second.first.get<std::string>();
      return;
    }
    add(it->second.first, 0, it->second.second);
  }
  void OnScalar(const YAML::Mark&, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    if (expectingKey()) {
      auto& top = stack_.back();
      if (top.value.contains(value)) throw std::runtime_error("duplicate key \"" + value + "\"");
      top.key = value;
      if (anchor) anchors_[anchor] = {json(value), 1};
      return;
    }
    // Tag "!" marks a quoted (non-plain) scalar: always a string.
    const bool plain = tag == "?" || tag.empty();
    add(plain ? resolvePlain(value) : json(value), anchor, 1);
  }
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    push(json::array(), anchor);
  }
  void OnSequenceEnd() override { pop(); }
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    push(json::object(), anchor);
  }
  void OnMapEnd() override { pop(); }

 private:
  struct Frame {
    json value;
    YAML::anchor_t anchor;
    size_t nodes_at_start;
    std::optional<std::string> key;
  };
  bool expectingKey() const {
    return !stack_.empty() && stack_.back().value.is_object() && !stack_.back().key;
  }
  void count(size_t n) {
    nodes_ += n;
    if (nodes_ > kMaxNodes) throw std::runtime_error("document expands to more than 200000 nodes");
  }
  void push(json v, YAML::anchor_t anchor) {
    if (expectingKey()) throw std::runtime_error("mapping keys must be scalars");
    if (stack_.size() >= kMaxDepth)
      throw std::runtime_error("document nested deeper than 64 levels");
    count(1);
    stack_.push_back({std::move(v), anchor, nodes_, std::nullopt});
  }
  void pop() {
    Frame f = std::move(stack_.back());
    stack_.pop_back();
    const size_t size = nodes_ - f.nodes_at_start + 1;
    nodes_ -= size;  // add() counts the finished collection as a whole
    add(std::move(f.value), f.anchor, size);
  }
  void add(json v, YAML::anchor_t anchor, size_t size) {
    count(size);
    if (anchor) anchors_[anchor] = {v, size};
    if (stack_.empty()) {
      root = std::move(v);
      return;
    }
    auto& top = stack_.back();
    if (top.value.is_object()) {
      top.value[*top.key] = std::move(v);
      top.key.reset();
    } else {
      top.value.push_back(std::move(v));
    }
  }

  std::vector<Frame> stack_;
  std::map<YAML::anchor_t, std::pair<json, size_t>> anchors_;
  size_t nodes_{0};
};

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
    std::istringstream in{std::string(yaml)};
    YAML::Parser parser(in);
    std::vector<json> docs;
    // At most a few documents are looked at: one is wanted, a second is an error.
    for (int i = 0; i < 4 && docs.size() < 2; ++i) {
      JsonBuilder b;
      if (!parser.HandleNextDocument(b)) break;
      if (b.root && !b.root->is_null()) docs.push_back(std::move(*b.root));
    }
    if (docs.empty()) return fail(ErrorCode::InvalidArgument, "empty document");
    if (docs.size() > 1) return fail(ErrorCode::InvalidArgument, "found 2 documents, expected one");
    return docs.front().dump();
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
