// Data volumes: the atomic writer (a racing reader only ever sees complete sets), hostile paths
// refused, and configMap/secret/downwardAPI/projected payloads from a scripted object source.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "agent/atomic_writer.h"
#include "agent/core/api_json.h"
#include "agent/runtime_manager.h"
#include "tests/common/simulated_clock.h"
#include "tests/common/temp_dir.h"
#include "tests/fakes/fake_object_source.h"
#include "tests/fakes/fake_runtime_service.h"

namespace nodelet::agent {
namespace {

namespace fs = std::filesystem;

std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(AtomicWriterTest, WritesThroughDataAndSwapsAtomically) {
  testing::TempDir d;
  testing::SimulatedClock clock;
  const std::string dir = d.str() + "/vol";
  ASSERT_TRUE(*writeAtomically(dir, {{"a", {"1", 0644}}, {"sub/b", {"2", 0600}}}, clock));
  EXPECT_EQ(read(dir + "/a"), "1");
  EXPECT_EQ(read(dir + "/sub/b"), "2");
  EXPECT_TRUE(fs::is_symlink(dir + "/a"));
  EXPECT_EQ(fs::read_symlink(dir + "/a").string(), "..data/a");
  EXPECT_EQ(fs::status(dir + "/sub/b").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  // Unchanged: nothing written.
  EXPECT_FALSE(*writeAtomically(dir, {{"a", {"1", 0644}}, {"sub/b", {"2", 0600}}}, clock));
  // Changed: a removed name disappears, the old set's directory goes.
  ASSERT_TRUE(*writeAtomically(dir, {{"a", {"3", 0644}}}, clock));
  EXPECT_EQ(read(dir + "/a"), "3");
  EXPECT_FALSE(fs::exists(dir + "/sub"));
  int sets = 0;
  for (const auto& e : fs::directory_iterator(dir))
    sets += e.path().filename().string().starts_with("..2") ? 1 : 0;
  EXPECT_EQ(sets, 1);
}

TEST(AtomicWriterTest, AReaderRacingUpdatesOnlySeesCompleteSets) {
  testing::TempDir d;
  testing::SimulatedClock clock;
  const std::string dir = d.str() + "/vol";
  ASSERT_TRUE(writeAtomically(dir, {{"x", {"0", 0644}}, {"y", {"0", 0644}}}, clock));
  std::atomic<bool> done{false};
  std::atomic<int> torn{0}, reads{0};
  std::thread reader([&] {
    for (int i = 0; i < 200000 && !done; ++i) {
      const std::string x = read(dir + "/x"), y = read(dir + "/y");
      // Resolve ..data once and read both files from that set: they must agree. (The writer
      // removes a replaced set right after the swap, so a slow reader may find it gone: empty.)
      const std::string data = fs::read_symlink(dir + "/..data").string();
      const std::string x2 = read(dir + "/" + data + "/x"), y2 = read(dir + "/" + data + "/y");
      if (!x2.empty() && !y2.empty() && x2 != y2) ++torn;
      if (!x.empty() && x.size() > 3) ++torn;  // never a partial or foreign value
      ++reads;
    }
  });
  for (int v = 1; v <= 300; ++v) {
    const std::string s = std::to_string(v);
    ASSERT_TRUE(writeAtomically(dir, {{"x", {s, 0644}}, {"y", {s, 0644}}}, clock));
  }
  done = true;
  reader.join();
  EXPECT_EQ(torn, 0);
  EXPECT_GT(reads, 0);
}

TEST(AtomicWriterTest, HostilePathsAndKeysAreRefused) {
  for (const char* bad :
       {"../etc/passwd", "/etc/passwd", "a/../../b", "..data", "a/..b", "", "a//b"})
    EXPECT_FALSE(validatePayloadPath(bad)) << bad;
  for (const char* good : {"a", "a/b.txt", "ca.crt", ".hidden"})
    EXPECT_TRUE(validatePayloadPath(good)) << good;
  for (const char* bad : {"..", ".", "a/b", "..x", "a b", ""})
    EXPECT_FALSE(validateKey(bad)) << bad;
  testing::TempDir d;
  testing::SimulatedClock clock;
  EXPECT_FALSE(writeAtomically(d.str() + "/vol", {{"../escape", {"x", 0644}}}, clock));
  EXPECT_FALSE(fs::exists(d.path() / "escape"));
}

class DataVolumeTest : public ::testing::Test {
 protected:
  DataVolumeTest() {
    opts_.node_name = "n1";
    opts_.root_dir = dir_.str() + "/root";
    opts_.pod_logs_dir = dir_.str() + "/logs";
    opts_.objects = &objects_;
    rm_ = std::make_unique<RuntimeManager>(rt_, images_, clock_, events_, opts_);
    objects_.configmaps["ns/cfg"] = {{"app.conf", "x=1"}, {"other", "y"}};
    objects_.configmaps["ns/kube-root-ca.crt"] = {{"ca.crt", "CA"}};
    objects_.secrets["ns/pw"] = {{"password", "s3cret"}};
  }
  api::Pod pod(const std::string& volumes) {
    auto p = api::decodePod(
        R"({"metadata":{"name":"p","namespace":"ns","uid":"u1","labels":{"app":"web"}},
      "spec":{"containers":[{"name":"c","image":"i","resources":{"limits":{"memory":"64Mi"}}}],"volumes":)" +
        volumes + "}}");
    EXPECT_TRUE(p) << p.error().message;
    return *p;
  }
  testing::TempDir dir_;
  testing::SimulatedClock clock_;
  testing::FakeRuntimeService rt_{clock_};
  testing::FakeImageService images_;
  LocalEventRecorder events_{clock_};
  RuntimeManagerOptions opts_;
  testing::FakeObjectSource objects_;
  std::unique_ptr<RuntimeManager> rm_;
};

TEST_F(DataVolumeTest, ConfigMapItemsModesAndOptional) {
  auto p = pod(
      R"([{"name":"v","configMap":{"name":"cfg","defaultMode":288,"items":[{"key":"app.conf","path":"conf/app.conf","mode":256}]}}])");
  auto pl = rm_->dataPayload(p, p.spec.volumes[0], "10.0.0.1");
  ASSERT_TRUE(pl) << pl.error().message;
  ASSERT_EQ(pl->size(), 1u);
  EXPECT_EQ(pl->at("conf/app.conf"), (VolumeFile{"x=1", 0400}));
  auto all = pod(R"([{"name":"v","configMap":{"name":"cfg"}}])");
  EXPECT_EQ(rm_->dataPayload(all, all.spec.volumes[0], "")->size(), 2u);
  auto missing = pod(R"([{"name":"v","configMap":{"name":"nope"}}])");
  auto r = rm_->dataPayload(missing, missing.spec.volumes[0], "");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "configmap \"nope\" not found");
  auto optional = pod(R"([{"name":"v","configMap":{"name":"nope","optional":true}}])");
  EXPECT_TRUE(rm_->dataPayload(optional, optional.spec.volumes[0], "")->empty());
  auto hostile = pod(
      R"([{"name":"v","configMap":{"name":"cfg","items":[{"key":"app.conf","path":"../../etc/cron.d/x"}]}}])");
  r = rm_->dataPayload(hostile, hostile.spec.volumes[0], "");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("must not contain '..'"), std::string::npos)
      << r.error().message;
}

TEST_F(DataVolumeTest, TheServiceAccountVolumeTheApiServerAdds) {
  // kube-api-access-xxxxx, as the ServiceAccount admission plugin writes it.
  auto p = pod(R"([{"name":"kube-api-access-abcde","projected":{"defaultMode":420,"sources":[
    {"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}},
    {"configMap":{"name":"kube-root-ca.crt","items":[{"key":"ca.crt","path":"ca.crt"}]}},
    {"downwardAPI":{"items":[{"path":"namespace","fieldRef":{"apiVersion":"v1","fieldPath":"metadata.namespace"}}]}}]}}])");
  auto pl = rm_->dataPayload(p, p.spec.volumes[0], "");
  ASSERT_TRUE(pl) << pl.error().message;
  EXPECT_EQ(pl->at("token").content, "token-for-p-");
  EXPECT_EQ(pl->at("ca.crt").content, "CA");
  EXPECT_EQ(pl->at("namespace").content, "ns");
  EXPECT_EQ(pl->at("token").mode, 0644);
}

