#include "agent/server.h"

#include <httplib.h>

#include "agent/container_logs.h"
#include "agent/core/log.h"

namespace nodelet::agent {
namespace {

void installHealthz(httplib::Server& s, const ServerHandlers& h) {
  if (h.metrics)
    s.Get("/metrics", [h](const httplib::Request&, httplib::Response& res) {
      res.set_content(h.metrics(), "text/plain; version=0.0.4; charset=utf-8");
    });
  if (h.probe_metrics)
    s.Get("/metrics/probes", [h](const httplib::Request&, httplib::Response& res) {
      res.set_content(h.probe_metrics(), "text/plain; version=0.0.4; charset=utf-8");
    });
  s.Get("/healthz", [h](const httplib::Request&, httplib::Response& res) {
    auto [ok, msg] = h.health();
    res.status = ok ? 200 : 500;
    res.set_content(ok ? "ok" : "[-]syncloop failed: " + msg + "\nhealthz check failed\n",
                    "text/plain");
  });
}

void installPods(httplib::Server& s, const ServerHandlers& h) {
  for (const char* path : {"/pods", "/pods/"})
    s.Get(path, [h](const httplib::Request&, httplib::Response& res) {
      res.set_content(h.pods_json(), "application/json");
    });
}

// The verified client certificate's user: CN, the O entries as groups (and
// system:authenticated), as the API server's x509 authenticator reads it.
std::optional<UserInfo> certificateUser(const httplib::Request& req) {
  if (!req.ssl) return std::nullopt;
  X509* cert = SSL_get1_peer_certificate(req.ssl);
  if (!cert) return std::nullopt;
  std::optional<UserInfo> u;
  if (SSL_get_verify_result(req.ssl) == X509_V_OK) {
    u = UserInfo{};
    X509_NAME* name = X509_get_subject_name(cert);
    for (int i = -1; (i = X509_NAME_get_index_by_NID(name, NID_commonName, i)) >= 0;) {
      const ASN1_STRING* v = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
      u->name.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(v)),
                     static_cast<size_t>(ASN1_STRING_length(v)));
    }
    for (int i = -1; (i = X509_NAME_get_index_by_NID(name, NID_organizationName, i)) >= 0;) {
      const ASN1_STRING* v = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
      u->groups.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(v)),
                             static_cast<size_t>(ASN1_STRING_length(v)));
    }
    u->groups.push_back("system:authenticated");
    if (u->name.empty()) u.reset();  // a certificate without a user name authenticates nobody
  }
  X509_free(cert);
  return u;
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
  installPods(*read_only_, h_);
  auto p = serve(*read_only_, address, port);
  if (!p) return std::unexpected(p.error().wrap("read-only server"));
  read_only_port_ = *p;
  NODELET_LOG(info, Server, "read-only port on http://{}:{} (/pods, /healthz)", address,
              read_only_port_);
  return {};
}

