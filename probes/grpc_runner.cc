#include "probes/grpc_runner.h"

#include <grpcpp/grpcpp.h>

#include "probes/proto/grpc/health/v1/health.grpc.pb.h"

namespace nodelet::probes {

namespace pb = ::grpc::health::v1;

struct GrpcHealthChecker::Channels {
  std::mutex mu;
  std::map<std::string, std::shared_ptr<grpc::Channel>> by_target;
};

GrpcHealthChecker::GrpcHealthChecker() : channels_(std::make_unique<Channels>()) {}
GrpcHealthChecker::~GrpcHealthChecker() = default;

void GrpcHealthChecker::clear() {
  std::lock_guard g(channels_->mu);
  channels_->by_target.clear();
}

Outcome GrpcHealthChecker::check(const api::GrpcAction& a, const Endpoint& e, Duration timeout) {
  if (a.port < 1 || a.port > 65535)
    return {ProbeResult::Failure, "invalid port number: " + std::to_string(a.port)};
  const std::string target = (e.ip.find(':') != std::string::npos ? "[" + e.ip + "]" : e.ip) + ":" +
                             std::to_string(a.port);
  std::shared_ptr<grpc::Channel> channel;
  {
    std::lock_guard g(channels_->mu);
    auto& c = channels_->by_target[target];
    if (!c) {
      grpc::ChannelArguments args;
      args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
      args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
      args.SetUserAgentPrefix("kube-probe");
      c = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
    }
    channel = c;
  }
  auto stub = pb::Health::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +  // NOLINT(real-time): gRPC deadline
                   std::chrono::duration_cast<std::chrono::system_clock::duration>(timeout));
  ctx.set_wait_for_ready(false);
  pb::HealthCheckRequest req;
  if (a.service) req.set_service(*a.service);
  pb::HealthCheckResponse resp;
  const grpc::Status s = stub->Check(&ctx, req, &resp);
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(timeout).count();
  if (!s.ok()) {
    if (s.error_code() == grpc::StatusCode::UNIMPLEMENTED)
      return {ProbeResult::Failure,
              "this server does not implement the grpc health protocol (grpc.health.v1.Health): " +
                  s.error_message()};
    if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
        s.error_code() == grpc::StatusCode::UNAVAILABLE)
      return {ProbeResult::Failure, "timeout: failed to connect service \"" + target +
                                        "\" within " + std::to_string(secs) +
                                        "s: " + s.error_message()};
    return {ProbeResult::Failure,
            "rpc error: code = " + std::to_string(static_cast<int>(s.error_code())) +
                " desc = " + s.error_message()};
  }
  if (resp.status() != pb::HealthCheckResponse::SERVING) {
    return {ProbeResult::Failure, "service unhealthy (responded with \"" +
                                      pb::HealthCheckResponse::ServingStatus_Name(resp.status()) +
                                      "\")"};
  }
  return {ProbeResult::Success, ""};
}

}  // namespace nodelet::probes
