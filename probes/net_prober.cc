#include "probes/net_prober.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>

#include "agent/core/log.h"

namespace nodelet::probes {
namespace {

// The kubelet reads at most 10 KiB of a probe's response body; headers beyond 64 KiB are an
// error (Go's default limit is larger, but no health endpoint needs more).
constexpr size_t kMaxBody = 10 * 1024;
constexpr size_t kMaxHeader = 64 * 1024;
constexpr int kMaxRedirects = 10;
constexpr uint64_t kWakeId = 0;

// errno text as Go prints it ("connection refused", lower case).
std::string goError(int err) {
  std::string s = std::strerror(err);
  if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A header value or path must not end the request line or a header early.
bool clean(std::string_view s) { return s.find_first_of("\r\n") == std::string_view::npos; }

}  // namespace

std::optional<NetProber::Address> NetProber::numeric(const std::string& ip, int32_t port) {
  Address a;
  a.ip = ip;
  a.port = port;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.addr);
  if (::inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    a.len = sizeof(sockaddr_in);
    a.host_port = ip + ":" + std::to_string(port);
    return a;
  }
  if (::inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    a.len = sizeof(sockaddr_in6);
    a.host_port = "[" + ip + "]:" + std::to_string(port);
    return a;
  }
  return std::nullopt;
}

NetProber::NetProber(Clock& clock) : clock_(clock) {}

NetProber::~NetProber() {
  if (thread_.joinable()) {
    thread_.request_stop();
    const uint64_t one = 1;
    (void)!::write(wake_, &one, sizeof one);
    thread_.join();
  }
  for (auto& [id, c] : conns_)
    if (c.fd >= 0) ::close(c.fd);
  if (epoll_ >= 0) ::close(epoll_);
  if (wake_ >= 0) ::close(wake_);
}

size_t NetProber::inFlight() const {
  std::lock_guard g(mu_);
  return in_flight_;
}

void NetProber::tcp(const Address& to, Duration timeout, Done done) {
  Conn c;
  c.to = to;
  c.deadline = clock_.monotonicNow() + timeout;
  c.done = std::move(done);
  submit(std::move(c));
}

void NetProber::http(const Address& to, std::string path, std::vector<api::HttpHeader> headers,
                     Duration timeout, Done done) {
  Conn c;
  c.http = true;
  c.to = to;
  c.path = path.empty() ? "/" : std::move(path);
  if (c.path[0] != '/') c.path.insert(0, "/");
  c.deadline = clock_.monotonicNow() + timeout;
  c.done = std::move(done);
  bool ua = false, accept = false, host = false;
  std::string extra;
  for (const auto& h : headers) {
    if (!clean(h.name) || !clean(h.value) || h.name.empty()) {
      c.done(Outcome{ProbeResult::Failure,
                     "invalid header " + std::string(clean(h.name) ? h.name : "name")});
      return;
    }
    if (iequals(h.name, "Host")) {
      host = true;
      c.head.insert(0, "Host: " + h.value + "\r\n");
      continue;
    }
    ua = ua || iequals(h.name, "User-Agent");
    accept = accept || iequals(h.name, "Accept");
    extra += h.name + ": " + h.value + "\r\n";
  }
  if (!clean(c.path)) {
    c.done(Outcome{ProbeResult::Failure, "invalid path"});
    return;
  }
  // As Go's client writes it for the kubelet: Host first, then the probe's headers; the
  // kubelet adds its User-Agent and Accept unless the probe set them, and closes every
  // connection after one request.
  std::string head = host ? c.head : "Host: " + to.host_port + "\r\n";
  if (!ua) head += "User-Agent: " + kubeProbeUserAgent() + "\r\n";
  if (!accept) head += "Accept: */*\r\n";
  head += extra;
  head += "Connection: close\r\n\r\n";
  c.head = std::move(head);
  submit(std::move(c));
}

void NetProber::submit(Conn c) {
  std::lock_guard g(mu_);
  if (!thread_.joinable()) {
    epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    wake_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (epoll_ < 0 || wake_ < 0) {
      const std::string why = std::string("epoll: ") + std::strerror(errno);
      for (int* fd : {&epoll_, &wake_}) {
        if (*fd >= 0) ::close(*fd);
        *fd = -1;
      }
      c.done(Outcome{ProbeResult::Unknown, why});
      return;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kWakeId;
    ::epoll_ctl(epoll_, EPOLL_CTL_ADD, wake_, &ev);
    thread_ = std::jthread([this](std::stop_token st) { loop(st); });
  }
  ++in_flight_;
  const bool was_empty = pending_.empty();
  pending_.push_back(std::move(c));
  // One wake-up for a batch: the manager hands over every probe due in a grid slot at once.
  if (was_empty) {
    const uint64_t one = 1;
    (void)!::write(wake_, &one, sizeof one);
  }
}

void NetProber::loop(std::stop_token st) {
  std::vector<epoll_event> events(64);
  std::vector<Conn> started;
  std::vector<uint64_t> expired;
  while (!st.stop_requested()) {
    int timeout_ms = -1;
    if (!conns_.empty()) {
      MonoTime first = MonoTime::max();
      for (const auto& [id, c] : conns_) first = std::min(first, c.deadline);
      const auto left = first - clock_.monotonicNow();
      timeout_ms =
          left <= Duration::zero()
              ? 0
              : static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(left).count());
    }
    const int n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), timeout_ms);
    if (n < 0 && errno != EINTR) {
      NODELET_LOG(error, Probes, "probe loop stopped: epoll_wait: {}", std::strerror(errno));
      while (!conns_.empty())
        finish(conns_.begin()->first, {ProbeResult::Unknown, "probe loop stopped"});
      return;
    }
    for (int i = 0; i < n; ++i) {
      const uint64_t id = events[static_cast<size_t>(i)].data.u64;
      if (id != kWakeId) {
        advance(id);
        continue;
      }
      uint64_t count = 0;
      (void)!::read(wake_, &count, sizeof count);
      {
        std::lock_guard g(mu_);
        started.swap(pending_);
      }
      for (auto& c : started) {
        const uint64_t nid = next_id_++;
        conns_.emplace(nid, std::move(c));
        begin(nid);
      }
      started.clear();
    }
    const MonoTime now = clock_.monotonicNow();
    for (const auto& [id, c] : conns_)
      if (c.deadline <= now) expired.push_back(id);
    for (const uint64_t id : expired) {
      Conn& c = conns_.at(id);
      if (!c.http) {
        finish(id, {ProbeResult::Failure, "dial tcp " + c.to.host_port + ": i/o timeout"});
      } else if (c.header_end > 0) {
        // Headers are in, the body is slow: the status decides (the body is not used).
        finish(id, c.status < 400
                       ? Outcome{ProbeResult::Success, ""}
                       : Outcome{ProbeResult::Failure,
                                 "HTTP probe failed with statuscode: " + std::to_string(c.status)});
      } else {
        finish(id, {ProbeResult::Failure,
                    "Get \"http://" + c.to.host_port + c.path +
                        "\": context deadline exceeded (Client.Timeout exceeded while awaiting "
                        "headers)"});
      }
    }
    expired.clear();
  }
}