Status NodeServer::startSecure(const std::string& address, int port, const SecureOptions& o) {
  const std::string cert = o.cert_file, key = o.key_file, ca = o.client_ca_file;
  bool tls_ok = false;
  secure_ = std::make_unique<httplib::SSLServer>([&](SSL_CTX& ctx) {
    tls_ok = SSL_CTX_use_certificate_chain_file(&ctx, cert.c_str()) == 1 &&
             SSL_CTX_use_PrivateKey_file(&ctx, key.c_str(), SSL_FILETYPE_PEM) == 1 &&
             SSL_CTX_check_private_key(&ctx) == 1;
    SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
    if (!ca.empty()) {
      tls_ok = tls_ok && SSL_CTX_load_verify_locations(&ctx, ca.c_str(), nullptr) == 1;
      SSL_CTX_set_client_CA_list(&ctx, SSL_load_client_CA_file(ca.c_str()));
      // Ask for a certificate, never require one (tokens authenticate too), and never fail the
      // handshake over it: an unverified certificate just authenticates nobody.
      SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER, [](int, X509_STORE_CTX*) { return 1; });
      static const unsigned char kContext[] = "nodelet";
      SSL_CTX_set_session_id_context(&ctx, kContext, sizeof kContext - 1);
    }
    return true;
  });
  if (!tls_ok || !secure_->is_valid())
    return fail(ErrorCode::InvalidArgument, "node server: cannot use certificate " + cert +
                                                " and key " + key +
                                                (ca.empty() ? "" : " with client CA " + ca));
  NodeAuth* auth = o.auth;
  Clock* clock = o.clock;
  secure_->set_pre_routing_handler([auth](const httplib::Request& req, httplib::Response& res) {
    const Decision d = auth->decide(certificateUser(req), req.get_header_value("Authorization"),
                                    req.method, req.path);
    if (d.code == 200) return httplib::Server::HandlerResponse::Unhandled;
    res.status = d.code;
    res.set_content(d.message + "\n", "text/plain; charset=utf-8");
    return httplib::Server::HandlerResponse::Handled;
  });
  installHealthz(*secure_, h_);
  installPods(*secure_, h_);
  if (h_.running_pods_json)
    secure_->Get("/runningpods/", [h = h_](const httplib::Request&, httplib::Response& res) {
      res.set_content(h.running_pods_json(), "application/json");
    });
  if (h_.resource_metrics)
    secure_->Get("/metrics/resource", [h = h_](const httplib::Request&, httplib::Response& res) {
      res.set_content(h.resource_metrics(), "text/plain; version=0.0.4; charset=utf-8");
    });
  if (h_.stats_summary)
    for (const char* path : {"/stats/summary", "/stats/summary/"})
      secure_->Get(path, [h = h_](const httplib::Request&, httplib::Response& res) {
        auto doc = h.stats_summary();
        if (!doc) {
          res.status = 500;
          res.set_content("Internal Error: " + doc.error().message + "\n",
                          "text/plain; charset=utf-8");
          return;
        }
        res.set_content(*doc, "application/json");
      });
  if (h_.container_log)
    secure_->Get(R"(/containerLogs/([^/]+)/([^/]+)/([^/]+))",
                 [h = h_, clock](const httplib::Request& req, httplib::Response& res) {
                   auto opts = parseLogOptions(req.params, clock->systemNow());
                   if (!opts) {
                     res.status = 400;
                     res.set_content(opts.error().message + "\n", "text/plain; charset=utf-8");
                     return;
                   }
                   auto target = h.container_log(req.matches[1].str(), req.matches[2].str(),
                                                 req.matches[3].str(), opts->previous);
                   if (!target) {
                     res.status = target.error().code == ErrorCode::NotFound          ? 404
                                  : target.error().code == ErrorCode::InvalidArgument ? 400
                                                                                      : 500;
                     res.set_content(target.error().message + "\n", "text/plain; charset=utf-8");
                     return;
                   }
                   res.set_chunked_content_provider(
                       "text/plain",
                       [target = *target, o = *opts, clock](size_t, httplib::DataSink& sink) {
                         (void)streamLog(
                             target.path, o,
                             [&sink](std::string_view data) {
                               if (data.empty()) return sink.is_writable();
                               return sink.write(data.data(), data.size());
                             },
                             target.running, *clock);
                         sink.done();
                         return true;
                       });
                 });
  // kubectl exec/attach/port-forward: said plainly rather than a bare 404.
  auto unsupported = [](const httplib::Request& req, httplib::Response& res) {
    res.status = 501;
    res.set_content(req.path.substr(0, req.path.find('/', 1)) +
                        ": streaming to containers is not supported by nodelet yet\n",
                    "text/plain; charset=utf-8");
  };
  for (const char* streaming : {"/exec/.*", "/attach/.*", "/portForward/.*", "/run/.*"}) {
    secure_->Get(streaming, unsupported);
    secure_->Post(streaming, unsupported);
  }
  auto p = serve(*secure_, address, port);
  if (!p) return std::unexpected(p.error().wrap("node server"));
  secure_port_ = *p;
  NODELET_LOG(info, Server, "node server on https://{}:{} (authenticated)", address, secure_port_);
  return {};
}

void NodeServer::stop() {
  if (healthz_) healthz_->stop();
  if (read_only_) read_only_->stop();
  if (secure_) secure_->stop();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

}  // namespace nodelet::agent