TEST_F(DataVolumeTest, DownwardApiFieldsAndResources) {
  auto p = pod(R"([{"name":"v","downwardAPI":{"items":[
    {"path":"labels","fieldRef":{"fieldPath":"metadata.labels"}},
    {"path":"name","fieldRef":{"fieldPath":"metadata.name"}},
    {"path":"mem","resourceFieldRef":{"containerName":"c","resource":"limits.memory","divisor":"1Mi"}}]}}])");
  auto pl = rm_->dataPayload(p, p.spec.volumes[0], "");
  ASSERT_TRUE(pl) << pl.error().message;
  EXPECT_EQ(pl->at("labels").content, "app=\"web\"");
  EXPECT_EQ(pl->at("name").content, "p");
  EXPECT_EQ(pl->at("mem").content, "64");
}

TEST_F(DataVolumeTest, SecretVolumeAndEnvReferences) {
  auto p = pod(R"([{"name":"v","secret":{"secretName":"pw"}}])");
  auto pl = rm_->dataPayload(p, p.spec.volumes[0], "");
  ASSERT_TRUE(pl);
  EXPECT_EQ(pl->at("password").content, "s3cret");
  // Standalone (no object source): refused with the reason, never half-run.
  RuntimeManagerOptions standalone = opts_;
  standalone.objects = nullptr;
  RuntimeManager rm(rt_, images_, clock_, events_, standalone);
  auto r = rm.dataPayload(p, p.spec.volumes[0], "");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("needs an API server"), std::string::npos);
}

