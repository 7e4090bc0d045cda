// Log rotation: size limit, ReopenContainerLog, at most maxFiles files, nothing lost on failure.
#include "agent/log_rotation.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <filesystem>

#include "tests/common/simulated_clock.h"
#include "tests/common/temp_dir.h"
#include "tests/fakes/fake_runtime_service.h"

namespace nodelet::agent {
namespace {

namespace fs = std::filesystem;

class LogRotationTest : public ::testing::Test {
 protected:
  size_t files() {
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(dir_.path() / "app")) n += e.is_regular_file();
    return n;
  }
  testing::TempDir dir_;
  testing::SimulatedClock clock_;
  testing::FakeRuntimeService rt_{clock_};
  LogRotator rotator_{rt_, clock_, 100, 3};
};

TEST_F(LogRotationTest, RotatesOnlyWhatOutgrewTheLimitAndKeepsMaxFiles) {
  const std::string id = rt_.addForeignContainer("s", "app", {}, cri::ContainerState::Running);
  const auto log = dir_.write("app/0.log", std::string(50, 'x'));
  EXPECT_EQ(rotator_.rotate({{id, log.string()}}), 0) << "under the limit";
  for (int i = 0; i < 5; ++i) {
    dir_.write("app/0.log", std::string(150, 'x'));  // the runtime reopened and wrote again
    EXPECT_EQ(rotator_.rotate({{id, log.string()}}), 1);
    EXPECT_FALSE(fs::exists(log)) << "renamed aside until the runtime reopens it";
    clock_.advance(std::chrono::seconds(1));
  }
  EXPECT_EQ(rt_.countCalls("ReopenContainerLog"), 5u);
  EXPECT_EQ(files(), 2u) << "maxFiles 3 = the live file + 2 rotated ones";
  // The older of the two is compressed, the newest not (the runtime may still finish a write).
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir_.path() / "app"))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  ASSERT_EQ(names.size(), 2u);
  EXPECT_TRUE(names[0].ends_with(".gz")) << names[0];
  EXPECT_FALSE(names[1].ends_with(".gz")) << names[1];
  EXPECT_LT(names[0], names[1]);
  // And it decompresses to what was written.
  gzFile gz = gzopen((dir_.path() / "app" / names[0]).c_str(), "rb");
  ASSERT_TRUE(gz);
  char buf[512];
  const int n = gzread(gz, buf, sizeof buf);
  gzclose(gz);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(std::max(n, 0))), std::string(150, 'x'));
}

TEST_F(LogRotationTest, CompressionGoesThroughATemporaryFileAndRemovesTheOriginal) {
  const auto f = dir_.write("app/0.log.20261126-120000", "hello\n");
  ASSERT_TRUE(compressLog(f.string()));
  EXPECT_FALSE(fs::exists(f));
  EXPECT_TRUE(fs::exists(f.string() + ".gz"));
  EXPECT_FALSE(fs::exists(f.string() + ".gz.tmp"));
  EXPECT_FALSE(compressLog((dir_.path() / "app/missing").string()));
}

TEST_F(LogRotationTest, AFailedReopenPutsTheFileBack) {
  const std::string id = rt_.addForeignContainer("s", "app", {}, cri::ContainerState::Running);
  const auto log = dir_.write("app/0.log", std::string(150, 'x'));
  rt_.injectError("ReopenContainerLog", Error{ErrorCode::Unknown, "boom"});
  EXPECT_EQ(rotator_.rotate({{id, log.string()}}), 0);
  EXPECT_TRUE(fs::exists(log));
  EXPECT_EQ(fs::file_size(log), 150u);
  EXPECT_EQ(files(), 1u);
}

}  // namespace
}  // namespace nodelet::agent
