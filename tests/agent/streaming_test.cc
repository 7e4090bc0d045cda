// kubectl exec/attach/port-forward and /run through the node server: the kubelet's query
// parameters and answers, the container found through CRI, and the client's upgraded connection
// relayed byte for byte to a stand-in for the runtime's streaming server.
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <thread>

#include "agent/container_streams.h"
#include "agent/labels.h"
#include "agent/node_auth.h"
#include "agent/pki.h"
#include "agent/server.h"
#include "agent/stream_proxy.h"
#include "tests/common/free_port.h"
#include "tests/common/raw_client.h"
#include "tests/common/simulated_clock.h"
#include "tests/common/temp_dir.h"
#include "tests/fakes/fake_runtime_service.h"

namespace nodelet::agent {
namespace {

using std::chrono::seconds;

// ---- parsing --------------------------------------------------------------------------------

TEST(StreamOptionsTest, TheApiServersParameterNamesAndTheTtyRule) {
  auto o = parseStreamOptions({{"input", "1"}, {"output", "1"}, {"error", "1"}});
  ASSERT_TRUE(o);
  EXPECT_TRUE(o->stdin_ && o->stdout_ && o->stderr_);
  EXPECT_FALSE(o->tty);
  auto tty = parseStreamOptions({{"output", "1"}, {"error", "1"}, {"tty", "1"}});
  ASSERT_TRUE(tty);
  EXPECT_TRUE(tty->tty);
  EXPECT_FALSE(tty->stderr_) << "a terminal has no separate stderr";
  // "true" is not "1" for the kubelet, and stdin/stdout are not its names.
  auto none = parseStreamOptions({{"output", "true"}, {"stdin", "1"}, {"stdout", "1"}});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, ErrorCode::InvalidArgument);
  EXPECT_EQ(none.error().message, "you must specify at least 1 of stdin, stdout, stderr");
}

TEST(StreamOptionsTest, PortForwardPortsComeFromTheQueryOnlyForWebSockets) {
  auto spdy = parsePortForwardPorts({}, /*websocket=*/false);
  ASSERT_TRUE(spdy);
  EXPECT_TRUE(spdy->empty());
  auto ws = parsePortForwardPorts({{"port", "8080,9090"}, {"port", "53"}}, true);
  ASSERT_TRUE(ws);
  EXPECT_EQ(*ws, (std::vector<int32_t>{8080, 9090, 53}));
  struct Case {
    QueryParams params;
    const char* error;
  } bad[] = {
      {{}, "query parameter \"port\" is required"},
      {{{"port", ""}}, "query parameter \"port\" cannot be empty"},
      {{{"port", "http"}},
       "unable to parse \"http\" as a port: strconv.ParseUint: parsing \"http\": invalid syntax"},
      {{{"port", "80,"}},
       "unable to parse \"80,\" as a port: strconv.ParseUint: parsing \"\": invalid syntax"},
      {{{"port", "70000"}},
       "unable to parse \"70000\" as a port: strconv.ParseUint: parsing \"70000\": value out of "
       "range"},
      {{{"port", "0"}}, "port \"0\" must be > 0"},
      {{{"port", "-1"}},
       "unable to parse \"-1\" as a port: strconv.ParseUint: parsing \"-1\": invalid syntax"},
  };
  for (const auto& c : bad) {
    auto r = parsePortForwardPorts(c.params, true);
    ASSERT_FALSE(r) << c.error;
    EXPECT_EQ(r.error().message, c.error);
  }
}

TEST(StreamProxyTest, StreamingUrlsAreParsedForHttpOnly) {
  auto u = parseStreamUrl("http://127.0.0.1:35123/exec/Zm9v");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, "35123");
  EXPECT_EQ(u->target, "/exec/Zm9v");
  auto v6 = parseStreamUrl("http://[::1]:8080?x=1");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->authority(), "[::1]:8080");
  EXPECT_EQ(v6->target, "/?x=1");
  auto plain = parseStreamUrl("http://localhost");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->port, "80");
  EXPECT_EQ(plain->target, "/");
  auto tls = parseStreamUrl("https://127.0.0.1:1/exec/x");
  ASSERT_FALSE(tls);
  EXPECT_EQ(tls.error().code, ErrorCode::Unimplemented);
  for (const char* bad :
       {"http://", "http://h:0/", "http://h:99999/", "http://[::1/", "http://h:x/"})
    EXPECT_FALSE(parseStreamUrl(bad)) << bad;
}

