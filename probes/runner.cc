#include "probes/runner.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <netdb.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "nodelet/version.h"
#include "probes/grpc_runner.h"
#include "probes/net_prober.h"

namespace nodelet::probes {
namespace {

std::string hostPort(const std::string& host, int32_t port) {
  return host.find(':') != std::string::npos ? "[" + host + "]:" + std::to_string(port)
                                             : host + ":" + std::to_string(port);
}

}  // namespace

std::string kubeProbeUserAgent() {
  std::string v = kKubeVersion;  // "v1.32.0"
  if (!v.empty() && v[0] == 'v') v.erase(0, 1);
  return "kube-probe/" + v.substr(0, v.rfind('.'));
}

std::string_view toString(ProbeResult r) {
  switch (r) {
    case ProbeResult::Unknown:
      return "unknown";
    case ProbeResult::Success:
      return "success";
    case ProbeResult::Failure:
      return "failure";
  }
  return "?";
}

Result<int32_t> resolvePort(const api::IntOrString& port,
                            const std::vector<api::ContainerPort>& ports) {
  if (port.is_int) {
    if (port.int_value < 1 || port.int_value > 65535)
      return fail(ErrorCode::InvalidArgument,
                  "invalid port number: " + std::to_string(port.int_value));
    return port.int_value;
  }
  for (const auto& p : ports)
    if (p.name == port.str_value) return p.container_port;
  return fail(ErrorCode::NotFound,
              "couldn't find port \"" + port.str_value + "\" in the container's ports");
}

Outcome DefaultRunner::tcp(const api::TcpSocketAction& a, const Endpoint& e, Duration timeout) {
  auto port = resolvePort(a.port, e.ports);
  if (!port) return {ProbeResult::Failure, port.error().message};
  const std::string host = a.host.empty() ? e.ip : a.host;
  const std::string target = hostPort(host, *port);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(*port).c_str(), &hints, &res) != 0 || !res)
    return {ProbeResult::Failure, "dial tcp " + target + ": lookup failed"};
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(res, freeaddrinfo);
  const int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return {ProbeResult::Failure, std::string("socket: ") + strerror(errno)};
  int err = 0;
  if (::connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
    if (errno != EINPROGRESS) {
      err = errno;
    } else {
      pollfd p{fd, POLLOUT, 0};
      const int ms =
          static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count());
      const int n = ::poll(&p, 1, ms);
      if (n == 0) {
        ::close(fd);
        return {ProbeResult::Failure, "dial tcp " + target + ": i/o timeout"};
      }
      socklen_t len = sizeof err;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    }
  }
  ::close(fd);
  if (err != 0) return {ProbeResult::Failure, "dial tcp " + target + ": connect: " + strerror(err)};
  return {ProbeResult::Success, ""};
}

