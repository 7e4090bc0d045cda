#pragma once
// nodelet's HTTP endpoints over cpp-httplib: /healthz on healthzBindAddress:healthzPort, the
// kubelet's unauthenticated read-only port (/healthz, /pods) when readOnlyPort is set, and the
// authenticated HTTPS server on address:port (10250) with container logs. /metrics (Prometheus
// text) is on all three.
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "agent/core/clock.h"
#include "agent/core/error.h"
#include "agent/node_auth.h"

namespace httplib {
class Server;
}

namespace nodelet::agent {

// A container's log file, and whether the container still runs (a follow ends when it stops).
struct LogTarget {
  std::string path;
  std::function<bool()> running;
};

struct ServerHandlers {
  std::function<std::pair<bool, std::string>()> health;  // ok?, message
  std::function<std::string()> pods_json;                // PodList
  std::function<std::string()> metrics;                  // Prometheus text (may be unset)
  std::function<std::string()> probe_metrics;            // /metrics/probes (may be unset)
  std::function<std::string()> running_pods_json;        // PodList of what runs (may be unset)
  // (namespace, pod, container, previous) -> the log file; NotFound says what is missing.
  std::function<Result<LogTarget>(const std::string&, const std::string&, const std::string&, bool)>
      container_log;
  std::function<Result<std::string>()> stats_summary;  // the Summary API document (may be unset)
  std::function<std::string()> resource_metrics;       // /metrics/resource (may be unset)
};

class ContainerStreams;
class StreamProxy;

// The authenticated node server on `port` (10250).
struct SecureOptions {
  std::string cert_file;
  std::string key_file;
  std::string client_ca_file;  // authentication.x509.clientCAFile ("" = no certificates)
  NodeAuth* auth{nullptr};     // required
  Clock* clock{nullptr};       // required (log follow)
  // exec/attach/portForward/run (may be null: those paths are then 404).
  ContainerStreams* streams{nullptr};
  // A relayed stream without a byte either way for this long ends (0: never).
  std::chrono::milliseconds stream_idle_timeout{0};
};

class NodeServer {
 public:
  explicit NodeServer(ServerHandlers handlers);
  ~NodeServer();
  // Binds at once (so a busy port is a start-up error) and serves on a thread.
  Status startHealthz(const std::string& address, int port);
  Status startReadOnly(const std::string& address, int port);
  // HTTPS with authentication and authorization: /healthz, /metrics, /pods, /runningpods/,
  // /stats/summary, /containerLogs/{namespace}/{pod}/{container}, and the streaming paths
  // /exec, /attach, /portForward (relayed to the runtime's streaming server) and /run.
  Status startSecure(const std::string& address, int port, const SecureOptions& o);
  void stop();
  // The port actually bound (when 0 was asked for): for tests.
  int healthzPort() const { return healthz_port_; }
  int readOnlyPort() const { return read_only_port_; }
  int securePort() const { return secure_port_; }

 private:
  Result<int> serve(httplib::Server& server, const std::string& address, int port,
                    bool elastic = false);
  ServerHandlers h_;
  std::unique_ptr<httplib::Server> healthz_;
  std::unique_ptr<httplib::Server> read_only_;
  std::unique_ptr<httplib::Server> secure_;
  std::unique_ptr<StreamProxy> proxy_;
  std::vector<std::thread> threads_;
  int healthz_port_{0};
  int read_only_port_{0};
  int secure_port_{0};
};

}  // namespace nodelet::agent
