#include "agent/stream_proxy.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstring>
#include <memory>

namespace nodelet::agent {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Go's wording for a system error: "connection refused", not "Connection refused".
std::string errnoText(int err) {
  std::string s = std::strerror(err);
  if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Time left until the deadline, as a poll() timeout (re-checked at least every minute).
int remainingMs(const Clock& clock, MonoTime deadline) {
  const auto left =
      std::chrono::ceil<std::chrono::milliseconds>(deadline - clock.monotonicNow()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, 60'000));
}

// Waits for `events` on fd until the deadline; false on timeout or cancellation (with why).
struct Deadline {
  const Clock& clock;
  MonoTime at;
  int cancel_fd;
};

Status waitFor(int fd, short events, const Deadline& d, const char* what) {
  for (;;) {
    const int ms = remainingMs(d.clock, d.at);
    if (ms == 0) return fail(ErrorCode::DeadlineExceeded, std::string(what) + ": timed out");
    pollfd p[2] = {{fd, events, 0}, {d.cancel_fd, POLLIN, 0}};
    const int n = ::poll(p, 2, ms);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(ErrorCode::Internal, std::string(what) + ": " + errnoText(errno));
    if (p[1].revents)
      return fail(ErrorCode::Cancelled, std::string(what) + ": node server stopping");
    if (p[0].revents) return {};
  }
}

Result<Fd> dial(const StreamUrl& url, const Deadline& d) {
  const std::string where = "dial tcp " + url.authority();
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(url.host.c_str(), url.port.c_str(), &hints, &found); rc != 0)
    return fail(ErrorCode::Unavailable, "error dialing backend: " + where + ": lookup " + url.host +
                                            ": " + gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(found, ::freeaddrinfo);
  std::string last = "no address";
  for (addrinfo* a = found; a; a = a->ai_next) {
    Fd fd(::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol));
    if (fd.get() < 0) {
      last = errnoText(errno);
      continue;
    }
    const int one = 1;  // a stream's small frames go at once (Go's default for every TCP conn)
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(fd.get(), a->ai_addr, a->ai_addrlen) == 0) return fd;
    if (errno != EINPROGRESS) {
      last = "connect: " + errnoText(errno);
      continue;
    }
    if (auto w = waitFor(fd.get(), POLLOUT, d, "connect"); !w) {
      return fail(w.error().code, "error dialing backend: " + where + ": " + w.error().message);
    }
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err == 0) return fd;
    last = "connect: " + errnoText(err);
  }
  return fail(ErrorCode::Unavailable, "error dialing backend: " + where + ": " + last);
}

Status sendAll(int fd, std::string_view data, const Deadline& d) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (auto w = waitFor(fd, POLLOUT, d, "error sending request"); !w) return w;
    } else {
      return fail(ErrorCode::Unavailable, "error sending request: " + errnoText(errno));
    }
  }
  return {};
}

// Reads the runtime's response head; `got` keeps everything read (the head and whatever the
// runtime sent after it, which belongs to the stream). Returns the status code.
Result<int> readResponseHead(int fd, std::string& got, const Deadline& d) {
  constexpr size_t kMaxHead = 64 * 1024;
  std::array<char, 4096> buf;
  while (got.find("\r\n\r\n") == std::string::npos) {
    if (got.size() > kMaxHead)
      return fail(ErrorCode::Internal, "invalid upgrade response: headers too long");
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n > 0) {
      got.append(buf.data(), static_cast<size_t>(n));
    } else if (n == 0) {
      return fail(ErrorCode::Unavailable, "error reading backend response: unexpected EOF");
    } else if (errno == EAGAIN || errno == EINTR) {
      if (auto w = waitFor(fd, POLLIN, d, "error reading backend response"); !w)
        return std::unexpected(w.error());
    } else {
      return fail(ErrorCode::Unavailable, "error reading backend response: " + errnoText(errno));
    }
  }
  // "HTTP/1.1 101 Switching Protocols"
  if (got.size() < 12 || !got.starts_with("HTTP/1.") || got[8] != ' ' ||
      !std::all_of(got.begin() + 9, got.begin() + 12, ::isdigit))
    return fail(ErrorCode::Internal, "invalid upgrade response: malformed status line");
  return std::stoi(got.substr(9, 3));
}

