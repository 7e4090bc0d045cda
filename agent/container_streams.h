#pragma once
// What `kubectl exec`, `attach`, `port-forward` and the kubelet's /run ask of the node, answered
// as the kubelet answers them: its query parameters, the pod by namespace and name, the container
// by name among those running (asked of the runtime, as the kubelet asks its runtime cache), then
// CRI Exec/Attach/PortForward for a URL on the runtime's streaming server (which the node server
// relays to: agent/stream_proxy.h), or ExecSync for /run.
//
// Errors carry the code the node server turns into the kubelet's status: InvalidArgument 400,
// NotFound 404 (a missing pod, or the runtime's NotFound), ResourceExhausted 429, anything else
// 500 (a container that is not running is 500 for the kubelet too).
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/error.h"
#include "agent/core/pod.h"
#include "cri/runtime_service.h"

namespace nodelet::agent {

using QueryParams = std::multimap<std::string, std::string>;

// Which streams an exec or attach wants: input=1, output=1, error=1, tty=1 (the API server's
// names for them). With a TTY there is no separate stderr.
struct StreamOptions {
  bool stdin_{false};
  bool stdout_{false};
  bool stderr_{false};
  bool tty{false};
};
Result<StreamOptions> parseStreamOptions(const QueryParams& params);

// The ports of a port-forward. Over WebSocket they are the `port` parameters (each may list
// several, comma-separated); over SPDY they travel in the streams' headers and none is given here.
Result<std::vector<int32_t>> parsePortForwardPorts(const QueryParams& params, bool websocket);

class ContainerStreams {
 public:
  using PodByName =
      std::function<std::optional<api::Pod>(const std::string& ns, const std::string& name)>;
  ContainerStreams(cri::RuntimeService& runtime, PodByName pod_by_name)
      : runtime_(runtime), pod_by_name_(std::move(pod_by_name)) {}

  Result<std::string> execUrl(const std::string& ns, const std::string& pod,
                              const std::string& container, const std::vector<std::string>& cmd,
                              const StreamOptions& o);
  // The TTY is the container's own (spec.containers[].tty): it cannot change once it runs.
  // `uid` (may be empty) must be the pod's.
  Result<std::string> attachUrl(const std::string& ns, const std::string& pod,
                                const std::string& uid, const std::string& container,
                                const StreamOptions& o);
  Result<std::string> portForwardUrl(const std::string& ns, const std::string& pod,
                                     const std::string& uid, const std::vector<int32_t>& ports);
  // /run: the command's stdout then stderr; a non-zero exit is an error that says so.
  Result<std::string> run(const std::string& ns, const std::string& pod,
                          const std::string& container, const std::vector<std::string>& cmd);

 private:
  Result<api::Pod> findPod(const std::string& ns, const std::string& name);
  // The runtime id of the pod's running container of that name.
  Result<std::string> runningContainer(const api::Pod& pod, const std::string& container);

  cri::RuntimeService& runtime_;
  PodByName pod_by_name_;
};

}  // namespace nodelet::agent
