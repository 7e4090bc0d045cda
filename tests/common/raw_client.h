#pragma once
// A raw client for tests that speak past HTTP, over TLS (the node server) or plain TCP (the
// runtime's streaming server): it writes bytes and reads what comes back, so an upgraded
// connection (exec, port-forward) can be driven by hand. Loopback only. The server's certificate
// is not verified (the tests make their own). Every read is bounded by a timeout.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <string>
#include <string_view>

namespace nodelet::testing {

class RawClient {
 public:
  RawClient() : ctx_(SSL_CTX_new(TLS_client_method())) {}
  ~RawClient() {
    close();
    SSL_CTX_free(ctx_);
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  // To 127.0.0.1:port, with TLS or without.
  bool connect(int port, bool tls = true) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return false;
    timeval tv{10, 0};  // a handshake that hangs fails the test rather than hanging it
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (!tls) return true;
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    return SSL_connect(ssl_) == 1;
  }

  bool write(std::string_view data) {
    if (!ssl_)
      return ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL) ==
             static_cast<ssize_t>(data.size());
    return SSL_write(ssl_, data.data(), static_cast<int>(data.size())) ==
           static_cast<int>(data.size());
  }

  // Reads until `done(all read so far)` holds, the server closes, or `timeout` passes; returns
  // what this call read. eof() says whether the server closed.
  std::string readUntil(const std::function<bool(const std::string&)>& done,
                        std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::string got;
    // Real time: a bound on waiting for a real socket.
    const auto deadline = std::chrono::steady_clock::now() + timeout;  // NOLINT(real-time)
    char buf[16 * 1024];
    while (!done(got) && !eof_) {
      if (!ssl_ || SSL_pending(ssl_) == 0) {
        const auto now = std::chrono::steady_clock::now();  // NOLINT(real-time)
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
        if (left <= 0) break;
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left)) <= 0) break;
      }
      if (!ssl_) {
        const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n > 0)
          got.append(buf, static_cast<size_t>(n));
        else
          eof_ = true;
        continue;
      }
      const int n = SSL_read(ssl_, buf, sizeof buf);
      if (n > 0) {
        got.append(buf, static_cast<size_t>(n));
      } else {
        const int err = SSL_get_error(ssl_, n);
        ERR_clear_error();
        if (err == SSL_ERROR_WANT_READ) continue;
        eof_ = true;
      }
    }
    return got;
  }
  std::string readToEof(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    return readUntil([](const std::string&) { return false; }, timeout);
  }
  // Reads the response head ("...\r\n\r\n") and returns it; anything after it is in `rest`.
  std::string readHead(std::string& rest) {
    std::string got =
        readUntil([](const std::string& s) { return s.find("\r\n\r\n") != std::string::npos; });
    const size_t end = got.find("\r\n\r\n");
    if (end == std::string::npos) return got;
    rest = got.substr(end + 4);
    return got.substr(0, end + 4);
  }
  bool eof() const { return eof_; }

  void close() {
    if (ssl_) {
      SSL_shutdown(ssl_);
      SSL_free(ssl_);
      ssl_ = nullptr;
    }
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  SSL_CTX* ctx_;
  SSL* ssl_{nullptr};
  int fd_{-1};
  bool eof_{false};
};

}  // namespace nodelet::testing