// Copies bytes both ways between the client's TLS connection and the runtime until either side
// closes, fails, or the proxy is cancelled. Both sockets are non-blocking; at most one buffer is
// in flight each way, so a slow reader holds back its writer (TCP's back-pressure, end to end).
class Relay {
 public:
  Relay(SSL* ssl, int client, int backend, int cancel, std::chrono::milliseconds idle)
      : ssl_(ssl), client_(client), backend_(backend), cancel_(cancel), idle_(idle) {}

  void run(std::string first_to_client) {
    to_client_ = std::move(first_to_client);
    for (;;) {
      Wants w;
      if (!move(w)) return;
      pollfd p[3] = {{w.client ? client_ : -1, w.client, 0},
                     {w.backend ? backend_ : -1, w.backend, 0},
                     {cancel_, POLLIN, 0}};
      const int n = ::poll(
          p, 3,
          idle_.count() > 0 ? static_cast<int>(std::min<int64_t>(idle_.count(), INT_MAX)) : -1);
      if (n == 0) return;  // idle too long
      if (n < 0 && errno != EINTR) return;
      if (p[2].revents) return;
    }
  }

 private:
  struct Wants {
    short client{0};
    short backend{0};
  };

  // Moves what can move without waiting; says what to wait for. False: the relay is over.
  bool move(Wants& w) {
    for (bool moved = true; moved;) {
      moved = false;
      w = {};
      if (to_backend_.empty()) {
        const int n = SSL_read(ssl_, buf_.data(), static_cast<int>(buf_.size()));
        if (n > 0) {
          to_backend_.assign(buf_.data(), static_cast<size_t>(n));
          sent_ = 0;
          moved = true;
        } else if (!sslWants(n, w)) {
          return false;  // the client closed or failed: everything it sent has gone on
        }
      }
      if (!to_backend_.empty()) {
        const ssize_t n =
            ::send(backend_, to_backend_.data() + sent_, to_backend_.size() - sent_, MSG_NOSIGNAL);
        if (n > 0) {
          sent_ += static_cast<size_t>(n);
          if (sent_ == to_backend_.size()) to_backend_.clear();
          moved = true;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
          w.backend |= POLLOUT;
        } else {
          return false;
        }
      }
      if (to_client_.empty()) {
        const ssize_t n = ::recv(backend_, buf_.data(), buf_.size(), 0);
        if (n > 0) {
          to_client_.assign(buf_.data(), static_cast<size_t>(n));
          moved = true;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
          w.backend |= POLLIN;
        } else {
          return false;  // the runtime closed: everything it sent has reached the client
        }
      }
      if (!to_client_.empty()) {
        // Without SSL_MODE_ENABLE_PARTIAL_WRITE a write is all or nothing, and a retry must
        // pass the same buffer: to_client_ is left alone until it succeeds.
        const int n = SSL_write(ssl_, to_client_.data(), static_cast<int>(to_client_.size()));
        if (n > 0) {
          to_client_.clear();
          moved = true;
        } else if (!sslWants(n, w)) {
          return false;
        }
      }
    }
    return true;
  }

  bool sslWants(int rc, Wants& w) {
    switch (SSL_get_error(ssl_, rc)) {
      case SSL_ERROR_WANT_READ:
        w.client |= POLLIN;
        return true;
      case SSL_ERROR_WANT_WRITE:
        w.client |= POLLOUT;
        return true;
      default:
        ERR_clear_error();
        return false;
    }
  }

  SSL* ssl_;
  int client_, backend_, cancel_;
  std::chrono::milliseconds idle_;
  std::array<char, 16 * 1024> buf_;
  std::string to_backend_;
  size_t sent_{0};
  std::string to_client_;
};

}  // namespace

bool isUpgradeRequest(const HeaderList& headers) {
  for (const auto& [k, v] : headers)
    if (iequals(k, "Connection") && lower(v).find("upgrade") != std::string::npos) return true;
  return false;
}

bool isWebSocketRequest(const HeaderList& headers) {
  for (const auto& [k, v] : headers)
    if (iequals(k, "Upgrade") && iequals(v, "websocket")) return isUpgradeRequest(headers);
  return false;
}

std::string StreamUrl::authority() const {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + port;
}

