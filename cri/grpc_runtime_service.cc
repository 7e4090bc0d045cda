// gRPC implementations of cri::RuntimeService and cri::ImageService. Deadlines are set here and
// nowhere else; every call has one.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <mutex>

#include "agent/core/log.h"
#include "cri/convert.h"
#include "cri/proto/runtime/v1/api.grpc.pb.h"
#include "cri/runtime_service.h"

namespace nodelet::cri {
namespace {

namespace pb = ::runtime::v1;
using std::chrono::milliseconds;

// The kubelet accepts CRI messages up to 16 MiB.
constexpr int kMaxMessageSize = 16 * 1024 * 1024;

Error toError(const grpc::Status& s, std::string_view method) {
  ErrorCode code = ErrorCode::Unknown;
  switch (s.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT:
      code = ErrorCode::InvalidArgument;
      break;
    case grpc::StatusCode::NOT_FOUND:
      code = ErrorCode::NotFound;
      break;
    case grpc::StatusCode::ALREADY_EXISTS:
      code = ErrorCode::AlreadyExists;
      break;
    case grpc::StatusCode::FAILED_PRECONDITION:
      code = ErrorCode::FailedPrecondition;
      break;
    case grpc::StatusCode::PERMISSION_DENIED:
      code = ErrorCode::PermissionDenied;
      break;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      code = ErrorCode::ResourceExhausted;
      break;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      code = ErrorCode::DeadlineExceeded;
      break;
    case grpc::StatusCode::UNAVAILABLE:
      code = ErrorCode::Unavailable;
      break;
    case grpc::StatusCode::UNIMPLEMENTED:
      code = ErrorCode::Unimplemented;
      break;
    case grpc::StatusCode::CANCELLED:
      code = ErrorCode::Cancelled;
      break;
    case grpc::StatusCode::INTERNAL:
      code = ErrorCode::Internal;
      break;
    default:
      break;
  }
  return Error{code, std::string(method) + ": " + s.error_message()};
}

std::shared_ptr<grpc::Channel> makeChannel(const std::string& target, const GrpcOptions& o) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageSize);
  args.SetMaxSendMessageSize(kMaxMessageSize);
  // containerd may restart under us: reconnect quickly instead of gRPC's default of up to 120 s.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, static_cast<int>(o.max_reconnect_backoff.count()));
  // One channel per endpoint, not shared with other channels of the same target in-process.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

// Runs one unary call with a deadline and maps the status.
template <class Stub, class Req, class Resp>
Result<Resp> unary(Stub& stub,
                   grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*),
                   const Req& req, milliseconds timeout, std::string_view name) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);  // NOLINT(real-time): gRPC deadline
  Resp resp;
  grpc::Status s = (stub.*method)(&ctx, req, &resp);
  if (!s.ok()) return std::unexpected(toError(s, name));
  return resp;
}

class GrpcRuntimeService final : public RuntimeService {
 public:
  GrpcRuntimeService(std::shared_ptr<grpc::Channel> channel, GrpcOptions options)
      : channel_(std::move(channel)),
        stub_(pb::RuntimeService::NewStub(channel_)),
        o_(std::move(options)) {}

  // cri::RuntimeService
  Result<VersionInfo> version() override {
    pb::VersionRequest req;
    req.set_version("v1");
    auto r = call(&pb::RuntimeService::Stub::Version, req, "Version");
    if (!r) return std::unexpected(r.error());
    return VersionInfo{r->version(), r->runtime_name(), r->runtime_version(),
                       r->runtime_api_version()};
  }

  Result<RuntimeStatus> status(bool verbose) override {
    pb::StatusRequest req;
    req.set_verbose(verbose);
    auto r = call(&pb::RuntimeService::Stub::Status, req, "Status");
    if (!r) return std::unexpected(r.error());
    return convert::fromProto(*r);
  }

