// HTTP and TCP probes on the epoll loop (probes/net_prober.h), against servers on 127.0.0.1:
// well-behaved ones (cpp-httplib) and raw sockets that stall, talk garbage or redirect forever.
#include "probes/net_prober.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <thread>

#include "probes/runner.h"
#include "tests/common/free_port.h"

namespace nodelet::probes {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A listening socket whose connections get `reply` (then close), or nothing at all.
class RawServer {
 public:
  explicit RawServer(std::string reply, bool answer = true)
      : reply_(std::move(reply)), answer_(answer) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd_, 512), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      for (;;) {
        const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) return;  // shut down
        char buf[4096];
        const ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n > 0) {
          std::lock_guard g(mu_);
          requests_.emplace_back(buf, static_cast<size_t>(n));
        }
        if (answer_) {
          (void)!::send(c, reply_.data(), reply_.size(), MSG_NOSIGNAL);
          ::close(c);
        } else {
          held_.push_back(c);  // never answered
        }
      }
    });
  }
  ~RawServer() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
    for (int c : held_) ::close(c);
  }
  int port() const { return port_; }
  std::vector<std::string> requests() {
    std::lock_guard g(mu_);
    return requests_;
  }

 private:
  std::string reply_;
  bool answer_;
  int fd_{-1};
  int port_{0};
  std::mutex mu_;
  std::vector<std::string> requests_;
  std::vector<int> held_;
  std::thread thread_;
};

class NetProberTest : public ::testing::Test {
 protected:
  NetProber::Address at(int port) { return *NetProber::numeric("127.0.0.1", port); }
  // Runs one probe and waits (bounded) for its outcome.
  Outcome http(int port, const std::string& path, std::vector<api::HttpHeader> headers = {},
               Duration timeout = seconds(2)) {
    std::promise<Outcome> p;
    auto f = p.get_future();
    prober_.http(at(port), path, std::move(headers), timeout,
                 [&p](Outcome o) { p.set_value(std::move(o)); });
    EXPECT_EQ(f.wait_for(seconds(10)), std::future_status::ready);
    return f.get();
  }
  Outcome tcp(int port, Duration timeout = seconds(2)) {
    std::promise<Outcome> p;
    auto f = p.get_future();
    prober_.tcp(at(port), timeout, [&p](Outcome o) { p.set_value(std::move(o)); });
    EXPECT_EQ(f.wait_for(seconds(10)), std::future_status::ready);
    return f.get();
  }
  NetProber prober_{RealClock::instance()};
};

// Bound, never listened: connections are refused.
int closedPort() { return testing::freeLocalPort(); }

TEST_F(NetProberTest, NumericAddressesOnly) {
  EXPECT_EQ(NetProber::numeric("10.0.0.7", 80)->host_port, "10.0.0.7:80");
  EXPECT_EQ(NetProber::numeric("fd00::7", 8080)->host_port, "[fd00::7]:8080");
  EXPECT_FALSE(NetProber::numeric("web.default.svc", 80)) << "names go to the pool";
}

TEST_F(NetProberTest, TcpConnectsOrSaysWhyAsTheKubeletDoes) {
  RawServer s("", false);
  EXPECT_EQ(tcp(s.port()).result, ProbeResult::Success);
  const int port = closedPort();
  auto refused = tcp(port);
  EXPECT_EQ(refused.result, ProbeResult::Failure);
  EXPECT_EQ(refused.output,
            "dial tcp 127.0.0.1:" + std::to_string(port) + ": connect: connection refused");
}

