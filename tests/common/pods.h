#pragma once
// Builds test pods from YAML, with a fixed UID and namespace.
#include <gtest/gtest.h>

#include "agent/core/api_json.h"
#include "agent/core/yaml_json.h"

namespace nodelet::testing {

inline api::Pod podFromYaml(const std::string& spec_yaml, const std::string& name = "web",
                            const std::string& uid = "uid-1") {
  auto json = yamlToJson("apiVersion: v1\nkind: Pod\nmetadata: {name: " + name +
                         ", namespace: default, uid: " + uid + "}\nspec:\n" + spec_yaml);
  EXPECT_TRUE(json) << json.error().message;
  auto pod = api::decodePod(json.value_or("{}"));
  EXPECT_TRUE(pod) << pod.error().message;
  api::Pod p = pod.value_or(api::Pod{});
  for (auto* list : {&p.spec.init_containers, &p.spec.containers})
    for (auto& c : *list)
      if (c.image_pull_policy.empty()) c.image_pull_policy = "IfNotPresent";
  return p;
}

}  // namespace nodelet::testing
