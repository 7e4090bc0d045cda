#pragma once
// Runs one probe handler once. Implementations: HTTP(S) and TCP (blocking here, or on the
// epoll loop of probes/net_prober.h), exec (through the agent's CRI ExecSync) and gRPC, composed
// by DefaultRunner. Fakes script outcomes in tests.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "agent/core/clock.h"
#include "agent/core/error.h"
#include "agent/core/pod.h"

namespace nodelet::probes {

enum class ProbeResult { Unknown, Success, Failure };
std::string_view toString(ProbeResult r);

struct Outcome {
  ProbeResult result{ProbeResult::Unknown};
  std::string output;  // why it failed, as the kubelet words it
};

// Where a container's probes go: the pod IP (or the host's for hostNetwork) and named ports.
struct Endpoint {
  std::string ip;
  std::vector<api::ContainerPort> ports;
};

class Runner {
 public:
  virtual ~Runner() = default;
  virtual Outcome run(const api::Handler& handler, const std::string& container_id,
                      const Endpoint& endpoint, Duration timeout) = 0;
  // Starts a probe that needs no thread of its own and calls `done` when it ends, on any
  // thread (it must not block). False: this probe blocks (exec, gRPC, HTTPS, a host name to
  // resolve) and the caller runs run() on a thread of its own.
  using Done = std::function<void(Outcome)>;
  virtual bool start(const api::Handler& /*handler*/, const Endpoint& /*endpoint*/,
                     Duration /*timeout*/, Done& /*done*/) {
    return false;
  }
};

// "kube-probe/<major>.<minor>", the kubelet's User-Agent for probes.
std::string kubeProbeUserAgent();

// Resolves a probe port: a number, or the name of one of the container's ports.
Result<int32_t> resolvePort(const api::IntOrString& port,
                            const std::vector<api::ContainerPort>& ports);

// Exec probes run through the runtime (CRI ExecSync); the agent supplies this function.
using ExecFn = std::function<Result<std::pair<int32_t, std::string>>(
    const std::string& container_id, const std::vector<std::string>& cmd, Duration timeout)>;

class GrpcHealthChecker;
class NetProber;

// HTTP(S), TCP, exec and gRPC, as the kubelet runs them.
class DefaultRunner final : public Runner {
 public:
  explicit DefaultRunner(ExecFn exec, Clock& clock = RealClock::instance());
  ~DefaultRunner() override;
  // nodelet::probes::Runner
  Outcome run(const api::Handler& handler, const std::string& container_id,
              const Endpoint& endpoint, Duration timeout) override;
  // Plain HTTP and TCP to a numeric address run on one epoll loop (probes/net_prober.h).
  bool start(const api::Handler& handler, const Endpoint& endpoint, Duration timeout,
             Done& done) override;

  static Outcome http(const api::HttpGetAction& a, const Endpoint& e, Duration timeout);
  static Outcome tcp(const api::TcpSocketAction& a, const Endpoint& e, Duration timeout);

 private:
  ExecFn exec_;
  std::unique_ptr<GrpcHealthChecker> grpc_;
  std::unique_ptr<NetProber> net_;
};

}  // namespace nodelet::probes
