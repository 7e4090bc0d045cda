#include "agent/server.h"

#include <httplib.h>
#include <openssl/err.h>
#include <sys/socket.h>

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>

#include "agent/container_logs.h"
#include "agent/container_streams.h"
#include "agent/core/log.h"
#include "agent/flags.h"
#include "agent/stream_proxy.h"

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

// cpp-httplib's ThreadPool has a fixed number of threads, and a followed log or an exec session
// holds one for as long as it lasts: two of them would leave /healthz unanswered. This pool keeps
// `keep` threads and starts more while every thread is busy, up to `max`; the extra ones end after
// a minute without work.
class ElasticPool final : public httplib::TaskQueue {
 public:
  ElasticPool(size_t keep, size_t max) : keep_(keep), max_(max) {}
  ~ElasticPool() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    std::lock_guard g(mu_);
    reap();
    jobs_.push_back(std::move(fn));
    if (idle_ < jobs_.size() && threads_.size() < max_) {
      std::thread t([this] { work(); });
      const auto id = t.get_id();
      threads_.emplace(id, std::move(t));
    }
    cv_.notify_one();
  }

  // Runs what was queued (each job owns an accepted connection), then joins every thread.
  void shutdown() override {
    {
      std::lock_guard g(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    std::map<std::thread::id, std::thread> threads;
    {
      std::lock_guard g(mu_);
      threads.swap(threads_);
    }
    for (auto& [id, t] : threads) t.join();
  }

 private:
  void work() {
    std::unique_lock l(mu_);
    for (;;) {
      ++idle_;
      const bool woken =
          cv_.wait_for(l, std::chrono::minutes(1), [&] { return stopping_ || !jobs_.empty(); });
      --idle_;
      if (jobs_.empty()) {
        if (stopping_) return;
        if (!woken && threads_.size() - done_.size() > keep_) {
          done_.push_back(std::this_thread::get_id());  // joined by the next enqueue
          return;
        }
        continue;
      }
      auto job = std::move(jobs_.front());
      jobs_.pop_front();
      l.unlock();
      job();
      l.lock();
    }
  }
  // Joins threads that ended for want of work; must hold mu_.
  void reap() {
    for (const auto& id : done_) {
      auto it = threads_.find(id);
      if (it == threads_.end()) continue;
      it->second.join();
      threads_.erase(it);
    }
    done_.clear();
  }

  const size_t keep_, max_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::map<std::thread::id, std::thread> threads_;
  std::vector<std::thread::id> done_;
  size_t idle_{0};
  bool stopping_{false};
};

// The relay has used the client's connection up, but cpp-httplib still writes a response on it
// once the handler returns and then reads for a next request. Close the TLS session (close_notify),
// then let those calls go nowhere: writes into a null BIO, reads as if the client had closed. No
// byte reaches the client after its stream, and no OpenSSL error is left on this thread's queue
// for the next connection it serves.
void retireConnection(SSL* ssl) {
  SSL_shutdown(ssl);
  ERR_clear_error();
  SSL_set0_wbio(ssl, BIO_new(BIO_s_null()));
  SSL_set_shutdown(ssl, SSL_RECEIVED_SHUTDOWN);
  ::shutdown(SSL_get_fd(ssl), SHUT_RDWR);
}

int statusFor(const Error& e) {
  if (e.code == ErrorCode::InvalidArgument) return 400;
  if (e.code == ErrorCode::NotFound) return 404;
  if (e.code == ErrorCode::ResourceExhausted) return 429;
  return 500;
}

void answer(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  res.set_content(message + "\n", "text/plain; charset=utf-8");
}

// The runtime's streaming URL for a request (its headers as a list), or the error that answers it.
using UrlFor = std::function<Result<std::string>(const httplib::Request&, const HeaderList&)>;

// /exec, /attach, /portForward: the URL from the runtime, then the client's upgrade relayed to it.
httplib::Server::Handler streamingHandler(StreamProxy& proxy, UrlFor url_for) {
  return
      [&proxy, url_for = std::move(url_for)](const httplib::Request& req, httplib::Response& res) {
        const HeaderList headers(req.headers.begin(), req.headers.end());
        if (!isUpgradeRequest(headers)) return answer(res, 500, "Upgrade request required");
        auto url = url_for(req, headers);
        if (!url) return answer(res, statusFor(url.error()), url.error().message);
        UpgradeRequest up{req.method, headers, req.body, req.remote_addr};
        // cpp-httplib hands handlers its connection as const; the relay is its owner for a while.
        SSL* ssl = const_cast<SSL*>(req.ssl);
        auto relayed = proxy.relay(ssl, up, *url);
        if (!relayed) {
          NODELET_LOG(warn, Server, "{} {}: {}", req.method, req.path, relayed.error().message);
          return answer(res, 500, relayed.error().message);
        }
        NODELET_LOG(debug, Server, "{} {}: relayed (runtime answered {})", req.method, req.path,
                    *relayed);
        retireConnection(ssl);
      };
}

void installStreaming(httplib::Server& s, ContainerStreams& streams, StreamProxy& proxy) {
  // /{verb}/{namespace}/{pod}[/{uid}]/{container}: the uid is optional, as in the kubelet.
  const std::string seg = "([^/]+)";
  const std::string with_container = "/" + seg + "/" + seg + "(?:/" + seg + ")?/" + seg;
  auto exec = streamingHandler(proxy, [&streams](const httplib::Request& req, const HeaderList&) {
    auto o = parseStreamOptions(req.params);
    if (!o) return Result<std::string>(std::unexpected(o.error()));
    std::vector<std::string> cmd;
    for (auto [it, end] = req.params.equal_range("command"); it != end; ++it)
      cmd.push_back(it->second);
    return streams.execUrl(req.matches[1], req.matches[2], req.matches[4], cmd, *o);
  });
  auto attach = streamingHandler(proxy, [&streams](const httplib::Request& req, const HeaderList&) {
    auto o = parseStreamOptions(req.params);
    if (!o) return Result<std::string>(std::unexpected(o.error()));
    return streams.attachUrl(req.matches[1], req.matches[2], req.matches[3], req.matches[4], *o);
  });
  auto port_forward =
      streamingHandler(proxy, [&streams](const httplib::Request& req, const HeaderList& headers) {
        auto ports = parsePortForwardPorts(req.params, isWebSocketRequest(headers));
        if (!ports) return Result<std::string>(std::unexpected(ports.error()));
        return streams.portForwardUrl(req.matches[1], req.matches[2], req.matches[3], *ports);
      });
  const std::string pod_path = "/" + seg + "/" + seg + "(?:/" + seg + ")?";
  s.Get("/exec" + with_container, exec);
  s.Post("/exec" + with_container, exec);
  s.Get("/attach" + with_container, attach);
  s.Post("/attach" + with_container, attach);
  s.Get("/portForward" + pod_path, port_forward);
  s.Post("/portForward" + pod_path, port_forward);
  // /run: the kubelet's own, POST only; `cmd` split at spaces, the output as the body.
  s.Post("/run" + with_container, [&streams](const httplib::Request& req, httplib::Response& res) {
    const auto cmd = splitList(req.get_param_value("cmd"), " ", /*keep_empty=*/true);
    auto out = streams.run(req.matches[1], req.matches[2], req.matches[4], cmd);
    if (!out) return answer(res, statusFor(out.error()), out.error().message);
    res.set_content(*out, "application/json");
  });
}

}  // namespace

