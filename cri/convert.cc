#include "cri/convert.h"

namespace nodelet::cri::convert {
namespace {

template <class M>
void putMap(const Labels& in, M* out) {
  for (const auto& [k, v] : in) (*out)[k] = v;
}
template <class M>
Labels getMap(const M& in) {
  return Labels(in.begin(), in.end());
}

pb::NamespaceMode mode(NamespaceMode m) {
  switch (m) {
    case NamespaceMode::Pod:
      return pb::POD;
    case NamespaceMode::Container:
      return pb::CONTAINER;
    case NamespaceMode::Node:
      return pb::NODE;
    case NamespaceMode::Target:
      return pb::TARGET;
  }
  return pb::POD;
}
NamespaceMode mode(pb::NamespaceMode m) {
  switch (m) {
    case pb::CONTAINER:
      return NamespaceMode::Container;
    case pb::NODE:
      return NamespaceMode::Node;
    case pb::TARGET:
      return NamespaceMode::Target;
    default:
      return NamespaceMode::Pod;
  }
}

void toProto(const NamespaceOptions& in, pb::NamespaceOption* out) {
  out->set_network(mode(in.network));
  out->set_pid(mode(in.pid));
  out->set_ipc(mode(in.ipc));
  out->set_target_id(in.target_id);
}

void toProto(const SecurityProfile& in, pb::SecurityProfile* out) {
  switch (in.type) {
    case SecurityProfile::Type::RuntimeDefault:
      out->set_profile_type(pb::SecurityProfile::RuntimeDefault);
      break;
    case SecurityProfile::Type::Unconfined:
      out->set_profile_type(pb::SecurityProfile::Unconfined);
      break;
    case SecurityProfile::Type::Localhost:
      out->set_profile_type(pb::SecurityProfile::Localhost);
      break;
  }
  out->set_localhost_ref(in.localhost_ref);
}

SandboxState state(pb::PodSandboxState s) {
  return s == pb::SANDBOX_READY ? SandboxState::Ready : SandboxState::NotReady;
}
ContainerState state(pb::ContainerState s) {
  switch (s) {
    case pb::CONTAINER_CREATED:
      return ContainerState::Created;
    case pb::CONTAINER_RUNNING:
      return ContainerState::Running;
    case pb::CONTAINER_EXITED:
      return ContainerState::Exited;
    default:
      return ContainerState::Unknown;
  }
}

PodSandboxMetadata meta(const pb::PodSandboxMetadata& m) {
  return {m.name(), m.uid(), m.namespace_(), m.attempt()};
}

std::optional<uint64_t> u64(bool has, const pb::UInt64Value& v) {
  return has ? std::optional<uint64_t>(v.value()) : std::nullopt;
}

CpuUsage cpu(const pb::CpuUsage& c) {
  return {c.timestamp(), u64(c.has_usage_core_nano_seconds(), c.usage_core_nano_seconds()),
          u64(c.has_usage_nano_cores(), c.usage_nano_cores())};
}
MemoryUsage memory(const pb::MemoryUsage& m) {
  return {m.timestamp(),
          u64(m.has_working_set_bytes(), m.working_set_bytes()),
          u64(m.has_available_bytes(), m.available_bytes()),
          u64(m.has_usage_bytes(), m.usage_bytes()),
          u64(m.has_rss_bytes(), m.rss_bytes()),
          u64(m.has_page_faults(), m.page_faults()),
          u64(m.has_major_page_faults(), m.major_page_faults())};
}

Mount mountFrom(const pb::Mount& m) {
  Mount out;
  out.container_path = m.container_path();
  out.host_path = m.host_path();
  out.readonly = m.readonly();
  out.selinux_relabel = m.selinux_relabel();
  out.propagation =
      m.propagation() == pb::PROPAGATION_BIDIRECTIONAL       ? MountPropagation::Bidirectional
      : m.propagation() == pb::PROPAGATION_HOST_TO_CONTAINER ? MountPropagation::HostToContainer
                                                             : MountPropagation::Private;
  return out;
}

}  // namespace

void toProto(const LinuxResources& in, pb::LinuxContainerResources* out) {
  out->set_cpu_period(in.cpu_period);
  out->set_cpu_quota(in.cpu_quota);
  out->set_cpu_shares(in.cpu_shares);
  out->set_memory_limit_in_bytes(in.memory_limit_in_bytes);
  out->set_oom_score_adj(in.oom_score_adj);
  out->set_cpuset_cpus(in.cpuset_cpus);
  out->set_cpuset_mems(in.cpuset_mems);
  putMap(in.unified, out->mutable_unified());
}

void toProto(const PodSandboxConfig& in, pb::PodSandboxConfig* out) {
  auto* m = out->mutable_metadata();
  m->set_name(in.metadata.name);
  m->set_uid(in.metadata.uid);
  m->set_namespace_(in.metadata.namespace_);
  m->set_attempt(in.metadata.attempt);
  out->set_hostname(in.hostname);
  out->set_log_directory(in.log_directory);
  if (in.dns_config) {
    auto* d = out->mutable_dns_config();
    for (const auto& s : in.dns_config->servers) d->add_servers(s);
    for (const auto& s : in.dns_config->searches) d->add_searches(s);
    for (const auto& s : in.dns_config->options) d->add_options(s);
  }
  for (const auto& p : in.port_mappings) {
    auto* pm = out->add_port_mappings();
    pm->set_protocol(p.protocol == Protocol::Udp    ? pb::UDP
                     : p.protocol == Protocol::Sctp ? pb::SCTP
                                                    : pb::TCP);
    pm->set_container_port(p.container_port);
    pm->set_host_port(p.host_port);
    pm->set_host_ip(p.host_ip);
  }
  putMap(in.labels, out->mutable_labels());
  putMap(in.annotations, out->mutable_annotations());
  auto* linux = out->mutable_linux();
  linux->set_cgroup_parent(in.cgroup_parent);
  putMap(in.sysctls, linux->mutable_sysctls());
  if (in.resources) toProto(*in.resources, linux->mutable_resources());
  auto* sc = linux->mutable_security_context();
  toProto(in.security.namespaces, sc->mutable_namespace_options());
  if (in.security.run_as_user) sc->mutable_run_as_user()->set_value(*in.security.run_as_user);
  if (in.security.run_as_group) sc->mutable_run_as_group()->set_value(*in.security.run_as_group);
  sc->set_readonly_rootfs(in.security.readonly_rootfs);
  for (auto g : in.security.supplemental_groups) sc->add_supplemental_groups(g);
  sc->set_privileged(in.security.privileged);
  if (in.security.seccomp) toProto(*in.security.seccomp, sc->mutable_seccomp());
}

void toProto(const ContainerConfig& in, pb::ContainerConfig* out) {
  out->mutable_metadata()->set_name(in.name);
  out->mutable_metadata()->set_attempt(in.attempt);
  out->mutable_image()->set_image(in.image);
  for (const auto& s : in.command) out->add_command(s);
  for (const auto& s : in.args) out->add_args(s);
  out->set_working_dir(in.working_dir);
  for (const auto& [k, v] : in.envs) {
    auto* kv = out->add_envs();
    kv->set_key(k);
    kv->set_value(v);
  }
  for (const auto& m : in.mounts) {
    auto* pm = out->add_mounts();
    pm->set_container_path(m.container_path);
    pm->set_host_path(m.host_path);
    pm->set_readonly(m.readonly);
    pm->set_selinux_relabel(m.selinux_relabel);
    pm->set_propagation(
        m.propagation == MountPropagation::Bidirectional     ? pb::PROPAGATION_BIDIRECTIONAL
        : m.propagation == MountPropagation::HostToContainer ? pb::PROPAGATION_HOST_TO_CONTAINER
                                                             : pb::PROPAGATION_PRIVATE);
  }
  putMap(in.labels, out->mutable_labels());
  putMap(in.annotations, out->mutable_annotations());
  out->set_log_path(in.log_path);
  out->set_stdin(in.stdin_);
  out->set_stdin_once(in.stdin_once);
  out->set_tty(in.tty);
  auto* linux = out->mutable_linux();
  if (in.resources) toProto(*in.resources, linux->mutable_resources());
  auto* sc = linux->mutable_security_context();
  const auto& s = in.security;
  for (const auto& c : s.add_capabilities) sc->mutable_capabilities()->add_add_capabilities(c);
  for (const auto& c : s.drop_capabilities) sc->mutable_capabilities()->add_drop_capabilities(c);
  sc->set_privileged(s.privileged);
  toProto(s.namespaces, sc->mutable_namespace_options());
  if (s.run_as_user) sc->mutable_run_as_user()->set_value(*s.run_as_user);
  if (s.run_as_group) sc->mutable_run_as_group()->set_value(*s.run_as_group);
  sc->set_run_as_username(s.run_as_username);
  sc->set_readonly_rootfs(s.readonly_rootfs);
  for (auto g : s.supplemental_groups) sc->add_supplemental_groups(g);
  sc->set_no_new_privs(s.no_new_privs);
  for (const auto& p : s.masked_paths) sc->add_masked_paths(p);
  for (const auto& p : s.readonly_paths) sc->add_readonly_paths(p);
  if (s.seccomp) toProto(*s.seccomp, sc->mutable_seccomp());
}

void toProto(const PodSandboxFilter& in, pb::PodSandboxFilter* out) {
  out->set_id(in.id);
  if (in.state) {
    out->mutable_state()->set_state(*in.state == SandboxState::Ready ? pb::SANDBOX_READY
                                                                     : pb::SANDBOX_NOTREADY);
  }
  putMap(in.label_selector, out->mutable_label_selector());
}

void toProto(const ContainerFilter& in, pb::ContainerFilter* out) {
  out->set_id(in.id);
  out->set_pod_sandbox_id(in.pod_sandbox_id);
  if (in.state) {
    pb::ContainerState s = pb::CONTAINER_UNKNOWN;
    switch (*in.state) {
      case ContainerState::Created:
        s = pb::CONTAINER_CREATED;
        break;
      case ContainerState::Running:
        s = pb::CONTAINER_RUNNING;
        break;
      case ContainerState::Exited:
        s = pb::CONTAINER_EXITED;
        break;
      case ContainerState::Unknown:
        s = pb::CONTAINER_UNKNOWN;
        break;
    }
    out->mutable_state()->set_state(s);
  }
  putMap(in.label_selector, out->mutable_label_selector());
}

void toProto(const ContainerStatsFilter& in, pb::ContainerStatsFilter* out) {
  out->set_id(in.id);
  out->set_pod_sandbox_id(in.pod_sandbox_id);
  putMap(in.label_selector, out->mutable_label_selector());
}

PodSandbox fromProto(const pb::PodSandbox& in) {
  return {in.id(),
          meta(in.metadata()),
          state(in.state()),
          in.created_at(),
          getMap(in.labels()),
          getMap(in.annotations()),
          in.runtime_handler()};
}

PodSandboxStatus fromProto(const pb::PodSandboxStatusResponse& r) {
  const auto& in = r.status();
  PodSandboxStatus out;
  out.id = in.id();
  out.metadata = meta(in.metadata());
  out.state = state(in.state());
  out.created_at = in.created_at();
  out.ip = in.network().ip();
  for (const auto& ip : in.network().additional_ips()) out.additional_ips.push_back(ip.ip());
  if (in.has_linux() && in.linux().has_namespaces()) {
    const auto& o = in.linux().namespaces().options();
    out.namespaces =
        NamespaceOptions{mode(o.network()), mode(o.pid()), mode(o.ipc()), o.target_id()};
  }
  out.labels = getMap(in.labels());
  out.annotations = getMap(in.annotations());
  out.info = getMap(r.info());
  return out;
}

Container fromProto(const pb::Container& in) {
  return {in.id(),
          in.pod_sandbox_id(),
          in.metadata().name(),
          in.metadata().attempt(),
          in.image().image(),
          in.image_ref(),
          state(in.state()),
          in.created_at(),
          getMap(in.labels()),
          getMap(in.annotations())};
}

ContainerStatus fromProto(const pb::ContainerStatusResponse& r) {
  const auto& in = r.status();
  ContainerStatus out;
  out.id = in.id();
  out.name = in.metadata().name();
  out.attempt = in.metadata().attempt();
  out.state = state(in.state());
  out.created_at = in.created_at();
  out.started_at = in.started_at();
  out.finished_at = in.finished_at();
  out.exit_code = in.exit_code();
  out.image = in.image().image();
  out.image_ref = in.image_ref();
  out.reason = in.reason();
  out.message = in.message();
  out.labels = getMap(in.labels());
  out.annotations = getMap(in.annotations());
  for (const auto& m : in.mounts()) out.mounts.push_back(mountFrom(m));
  out.log_path = in.log_path();
  out.info = getMap(r.info());
  return out;
}

ContainerStats fromProto(const pb::ContainerStats& in) {
  ContainerStats out;
  out.id = in.attributes().id();
  out.name = in.attributes().metadata().name();
  out.labels = getMap(in.attributes().labels());
  if (in.has_cpu()) out.cpu = cpu(in.cpu());
  if (in.has_memory()) out.memory = memory(in.memory());
  if (in.has_writable_layer()) out.writable_layer = fromProto(in.writable_layer());
  return out;
}

PodSandboxStats fromProto(const pb::PodSandboxStats& in) {
  PodSandboxStats out;
  out.id = in.attributes().id();
  out.metadata = meta(in.attributes().metadata());
  out.labels = getMap(in.attributes().labels());
  if (in.has_linux()) {
    const auto& l = in.linux();
    if (l.has_cpu()) out.cpu = cpu(l.cpu());
    if (l.has_memory()) out.memory = memory(l.memory());
    if (l.has_network() && l.network().has_default_interface()) {
      const auto& n = l.network().default_interface();
      out.network_default_interface = NetworkInterfaceUsage{
          n.name(), u64(n.has_rx_bytes(), n.rx_bytes()), u64(n.has_rx_errors(), n.rx_errors()),
          u64(n.has_tx_bytes(), n.tx_bytes()), u64(n.has_tx_errors(), n.tx_errors())};
    }
    if (l.has_process())
      out.process_count = u64(l.process().has_process_count(), l.process().process_count());
    for (const auto& c : l.containers()) out.containers.push_back(fromProto(c));
  }
  return out;
}

Image fromProto(const pb::Image& in) {
  Image out;
  out.id = in.id();
  out.repo_tags.assign(in.repo_tags().begin(), in.repo_tags().end());
  out.repo_digests.assign(in.repo_digests().begin(), in.repo_digests().end());
  out.size = in.size();
  if (in.has_uid()) out.uid = in.uid().value();
  out.username = in.username();
  out.pinned = in.pinned();
  return out;
}

FilesystemUsage fromProto(const pb::FilesystemUsage& in) {
  return {in.timestamp(), in.fs_id().mountpoint(), u64(in.has_used_bytes(), in.used_bytes()),
          u64(in.has_inodes_used(), in.inodes_used())};
}

RuntimeStatus fromProto(const pb::StatusResponse& in) {
  RuntimeStatus out;
  for (const auto& c : in.status().conditions())
    out.conditions.push_back({c.type(), c.status(), c.reason(), c.message()});
  out.info = getMap(in.info());
  return out;
}

ContainerEvent fromProto(const pb::ContainerEventResponse& in) {
  ContainerEventType t = ContainerEventType::Created;
  switch (in.container_event_type()) {
    case pb::CONTAINER_STARTED_EVENT:
      t = ContainerEventType::Started;
      break;
    case pb::CONTAINER_STOPPED_EVENT:
      t = ContainerEventType::Stopped;
      break;
    case pb::CONTAINER_DELETED_EVENT:
      t = ContainerEventType::Deleted;
      break;
    default:
      break;
  }
  return {in.container_id(), t, in.created_at(), in.pod_sandbox_status().id()};
}

}  // namespace nodelet::cri::convert
