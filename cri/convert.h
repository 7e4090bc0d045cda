#pragma once
// Internal to cri/: nodelet types <-> generated protobuf types. Nothing outside cri/ includes
// this file or the generated headers.
#include "cri/proto/runtime/v1/api.pb.h"
#include "cri/types.h"

namespace nodelet::cri::convert {

namespace pb = ::runtime::v1;

void toProto(const PodSandboxConfig& in, pb::PodSandboxConfig* out);
void toProto(const ContainerConfig& in, pb::ContainerConfig* out);
void toProto(const LinuxResources& in, pb::LinuxContainerResources* out);
void toProto(const PodSandboxFilter& in, pb::PodSandboxFilter* out);
void toProto(const ContainerFilter& in, pb::ContainerFilter* out);
void toProto(const ContainerStatsFilter& in, pb::ContainerStatsFilter* out);

PodSandbox fromProto(const pb::PodSandbox& in);
PodSandboxStatus fromProto(const pb::PodSandboxStatusResponse& in);
Container fromProto(const pb::Container& in);
ContainerStatus fromProto(const pb::ContainerStatusResponse& in);
ContainerStats fromProto(const pb::ContainerStats& in);
PodSandboxStats fromProto(const pb::PodSandboxStats& in);
Image fromProto(const pb::Image& in);
FilesystemUsage fromProto(const pb::FilesystemUsage& in);
RuntimeStatus fromProto(const pb::StatusResponse& in);
ContainerEvent fromProto(const pb::ContainerEventResponse& in);

}  // namespace nodelet::cri::convert
