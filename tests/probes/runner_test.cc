// The HTTP and TCP probe runners against servers on 127.0.0.1.
#include "probes/runner.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

namespace nodelet::probes {
namespace {

using std::chrono::seconds;

class HttpProbeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.Get("/ok", [](const httplib::Request&, httplib::Response& r) {
      r.set_content("ok", "text/plain");
    });
    server_.Get("/fail", [](const httplib::Request&, httplib::Response& r) { r.status = 503; });
    server_.Get("/moved", [this](const httplib::Request&, httplib::Response& r) {
      r.set_redirect("http://127.0.0.1:" + std::to_string(port_) + "/fail");
    });
    server_.Get("/away", [](const httplib::Request&, httplib::Response& r) {
      r.set_redirect("http://192.0.2.1/x");
    });
    server_.Get("/headers", [](const httplib::Request& q, httplib::Response& r) {
      r.status = q.get_header_value("X-Probe") == "yes" &&
                         q.get_header_value("User-Agent") == "kube-probe/1.32"
                     ? 200
                     : 400;
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  void TearDown() override {
    server_.stop();
    thread_.join();
  }
  Outcome get(const std::string& path, std::vector<api::HttpHeader> headers = {}) {
    api::HttpGetAction a;
    a.path = path;
    a.port = {true, port_, ""};
    a.http_headers = std::move(headers);
    return DefaultRunner::http(a, {"127.0.0.1", {}}, seconds(2));
  }
  httplib::Server server_;
  int port_{0};
  std::thread thread_;
};

TEST_F(HttpProbeTest, SuccessIsACodeFrom200To399) {
  EXPECT_EQ(get("/ok").result, ProbeResult::Success);
  auto f = get("/fail");
  EXPECT_EQ(f.result, ProbeResult::Failure);
  EXPECT_EQ(f.output, "HTTP probe failed with statuscode: 503");
  EXPECT_EQ(get("/missing").output, "HTTP probe failed with statuscode: 404");
}

TEST_F(HttpProbeTest, RedirectsAreFollowedOnlyToTheSameHost) {
  EXPECT_EQ(get("/moved").result, ProbeResult::Failure) << "followed to /fail";
  auto away = get("/away");
  EXPECT_EQ(away.result, ProbeResult::Success) << "another host: not followed, counts as success";
  EXPECT_NE(away.output.find("Probe terminated redirects"), std::string::npos);
}

TEST_F(HttpProbeTest, SendsHeadersAndTheKubeletsUserAgent) {
  EXPECT_EQ(get("/headers", {{"X-Probe", "yes"}}).result, ProbeResult::Success);
}

TEST(TcpProbeTest, ConnectSucceedsOrSaysWhy) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  api::TcpSocketAction a;
  a.port = {false, 0, "http"};
  const Endpoint e{"127.0.0.1", {{"http", port, 0, "", "TCP"}}};
  EXPECT_EQ(DefaultRunner::tcp(a, e, seconds(1)).result, ProbeResult::Success)
      << "named port resolved";
  ::close(fd);
  auto refused = DefaultRunner::tcp(a, e, seconds(1));
  EXPECT_EQ(refused.result, ProbeResult::Failure);
  EXPECT_NE(refused.output.find("connect: Connection refused"), std::string::npos)
      << refused.output;
  a.port = {false, 0, "nope"};
  auto unknown = DefaultRunner::tcp(a, e, seconds(1));
  EXPECT_EQ(unknown.result, ProbeResult::Failure);
  EXPECT_NE(unknown.output.find("couldn't find port \"nope\""), std::string::npos);
}

TEST(ExecProbeTest, ExitCodeDecidesAndATimeoutIsAFailure) {
  DefaultRunner r([](const std::string&, const std::vector<std::string>& cmd,
                     Duration) -> Result<std::pair<int32_t, std::string>> {
    if (cmd[0] == "slow") return fail(ErrorCode::DeadlineExceeded, "deadline");
    return std::pair<int32_t, std::string>{cmd[0] == "true" ? 0 : 1, "out"};
  });
  api::Handler h;
  h.exec = api::ExecAction{{"true"}};
  EXPECT_EQ(r.run(h, "c", {}, seconds(1)).result, ProbeResult::Success);
  h.exec = api::ExecAction{{"false"}};
  auto f = r.run(h, "c", {}, seconds(1));
  EXPECT_EQ(f.result, ProbeResult::Failure);
  EXPECT_EQ(f.output, "out");
  h.exec = api::ExecAction{{"slow", "x"}};
  auto t = r.run(h, "c", {}, seconds(1));
  EXPECT_EQ(t.result, ProbeResult::Failure);
  EXPECT_EQ(t.output, "command \"slow x\" timed out");
}

}  // namespace
}  // namespace nodelet::probes

#include "tests/common/health_server.h"

namespace nodelet::probes {
namespace {

TEST(GrpcProbeTest, ServingIsSuccessAndAnythingElseSaysWhy) {
  testing::HealthServer server;
  DefaultRunner r([](const std::string&, const std::vector<std::string>&,
                     Duration) -> Result<std::pair<int32_t, std::string>> {
    return std::pair<int32_t, std::string>{0, ""};
  });
  api::Handler h;
  h.grpc = api::GrpcAction{server.port(), std::nullopt};
  const Endpoint e{"127.0.0.1", {}};
  EXPECT_EQ(r.run(h, "c", e, std::chrono::seconds(2)).result, ProbeResult::Success);
  server.set("", grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  auto bad = r.run(h, "c", e, std::chrono::seconds(2));
  EXPECT_EQ(bad.result, ProbeResult::Failure);
  EXPECT_EQ(bad.output, "service unhealthy (responded with \"NOT_SERVING\")");
  h.grpc->service = "db";
  EXPECT_EQ(r.run(h, "c", e, std::chrono::seconds(2)).result, ProbeResult::Failure)
      << "unknown service";
  server.set("db", grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(r.run(h, "c", e, std::chrono::seconds(2)).result, ProbeResult::Success)
      << "named service";
}

}  // namespace
}  // namespace nodelet::probes
