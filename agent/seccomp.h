#pragma once
// Seccomp for containers, as the kubelet chooses it: the container's seccompProfile, else the
// pod's, else RuntimeDefault when `seccompDefault` is on, else Unconfined. Localhost profiles live
// under <root-dir>/seccomp and are checked with libseccomp before the container is created, so a
// typo in a syscall name is a clear CreateContainerError naming it, not an opaque runc failure.
#include <string>

#include "agent/core/error.h"
#include "agent/core/pod.h"
#include "cri/types.h"

namespace nodelet::agent {

// `container` is null for the sandbox (the pod-level profile).
Result<cri::SecurityProfile> seccompFor(const api::Pod& pod, const api::Container* container,
                                        const std::string& root_dir, bool seccomp_default);
// A profile in the OCI/Docker JSON format: actions, architectures and syscall names must be known
// to libseccomp.
Status validateSeccompProfile(const std::string& text);

}  // namespace nodelet::agent
