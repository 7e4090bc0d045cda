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

TEST_F(LogRotationTest, RotatesWhatReachedTheLimitAndNeverHasMoreThanMaxFiles) {
  const std::string id = rt_.addForeignContainer("s", "app", {}, cri::ContainerState::Running);
  const auto log = dir_.write("app/0.log", std::string(99, 'x'));
  rt_.setContainerLogPath(id, log.string());
  // Counted the moment the runtime has created the new live file: the most there ever are.
  size_t most = 0;
  rt_.setReopenObserver([&](const std::string&) { most = std::max(most, files()); });
  EXPECT_EQ(rotator_.rotate({{id, log.string()}}), 0) << "under the limit";
  for (int i = 0; i < 5; ++i) {
    dir_.write("app/0.log", std::string(i == 0 ? 100 : 150, 'x'));  // the runtime wrote again
    EXPECT_EQ(rotator_.rotate({{id, log.string()}}), 1) << i;
    EXPECT_EQ(fs::file_size(log), 0u) << "a new, empty live file from the runtime";
    EXPECT_LE(files(), 3u);
    clock_.advance(std::chrono::seconds(1));
  }
  EXPECT_EQ(rt_.countCalls("ReopenContainerLog"), 5u);
  EXPECT_EQ(most, 3u) << "maxFiles 3 = the live file + 2 rotated ones, at every moment";
  // The older rotated file is compressed, the newest not (the runtime may still finish a write).
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir_.path() / "app"))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  ASSERT_EQ(names.size(), 3u);
  EXPECT_EQ(names[0], "0.log");
  EXPECT_TRUE(names[1].ends_with(".gz")) << names[1];
  EXPECT_FALSE(names[2].ends_with(".gz")) << names[2];
  EXPECT_LT(names[1], names[2]);
  // And it decompresses to what was written.
  gzFile gz = gzopen((dir_.path() / "app" / names[1]).c_str(), "rb");
  ASSERT_TRUE(gz);
  char buf[512];
  const int n = gzread(gz, buf, sizeof buf);
  gzclose(gz);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(std::max(n, 0))), std::string(150, 'x'));
}

TEST_F(LogRotationTest, LeftoversOfAnInterruptedCompressionAreCleanedUp) {
  const std::string id = rt_.addForeignContainer("s", "app", {}, cri::ContainerState::Running);
  const auto log = dir_.write("app/0.log", std::string(150, 'x'));
  rt_.setContainerLogPath(id, log.string());
  // Earlier than the clock's now (2023-11-14 22:13:20 UTC).
  // A crash mid-compression leaves a .tmp; one after the rename leaves both the file and its .gz.
  dir_.write("app/0.log.20231114-110000", "a");
  dir_.write("app/0.log.20231114-110000.gz.tmp", "partial");
  dir_.write("app/0.log.20231114-100000", "b");
  dir_.write("app/0.log.20231114-100000.gz", "compressed b");
  EXPECT_EQ(rotator_.rotate({{id, log.string()}}), 1);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir_.path() / "app"))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  // Kept: the live file, the newest earlier rotation (now compressed) and the one just made.
  ASSERT_EQ(names.size(), 3u) << ::testing::PrintToString(names);
  EXPECT_EQ(names[0], "0.log");
  EXPECT_EQ(names[1], "0.log.20231114-110000.gz");
  EXPECT_FALSE(names[2].ends_with(".gz")) << names[2];
}

TEST_F(LogRotationTest, AMissingLiveFileIsRecreatedByTheRuntime) {
  const std::string id = rt_.addForeignContainer("s", "app", {}, cri::ContainerState::Running);
  const auto log = dir_.path() / "app" / "0.log";
  dir_.write("app/0.log.20261126-110000", "a");
  rt_.setContainerLogPath(id, log.string());
  EXPECT_EQ(rotator_.rotate({{id, log.string()}}), 0);
  EXPECT_EQ(rt_.countCalls("ReopenContainerLog"), 1u);
  EXPECT_TRUE(fs::exists(log));
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