TEST(StreamProxyTest, TheRuntimeGetsTheClientsRequestWithoutItsCredentials) {
  UpgradeRequest r;
  r.method = "POST";
  r.headers = {{"Host", "node:10250"},
               {"Authorization", "Bearer secret"},
               {"Connection", "Upgrade"},
               {"Upgrade", "SPDY/3.1"},
               {"X-Stream-Protocol-Version", "v4.channel.k8s.io"},
               {"X-Stream-Protocol-Version", "v3.channel.k8s.io"},
               {"X-Forwarded-For", "10.0.0.9"},
               {"Content-Length", "0"},
               {"REMOTE_ADDR", "127.0.0.1"},
               {"LOCAL_PORT", "10250"}};
  r.client_ip = "127.0.0.1";
  const std::string out = backendRequest(r, *parseStreamUrl("http://127.0.0.1:4000/exec/tok"));
  EXPECT_EQ(out,
            "POST /exec/tok HTTP/1.1\r\n"
            "Host: 127.0.0.1:4000\r\n"
            "Connection: Upgrade\r\n"
            "Upgrade: SPDY/3.1\r\n"
            "X-Stream-Protocol-Version: v4.channel.k8s.io\r\n"
            "X-Stream-Protocol-Version: v3.channel.k8s.io\r\n"
            "X-Forwarded-For: 10.0.0.9, 127.0.0.1\r\n"
            "Content-Length: 0\r\n"
            "\r\n");
  EXPECT_TRUE(isUpgradeRequest(r.headers));
  EXPECT_FALSE(isWebSocketRequest(r.headers));
  EXPECT_TRUE(isUpgradeRequest({{"connection", "keep-alive, upgrade"}}));
  EXPECT_FALSE(isUpgradeRequest({{"Upgrade", "websocket"}}));
  EXPECT_TRUE(isWebSocketRequest({{"Connection", "Upgrade"}, {"Upgrade", "WebSocket"}}));
}

// ---- the relay, end to end over the node server ----------------------------------------------

// A stand-in for containerd's streaming server: per connection it reads the request head,
// answers with `response`, then echoes what the client sends upper-cased, closing after
// `echo_limit` bytes (or when the client closes). Every wait is bounded.
class FakeStreamingServer {
 public:
  FakeStreamingServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 16);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~FakeStreamingServer() {
    for (auto& t : threads_) t.join();
    ::close(fd_);
  }
  std::string base() const { return "http://127.0.0.1:" + std::to_string(port_); }

  void serveOnce(std::string response, size_t echo_limit = SIZE_MAX) {
    threads_.emplace_back([this, response = std::move(response), echo_limit] {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 10'000) <= 0) return;
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string head;
      char buf[4096];
      while (head.find("\r\n\r\n") == std::string::npos && readable(c)) {
        const ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        head.append(buf, static_cast<size_t>(n));
      }
      {
        std::lock_guard g(mu_);
        requests_.push_back(head);
      }
      (void)!::send(c, response.data(), response.size(), MSG_NOSIGNAL);
      size_t echoed = 0;
      bool client_closed = false;
      while (echoed < echo_limit && readable(c)) {
        const ssize_t n = ::recv(c, buf, std::min(sizeof buf, echo_limit - echoed), 0);
        if (n <= 0) {
          client_closed = true;
          break;
        }
        for (ssize_t i = 0; i < n; ++i) buf[i] = static_cast<char>(std::toupper(buf[i]));
        (void)!::send(c, buf, static_cast<size_t>(n), MSG_NOSIGNAL);
        echoed += static_cast<size_t>(n);
      }
      ::close(c);
      std::lock_guard g(mu_);
      if (client_closed) ++client_closes_;
    });
  }
  // Waits for the connections served so far to end.
  void join() {
    for (auto& t : threads_) t.join();
    threads_.clear();
  }
  std::vector<std::string> requests() {
    std::lock_guard g(mu_);
    return requests_;
  }
  int clientCloses() {
    std::lock_guard g(mu_);
    return client_closes_;
  }

 private:
  static bool readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 10'000) > 0;
  }
  int fd_{-1};
  int port_{0};
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::vector<std::string> requests_;
  int client_closes_{0};
};