Outcome DefaultRunner::http(const api::HttpGetAction& a, const Endpoint& e, Duration timeout) {
  auto port = resolvePort(a.port, e.ports);
  if (!port) return {ProbeResult::Failure, port.error().message};
  const std::string host = a.host.empty() ? e.ip : a.host;
  std::string scheme = a.scheme.empty() ? "http" : a.scheme;
  for (auto& ch : scheme) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  std::string path = a.path.empty() ? "/" : a.path;
  if (path[0] != '/') path.insert(0, "/");
  const std::string origin = scheme + "://" + hostPort(host, *port);
  // cpp-httplib, already loaded for nodelet's own endpoints: libcurl and its thirty libraries
  // would cost ~4 MiB of resident memory on every node.
  httplib::Client client(origin);
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(timeout);
  const auto usecs = std::chrono::duration_cast<std::chrono::microseconds>(timeout - secs);
  client.set_connection_timeout(secs.count(), static_cast<time_t>(usecs.count()));
  client.set_read_timeout(secs.count(), static_cast<time_t>(usecs.count()));
  client.set_write_timeout(secs.count(), static_cast<time_t>(usecs.count()));
  client.set_follow_location(false);
  client.set_keep_alive(false);  // a new connection per probe, as the kubelet's
  client.enable_server_certificate_verification(false);  // probes do not verify certificates
  httplib::Headers headers;
  bool ua = false;
  for (const auto& h : a.http_headers) {
    headers.emplace(h.name, h.value);
    ua = ua || strcasecmp(h.name.c_str(), "User-Agent") == 0;
  }
  if (!ua) headers.emplace("User-Agent", kubeProbeUserAgent());
  headers.emplace("Accept", "*/*");
  // Redirects are followed only to the same host (at most 10), as the kubelet does; a redirect
  // elsewhere counts as success.
  for (int hop = 0; hop <= 10; ++hop) {
    auto res = client.Get(path, headers);
    if (!res)
      return {ProbeResult::Failure,
              "Get \"" + origin + path + "\": " + httplib::to_string(res.error())};
    const int code = res->status;
    if (code >= 300 && code < 400) {
      const std::string location = res->get_header_value("Location");
      if (location.empty()) return {ProbeResult::Success, ""};
      if (location[0] == '/') {
        path = location;
        continue;
      }
      if (location.starts_with(origin + "/") || location == origin) {
        path = location.size() > origin.size() ? location.substr(origin.size()) : "/";
        continue;
      }
      return {ProbeResult::Success,
              "Probe terminated redirects, Response: " + std::to_string(code)};
    }
    if (code >= 200 && code < 400) return {ProbeResult::Success, ""};
    return {ProbeResult::Failure, "HTTP probe failed with statuscode: " + std::to_string(code)};
  }
  return {ProbeResult::Failure, "Get \"" + origin + path + "\": stopped after 10 redirects"};
}

DefaultRunner::DefaultRunner(ExecFn exec, Clock& clock)
    : exec_(std::move(exec)),
      grpc_(std::make_unique<GrpcHealthChecker>()),
      net_(std::make_unique<NetProber>(clock)) {}
DefaultRunner::~DefaultRunner() = default;

bool DefaultRunner::start(const api::Handler& h, const Endpoint& e, Duration timeout, Done& done) {
  if (h.tcp_socket) {
    auto port = resolvePort(h.tcp_socket->port, e.ports);
    if (!port) {
      done(Outcome{ProbeResult::Failure, port.error().message});
      return true;
    }
    auto to = NetProber::numeric(h.tcp_socket->host.empty() ? e.ip : h.tcp_socket->host, *port);
    if (!to) return false;  // a host name: resolved on a pool thread
    net_->tcp(*to, timeout, std::move(done));
    return true;
  }
  if (h.http_get) {
    const auto& a = *h.http_get;
    if (!a.scheme.empty() && strcasecmp(a.scheme.c_str(), "http") != 0) return false;  // TLS
    auto port = resolvePort(a.port, e.ports);
    if (!port) {
      done(Outcome{ProbeResult::Failure, port.error().message});
      return true;
    }
    auto to = NetProber::numeric(a.host.empty() ? e.ip : a.host, *port);
    if (!to) return false;
    net_->http(*to, a.path, a.http_headers, timeout, std::move(done));
    return true;
  }
  return false;
}

Outcome DefaultRunner::run(const api::Handler& h, const std::string& container_id,
                           const Endpoint& e, Duration timeout) {
  if (h.http_get) return http(*h.http_get, e, timeout);
  if (h.tcp_socket) return tcp(*h.tcp_socket, e, timeout);
  if (h.exec) {
    auto r = exec_(container_id, h.exec->command, timeout);
    if (!r) {
      if (r.error().code == ErrorCode::DeadlineExceeded) {
        std::string cmd;
        for (const auto& c : h.exec->command) cmd += (cmd.empty() ? "" : " ") + c;
        return {ProbeResult::Failure, "command \"" + cmd + "\" timed out"};
      }
      return {ProbeResult::Unknown, r.error().message};
    }
    return {r->first == 0 ? ProbeResult::Success : ProbeResult::Failure, r->second};
  }
  if (h.grpc) return grpc_->check(*h.grpc, e, timeout);
  return {ProbeResult::Unknown, "no probe handler"};
}

}  // namespace nodelet::probes