  Result<std::string> runPodSandbox(const PodSandboxConfig& config,
                                    const std::string& runtime_handler) override {
    pb::RunPodSandboxRequest req;
    convert::toProto(config, req.mutable_config());
    req.set_runtime_handler(runtime_handler);
    // The kubelet gives RunPodSandbox a longer deadline: it includes CNI set-up.
    auto r = call(&pb::RuntimeService::Stub::RunPodSandbox, req, "RunPodSandbox",
                  o_.request_timeout * 2);
    if (!r) return std::unexpected(r.error());
    return r->pod_sandbox_id();
  }

  Status stopPodSandbox(const std::string& id) override {
    pb::StopPodSandboxRequest req;
    req.set_pod_sandbox_id(id);
    return done(call(&pb::RuntimeService::Stub::StopPodSandbox, req, "StopPodSandbox"));
  }

  Status removePodSandbox(const std::string& id) override {
    pb::RemovePodSandboxRequest req;
    req.set_pod_sandbox_id(id);
    return done(call(&pb::RuntimeService::Stub::RemovePodSandbox, req, "RemovePodSandbox"));
  }

  Result<PodSandboxStatus> podSandboxStatus(const std::string& id, bool verbose) override {
    pb::PodSandboxStatusRequest req;
    req.set_pod_sandbox_id(id);
    req.set_verbose(verbose);
    auto r = call(&pb::RuntimeService::Stub::PodSandboxStatus, req, "PodSandboxStatus");
    if (!r) return std::unexpected(r.error());
    if (!r->has_status()) return fail(ErrorCode::NotFound, "PodSandboxStatus: no status for " + id);
    return convert::fromProto(*r);
  }

  Result<std::vector<PodSandbox>> listPodSandbox(const PodSandboxFilter& filter) override {
    pb::ListPodSandboxRequest req;
    convert::toProto(filter, req.mutable_filter());
    auto r = call(&pb::RuntimeService::Stub::ListPodSandbox, req, "ListPodSandbox");
    if (!r) return std::unexpected(r.error());
    std::vector<PodSandbox> out;
    out.reserve(static_cast<size_t>(r->items_size()));
    for (const auto& s : r->items()) out.push_back(convert::fromProto(s));
    return out;
  }

  Result<std::string> createContainer(const std::string& sandbox_id, const ContainerConfig& config,
                                      const PodSandboxConfig& sandbox_config) override {
    pb::CreateContainerRequest req;
    req.set_pod_sandbox_id(sandbox_id);
    convert::toProto(config, req.mutable_config());
    convert::toProto(sandbox_config, req.mutable_sandbox_config());
    auto r = call(&pb::RuntimeService::Stub::CreateContainer, req, "CreateContainer");
    if (!r) return std::unexpected(r.error());
    return r->container_id();
  }

  Status startContainer(const std::string& id) override {
    pb::StartContainerRequest req;
    req.set_container_id(id);
    return done(call(&pb::RuntimeService::Stub::StartContainer, req, "StartContainer"));
  }

  Status stopContainer(const std::string& id, int64_t timeout_seconds) override {
    pb::StopContainerRequest req;
    req.set_container_id(id);
    req.set_timeout(timeout_seconds);
    // The call lasts as long as the grace period, plus the usual request timeout.
    return done(call(&pb::RuntimeService::Stub::StopContainer, req, "StopContainer",
                     o_.request_timeout + std::chrono::seconds(timeout_seconds)));
  }

  Status removeContainer(const std::string& id) override {
    pb::RemoveContainerRequest req;
    req.set_container_id(id);
    return done(call(&pb::RuntimeService::Stub::RemoveContainer, req, "RemoveContainer"));
  }

  Result<std::vector<Container>> listContainers(const ContainerFilter& filter) override {
    pb::ListContainersRequest req;
    convert::toProto(filter, req.mutable_filter());
    auto r = call(&pb::RuntimeService::Stub::ListContainers, req, "ListContainers");
    if (!r) return std::unexpected(r.error());
    std::vector<Container> out;
    out.reserve(static_cast<size_t>(r->containers_size()));
    for (const auto& c : r->containers()) out.push_back(convert::fromProto(c));
    return out;
  }

