#include "agent/core/pod.h"

namespace nodelet::api {

bool isSidecar(const Container& c) { return c.restart_policy && *c.restart_policy == "Always"; }

bool isStaticPod(const Pod& pod) {
  auto it = pod.metadata.annotations.find("kubernetes.io/config.source");
  return it != pod.metadata.annotations.end() && it->second != "api";
}

const Container* findContainer(const PodSpec& spec, const std::string& name) {
  for (const auto* list : {&spec.init_containers, &spec.containers, &spec.ephemeral_containers}) {
    for (const auto& c : *list) {
      if (c.name == name) return &c;
    }
  }
  return nullptr;
}

bool usesObject(const PodSpec& spec, std::string_view resource, std::string_view name) {
  if (resource == "runtimeclasses") return !name.empty() && spec.runtime_class_name == name;
  const bool cm = resource == "configmaps";
  if (!cm && resource != "secrets") return false;
  for (const auto& v : spec.volumes) {
    if ((cm ? v.kind == Volume::Kind::ConfigMap : v.kind == Volume::Kind::Secret) &&
        v.ref_name == name)
      return true;
    for (const auto& src : v.sources)
      if ((cm ? src.kind == VolumeProjection::Kind::ConfigMap
              : src.kind == VolumeProjection::Kind::Secret) &&
          src.name == name)
        return true;
  }
  for (const auto* list : {&spec.init_containers, &spec.containers, &spec.ephemeral_containers}) {
    for (const auto& c : *list) {
      for (const auto& e : c.env)
        if ((cm ? e.source == EnvVar::Source::ConfigMapKeyRef
                : e.source == EnvVar::Source::SecretKeyRef) &&
            e.ref_name == name)
          return true;
      for (const auto& f : c.env_from)
        if (f.secret != cm && f.name == name) return true;
    }
  }
  return false;
}

}  // namespace nodelet::api
