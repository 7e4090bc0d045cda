#pragma once
// Plain HTTP and TCP probes on one epoll loop: a probe in flight is a non-blocking socket and a
// deadline, not a thread blocked in connect() or recv(). At 110 pods x 2 probes every second
// this is what keeps probing cheap: no thread hand-off per probe, no per-probe HTTP client
// object, no regular expressions. HTTPS, exec, gRPC and host names that need a DNS lookup
// stay on the manager's small thread pool (they block by nature, or are rare).
//
// The loop thread starts with the first probe, so a node without probes pays nothing.
// Completions run on the loop thread; they must not block.
#include <sys/socket.h>

#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "agent/core/clock.h"
#include "probes/runner.h"

namespace nodelet::probes {

class NetProber {
 public:
  using Done = std::function<void(Outcome)>;

  // Where to connect: a numeric address (no DNS on the loop).
  struct Address {
    sockaddr_storage addr{};
    socklen_t len{0};
    std::string ip;
    int32_t port{0};
    std::string host_port;  // "10.0.0.7:80" or "[fd00::7]:80", for messages and Host
  };
  // Parses a numeric IPv4/IPv6 address; nullopt for a host name.
  static std::optional<Address> numeric(const std::string& ip, int32_t port);

  explicit NetProber(Clock& clock);
  ~NetProber();
  NetProber(const NetProber&) = delete;
  NetProber& operator=(const NetProber&) = delete;

  // Success once the connection is accepted (the kubelet's tcpSocket probe).
  void tcp(const Address& to, Duration timeout, Done done);
  // GET `path` over plain HTTP: 200-399 is success, redirects followed (at most 10) only to
  // the same host and port, a redirect elsewhere is a success that says so (the kubelet's
  // httpGet probe). `headers` are the probe's httpHeaders; a Host header sets the Host.
  void http(const Address& to, std::string path, std::vector<api::HttpHeader> headers,
            Duration timeout, Done done);

  // Probes in flight, for tests.
  size_t inFlight() const;

 private:
  enum class Phase { Connecting, Writing, Reading };
  struct Conn {
    bool http{false};
    Address to;
    std::string path;  // HTTP: the current path (redirects change it)
    std::string head;  // HTTP: the request after its request line
    std::string out;   // HTTP: the request being written
    size_t sent{0};
    std::string in;                        // HTTP: the response read so far
    size_t header_end{0};                  // offset of the body once the headers are in
    size_t body_dropped{0};                // body bytes read but not kept
    std::pair<size_t, size_t> location{};  // Location header: offset and length in `in`
    std::optional<size_t> content_length;
    bool chunked{false};
    int status{0};
    int hops{0};
    MonoTime deadline{};
    int fd{-1};
    bool watched{false};  // in the epoll set
    Phase phase{Phase::Connecting};
    Done done;
  };
  void submit(Conn c);
  void loop(std::stop_token st);
  void begin(uint64_t id);  // opens the socket and starts connecting
  void advance(uint64_t id);
  void watch(Conn& c, uint64_t id, uint32_t events);  // adds to the epoll set, or modifies
  void finish(uint64_t id, Outcome o);
  void redirect(uint64_t id, Address to, std::string path);

  Clock& clock_;
  int epoll_{-1};
  int wake_{-1};  // eventfd: new probes or stop
  mutable std::mutex mu_;
  std::vector<Conn> pending_;  // submitted, not yet started by the loop
  size_t in_flight_{0};
  // The loop thread's own state (no lock): connections by a serial that is never reused, so a
  // stale event for a closed descriptor cannot reach the probe that got the same number.
  std::unordered_map<uint64_t, Conn> conns_;
  uint64_t next_id_{1};
  std::jthread thread_;  // last: stops first
};

}  // namespace nodelet::probes