Result<StreamUrl> parseStreamUrl(const std::string& url) {
  constexpr std::string_view kScheme = "http://";
  if (!url.starts_with(kScheme))
    return fail(ErrorCode::Unimplemented,
                "streaming URL \"" + url + "\": only http:// streaming servers can be relayed");
  std::string_view rest(url);
  rest.remove_prefix(kScheme.size());
  const size_t end = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, end);
  StreamUrl u;
  u.target = end == std::string_view::npos ? "/" : std::string(rest.substr(end));
  if (u.target.starts_with('?')) u.target.insert(0, "/");
  std::string_view port;
  if (authority.starts_with('[')) {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos)
      return fail(ErrorCode::InvalidArgument, "streaming URL \"" + url + "\": bad host");
    u.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':')
        return fail(ErrorCode::InvalidArgument, "streaming URL \"" + url + "\": bad host");
      port = authority.substr(close + 2);
    }
  } else {
    const size_t colon = authority.rfind(':');
    u.host = authority.substr(0, colon);
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  u.port = port.empty() ? "80" : std::string(port);
  const bool numeric = std::all_of(u.port.begin(), u.port.end(), ::isdigit) && u.port.size() <= 5;
  if (u.host.empty() || !numeric || std::stoi(u.port) == 0 || std::stoi(u.port) > 65535)
    return fail(ErrorCode::InvalidArgument, "streaming URL \"" + url + "\": bad host or port");
  return u;
}

std::string backendRequest(const UpgradeRequest& req, const StreamUrl& url) {
  std::string out =
      req.method + " " + url.target + " HTTP/1.1\r\nHost: " + url.authority() + "\r\n";
  std::string forwarded;
  for (const auto& [k, v] : req.headers) {
    if (iequals(k, "X-Forwarded-For")) {
      forwarded += (forwarded.empty() ? "" : ", ") + v;
      continue;
    }
    // Host is the runtime's; credentials were for nodelet; the body's length is restated below;
    // REMOTE_ADDR and friends are cpp-httplib's, not the client's.
    if (iequals(k, "Host") || iequals(k, "Authorization") || iequals(k, "Content-Length") ||
        iequals(k, "Transfer-Encoding") || iequals(k, "REMOTE_ADDR") || iequals(k, "REMOTE_PORT") ||
        iequals(k, "LOCAL_ADDR") || iequals(k, "LOCAL_PORT"))
      continue;
    out += k + ": " + v + "\r\n";
  }
  if (!req.client_ip.empty())
    out +=
        "X-Forwarded-For: " + (forwarded.empty() ? "" : forwarded + ", ") + req.client_ip + "\r\n";
  else if (!forwarded.empty())
    out += "X-Forwarded-For: " + forwarded + "\r\n";
  if (!req.body.empty() || req.method == "POST" || req.method == "PUT" || req.method == "PATCH")
    out += "Content-Length: " + std::to_string(req.body.size()) + "\r\n";
  out += "\r\n";
  out += req.body;
  return out;
}

StreamProxy::StreamProxy(Clock& clock, Options o)
    : clock_(clock), o_(o), cancel_fd_(::eventfd(0, EFD_CLOEXEC)) {}

StreamProxy::~StreamProxy() {
  if (cancel_fd_ >= 0) ::close(cancel_fd_);
}

void StreamProxy::cancel() {
  const uint64_t one = 1;
  (void)!::write(cancel_fd_, &one, sizeof one);
}

Result<int> StreamProxy::relay(SSL* ssl, const UpgradeRequest& req, const std::string& raw_url) {
  auto url = parseStreamUrl(raw_url);
  if (!url) return std::unexpected(url.error());
  const Deadline deadline{clock_, clock_.monotonicNow() + o_.handshake_timeout, cancel_fd_};
  auto backend = dial(*url, deadline);
  if (!backend) return std::unexpected(backend.error());
  if (auto s = sendAll(backend->get(), backendRequest(req, *url), deadline); !s)
    return std::unexpected(s.error());
  std::string head;
  auto code = readResponseHead(backend->get(), head, deadline);
  if (!code) return code;
  // The kubelet passes error answers on as they are (the runtime's message reaches kubectl) and
  // turns anything else that is not an upgrade into its own error.
  if (*code != 101 && *code < 400)
    return fail(ErrorCode::Internal,
                "invalid upgrade response: status code " + std::to_string(*code));
  const int client = SSL_get_fd(ssl);
  const int flags = ::fcntl(client, F_GETFL);
  ::fcntl(client, F_SETFL, flags | O_NONBLOCK);
  const int one = 1;
  ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  Relay(ssl, client, backend->get(), cancel_fd_, o_.idle_timeout).run(std::move(head));
  ::fcntl(client, F_SETFL, flags);
  ERR_clear_error();
  return code;
}

}  // namespace nodelet::agent
