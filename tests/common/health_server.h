#pragma once
// A grpc.health.v1 server on 127.0.0.1 for probe tests: its answer per service can be changed.
#include <grpcpp/grpcpp.h>

#include <map>
#include <mutex>

#include "probes/proto/grpc/health/v1/health.grpc.pb.h"

namespace nodelet::testing {

class HealthServer final : public ::grpc::health::v1::Health::Service {
 public:
  using Status = ::grpc::health::v1::HealthCheckResponse::ServingStatus;
  HealthServer() {
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    b.RegisterService(this);
    server_ = b.BuildAndStart();
  }
  ~HealthServer() override { server_->Shutdown(); }
  int port() const { return port_; }
  void set(const std::string& service, Status s) {
    std::lock_guard g(mu_);
    status_[service] = s;
  }
  ::grpc::Status Check(::grpc::ServerContext*, const ::grpc::health::v1::HealthCheckRequest* req,
                       ::grpc::health::v1::HealthCheckResponse* resp) override {
    std::lock_guard g(mu_);
    auto it = status_.find(req->service());
    if (it == status_.end()) return {::grpc::StatusCode::NOT_FOUND, "unknown service"};
    resp->set_status(it->second);
    return ::grpc::Status::OK;
  }

 private:
  std::mutex mu_;
  std::map<std::string, Status> status_{{"", ::grpc::health::v1::HealthCheckResponse::SERVING}};
  int port_{0};
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace nodelet::testing
