// The node server's parts that decide and read: who may do what (authentication, the kubelet's
// path -> subresource mapping, review caching), container log decoding and following, and the
// self-signed serving certificate.
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <deque>
#include <fstream>

#include "agent/container_logs.h"
#include "agent/core/api_json.h"
#include "agent/node_auth.h"
#include "agent/pki.h"
#include "agent/stats_summary.h"
#include "tests/common/simulated_clock.h"
#include "tests/common/temp_dir.h"

namespace nodelet::agent {
namespace {

using std::chrono::seconds;

TEST(NodeAuthAttributesTest, PathsMapToTheKubeletsSubresources) {
  struct Case {
    const char* method;
    const char* path;
    RequestAttributes want;
  } cases[] = {
      {"GET", "/stats/summary", {"get", "stats", "n1"}},
      {"GET", "/stats", {"get", "stats", "n1"}},
      {"GET", "/statsx", {"get", "proxy", "n1"}},
      {"GET", "/metrics", {"get", "metrics", "n1"}},
      {"GET", "/metrics/probes", {"get", "metrics", "n1"}},
      {"GET", "/logs/syslog", {"get", "log", "n1"}},
      {"GET", "/spec/", {"get", "spec", "n1"}},
      {"POST", "/checkpoint/ns/p/c", {"create", "checkpoint", "n1"}},
      {"GET", "/pods", {"get", "proxy", "n1"}},
      {"GET", "/healthz", {"get", "proxy", "n1"}},
      {"GET", "/containerLogs/ns/p/c", {"get", "proxy", "n1"}},
      {"POST", "/exec/ns/p/c", {"create", "proxy", "n1"}},
      {"PUT", "/x", {"update", "proxy", "n1"}},
      {"PATCH", "/x", {"patch", "proxy", "n1"}},
      {"DELETE", "/x", {"delete", "proxy", "n1"}},
  };
  for (const auto& c : cases)
    EXPECT_EQ(attributesFor(c.method, c.path, "n1"), c.want) << c.method << " " << c.path;
}

class ScriptedReviewer final : public Reviewer {
 public:
  std::map<std::string, UserInfo> tokens;
  std::set<std::string> allowed;  // "user subresource"
  int token_reviews{0}, access_reviews{0};
  bool broken{false};
  Result<std::optional<UserInfo>> reviewToken(const std::string& token) override {
    ++token_reviews;
    if (broken) return fail(ErrorCode::Unavailable, "API server away");
    auto it = tokens.find(token);
    if (it == tokens.end()) return std::optional<UserInfo>{};
    return std::optional<UserInfo>(it->second);
  }
  Result<std::pair<bool, std::string>> reviewAccess(const UserInfo& u,
                                                    const RequestAttributes& a) override {
    ++access_reviews;
    if (broken) return fail(ErrorCode::Unavailable, "API server away");
    return std::pair<bool, std::string>{allowed.contains(u.name + " " + a.subresource), ""};
  }
};

class NodeAuthTest : public ::testing::Test {
 protected:
  NodeAuth make(AuthOptions o, Reviewer* r) {
    o.node_name = "n1";
    return NodeAuth(o, r, clock_);
  }
  testing::SimulatedClock clock_;
  ScriptedReviewer reviewer_;
};

TEST_F(NodeAuthTest, CertificatesTokensAndAnonymousAuthenticateInThatOrder) {
  reviewer_.tokens["t0k3n"] = {"alice", "u1", {"devs", "system:authenticated"}, {}};
  AuthOptions o;
  o.authorization_mode = "AlwaysAllow";
  auto auth = make(o, &reviewer_);
  const UserInfo cert{"kube-apiserver-kubelet-client", "", {"system:authenticated"}, {}};
  EXPECT_EQ(auth.decide(cert, "Bearer t0k3n", "GET", "/pods").user.name,
            "kube-apiserver-kubelet-client")
      << "a verified certificate wins";
  EXPECT_EQ(reviewer_.token_reviews, 0);
  auto bearer = auth.decide(std::nullopt, "bearer  t0k3n ", "GET", "/pods");
  EXPECT_EQ(bearer.code, 200);
  EXPECT_EQ(bearer.user.name, "alice");
  auto none = auth.decide(std::nullopt, "", "GET", "/pods");
  EXPECT_EQ(none.code, 401);
  EXPECT_EQ(none.message, "Unauthorized");
  EXPECT_EQ(auth.decide(std::nullopt, "Bearer wrong", "GET", "/pods").code, 401);
  EXPECT_EQ(auth.decide(std::nullopt, "Basic YTpi", "GET", "/pods").code, 401);

  o.anonymous = true;
  auto anon = make(o, &reviewer_);
  auto a = anon.decide(std::nullopt, "", "GET", "/pods");
  EXPECT_EQ(a.code, 200);
  EXPECT_EQ(a.user.name, "system:anonymous");
  EXPECT_EQ(a.user.groups, std::vector<std::string>{"system:unauthenticated"});

  o.anonymous = false;
  o.webhook_authn = false;
  EXPECT_EQ(make(o, &reviewer_).decide(std::nullopt, "Bearer t0k3n", "GET", "/pods").code, 401)
      << "token authentication off";
}

TEST_F(NodeAuthTest, TokenReviewsAreCachedForTheirTtlAndFailuresAreNot) {
  reviewer_.tokens["t"] = {"alice", "", {}, {}};
  AuthOptions o;
  o.authorization_mode = "AlwaysAllow";
  o.token_cache_ttl = seconds(120);
  auto auth = make(o, &reviewer_);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(auth.decide(std::nullopt, "Bearer t", "GET", "/").code, 200);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(auth.decide(std::nullopt, "Bearer x", "GET", "/").code, 401);
  EXPECT_EQ(reviewer_.token_reviews, 2) << "one review per token, valid or not";
  clock_.advance(seconds(121));
  reviewer_.broken = true;
  EXPECT_EQ(auth.decide(std::nullopt, "Bearer t", "GET", "/").code, 401)
      << "an expired entry is reviewed again; a failed review authenticates nobody";
  reviewer_.broken = false;
  EXPECT_EQ(auth.decide(std::nullopt, "Bearer t", "GET", "/").code, 200);
  EXPECT_EQ(reviewer_.token_reviews, 4);
}

TEST_F(NodeAuthTest, WebhookAuthorizationAsksAndCachesBothAnswers) {
  reviewer_.allowed = {"alice proxy"};
  AuthOptions o;
  o.authorized_ttl = seconds(300);
  o.unauthorized_ttl = seconds(30);
  auto auth = make(o, &reviewer_);
  const UserInfo alice{"alice", "", {}, {}};
  EXPECT_EQ(auth.decide(alice, "", "GET", "/containerLogs/ns/p/c").code, 200);
  EXPECT_EQ(auth.decide(alice, "", "GET", "/pods").code, 200) << "cached: same attributes";
  auto denied = auth.decide(alice, "", "GET", "/stats/summary");
  EXPECT_EQ(denied.code, 403);
  EXPECT_EQ(denied.message, "Forbidden (user=alice, verb=get, resource=nodes, subresource=stats)");
  EXPECT_EQ(auth.decide(alice, "", "GET", "/stats/summary").code, 403);
  EXPECT_EQ(reviewer_.access_reviews, 2);
  reviewer_.allowed.insert("alice stats");
  clock_.advance(seconds(31));
  EXPECT_EQ(auth.decide(alice, "", "GET", "/stats/summary").code, 200)
      << "a denial is cached for cacheUnauthorizedTTL only";
  EXPECT_EQ(reviewer_.access_reviews, 3);
  reviewer_.broken = true;
  clock_.advance(seconds(301));
  EXPECT_EQ(auth.decide(alice, "", "GET", "/pods").code, 500) << "no answer: an error, not a yes";

  auto nowhere = make(AuthOptions{}, nullptr);
  EXPECT_EQ(nowhere.decide(alice, "", "GET", "/pods").code, 403)
      << "Webhook without an API server allows nothing";
}

// ---- container logs ----

TEST(ContainerLogsTest, OptionsAreParsedAndCheckedLikeTheKubelets) {
  const SysTime now = *api::parseTime("2026-11-26T12:00:00Z");
  auto o = parseLogOptions({{"follow", "true"},
                            {"tailLines", "10"},
                            {"limitBytes", "100"},
                            {"timestamps", "1"},
                            {"previous", "false"},
                            {"sinceSeconds", "60"}},
                           now);
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_TRUE(o->follow);
  EXPECT_TRUE(o->timestamps);
  EXPECT_FALSE(o->previous);
  EXPECT_EQ(o->tail_lines, 10);
  EXPECT_EQ(o->limit_bytes, 100);
  EXPECT_EQ(o->since, now - seconds(60));
  for (auto bad : std::vector<std::multimap<std::string, std::string>>{
           {{"tailLines", "-1"}},
           {{"limitBytes", "0"}},
           {{"follow", "yes"}},
           {{"sinceSeconds", "0"}},
           {{"sinceSeconds", "5"}, {"sinceTime", "2026-11-26T11:00:00Z"}},
           {{"sinceTime", "yesterday"}}})
    EXPECT_FALSE(parseLogOptions(bad, now)) << bad.begin()->first;
}

TEST(ContainerLogsTest, CriLinesAreDecodedPartialsJoinedAndOptionsApplied) {
  const std::string log =
      "2026-11-26T12:00:00.100000000Z stdout F hello\n"
      "2026-11-26T12:00:01.000000000Z stderr P par\n"
      "2026-11-26T12:00:01.500000000Z stderr P ti\n"
      "2026-11-26T12:00:02.000000000Z stderr F al\n"
      "not a cri line\n"
      "2026-11-26T12:00:03.000000000Z stdout F \n"
      "2026-11-26T12:00:04.250000000Z stdout F last\n";
  LogOptions plain;
  std::string out;
  LogDecoder(plain).decode(log, out);
  EXPECT_EQ(out, "hello\npartial\n\nlast\n");

  LogOptions ts;
  ts.timestamps = true;
  out.clear();
  LogDecoder(ts).decode(log, out);
  EXPECT_EQ(out,
            "2026-11-26T12:00:00.100000000Z hello\n"
            "2026-11-26T12:00:01.000000000Z partial\n"
            "2026-11-26T12:00:03.000000000Z \n"
            "2026-11-26T12:00:04.250000000Z last\n")
      << "one timestamp per line, the first part's";

  LogOptions since;
  since.since = *api::parseTime("2026-11-26T12:00:03Z") + std::chrono::milliseconds(100);
  out.clear();
  LogDecoder(since).decode(log, out);
  EXPECT_EQ(out, "last\n") << "sub-second timestamps count";

  LogOptions limit;
  limit.limit_bytes = 8;
  out.clear();
  LogDecoder d(limit);
  EXPECT_FALSE(d.decode(log, out));
  EXPECT_EQ(out, "hello\npa");
}

TEST(ContainerLogsTest, TailLinesCountsFromTheEnd) {
  testing::TempDir dir;
  const std::string f = dir.str() + "/0.log";
  std::ofstream(f) << "a\nbb\nccc\n";
  EXPECT_EQ(*tailOffset(f, 1), 5u);
  EXPECT_EQ(*tailOffset(f, 2), 2u);
  EXPECT_EQ(*tailOffset(f, 3), 0u);
  EXPECT_EQ(*tailOffset(f, 10), 0u);
  EXPECT_EQ(*tailOffset(f, 0), 9u);
  EXPECT_FALSE(tailOffset(dir.str() + "/missing.log", 1));
}

TEST(ContainerLogsTest, FollowWritesWhatIsAppendedUntilTheContainerStops) {
  testing::TempDir dir;
  const std::string f = dir.str() + "/0.log";
  std::ofstream(f) << "2026-11-26T12:00:00Z stdout F one\n2026-11-26T12:00:01Z stdout F two\n";
  testing::SimulatedClock clock;
  clock.setAutoAdvance(true);
  LogOptions o;
  o.follow = true;
  o.tail_lines = 1;
  std::string got;
  // A line written in two pieces (held back until its newline), a runtime-split line (P then
  // F: joined), then one more.
  std::deque<std::string> appends = {"2026-11-26T12:00:02Z stdout P thr",
                                     "ee\n2026-11-26T12:00:03Z stdout F !\n",
                                     "2026-11-26T12:00:04Z stdout F five\n"};
  int polls = 0;
  auto running = [&] {
    ++polls;
    if (appends.empty()) return false;  // the container stopped: what is left, then done
    std::ofstream(f, std::ios::app) << appends.front();
    appends.pop_front();
    return true;
  };
  ASSERT_TRUE(streamLog(
      f, o, [&](std::string_view s) { return got.append(s), true; }, running, clock));
  EXPECT_EQ(got, "two\nthree!\nfive\n");
  EXPECT_EQ(polls, 4);

  bool gone = false;  // a client that went away ends a follow at once
  int writes = 0;
  ASSERT_TRUE(streamLog(
      f, o,
      [&](std::string_view s) {
        ++writes;
        return !(gone = s.empty());
      },
      [] { return true; }, clock));
  EXPECT_TRUE(gone);
  EXPECT_EQ(writes, 2);
}

// ---- /stats/summary ----

TEST(StatsSummaryTest, TheHostIsReadFromProcAndTheFilesystem) {
  testing::TempDir dir;
  dir.write("proc/stat",
            "cpu  100 20 30 1000 50 5 5 0 0 0\ncpu0 50 10 15 500 25 2 2 0 0 0\nbtime 1764158400\n");
  dir.write("proc/meminfo",
            "MemTotal:       4000000 kB\nMemFree:         1000000 kB\nMemAvailable:    2500000 "
            "kB\nInactive(file):  500000 kB\n");
  const SysTime now = *api::parseTime("2026-11-26T12:00:00Z");
  auto s = readHostSample(dir.str() + "/proc", dir.str(), now);
  ASSERT_TRUE(s) << s.error().message;
  const uint64_t tick_ns = 1'000'000'000ull / static_cast<uint64_t>(sysconf(_SC_CLK_TCK));
  EXPECT_EQ(s->cpu_core_ns, (100u + 20 + 30 + 5 + 5) * tick_ns) << "idle and iowait are not busy";
  EXPECT_EQ(s->boot_time, std::chrono::system_clock::from_time_t(1764158400));
  EXPECT_EQ(s->memory_total, 4000000ull * 1024);
  EXPECT_EQ(s->inactive_file, 500000ull * 1024);
  EXPECT_GT(s->fs_capacity, 0u);
  EXPECT_FALSE(readHostSample(dir.str() + "/nope", dir.str(), now));
}

TEST(StatsSummaryTest, TheSummaryHasTheKubeletsShape) {
  HostSample prev, now;
  prev.time = *api::parseTime("2026-11-26T12:00:00Z");
  now.time = prev.time + seconds(10);
  prev.cpu_core_ns = 1'000'000'000;
  now.cpu_core_ns = 6'000'000'000;  // 5 s of CPU in 10 s: half a core
  now.memory_total = 4'000;
  now.memory_free = 1'000;
  now.inactive_file = 500;
  now.fs_capacity = 100;
  now.fs_available = 40;
  auto pod = api::decodePod(R"({"metadata":{"name":"web","namespace":"default","uid":"u1"},
    "spec":{"containers":[{"name":"app","image":"i"}]},
    "status":{"startTime":"2026-11-26T11:00:00Z","containerStatuses":[{"name":"app",
      "containerID":"containerd://c2","restartCount":1,"image":"i","imageID":"",
      "state":{"running":{"startedAt":"2026-11-26T11:30:00Z"}}}]}})");
  ASSERT_TRUE(pod) << pod.error().message;
  cri::ContainerStats cur, old, other;
  cur.id = "c2";
  cur.labels = {{"io.kubernetes.pod.uid", "u1"}, {"io.kubernetes.container.name", "app"}};
  cur.cpu = cri::CpuUsage{1, 3'000'000'000, 250'000'000};  // core-ns, nano-cores
  cur.memory = cri::MemoryUsage{1, 2'000'000, std::nullopt, 3'000'000, std::nullopt, 0, 0};
  old = cur;
  old.id = "c1";  // the exited container before the restart: not the one the status shows
  other = cur;
  other.id = "c9";
  other.labels["io.kubernetes.pod.uid"] = "gone";
  auto doc = buildSummary("n1", now, prev, {cur, old, other}, {*pod});
  const auto& node = doc["node"];
  EXPECT_EQ(node["nodeName"], "n1");
  EXPECT_EQ(node["cpu"]["usageNanoCores"], 500'000'000u);
  EXPECT_EQ(node["memory"]["usageBytes"], 3'000u);
  EXPECT_EQ(node["memory"]["workingSetBytes"], 2'500u);
  EXPECT_EQ(node["memory"]["availableBytes"], 1'500u);
  EXPECT_EQ(node["fs"]["usedBytes"], 60u);
  ASSERT_EQ(doc["pods"].size(), 1u);
  const auto& p = doc["pods"][0];
  EXPECT_EQ(p["podRef"],
            nlohmann::json({{"name", "web"}, {"namespace", "default"}, {"uid", "u1"}}));
  EXPECT_EQ(p["startTime"], "2026-11-26T11:00:00Z");
  ASSERT_EQ(p["containers"].size(), 1u);
  EXPECT_EQ(p["containers"][0]["name"], "app");
  EXPECT_EQ(p["containers"][0]["startTime"], "2026-11-26T11:30:00Z");
  EXPECT_EQ(p["containers"][0]["memory"]["workingSetBytes"], 2'000'000u);
  EXPECT_EQ(p["cpu"]["usageNanoCores"], 250'000'000u);
  EXPECT_EQ(p["memory"]["workingSetBytes"], 2'000'000u);
  EXPECT_FALSE(
      buildSummary("n1", now, std::nullopt, {}, {})["node"]["cpu"].contains("usageNanoCores"))
      << "a rate needs two samples";
}

// ---- pki ----

TEST(PkiTest, ASelfSignedCertificateIsMadeOnceWithTheNodesNames) {
  testing::TempDir dir;
  const SysTime now = *api::parseTime("2026-11-26T12:00:00Z");
  auto p = ensureSelfSignedCert(dir.str() + "/pki", "node-1", {"192.0.2.7", "not-an-ip"}, now);
  ASSERT_TRUE(p) << p.error().message;
  struct stat st {};
  ASSERT_EQ(::stat(p->key.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  FILE* f = std::fopen(p->cert.c_str(), "r");
  ASSERT_TRUE(f);
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  ASSERT_TRUE(cert);
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
  EXPECT_TRUE(std::string(cn).starts_with("node-1@")) << cn;
  EXPECT_EQ(X509_check_host(cert, "node-1", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(cert, "192.0.2.7", 0), 1);
  X509_free(cert);
  std::ifstream in(p->cert);
  const std::string first((std::istreambuf_iterator<char>(in)), {});
  auto again = ensureSelfSignedCert(dir.str() + "/pki", "node-1", {}, now + std::chrono::hours(24));
  ASSERT_TRUE(again);
  std::ifstream in2(again->cert);
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(in2)), {}), first) << "reused";
  auto renewed =
      ensureSelfSignedCert(dir.str() + "/pki", "node-1", {}, now + std::chrono::hours(24 * 400));
  ASSERT_TRUE(renewed);
  std::ifstream in3(renewed->cert);
  EXPECT_NE(std::string((std::istreambuf_iterator<char>(in3)), {}), first) << "expired: renewed";
}

}  // namespace
}  // namespace nodelet::agent
