#include "agent/container_streams.h"

#include <algorithm>
#include <charconv>

#include "agent/flags.h"
#include "agent/labels.h"

namespace nodelet::agent {
namespace {

bool flag(const QueryParams& params, const char* name) {
  auto it = params.lower_bound(name);  // the first value, as Go's FormValue reads it
  return it != params.end() && it->first == name && it->second == "1";
}

std::string fullName(const std::string& ns, const std::string& name) {
  return name + "_" + ns;  // the kubelet's pod full name
}

std::string joined(const std::vector<std::string>& cmd) {
  std::string out;
  for (const auto& c : cmd) out += (out.empty() ? "" : " ") + c;
  return out;
}

}  // namespace

Result<StreamOptions> parseStreamOptions(const QueryParams& params) {
  StreamOptions o;
  o.tty = flag(params, "tty");
  o.stdin_ = flag(params, "input");
  o.stdout_ = flag(params, "output");
  o.stderr_ = flag(params, "error");
  if (o.tty) o.stderr_ = false;  // a terminal has one output stream
  if (!o.stdin_ && !o.stdout_ && !o.stderr_)
    return fail(ErrorCode::InvalidArgument, "you must specify at least 1 of stdin, stdout, stderr");
  return o;
}

Result<std::vector<int32_t>> parsePortForwardPorts(const QueryParams& params, bool websocket) {
  std::vector<int32_t> ports;
  if (!websocket) return ports;
  auto [begin, end] = params.equal_range("port");
  if (begin == end) return fail(ErrorCode::InvalidArgument, "query parameter \"port\" is required");
  for (auto it = begin; it != end; ++it) {
    const std::string& value = it->second;
    if (value.empty())
      return fail(ErrorCode::InvalidArgument, "query parameter \"port\" cannot be empty");
    for (const std::string& p : splitList(value, ",", /*keep_empty=*/true)) {
      uint64_t n = 0;
      const auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), n);
      if (p.empty() || ec == std::errc::invalid_argument || ptr != p.data() + p.size())
        return fail(ErrorCode::InvalidArgument, "unable to parse \"" + value +
                                                    "\" as a port: strconv.ParseUint: parsing \"" +
                                                    p + "\": invalid syntax");
      if (ec == std::errc::result_out_of_range || n > 65535)
        return fail(ErrorCode::InvalidArgument, "unable to parse \"" + value +
                                                    "\" as a port: strconv.ParseUint: parsing \"" +
                                                    p + "\": value out of range");
      if (n < 1) return fail(ErrorCode::InvalidArgument, "port \"" + value + "\" must be > 0");
      ports.push_back(static_cast<int32_t>(n));
    }
  }
  return ports;
}

Result<api::Pod> ContainerStreams::findPod(const std::string& ns, const std::string& name) {
  auto pod = pod_by_name_(ns, name);
  if (!pod) return fail(ErrorCode::NotFound, "pod does not exist");
  return std::move(*pod);
}

Result<std::string> ContainerStreams::runningContainer(const api::Pod& pod,
                                                       const std::string& container) {
  cri::ContainerFilter f;
  f.state = cri::ContainerState::Running;
  f.label_selector = {{labels::kPodUid, pod.metadata.uid}, {labels::kContainerName, container}};
  auto found = runtime_.listContainers(f);
  if (!found) return std::unexpected(found.error());
  if (found->empty())
    return fail(ErrorCode::FailedPrecondition, "container not found (\"" + container + "\")");
  // A restart leaves at most a moment with two: the newest is the one that runs on.
  return std::max_element(found->begin(), found->end(),
                          [](const auto& a, const auto& b) { return a.created_at < b.created_at; })
      ->id;
}

Result<std::string> ContainerStreams::execUrl(const std::string& ns, const std::string& name,
                                              const std::string& container,
                                              const std::vector<std::string>& cmd,
                                              const StreamOptions& o) {
  auto pod = findPod(ns, name);
  if (!pod) return std::unexpected(pod.error());
  auto id = runningContainer(*pod, container);
  if (!id) return std::unexpected(id.error());
  cri::StreamingRequest r;
  r.container_id = *id;
  r.cmd = cmd;
  r.tty = o.tty;
  r.stdin_ = o.stdin_;
  r.stdout_ = o.stdout_;
  r.stderr_ = o.stderr_;
  return runtime_.exec(r);
}

Result<std::string> ContainerStreams::attachUrl(const std::string& ns, const std::string& name,
                                                const std::string& uid,
                                                const std::string& container,
                                                const StreamOptions& o) {
  auto pod = findPod(ns, name);
  if (!pod) return std::unexpected(pod.error());
  if (!uid.empty() && uid != pod->metadata.uid)
    return fail(ErrorCode::FailedPrecondition, "pod " + fullName(ns, name) + " not found");
  const api::Container* spec = api::findContainer(pod->spec, container);
  auto id = runningContainer(*pod, container);
  if (!id || !spec)
    return fail(ErrorCode::FailedPrecondition,
                "container " + container + " not found in pod " + fullName(ns, name));
  cri::StreamingRequest r;
  r.container_id = *id;
  r.tty = spec->tty;
  r.stdin_ = o.stdin_;
  r.stdout_ = o.stdout_;
  r.stderr_ = o.stderr_ && !spec->tty;
  return runtime_.attach(r);
}

Result<std::string> ContainerStreams::portForwardUrl(const std::string& ns, const std::string& name,
                                                     const std::string& uid,
                                                     const std::vector<int32_t>& ports) {
  auto pod = findPod(ns, name);
  if (!pod) return std::unexpected(pod.error());
  if (!uid.empty() && uid != pod->metadata.uid) return fail(ErrorCode::NotFound, "pod not found");
  cri::PodSandboxFilter f;
  f.label_selector = {{labels::kPodUid, pod->metadata.uid}};
  auto sandboxes = runtime_.listPodSandbox(f);
  if (!sandboxes) return std::unexpected(sandboxes.error());
  if (sandboxes->empty())
    return fail(ErrorCode::FailedPrecondition,
                "failed to find sandboxID for pod \"" + fullName(ns, name) + "\"");
  cri::StreamingRequest r;
  r.pod_sandbox_id =
      std::max_element(sandboxes->begin(), sandboxes->end(), [](const auto& a, const auto& b) {
        return a.created_at < b.created_at;
      })->id;
  r.ports = ports;
  return runtime_.portForward(r);
}

Result<std::string> ContainerStreams::run(const std::string& ns, const std::string& name,
                                          const std::string& container,
                                          const std::vector<std::string>& cmd) {
  auto pod = findPod(ns, name);
  if (!pod) return std::unexpected(pod.error());
  auto id = runningContainer(*pod, container);
  if (!id) return std::unexpected(id.error());
  // The kubelet passes no timeout for /run; nodelet's CRI client still has its own deadline.
  auto r = runtime_.execSync(*id, cmd, std::chrono::seconds(0));
  if (!r) return std::unexpected(r.error());
  if (r->exit_code != 0)
    return fail(ErrorCode::Unknown, "command '" + joined(cmd) + "' exited with " +
                                        std::to_string(r->exit_code) + ": " + r->stderr_);
  return r->stdout_ + r->stderr_;
}

}  // namespace nodelet::agent
