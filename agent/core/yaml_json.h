#pragma once
// YAML -> JSON the way Kubernetes reads manifests (sigs.k8s.io/yaml): plain scalars resolve to
// null/bool/int/float when they look like one, quoted scalars are always strings, and JSON input
// (a subset of YAML) passes through unchanged.
#include <string>
#include <string_view>

#include "agent/core/error.h"

namespace nodelet {

// Exactly one document; an empty document or several documents are errors.
Result<std::string> yamlToJson(std::string_view yaml);
// JSON text -> YAML text (block style), for printing objects to people.
std::string jsonToYaml(std::string_view json);

}  // namespace nodelet
