#pragma once
// gRPC probes: grpc.health.v1.Health/Check against <endpoint ip>:<port>, optional service name;
// SERVING is success. Channels are kept per target so a probe every second does not reconnect.
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "probes/runner.h"

namespace nodelet::probes {

class GrpcHealthChecker {
 public:
  GrpcHealthChecker();
  ~GrpcHealthChecker();
  Outcome check(const api::GrpcAction& a, const Endpoint& e, Duration timeout);
  // Drops cached channels (containers gone).
  void clear();

 private:
  struct Channels;
  std::unique_ptr<Channels> channels_;
};

}  // namespace nodelet::probes