NodeServer::NodeServer(ServerHandlers handlers) : h_(std::move(handlers)) {}
NodeServer::~NodeServer() { stop(); }

Result<int> NodeServer::serve(httplib::Server& server, const std::string& address, int port,
                              bool elastic) {
  // Two threads per listener: nodelet's endpoints are light, and idle threads cost memory. The
  // node server's may grow while long requests (log follows, streams) hold threads.
  if (elastic) {
    server.new_task_queue = [] { return new ElasticPool(2, 128); };
  } else {
    server.new_task_queue = [] { return new httplib::ThreadPool(2); };
  }
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
  // cpp-httplib's stop() does nothing until the accept loop runs, and the join in stop() would
  // then wait forever: a server is only handed out once it runs (well under a millisecond).
  for (int i = 0; i < 5000 && !server.is_running(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // NOLINT(real-time): a thread
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
  if (o.streams) {
    StreamProxy::Options po;
    po.idle_timeout = o.stream_idle_timeout;
    proxy_ = std::make_unique<StreamProxy>(*o.clock, po);
    installStreaming(*secure_, *o.streams, *proxy_);
  }
  // Followed logs and streams hold a thread each for as long as they last.
  auto p = serve(*secure_, address, port, /*elastic=*/true);
  if (!p) return std::unexpected(p.error().wrap("node server"));
  secure_port_ = *p;
  NODELET_LOG(info, Server, "node server on https://{}:{} (authenticated)", address, secure_port_);
  return {};
}

void NodeServer::stop() {
  if (healthz_) healthz_->stop();
  if (read_only_) read_only_->stop();
  if (proxy_) proxy_->cancel();  // streams in flight end, so that the pool can join its threads
  if (secure_) secure_->stop();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

}  // namespace nodelet::agent
