#pragma once
// The API server client: JSON over HTTPS with libcurl. TLS verification on (unless the
// kubeconfig says insecure-skip-tls-verify), x509 client certificates or bearer tokens,
// connections reused across requests (HTTP/2 where the server offers it), a timeout on every
// request, a client-side token-bucket rate limit (kubeAPIQPS/kubeAPIBurst), and retries with
// back-off for 429, 5xx and connection failures (Retry-After honoured).
//
// Replies are returned as they are: callers branch on the HTTP code and the Status reason
// (Response::reason()), exactly as client-go's callers branch on IsNotFound/IsConflict/...
#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <string_view>

#include "agent/core/clock.h"
#include "agent/core/error.h"
#include "agent/kube/kubeconfig.h"

struct curl_slist;

namespace nodelet::kube {

struct ClientOptions {
  double qps{50};  // kubeAPIQPS; <= 0 disables the limit
  int burst{100};  // kubeAPIBurst
  Duration timeout{std::chrono::seconds(10)};
  Duration connect_timeout{std::chrono::seconds(5)};
  int max_retries{4};
  Duration retry_base{std::chrono::milliseconds(100)};
  Duration retry_max{std::chrono::seconds(5)};
  std::string user_agent;
};

struct Response {
  long code{0};
  std::string body;
  int retry_after_seconds{-1};  // from the Retry-After header, -1 when absent

  bool ok() const { return code >= 200 && code < 300; }
  // From the meta/v1 Status body of an error reply ("" when the body is not one).
  std::string reason() const;
  std::string message() const;
  // "pods \"x\" not found (404 NotFound)": for logs and wrapped errors.
  std::string describe() const;
  Error toError(std::string_view context) const;
};

// Why a watch stream ended.
struct StreamEnd {
  long code{0};      // the HTTP status (200 for a stream that ran and ended)
  std::string body;  // the reply body when code != 200
};

class Client {
 public:
  Client(KubeConfig config, Clock& clock, ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // One request, retried as described above. A transport failure after the retries is an
  // Unavailable error; any HTTP reply is a Response.
  Result<Response> request(std::string_view method, const std::string& path,
                           const std::string& body = "",
                           std::string_view content_type = "application/json");
  Result<Response> get(const std::string& path) { return request("GET", path); }

  // A streaming GET (a watch). `on_line` gets every newline-terminated line of a 200 reply as
  // it arrives (events may span network chunks); returning false ends the stream. Returns when
  // the server closes the stream, `on_line` says stop, `stop` is requested, or `max_duration`
  // passes. Not retried: the caller re-lists or re-watches.
  Result<StreamEnd> stream(const std::string& path,
                           const std::function<bool(std::string_view line)>& on_line,
                           std::stop_token stop, Duration max_duration);

  const std::string& server() const { return config_.server; }
  // Client certificate rotation: requests from now on present this certificate and key
  // (connections made with the old one are not reused for them).
  void setClientCertificate(std::string cert_pem, std::string key_pem);

 private:
  struct Curl;
  void* newHandle(const std::string& url, ::curl_slist** headers);
  std::string bearerToken();
  void throttle();
  void waitFor(Duration d);

  KubeConfig config_;
  Clock& clock_;
  ClientOptions o_;
  std::unique_ptr<Curl> curl_;

  std::mutex mu_;  // the token bucket, the token file cache, the client certificate, and waits
  std::condition_variable cv_;
  double tokens_;
  MonoTime last_refill_;
  std::string file_token_;
  MonoTime file_token_read_{};
  bool file_token_valid_{false};
};

}  // namespace nodelet::kube