TEST_F(DataVolumeTest, EnvFromConfigMapsAndSecretsWithPrefixAndInvalidKeys) {
  objects_.configmaps["ns/env"] = {{"MODE", "prod"}, {"bad=key", "x"}, {"LEVEL", "1"}};
  auto p = api::decodePod(
      R"json({"metadata":{"name":"p","namespace":"ns","uid":"u1"},"spec":{"containers":[{"name":"c","image":"i",
    "envFrom":[{"configMapRef":{"name":"env"},"prefix":"APP_"},{"secretRef":{"name":"pw"}},{"configMapRef":{"name":"gone","optional":true}}],
    "env":[{"name":"APP_LEVEL","value":"2"},{"name":"GREETING","value":"mode=$(APP_MODE)"}]}]}})json");
  ASSERT_TRUE(p) << p.error().message;
  auto env = rm_->containerEnv(*p, p->spec.containers[0], "");
  ASSERT_TRUE(env) << env.error().message;
  std::map<std::string, std::string> m(env->begin(), env->end());
  EXPECT_EQ(m.size(), env->size()) << "one entry per name";
  EXPECT_EQ(m["APP_MODE"], "prod");
  EXPECT_EQ(m["APP_LEVEL"], "2") << "env wins over envFrom";
  EXPECT_EQ(m["password"], "s3cret");
  EXPECT_EQ(m["GREETING"], "mode=prod");
  EXPECT_FALSE(m.contains("APP_bad=key"));
  bool warned = false;
  for (const auto& e : events_.events())
    warned = warned || (e.reason == "InvalidEnvironmentVariableNames" &&
                        e.message.find("APP_bad=key") != std::string::npos);
  EXPECT_TRUE(warned);
  auto missing = api::decodePod(
      R"({"metadata":{"name":"p","namespace":"ns","uid":"u1"},"spec":{"containers":[{"name":"c","image":"i",
    "envFrom":[{"secretRef":{"name":"nope"}}]}]}})");
  auto r = rm_->containerEnv(*missing, missing->spec.containers[0], "");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "secret \"nope\" not found");
}