TEST_F(NetProberTest, StatusDecidesAndTheRequestIsTheKubelets) {
  RawServer ok("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  EXPECT_EQ(http(ok.port(), "/healthz").result, ProbeResult::Success);
  const auto req = ok.requests().at(0);
  EXPECT_TRUE(req.starts_with(
      "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(ok.port()) + "\r\n"))
      << req;
  EXPECT_NE(req.find("\r\nUser-Agent: kube-probe/1.32\r\n"), std::string::npos) << req;
  EXPECT_NE(req.find("\r\nAccept: */*\r\n"), std::string::npos) << req;
  EXPECT_NE(req.find("\r\nConnection: close\r\n\r\n"), std::string::npos) << req;

  RawServer bad("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
  auto f = http(bad.port(), "/");
  EXPECT_EQ(f.result, ProbeResult::Failure);
  EXPECT_EQ(f.output, "HTTP probe failed with statuscode: 503");
  RawServer redirect_without_location("HTTP/1.1 302 Found\r\n\r\n");
  EXPECT_EQ(http(redirect_without_location.port(), "/").result, ProbeResult::Success)
      << "3xx counts as success; EOF ends the body";
}

TEST_F(NetProberTest, ProbeHeadersReplaceTheDefaultsAndHostIsHonoured) {
  RawServer s("HTTP/1.1 204 No Content\r\n\r\n");
  EXPECT_EQ(
      http(s.port(), "x", {{"Host", "web.example"}, {"User-Agent", "mine"}, {"X-Probe", "yes"}})
          .result,
      ProbeResult::Success);
  const auto req = s.requests().at(0);
  EXPECT_TRUE(req.starts_with("GET /x HTTP/1.1\r\nHost: web.example\r\n")) << req;
  EXPECT_NE(req.find("\r\nUser-Agent: mine\r\n"), std::string::npos) << req;
  EXPECT_EQ(req.find("kube-probe"), std::string::npos) << req;
  EXPECT_NE(req.find("\r\nX-Probe: yes\r\n"), std::string::npos) << req;
}

TEST_F(NetProberTest, HostileHeadersAndPathsAreRefusedBeforeAnythingIsSent) {
  RawServer s("HTTP/1.1 200 OK\r\n\r\n");
  auto header = http(s.port(), "/", {{"X-A", "1\r\nX-Injected: 2"}});
  EXPECT_EQ(header.result, ProbeResult::Failure);
  EXPECT_EQ(header.output, "invalid header X-A");
  auto path = http(s.port(), "/a\r\nX-Injected: 1");
  EXPECT_EQ(path.result, ProbeResult::Failure);
  EXPECT_TRUE(s.requests().empty());
}

TEST_F(NetProberTest, RedirectsAreFollowedToTheSameHostOnly) {
  httplib::Server server;
  server.Get("/fail", [](const httplib::Request&, httplib::Response& r) { r.status = 503; });
  server.Get("/ok", [](const httplib::Request&, httplib::Response& r) { r.status = 200; });
  server.Get("/rel/a", [](const httplib::Request&, httplib::Response& r) { r.set_redirect("b"); });
  server.Get("/rel/b", [](const httplib::Request&, httplib::Response& r) { r.status = 503; });
  server.Get("/loop",
             [](const httplib::Request&, httplib::Response& r) { r.set_redirect("/loop"); });
  server.Get("/away", [](const httplib::Request&, httplib::Response& r) {
    r.set_content("gone", "text/plain");
    r.status = 302;
    r.set_header("Location", "http://192.0.2.1/x");
  });
  int port = server.bind_to_any_port("127.0.0.1");
  server.Get("/moved", [port](const httplib::Request&, httplib::Response& r) {
    r.set_redirect("http://127.0.0.1:" + std::to_string(port) + "/fail");
  });
  server.Get("/tls", [port](const httplib::Request&, httplib::Response& r) {
    r.set_redirect("https://127.0.0.1:" + std::to_string(port) + "/ok");
  });
  std::thread t([&] { server.listen_after_bind(); });

  EXPECT_EQ(http(port, "/moved").output, "HTTP probe failed with statuscode: 503")
      << "absolute, same host: followed";
  EXPECT_EQ(http(port, "/rel/a").output, "HTTP probe failed with statuscode: 503")
      << "relative to the current path: followed";
  auto away = http(port, "/away");
  EXPECT_EQ(away.result, ProbeResult::Success);
  EXPECT_EQ(away.output, "Probe terminated redirects, Response body: gone");
  EXPECT_EQ(http(port, "/tls").result, ProbeResult::Success) << "not followed to https here";
  auto loop = http(port, "/loop");
  EXPECT_EQ(loop.result, ProbeResult::Failure);
  EXPECT_NE(loop.output.find("stopped after 10 redirects"), std::string::npos) << loop.output;
  server.stop();
  t.join();
}

TEST_F(NetProberTest, ASilentServerTimesOutAndGarbageIsAFailure) {
  RawServer silent("", false);
  auto slow = http(silent.port(), "/", {}, milliseconds(150));
  EXPECT_EQ(slow.result, ProbeResult::Failure);
  EXPECT_EQ(slow.output, "Get \"http://127.0.0.1:" + std::to_string(silent.port()) +
                             "/\": context deadline exceeded (Client.Timeout exceeded while "
                             "awaiting headers)");
  RawServer garbage("SSH-2.0-OpenSSH_9.2\r\n\r\n");
  auto g = http(garbage.port(), "/");
  EXPECT_EQ(g.result, ProbeResult::Failure);
  EXPECT_NE(g.output.find("malformed HTTP response \"SSH-2.0-OpenSSH_9.2\""), std::string::npos)
      << g.output;
  RawServer hangup("HTTP/1.1 200");
  auto eof = http(hangup.port(), "/");
  EXPECT_EQ(eof.result, ProbeResult::Failure);
  EXPECT_TRUE(eof.output.ends_with("\": EOF")) << eof.output;
  auto refused = http(closedPort(), "/");
  EXPECT_NE(refused.output.find(": connect: connection refused"), std::string::npos);
}

TEST_F(NetProberTest, HundredsInFlightAllComplete) {
  RawServer s("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  constexpr int kProbes = 300;
  std::atomic<int> ok{0}, done{0};
  std::promise<void> all;
  for (int i = 0; i < kProbes; ++i) {
    auto cb = [&](Outcome o) {
      ok += o.result == ProbeResult::Success;
      if (++done == kProbes) all.set_value();
    };
    if (i % 2 == 0)
      prober_.http(at(s.port()), "/", {}, seconds(5), cb);
    else
      prober_.tcp(at(s.port()), seconds(5), cb);
  }
  ASSERT_EQ(all.get_future().wait_for(seconds(20)), std::future_status::ready);
  EXPECT_EQ(ok.load(), kProbes);
  EXPECT_EQ(prober_.inFlight(), 0u);
}

TEST_F(NetProberTest, DestroyingTheProberWithProbesInFlightCallsNothing) {
  RawServer silent("", false);
  std::atomic<int> called{0};
  {
    NetProber p(RealClock::instance());
    for (int i = 0; i < 5; ++i)
      p.http(at(silent.port()), "/", {}, seconds(30), [&](Outcome) { ++called; });
  }
  EXPECT_EQ(called.load(), 0);
}

TEST(DefaultRunnerStartTest, PlainHttpAndTcpGoToTheLoopTheRestToThePool) {
  DefaultRunner r([](const std::string&, const std::vector<std::string>&,
                     Duration) -> Result<std::pair<int32_t, std::string>> {
    return std::pair<int32_t, std::string>{0, ""};
  });
  std::promise<Outcome> p;
  Runner::Done done = [&p](Outcome o) { p.set_value(std::move(o)); };
  api::Handler h;
  h.tcp_socket = api::TcpSocketAction{{false, 0, "web"}, ""};
  ASSERT_TRUE(r.start(h, {"127.0.0.1", {}}, seconds(1), done));
  EXPECT_EQ(p.get_future().get().output, "couldn't find port \"web\" in the container's ports")
      << "an unresolvable port fails at once";
  api::Handler https;
  https.http_get = api::HttpGetAction{"/", {true, 443, ""}, "", "HTTPS", {}};
  Runner::Done unused = [](Outcome) {};
  EXPECT_FALSE(r.start(https, {"127.0.0.1", {}}, seconds(1), unused));
  api::Handler named;
  named.tcp_socket = api::TcpSocketAction{{true, 80, ""}, "localhost"};
  EXPECT_FALSE(r.start(named, {"127.0.0.1", {}}, seconds(1), unused)) << "DNS: on the pool";
  api::Handler exec;
  exec.exec = api::ExecAction{{"true"}};
  EXPECT_FALSE(r.start(exec, {"127.0.0.1", {}}, seconds(1), unused));
}

}  // namespace
}  // namespace nodelet::probes
