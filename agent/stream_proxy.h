#pragma once
// kubectl exec/attach/port-forward reach a container through the runtime's streaming server:
// CRI Exec/Attach/PortForward return a URL on it, and the node server relays the client's upgrade
// request (SPDY/3.1 or WebSocket) to that URL, as the kubelet's upgrade-aware proxy does. The
// relay sends the client's request on, passes the runtime's answer back and then copies bytes both
// ways until either side is done. It never reads the streams: the runtime speaks the protocol.
#include <openssl/ssl.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "agent/core/clock.h"
#include "agent/core/error.h"

namespace nodelet::agent {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// Whether a request asks to upgrade its connection: a Connection header that says "upgrade"
// (any case, anywhere in the value, as the kubelet checks it).
bool isUpgradeRequest(const HeaderList& headers);
// An upgrade to WebSocket (Upgrade: websocket), as opposed to SPDY/3.1.
bool isWebSocketRequest(const HeaderList& headers);

struct UpgradeRequest {
  std::string method;
  HeaderList headers;  // as the client sent them
  std::string body;
  std::string client_ip;  // appended to X-Forwarded-For
};

// Where a streaming URL points: only plain http, as containerd serves it on 127.0.0.1 (the
// kubelet's proxy could not verify a runtime's self-signed certificate either).
struct StreamUrl {
  std::string host;  // without brackets for IPv6
  std::string port;
  std::string target;  // path and query
  std::string authority() const;
};
Result<StreamUrl> parseStreamUrl(const std::string& url);

// The request the runtime receives: the client's method and headers for the URL's target, with
// Host set to the runtime, the caller's address appended to X-Forwarded-For, and neither the
// client's credentials nor cpp-httplib's REMOTE_/LOCAL_ pseudo-headers passed on.
std::string backendRequest(const UpgradeRequest& req, const StreamUrl& url);

class StreamProxy {
 public:
  struct Options {
    // Connecting to the runtime and reading its answer.
    std::chrono::milliseconds handshake_timeout{std::chrono::seconds(30)};
    // A stream without a byte either way for this long ends (streamingConnectionIdleTimeout;
    // 0: never, the runtime's own limit still applies).
    std::chrono::milliseconds idle_timeout{0};
  };
  // The handshake's deadline is on `clock`; a stream's idle time is poll()'s own.
  StreamProxy(Clock& clock, Options o);
  ~StreamProxy();
  StreamProxy(const StreamProxy&) = delete;
  StreamProxy& operator=(const StreamProxy&) = delete;

  // Relays `req` from the client on the TLS connection `client` to `url`. Until the runtime has
  // answered, nothing is written to the client and failures are returned for the caller to
  // answer (the kubelet answers them 500). Once the runtime answered 101 (or an error status,
  // passed on verbatim as the kubelet does), the relay owns the connection until either side
  // closes it, and returns the runtime's status code.
  Result<int> relay(SSL* client, const UpgradeRequest& req, const std::string& url);

  // Ends every relay in flight, and any later one at once (the node server is stopping).
  void cancel();

 private:
  Clock& clock_;
  Options o_;
  int cancel_fd_{-1};
};

}  // namespace nodelet::agent
