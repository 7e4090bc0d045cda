#include "agent/server.h"

#include <httplib.h>

#include "agent/core/log.h"

namespace nodelet::agent {
namespace {

void installHealthz(httplib::Server& s, const ServerHandlers& h) {
  if (h.metrics)
    s.Get("/metrics", [h](const httplib::Request&, httplib::Response& res) {
      res.set_content(h.metrics(), "text/plain; version=0.0.4; charset=utf-8");
    });
  s.Get("/healthz", [h](const httplib::Request&, httplib::Response& res) {
    auto [ok, msg] = h.health();
    res.status = ok ? 200 : 500;
    res.set_content(ok ? "ok" : "[-]syncloop failed: " + msg + "\nhealthz check failed\n",
                    "text/plain");
  });
}

}  // namespace

NodeServer::NodeServer(ServerHandlers handlers) : h_(std::move(handlers)) {}
NodeServer::~NodeServer() { stop(); }

Result<int> NodeServer::serve(httplib::Server& server, const std::string& address, int port) {
  // Two threads per listener: nodelet's endpoints are light, and idle threads cost memory.
  server.new_task_queue = [] { return new httplib::ThreadPool(2); };
  server.set_read_timeout(10, 0);
  server.set_write_timeout(10, 0);
  int bound = port;
  if (port == 0) {
    bound = server.bind_to_any_port(address);
  } else if (!server.bind_to_port(address, port)) {
    bound = -1;
  }
  if (bound <= 0)
    return fail(ErrorCode::Unavailable, "cannot listen on " + address + ":" + std::to_string(port));
  threads_.emplace_back([&server] { server.listen_after_bind(); });
  return bound;
}

Status NodeServer::startHealthz(const std::string& address, int port) {
  healthz_ = std::make_unique<httplib::Server>();
  installHealthz(*healthz_, h_);
  auto p = serve(*healthz_, address, port);
  if (!p) return std::unexpected(p.error().wrap("healthz server"));
  healthz_port_ = *p;
  NODELET_LOG(info, Server, "healthz on http://{}:{}/healthz", address, healthz_port_);
  return {};
}

Status NodeServer::startReadOnly(const std::string& address, int port) {
  read_only_ = std::make_unique<httplib::Server>();
  installHealthz(*read_only_, h_);
  read_only_->Get("/pods", [h = h_](const httplib::Request&, httplib::Response& res) {
    res.set_content(h.pods_json(), "application/json");
  });
  read_only_->Get("/pods/", [h = h_](const httplib::Request&, httplib::Response& res) {
    res.set_content(h.pods_json(), "application/json");
  });
  auto p = serve(*read_only_, address, port);
  if (!p) return std::unexpected(p.error().wrap("read-only server"));
  read_only_port_ = *p;
  NODELET_LOG(info, Server, "read-only port on http://{}:{} (/pods, /healthz)", address,
              read_only_port_);
  return {};
}

void NodeServer::stop() {
  if (healthz_) healthz_->stop();
  if (read_only_) read_only_->stop();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

}  // namespace nodelet::agent