constexpr const char* kSwitch =
    "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
    "X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n";

class StreamingServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::signal(SIGPIPE, SIG_IGN);  // as nodelet's main does: a client gone is an error, not death
    auto certs = ensureSelfSignedCert(dir_.str() + "/pki", "n1", {"127.0.0.1"},
                                      RealClock::instance().systemNow());
    ASSERT_TRUE(certs) << certs.error().message;
    AuthOptions ao;
    ao.anonymous = true;
    ao.webhook_authn = false;
    ao.authorization_mode = "AlwaysAllow";
    ao.node_name = "n1";
    auth_ = std::make_unique<NodeAuth>(ao, nullptr, clock_);
    // Pod default/web: "app" without a terminal, "term" with one, both running.
    api::Pod pod;
    pod.metadata.name = "web";
    pod.metadata.namespace_ = "default";
    pod.metadata.uid = "uid-1";
    pod.spec.containers.resize(2);
    pod.spec.containers[0].name = "app";
    pod.spec.containers[1].name = "term";
    pod.spec.containers[1].tty = true;
    pods_[{"default", "web"}] = pod;
    cri::PodSandboxConfig sc;
    sc.metadata = {"web", "uid-1", "default", 0};
    sc.labels = {{labels::kPodUid, "uid-1"}};
    sandbox_ = *rt_.runPodSandbox(sc, "");
    for (const char* name : {"app", "term"}) {
      cri::ContainerConfig cc;
      cc.name = name;
      cc.labels = {{labels::kPodUid, "uid-1"}, {labels::kContainerName, name}};
      ids_[name] = *rt_.createContainer(sandbox_, cc, sc);
      ASSERT_TRUE(rt_.startContainer(ids_[name]));
    }
    rt_.setStreamingBase(backend_.base());
    streams_ = std::make_unique<ContainerStreams>(
        rt_, [this](const std::string& ns, const std::string& name) -> std::optional<api::Pod> {
          auto it = pods_.find({ns, name});
          if (it == pods_.end()) return std::nullopt;
          return it->second;
        });
    cert_ = certs->cert;
    key_ = certs->key;
    startServer(std::chrono::milliseconds(0));
  }
  void startServer(std::chrono::milliseconds idle_timeout) {
    ServerHandlers h;
    h.health = [] { return std::pair{true, std::string()}; };
    h.pods_json = [] { return std::string("{}"); };
    server_ = std::make_unique<NodeServer>(h);
    SecureOptions so{cert_, key_, "", auth_.get(), &clock_, streams_.get()};
    so.stream_idle_timeout = idle_timeout;
    auto s = server_->startSecure("127.0.0.1", 0, so);
    ASSERT_TRUE(s) << s.error().message;
  }
  void TearDown() override {
    if (server_) server_->stop();
  }

  std::unique_ptr<httplib::SSLClient> client() {
    auto c = std::make_unique<httplib::SSLClient>("127.0.0.1", server_->securePort());
    c->enable_server_certificate_verification(false);
    c->set_read_timeout(10, 0);
    return c;
  }
  // Opens a connection and sends an upgrade request for `path`.
  std::unique_ptr<testing::RawClient> upgrade(const std::string& path,
                                              const std::string& method = "POST",
                                              const std::string& extra = "") {
    auto c = std::make_unique<testing::RawClient>();
    EXPECT_TRUE(c->connect(server_->securePort()));
    EXPECT_TRUE(c->write(method + " " + path +
                         " HTTP/1.1\r\nHost: n1:10250\r\nConnection: Upgrade\r\n"
                         "Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n" +
                         extra + (method == "POST" ? "Content-Length: 0\r\n" : "") + "\r\n"));
    return c;
  }

  testing::TempDir dir_;
  std::string cert_, key_;
  testing::SimulatedClock clock_;
  testing::FakeRuntimeService rt_{clock_};
  FakeStreamingServer backend_;
  std::map<std::pair<std::string, std::string>, api::Pod> pods_;
  std::string sandbox_;
  std::map<std::string, std::string> ids_;
  std::unique_ptr<NodeAuth> auth_;
  std::unique_ptr<ContainerStreams> streams_;
  std::unique_ptr<NodeServer> server_;
};

