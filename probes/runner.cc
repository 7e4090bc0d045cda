#include "probes/runner.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "nodelet/version.h"
#include "probes/grpc_runner.h"

namespace nodelet::probes {
namespace {

// The kubelet's User-Agent for probes: "kube-probe/<major>.<minor>".
std::string userAgent() {
  std::string v = kKubeVersion;  // "v1.32.0"
  if (!v.empty() && v[0] == 'v') v.erase(0, 1);
  return "kube-probe/" + v.substr(0, v.rfind('.'));
}

std::string hostPort(const std::string& host, int32_t port) {
  return host.find(':') != std::string::npos ? "[" + host + "]:" + std::to_string(port)
                                             : host + ":" + std::to_string(port);
}

size_t discard(char*, size_t size, size_t n, void*) { return size * n; }

}  // namespace

std::string_view toString(ProbeResult r) {
  switch (r) {
    case ProbeResult::Unknown: return "unknown";
    case ProbeResult::Success: return "success";
    case ProbeResult::Failure: return "failure";
  }
  return "?";
}

Result<int32_t> resolvePort(const api::IntOrString& port, const std::vector<api::ContainerPort>& ports) {
  if (port.is_int) {
    if (port.int_value < 1 || port.int_value > 65535)
      return fail(ErrorCode::InvalidArgument, "invalid port number: " + std::to_string(port.int_value));
    return port.int_value;
  }
  for (const auto& p : ports)
    if (p.name == port.str_value) return p.container_port;
  return fail(ErrorCode::NotFound, "couldn't find port \"" + port.str_value + "\" in the container's ports");
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
      const int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count());
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
  std::string url = scheme + "://" + hostPort(host, *port) + path;
  const auto deadline_ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count();
  // Redirects are followed only to the same host (at most 10), as the kubelet does; a redirect
  // elsewhere counts as success.
  for (int hop = 0; hop <= 10; ++hop) {
    std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
    if (!curl) return {ProbeResult::Failure, "curl_easy_init failed"};
    curl_slist* headers = nullptr;
    bool ua = false;
    for (const auto& h : a.http_headers) {
      headers = curl_slist_append(headers, (h.name + ": " + h.value).c_str());
      ua = ua || strcasecmp(h.name.c_str(), "User-Agent") == 0;
    }
    if (!ua) headers = curl_slist_append(headers, ("User-Agent: " + userAgent()).c_str());
    headers = curl_slist_append(headers, "Accept: */*");
    std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> hguard(headers, curl_slist_free_all);
    curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl.get(), CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS, static_cast<long>(deadline_ms));
    curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl.get(), CURLOPT_SSL_VERIFYPEER, 0L);  // probes do not verify certificates
    curl_easy_setopt(curl.get(), CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, discard);  // the body is ignored
    curl_easy_setopt(curl.get(), CURLOPT_PROTOCOLS_STR, "http,https");
    const CURLcode rc = curl_easy_perform(curl.get());
    if (rc != CURLE_OK)
      return {ProbeResult::Failure, "Get \"" + url + "\": " + curl_easy_strerror(rc)};
    long code = 0;
    curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &code);
    if (code >= 300 && code < 400) {
      char* location = nullptr;
      curl_easy_getinfo(curl.get(), CURLINFO_REDIRECT_URL, &location);
      if (!location) return {ProbeResult::Success, ""};
      const std::string next = location;
      const std::string same = scheme + "://" + hostPort(host, *port) + "/";
      if (!next.starts_with(same) && next != same.substr(0, same.size() - 1))
        return {ProbeResult::Success, "Probe terminated redirects, Response: " + std::to_string(code)};
      url = next;
      continue;
    }
    if (code >= 200 && code < 400) return {ProbeResult::Success, ""};
    return {ProbeResult::Failure, "HTTP probe failed with statuscode: " + std::to_string(code)};
  }
  return {ProbeResult::Failure, "Get \"" + url + "\": stopped after 10 redirects"};
}

DefaultRunner::DefaultRunner(ExecFn exec) : exec_(std::move(exec)), grpc_(std::make_unique<GrpcHealthChecker>()) {}
DefaultRunner::~DefaultRunner() = default;

Outcome DefaultRunner::run(const api::Handler& h, const std::string& container_id, const Endpoint& e,
                           Duration timeout) {
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