void NetProber::begin(uint64_t id) {
  Conn& c = conns_.at(id);
  c.fd = ::socket(c.to.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c.fd < 0) {
    finish(id, {ProbeResult::Unknown, std::string("socket: ") + std::strerror(errno)});
    return;
  }
  if (::connect(c.fd, reinterpret_cast<const sockaddr*>(&c.to.addr), c.to.len) != 0 &&
      errno != EINPROGRESS) {
    const std::string why = "dial tcp " + c.to.host_port + ": connect: " + goError(errno);
    finish(id, {ProbeResult::Failure,
                c.http ? "Get \"http://" + c.to.host_port + c.path + "\": " + why : why});
    return;
  }
  // To a pod on this node's bridge the handshake usually completes inside connect(): then go
  // on at once (a TCP probe is done without touching epoll at all). Otherwise wait until the
  // socket is writable (connected, or failed).
  pollfd p{c.fd, POLLOUT, 0};
  if (::poll(&p, 1, 0) == 1) {
    advance(id);
    return;
  }
  watch(c, id, EPOLLOUT);
}

void NetProber::watch(Conn& c, uint64_t id, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = id;
  ::epoll_ctl(epoll_, c.watched ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c.fd, &ev);
  c.watched = true;
}

void NetProber::advance(uint64_t id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;  // finished earlier in this batch
  Conn& c = it->second;
  // "Get "http://10.0.0.7:80/healthz": ", the start of an HTTP probe's error (Go's wording).
  auto url = [&c] { return c.http ? "Get \"http://" + c.to.host_port + c.path + "\": " : ""; };
  if (c.phase == Phase::Connecting) {
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      finish(id, {ProbeResult::Failure,
                  url() + "dial tcp " + c.to.host_port + ": connect: " + goError(err)});
      return;
    }
    if (!c.http) {
      finish(id, {ProbeResult::Success, ""});
      return;
    }
    c.phase = Phase::Writing;
    c.out = "GET " + c.path + " HTTP/1.1\r\n" + c.head;
    c.sent = 0;
  }
  if (c.phase == Phase::Writing) {
    const ssize_t n = ::send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      finish(id, {ProbeResult::Failure, url() + "write: " + goError(errno)});
      return;
    }
    if (n > 0) c.sent += static_cast<size_t>(n);
    if (c.sent < c.out.size()) {
      if (!c.watched) watch(c, id, EPOLLOUT);
      return;
    }
    c.phase = Phase::Reading;
    watch(c, id, EPOLLIN);
    return;
  }
  // Reading.
  bool eof = false;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
    if (n > 0) {
      // The body matters only for a redirect's message or a chunked ending: otherwise it is
      // counted, not kept.
      if (c.header_end == 0 || c.chunked || (c.status >= 300 && c.status < 400))
        c.in.append(buf, static_cast<size_t>(n));
      else
        c.body_dropped += static_cast<size_t>(n);
      if (c.in.size() + c.body_dropped > kMaxHeader + kMaxBody) break;
      continue;
    }
    if (n == 0) {
      eof = true;
      break;
    }
    if (errno == EAGAIN || errno == EINTR) break;
    if (c.header_end > 0) {  // a reset after the headers: the status stands
      eof = true;
      break;
    }
    finish(id, {ProbeResult::Failure, url() + "read: " + goError(errno)});
    return;
  }
  if (c.header_end == 0) {
    const size_t end = c.in.find("\r\n\r\n");
    if (end == std::string::npos) {
      if (c.in.size() > kMaxHeader)
        finish(id, {ProbeResult::Failure, url() + "net/http: response headers too long"});
      else if (eof)
        finish(id, {ProbeResult::Failure, url() + "EOF"});
      return;
    }
    c.header_end = end + 4;
    // "HTTP/1.1 200 OK"
    const std::string_view head(c.in.data(), end);
    const size_t line_end = head.find("\r\n");
    const std::string_view status = head.substr(0, line_end);
    int code = 0;
    if (!status.starts_with("HTTP/1.") || status.size() < 12 || status[8] != ' ' ||
        std::from_chars(status.data() + 9, status.data() + 12, code).ec != std::errc() ||
        code < 100) {
      finish(id, {ProbeResult::Failure,
                  url() + "malformed HTTP response \"" +
                      std::string(status.substr(0, std::min<size_t>(status.size(), 64))) + "\""});
      return;
    }
    c.status = code;
    // Headers of interest, read once; the body is read (up to its limit) only to end the
    // exchange cleanly.
    for (size_t pos = line_end; pos != std::string_view::npos;) {
      const size_t next = head.find("\r\n", pos + 2);
      const std::string_view line = head.substr(
          pos + 2, next == std::string_view::npos ? std::string_view::npos : next - pos - 2);
      pos = next;
      const size_t colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      const std::string_view name = trim(line.substr(0, colon));
      const std::string_view value = trim(line.substr(colon + 1));
      if (iequals(name, "Location")) {
        c.location = {static_cast<size_t>(value.data() - c.in.data()), value.size()};
      } else if (iequals(name, "Content-Length")) {
        size_t v = 0;
        if (std::from_chars(value.data(), value.data() + value.size(), v).ec == std::errc())
          c.content_length = v;
      } else if (iequals(name, "Transfer-Encoding")) {
        c.chunked = value.find("chunked") != std::string_view::npos;
      }
    }
  }
  const size_t body = c.in.size() - c.header_end + c.body_dropped;
  const bool no_body = c.status == 204 || c.status == 304 || (c.status >= 100 && c.status < 200);
  const bool complete =
      eof || no_body || body >= kMaxBody || (c.content_length && body >= *c.content_length) ||
      (c.chunked && std::string_view(c.in).substr(c.header_end).ends_with("0\r\n\r\n"));
  if (!complete) return;
  const std::string_view location(c.in.data() + c.location.first, c.location.second);

  const int code = c.status;
  if (code >= 300 && code < 400 && !location.empty()) {
    // The kubelet follows a redirect only to the same host name (any port), at most 10 times;
    // elsewhere it stops and reports the redirect as a success with a warning.
    std::string next_path;
    std::optional<Address> next_to = c.to;
    if (location.front() == '/' && !location.starts_with("//")) {
      next_path = location;
    } else if (location.starts_with("http://")) {
      std::string_view rest = location.substr(7);
      const size_t slash = rest.find('/');
      const std::string_view authority = rest.substr(0, slash);
      next_path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
      std::string host;
      int32_t port = 80;
      if (authority.starts_with('[')) {
        const size_t close = authority.find(']');
        host = std::string(authority.substr(1, close == std::string_view::npos ? 0 : close - 1));
        if (close != std::string_view::npos && close + 1 < authority.size() &&
            authority[close + 1] == ':')
          std::from_chars(authority.data() + close + 2, authority.data() + authority.size(), port);
      } else {
        const size_t colon = authority.rfind(':');
        host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos)
          std::from_chars(authority.data() + colon + 1, authority.data() + authority.size(), port);
      }
      next_to = host == c.to.ip ? numeric(host, port) : std::nullopt;
    } else if (!location.contains(':')) {  // relative to the current path
      next_path = c.path.substr(0, c.path.rfind('/') + 1) + std::string(location);
    } else {
      next_to = std::nullopt;  // another scheme (https) or host: not followed here
    }
    if (next_to && clean(next_path)) {
      if (c.hops + 1 > kMaxRedirects) {
        finish(id, {ProbeResult::Failure, url() + "stopped after 10 redirects"});
        return;
      }
      redirect(id, std::move(*next_to), std::move(next_path));
      return;
    }
    const std::string_view text =
        std::string_view(c.in).substr(c.header_end, std::min(kMaxBody, c.in.size() - c.header_end));
    finish(id, {ProbeResult::Success,
                "Probe terminated redirects, Response body: " + std::string(text)});
    return;
  }
  if (code >= 200 && code < 400) {
    finish(id, {ProbeResult::Success, ""});
    return;
  }
  finish(id, {ProbeResult::Failure, "HTTP probe failed with statuscode: " + std::to_string(code)});
}

