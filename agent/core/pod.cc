#include "agent/core/pod.h"

namespace nodelet::api {

bool isSidecar(const Container& c) { return c.restart_policy && *c.restart_policy == "Always"; }

const Container* findContainer(const PodSpec& spec, const std::string& name) {
  for (const auto* list : {&spec.init_containers, &spec.containers}) {
    for (const auto& c : *list) {
      if (c.name == name) return &c;
    }
  }
  return nullptr;
}

}  // namespace nodelet::api