TEST_F(StreamingServerTest, AnExecIsRelayedByteForByteAndTheConnectionEndsWithTheStream) {
  // The runtime switches protocols, sends a first frame at once, echoes 4 bytes and closes.
  backend_.serveOnce(std::string(kSwitch) + "hello", 4);
  auto c = upgrade("/exec/default/web/app?command=sh&command=-c&command=echo%20hi&output=1&error=1",
                   "POST", "X-Forwarded-For: 10.0.0.9\r\n");
  std::string stream;
  const std::string head = c->readHead(stream);
  EXPECT_EQ(head, kSwitch) << "the runtime's answer, verbatim";
  ASSERT_TRUE(c->write("ping"));
  stream += c->readToEof();
  EXPECT_TRUE(c->eof());
  EXPECT_EQ(stream, "helloPING") << "nothing of cpp-httplib's own follows the stream";
  backend_.join();
  // What the runtime was asked, and what it received.
  const auto sent = rt_.lastStreamingRequest();
  EXPECT_EQ(sent.container_id, ids_["app"]);
  EXPECT_EQ(sent.cmd, (std::vector<std::string>{"sh", "-c", "echo hi"}));
  EXPECT_TRUE(sent.stdout_ && sent.stderr_);
  EXPECT_FALSE(sent.stdin_ || sent.tty);
  ASSERT_EQ(backend_.requests().size(), 1u);
  const std::string req = backend_.requests()[0];
  EXPECT_TRUE(req.starts_with("POST /exec/" + ids_["app"] + " HTTP/1.1\r\n")) << req;
  for (const char* want :
       {"\r\nHost: 127.0.0.1:", "\r\nUpgrade: SPDY/3.1\r\n", "\r\nConnection: Upgrade\r\n",
        "\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n",
        "\r\nX-Forwarded-For: 10.0.0.9, 127.0.0.1\r\n", "\r\nContent-Length: 0\r\n"})
    EXPECT_NE(req.find(want), std::string::npos) << want << " in\n" << req;
  EXPECT_EQ(req.find("REMOTE_ADDR"), std::string::npos) << req;
  // The server serves on.
  auto r = client()->Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(StreamingServerTest, AClientThatHangsUpEndsTheRelayToTheRuntime) {
  backend_.serveOnce(kSwitch);
  auto c = upgrade("/exec/default/web/app?command=cat&input=1&output=1", "GET");
  std::string stream;
  EXPECT_TRUE(c->readHead(stream).starts_with("HTTP/1.1 101 "));
  ASSERT_TRUE(c->write("abc"));
  stream += c->readUntil([](const std::string& s) { return s.size() >= 3; });
  EXPECT_EQ(stream, "ABC");
  c->close();
  backend_.join();  // bounded: the fake gives up after 10 s without traffic
  EXPECT_EQ(backend_.clientCloses(), 1) << "the runtime saw the client go";
  EXPECT_TRUE(rt_.lastStreamingRequest().stdin_);
}

TEST_F(StreamingServerTest, TheRuntimesErrorsArePassedOnAndNonUpgradesAreRefused) {
  // An error answer goes to the client as it is (kubectl shows the runtime's message).
  const std::string not_found =
      "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 15\r\n\r\n"
      "session expired";
  backend_.serveOnce(not_found, 0);
  auto c = upgrade("/exec/default/web/app?command=ls&output=1");
  EXPECT_EQ(c->readToEof(), not_found);
  // Anything else that is not a switch is nodelet's 500, as the kubelet's proxy answers it.
  backend_.serveOnce("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0);
  auto ok = upgrade("/exec/default/web/app?command=ls&output=1");
  std::string rest;
  const std::string head = ok->readHead(rest);
  EXPECT_TRUE(head.starts_with("HTTP/1.1 500 ")) << head;
  rest += ok->readUntil([](const std::string& s) { return s.ends_with("\n"); });
  EXPECT_EQ(rest, "invalid upgrade response: status code 200\n");
  backend_.join();
}

TEST_F(StreamingServerTest, RequestsThatCannotBeRelayedGetTheKubeletsAnswers) {
  auto c = client();
  const httplib::Headers upgrade = {{"Connection", "Upgrade"}, {"Upgrade", "SPDY/3.1"}};
  struct Case {
    std::string path;
    httplib::Headers headers;
    int status;
    std::string body;
  } cases[] = {
      {"/exec/default/web/app?command=ls&output=1", {}, 500, "Upgrade request required\n"},
      {"/exec/default/web/app?command=ls", upgrade, 400,
       "you must specify at least 1 of stdin, stdout, stderr\n"},
      {"/exec/default/nope/app?command=ls&output=1", upgrade, 404, "pod does not exist\n"},
      {"/exec/default/web/nope?command=ls&output=1", upgrade, 500,
       "container not found (\"nope\")\n"},
      {"/attach/default/web/nope?output=1", upgrade, 500,
       "container nope not found in pod web_default\n"},
      {"/attach/default/web/other-uid/app?output=1", upgrade, 500, "pod web_default not found\n"},
      {"/portForward/default/web/other-uid", upgrade, 404, "pod not found\n"},
      {"/portForward/default/web",
       {{"Connection", "Upgrade"}, {"Upgrade", "websocket"}},
       400,
       "query parameter \"port\" is required\n"},
  };
  for (const auto& k : cases) {
    auto r = c->Get(k.path, k.headers);
    ASSERT_TRUE(r) << k.path;
    EXPECT_EQ(r->status, k.status) << k.path;
    EXPECT_EQ(r->body, k.body) << k.path;
  }
  // The runtime's own refusal: its NotFound is 404, anything else 500.
  rt_.injectError("Exec", Error{ErrorCode::NotFound, "container gone"});
  auto gone = c->Get("/exec/default/web/app?command=ls&output=1", upgrade);
  ASSERT_TRUE(gone);
  EXPECT_EQ(gone->status, 404);
  // A streaming server nobody listens on.
  const int closed = testing::freeLocalPort();
  rt_.setStreamingBase("http://127.0.0.1:" + std::to_string(closed));
  auto down = c->Get("/exec/default/web/app?command=ls&output=1", upgrade);
  ASSERT_TRUE(down);
  EXPECT_EQ(down->status, 500);
  EXPECT_EQ(down->body, "error dialing backend: dial tcp 127.0.0.1:" + std::to_string(closed) +
                            ": connect: connection refused\n");
  // A container that stopped is not exec'd into.
  rt_.exitContainer(ids_["app"], 0);
  auto stopped = c->Get("/exec/default/web/app?command=ls&output=1", upgrade);
  ASSERT_TRUE(stopped);
  EXPECT_EQ(stopped->body, "container not found (\"app\")\n");
}

TEST_F(StreamingServerTest, AttachTakesTheContainersTtyAndPortForwardTheSandboxAndPorts) {
  backend_.serveOnce(kSwitch, 0);
  auto a = upgrade("/attach/default/web/term?input=1&output=1&error=1");
  std::string rest;
  EXPECT_TRUE(a->readHead(rest).starts_with("HTTP/1.1 101 "));
  a->readToEof();
  auto sent = rt_.lastStreamingRequest();
  EXPECT_EQ(sent.container_id, ids_["term"]);
  EXPECT_TRUE(sent.tty) << "from spec.containers[].tty, not the request";
  EXPECT_FALSE(sent.stderr_);
  EXPECT_TRUE(sent.stdin_ && sent.stdout_);
  backend_.serveOnce(kSwitch, 0);
  auto pf = std::make_unique<testing::RawClient>();
  ASSERT_TRUE(pf->connect(server_->securePort()));
  ASSERT_TRUE(
      pf->write("GET /portForward/default/web/uid-1?port=8080,9090&port=53 HTTP/1.1\r\nHost: n1\r\n"
                "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: "
                "v4.channel.k8s.io\r\n\r\n"));
  EXPECT_TRUE(pf->readHead(rest).starts_with("HTTP/1.1 101 "));
  pf->readToEof();
  sent = rt_.lastStreamingRequest();
  EXPECT_EQ(sent.pod_sandbox_id, sandbox_);
  EXPECT_EQ(sent.ports, (std::vector<int32_t>{8080, 9090, 53}));
  backend_.join();
  EXPECT_TRUE(backend_.requests()[1].starts_with("GET /portforward/" + sandbox_ + " HTTP/1.1\r\n"))
      << backend_.requests()[1];
}

TEST_F(StreamingServerTest, RunAnswersWithTheCommandsOutput) {
  rt_.scriptExec("echo hi", {"hi\n", "", 0});
  rt_.scriptExec("cat /nope", {"", "cat: can't open '/nope'", 1});
  auto c = client();
  auto ok = c->Post("/run/default/web/app?cmd=echo%20hi", "", "text/plain");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(ok->body, "hi\n");
  auto failed = c->Post("/run/default/web/uid-1/app?cmd=cat%20/nope", "", "text/plain");
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->status, 500);
  EXPECT_EQ(failed->body, "command 'cat /nope' exited with 1: cat: can't open '/nope'\n");
  auto missing = c->Post("/run/default/gone/app?cmd=ls", "", "text/plain");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
}

TEST_F(StreamingServerTest, OpenStreamsLeaveTheServerAnsweringAndEndWhenItStops) {
  // Three sessions at once hold three of the server's threads (it started with two).
  std::vector<std::unique_ptr<testing::RawClient>> sessions;
  for (int i = 0; i < 3; ++i) {
    backend_.serveOnce(kSwitch);
    sessions.push_back(upgrade("/exec/default/web/app?command=sh&input=1&output=1"));
    std::string rest;
    EXPECT_TRUE(sessions.back()->readHead(rest).starts_with("HTTP/1.1 101 ")) << i;
  }
  auto r = client()->Get("/healthz");
  ASSERT_TRUE(r) << "a fourth request is still answered";
  EXPECT_EQ(r->status, 200);
  // Real time: the relays wait on real sockets.
  const auto start = std::chrono::steady_clock::now();  // NOLINT(real-time)
  server_->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(5))  // NOLINT(real-time)
      << "stopping ends the relays instead of waiting for them";
  for (auto& s : sessions) {
    s->readToEof(std::chrono::seconds(5));
    EXPECT_TRUE(s->eof());
    s->close();
  }
  backend_.join();
  EXPECT_EQ(backend_.clientCloses(), 3);
}

TEST_F(StreamingServerTest, AStreamIdleForStreamingConnectionIdleTimeoutEnds) {
  server_->stop();
  startServer(std::chrono::milliseconds(300));
  backend_.serveOnce(kSwitch);
  auto c = upgrade("/exec/default/web/app?command=sh&input=1&output=1");
  std::string rest;
  EXPECT_TRUE(c->readHead(rest).starts_with("HTTP/1.1 101 "));
  ASSERT_TRUE(c->write("x"));
  EXPECT_EQ(c->readUntil([](const std::string& s) { return !s.empty(); }), "X");
  // Real time: the idle timeout is the relay's poll() on real sockets.
  const auto quiet_since = std::chrono::steady_clock::now();  // NOLINT(real-time)
  c->readToEof(seconds(5));
  const auto waited = std::chrono::steady_clock::now() - quiet_since;  // NOLINT(real-time)
  EXPECT_TRUE(c->eof());
  EXPECT_GE(waited, std::chrono::milliseconds(250));
  EXPECT_LT(waited, seconds(5));
  backend_.join();
  EXPECT_EQ(backend_.clientCloses(), 1) << "the runtime's side is closed too";
}

}  // namespace
}  // namespace nodelet::agent