  Result<ContainerStatus> containerStatus(const std::string& id, bool verbose) override {
    pb::ContainerStatusRequest req;
    req.set_container_id(id);
    req.set_verbose(verbose);
    auto r = call(&pb::RuntimeService::Stub::ContainerStatus, req, "ContainerStatus");
    if (!r) return std::unexpected(r.error());
    if (!r->has_status()) return fail(ErrorCode::NotFound, "ContainerStatus: no status for " + id);
    return convert::fromProto(*r);
  }

  Status updateContainerResources(const std::string& id, const LinuxResources& res) override {
    pb::UpdateContainerResourcesRequest req;
    req.set_container_id(id);
    convert::toProto(res, req.mutable_linux());
    return done(
        call(&pb::RuntimeService::Stub::UpdateContainerResources, req, "UpdateContainerResources"));
  }

  Status reopenContainerLog(const std::string& id) override {
    pb::ReopenContainerLogRequest req;
    req.set_container_id(id);
    return done(call(&pb::RuntimeService::Stub::ReopenContainerLog, req, "ReopenContainerLog"));
  }

  Result<ExecSyncResult> execSync(const std::string& id, const std::vector<std::string>& cmd,
                                  std::chrono::seconds timeout) override {
    pb::ExecSyncRequest req;
    req.set_container_id(id);
    for (const auto& c : cmd) req.add_cmd(c);
    req.set_timeout(timeout.count());
    // The runtime enforces `timeout`; our deadline only guards against a runtime that hangs.
    auto r =
        call(&pb::RuntimeService::Stub::ExecSync, req, "ExecSync", o_.request_timeout + timeout);
    if (!r) return std::unexpected(r.error());
    return ExecSyncResult{r->stdout(), r->stderr(), r->exit_code()};
  }

  Result<std::string> exec(const StreamingRequest& s) override {
    pb::ExecRequest req;
    req.set_container_id(s.container_id);
    for (const auto& c : s.cmd) req.add_cmd(c);
    req.set_tty(s.tty);
    req.set_stdin(s.stdin_);
    req.set_stdout(s.stdout_);
    req.set_stderr(s.stderr_);
    auto r = call(&pb::RuntimeService::Stub::Exec, req, "Exec");
    if (!r) return std::unexpected(r.error());
    return r->url();
  }

  Result<std::string> attach(const StreamingRequest& s) override {
    pb::AttachRequest req;
    req.set_container_id(s.container_id);
    req.set_stdin(s.stdin_);
    req.set_tty(s.tty);
    req.set_stdout(s.stdout_);
    req.set_stderr(s.stderr_);
    auto r = call(&pb::RuntimeService::Stub::Attach, req, "Attach");
    if (!r) return std::unexpected(r.error());
    return r->url();
  }

  Result<std::string> portForward(const StreamingRequest& s) override {
    pb::PortForwardRequest req;
    req.set_pod_sandbox_id(s.pod_sandbox_id);
    for (auto p : s.ports) req.add_port(p);
    auto r = call(&pb::RuntimeService::Stub::PortForward, req, "PortForward");
    if (!r) return std::unexpected(r.error());
    return r->url();
  }

  Result<ContainerStats> containerStats(const std::string& id) override {
    pb::ContainerStatsRequest req;
    req.set_container_id(id);
    auto r = call(&pb::RuntimeService::Stub::ContainerStats, req, "ContainerStats");
    if (!r) return std::unexpected(r.error());
    return convert::fromProto(r->stats());
  }

  Result<std::vector<ContainerStats>> listContainerStats(const ContainerStatsFilter& f) override {
    pb::ListContainerStatsRequest req;
    convert::toProto(f, req.mutable_filter());
    auto r = call(&pb::RuntimeService::Stub::ListContainerStats, req, "ListContainerStats");
    if (!r) return std::unexpected(r.error());
    std::vector<ContainerStats> out;
    for (const auto& s : r->stats()) out.push_back(convert::fromProto(s));
    return out;
  }

