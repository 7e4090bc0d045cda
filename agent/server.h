#pragma once
// nodelet's HTTP endpoints over cpp-httplib: /healthz on healthzBindAddress:healthzPort, and the
// kubelet's unauthenticated read-only port (/healthz, /pods) when readOnlyPort is set. /metrics
// (Prometheus text) is on both.
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "agent/core/error.h"

namespace httplib {
class Server;
}

namespace nodelet::agent {

struct ServerHandlers {
  std::function<std::pair<bool, std::string>()> health;  // ok?, message
  std::function<std::string()> pods_json;                // PodList
  std::function<std::string()> metrics;                  // Prometheus text (may be unset)
};

class NodeServer {
 public:
  explicit NodeServer(ServerHandlers handlers);
  ~NodeServer();
  // Binds at once (so a busy port is a start-up error) and serves on a thread.
  Status startHealthz(const std::string& address, int port);
  Status startReadOnly(const std::string& address, int port);
  void stop();
  // The port actually bound (when 0 was asked for): for tests.
  int healthzPort() const { return healthz_port_; }
  int readOnlyPort() const { return read_only_port_; }

 private:
  Result<int> serve(httplib::Server& server, const std::string& address, int port);
  ServerHandlers h_;
  std::unique_ptr<httplib::Server> healthz_;
  std::unique_ptr<httplib::Server> read_only_;
  std::vector<std::thread> threads_;
  int healthz_port_{0};
  int read_only_port_{0};
};

}  // namespace nodelet::agent