void NetProber::redirect(uint64_t id, Address to, std::string path) {
  Conn next = std::move(conns_.at(id));
  conns_.erase(id);
  ::close(next.fd);  // also leaves the epoll set
  next.fd = -1;
  next.watched = false;
  // Go's client sets Host from the URL it follows.
  const std::string old_host = "Host: " + next.to.host_port + "\r\n";
  if (next.head.starts_with(old_host))
    next.head.replace(0, old_host.size(), "Host: " + to.host_port + "\r\n");
  next.to = std::move(to);
  next.path = std::move(path);
  next.in.clear();
  next.body_dropped = 0;
  next.location = {};
  next.content_length.reset();
  next.chunked = false;
  next.header_end = 0;
  next.status = 0;
  next.phase = Phase::Connecting;
  ++next.hops;
  // A new serial: events still queued for the old descriptor cannot reach the new one.
  const uint64_t nid = next_id_++;
  conns_.emplace(nid, std::move(next));
  begin(nid);
}

void NetProber::finish(uint64_t id, Outcome o) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  Conn c = std::move(it->second);
  conns_.erase(it);
  if (c.fd >= 0) ::close(c.fd);
  {
    std::lock_guard g(mu_);
    --in_flight_;
  }
  c.done(std::move(o));
}

}  // namespace nodelet::probes