  Result<PodSandboxStats> podSandboxStats(const std::string& id) override {
    pb::PodSandboxStatsRequest req;
    req.set_pod_sandbox_id(id);
    auto r = call(&pb::RuntimeService::Stub::PodSandboxStats, req, "PodSandboxStats");
    if (!r) return std::unexpected(r.error());
    return convert::fromProto(r->stats());
  }

  Result<std::vector<PodSandboxStats>> listPodSandboxStats(const PodSandboxFilter& f) override {
    pb::ListPodSandboxStatsRequest req;
    req.mutable_filter()->set_id(f.id);
    for (const auto& [k, v] : f.label_selector)
      (*req.mutable_filter()->mutable_label_selector())[k] = v;
    auto r = call(&pb::RuntimeService::Stub::ListPodSandboxStats, req, "ListPodSandboxStats");
    if (!r) return std::unexpected(r.error());
    std::vector<PodSandboxStats> out;
    for (const auto& s : r->stats()) out.push_back(convert::fromProto(s));
    return out;
  }

  Status getContainerEvents(const std::function<bool(const ContainerEvent&)>& sink,
                            std::stop_token stop) override {
    grpc::ClientContext ctx;  // a stream: no deadline, cancelled through `stop`
    std::stop_callback cancel(stop, [&ctx] { ctx.TryCancel(); });
    auto reader = stub_->GetContainerEvents(&ctx, pb::GetEventsRequest());
    pb::ContainerEventResponse ev;
    while (reader->Read(&ev)) {
      if (!sink(convert::fromProto(ev))) {
        ctx.TryCancel();
        break;
      }
    }
    grpc::Status s = reader->Finish();
    if (!s.ok() && !(stop.stop_requested() && s.error_code() == grpc::StatusCode::CANCELLED))
      return std::unexpected(toError(s, "GetContainerEvents"));
    return {};
  }

 private:
  template <class Req, class Resp>
  Result<Resp> call(grpc::Status (pb::RuntimeService::Stub::*m)(grpc::ClientContext*, const Req&,
                                                                Resp*),
                    const Req& req, std::string_view name,
                    std::optional<milliseconds> timeout = {}) {
    return unary(*stub_, m, req, timeout.value_or(o_.request_timeout), name);
  }
  template <class R>
  static Status done(const Result<R>& r) {
    if (!r) return std::unexpected(r.error());
    return {};
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::RuntimeService::Stub> stub_;
  GrpcOptions o_;
};

class GrpcImageService final : public ImageService {
 public:
  GrpcImageService(std::shared_ptr<grpc::Channel> channel, GrpcOptions options)
      : channel_(std::move(channel)),
        stub_(pb::ImageService::NewStub(channel_)),
        o_(std::move(options)) {}

  // cri::ImageService
  Result<std::vector<Image>> listImages() override {
    auto r = unary(*stub_, &pb::ImageService::Stub::ListImages, pb::ListImagesRequest(),
                   o_.request_timeout, "ListImages");
    if (!r) return std::unexpected(r.error());
    std::vector<Image> out;
    for (const auto& i : r->images()) out.push_back(convert::fromProto(i));
    return out;
  }

  Result<std::optional<Image>> imageStatus(const std::string& image) override {
    pb::ImageStatusRequest req;
    req.mutable_image()->set_image(image);
    auto r =
        unary(*stub_, &pb::ImageService::Stub::ImageStatus, req, o_.request_timeout, "ImageStatus");
    if (!r) return std::unexpected(r.error());
    if (!r->has_image() || r->image().id().empty()) return std::optional<Image>();
    return std::optional<Image>(convert::fromProto(r->image()));
  }