TEST_F(DataVolumeTest, RunAsNonRootIsCheckedAgainstRunAsUserAndTheImage) {
  images_.addImage("img");
  auto make = [](const std::string& sc) {
    auto p = api::decodePod(R"({"metadata":{"name":"p","namespace":"ns","uid":"u1"},"spec":{)" +
                            sc + R"("containers":[{"name":"c","image":"img"}]}})");
    EXPECT_TRUE(p) << p.error().message;
    return *p;
  };
  auto root_user = make(R"("securityContext":{"runAsNonRoot":true,"runAsUser":0},)");
  auto s = rm_->checkNonRoot(root_user, root_user.spec.containers[0]);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message,
            "container's runAsUser breaks non-root policy (pod: \"p_ns(u1)\", container: c)");
  auto by_image = make(R"("securityContext":{"runAsNonRoot":true},)");
  s = rm_->checkNonRoot(by_image, by_image.spec.containers[0]);  // no USER in the image: root
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("image will run as root"), std::string::npos);
  images_.setImageUser("img", std::nullopt, "nobody");
  s = rm_->checkNonRoot(by_image, by_image.spec.containers[0]);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("image has non-numeric user (nobody)"), std::string::npos);
  images_.setImageUser("img", 1000);
  EXPECT_TRUE(rm_->checkNonRoot(by_image, by_image.spec.containers[0]));
  auto explicit_user = make(R"("securityContext":{"runAsNonRoot":true,"runAsUser":1000},)");
  EXPECT_TRUE(rm_->checkNonRoot(explicit_user, explicit_user.spec.containers[0]));
}

TEST_F(DataVolumeTest, ServiceEnvironmentVariablesAsTheKubeletWritesThem) {
  objects_.svcs["ns"] = {
      {"redis-master", "10.0.0.11", {{"redis", 6379, "TCP"}, {"", 6380, "UDP"}}}};
  objects_.svcs["default"] = {{"kubernetes", "10.96.0.1", {{"https", 443, "TCP"}}}};
  auto p = api::decodePod(
      R"({"metadata":{"name":"p","namespace":"ns","uid":"u1"},"spec":{"containers":[{"name":"c","image":"i",
    "env":[{"name":"REDIS_MASTER_SERVICE_PORT","value":"override"}]}]}})");
  ASSERT_TRUE(p);
  auto env = rm_->containerEnv(*p, p->spec.containers[0], "");
  ASSERT_TRUE(env) << env.error().message;
  std::map<std::string, std::string> m(env->begin(), env->end());
  EXPECT_EQ(m["REDIS_MASTER_SERVICE_HOST"], "10.0.0.11");
  EXPECT_EQ(m["REDIS_MASTER_SERVICE_PORT"], "override") << "the container's own env wins";
  EXPECT_EQ(m["REDIS_MASTER_SERVICE_PORT_REDIS"], "6379");
  EXPECT_EQ(m["REDIS_MASTER_PORT"], "tcp://10.0.0.11:6379");
  EXPECT_EQ(m["REDIS_MASTER_PORT_6380_UDP"], "udp://10.0.0.11:6380");
  EXPECT_EQ(m["REDIS_MASTER_PORT_6380_UDP_PROTO"], "udp");
  EXPECT_EQ(m["REDIS_MASTER_PORT_6379_TCP_ADDR"], "10.0.0.11");
  EXPECT_EQ(m["KUBERNETES_SERVICE_HOST"], "10.96.0.1") << "the API server's service, from default";
  EXPECT_EQ(m["KUBERNETES_PORT_443_TCP"], "tcp://10.96.0.1:443");
  // enableServiceLinks: false keeps only the API server's.
  p->spec.enable_service_links = false;
  env = rm_->containerEnv(*p, p->spec.containers[0], "");
  m = std::map<std::string, std::string>(env->begin(), env->end());
  EXPECT_FALSE(m.contains("REDIS_MASTER_SERVICE_HOST"));
  EXPECT_EQ(m["KUBERNETES_SERVICE_HOST"], "10.96.0.1");
  EXPECT_EQ(serviceEnv({{"v6", "fd00::10", {{"", 80, "TCP"}}}})[2].second, "tcp://[fd00::10]:80");
}

}  // namespace
}  // namespace nodelet::agent