  Result<std::string> pullImage(const std::string& image, const AuthConfig* auth,
                                const PodSandboxConfig* sandbox_config) override {
    pb::PullImageRequest req;
    req.mutable_image()->set_image(image);
    if (auth) {
      auto* a = req.mutable_auth();
      a->set_username(auth->username);
      a->set_password(auth->password);
      a->set_auth(auth->auth);
      a->set_server_address(auth->server_address);
      a->set_identity_token(auth->identity_token);
      a->set_registry_token(auth->registry_token);
    }
    if (sandbox_config) convert::toProto(*sandbox_config, req.mutable_sandbox_config());
    auto r = unary(*stub_, &pb::ImageService::Stub::PullImage, req, o_.pull_timeout, "PullImage");
    if (!r) return std::unexpected(r.error());
    return r->image_ref();
  }

  Status removeImage(const std::string& image) override {
    pb::RemoveImageRequest req;
    req.mutable_image()->set_image(image);
    auto r =
        unary(*stub_, &pb::ImageService::Stub::RemoveImage, req, o_.request_timeout, "RemoveImage");
    if (!r) return std::unexpected(r.error());
    return {};
  }

  Result<std::vector<FilesystemUsage>> imageFsInfo() override {
    auto r = unary(*stub_, &pb::ImageService::Stub::ImageFsInfo, pb::ImageFsInfoRequest(),
                   o_.request_timeout, "ImageFsInfo");
    if (!r) return std::unexpected(r.error());
    std::vector<FilesystemUsage> out;
    for (const auto& f : r->image_filesystems()) out.push_back(convert::fromProto(f));
    return out;
  }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::ImageService::Stub> stub_;
  GrpcOptions o_;
};

}  // namespace

Result<std::string> grpcTarget(const std::string& endpoint) {
  if (endpoint.empty()) return fail(ErrorCode::InvalidArgument, "empty CRI endpoint");
  if (endpoint.starts_with("unix://")) {
    const std::string path = endpoint.substr(7);
    if (path.empty() || path[0] != '/')
      return fail(ErrorCode::InvalidArgument,
                  "CRI endpoint \"" + endpoint + "\": expected unix:///absolute/path");
    return "unix://" + path;
  }
  if (endpoint[0] == '/') return "unix://" + endpoint;
  if (endpoint.starts_with("tcp://") || endpoint.starts_with("npipe://"))
    return fail(ErrorCode::InvalidArgument,
                "CRI endpoint \"" + endpoint + "\": only unix sockets are supported on Linux");
  return fail(ErrorCode::InvalidArgument,
              "CRI endpoint \"" + endpoint + "\": expected unix:///path/to/socket");
}

Result<GrpcServices> connectGrpc(const GrpcOptions& runtime, const GrpcOptions& image) {
  auto rt = grpcTarget(runtime.endpoint);
  if (!rt) return std::unexpected(rt.error());
  auto it = grpcTarget(image.endpoint);
  if (!it) return std::unexpected(it.error());
  auto rch = makeChannel(*rt, runtime);
  auto ich = *it == *rt ? rch : makeChannel(*it, image);
  NODELET_LOG(debug, Cri, "CRI runtime endpoint {}, image endpoint {}", *rt, *it);
  return GrpcServices{std::make_unique<GrpcRuntimeService>(rch, runtime),
                      std::make_unique<GrpcImageService>(ich, image)};
}

std::string_view toString(SandboxState s) {
  return s == SandboxState::Ready ? "SANDBOX_READY" : "SANDBOX_NOTREADY";
}
std::string_view toString(ContainerState s) {
  switch (s) {
    case ContainerState::Created:
      return "CONTAINER_CREATED";
    case ContainerState::Running:
      return "CONTAINER_RUNNING";
    case ContainerState::Exited:
      return "CONTAINER_EXITED";
    case ContainerState::Unknown:
      return "CONTAINER_UNKNOWN";
  }
  return "CONTAINER_UNKNOWN";
}

}  // namespace nodelet::cri
