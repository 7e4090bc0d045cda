// The file source's scan: what it runs, what it reports, and what it keeps.
#include "staticpods/file_source.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "tests/common/simulated_clock.h"
#include "tests/common/temp_dir.h"

namespace nodelet::staticpods {
namespace {

std::string pod(const std::string& name, const std::string& image = "busybox:1.35") {
  return "apiVersion: v1\nkind: Pod\nmetadata: {name: " + name +
         "}\nspec:\n  containers:\n  - {name: c, image: \"" + image + "\"}\n";
}

std::vector<std::string> names(const FileSnapshot& s) {
  std::vector<std::string> out;
  for (const auto& p : s.pods) out.push_back(p.pod.metadata.name);
  return out;
}

class FileSourceTest : public ::testing::Test {
 protected:
  testing::TempDir dir_;
  testing::SimulatedClock clock_;
  FileSource source_{dir_.str(), "node", clock_, std::chrono::seconds(20)};
};

TEST_F(FileSourceTest, RunsEveryManifestAndIgnoresTheRest) {
  dir_.write("a.yaml", pod("a"));
  dir_.write(
      "b.json",
      R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"b"},"spec":{"containers":[{"name":"c","image":"x:1"}]}})");
  dir_.write(".hidden.yaml", pod("hidden"));
  dir_.write("c.yaml.swp", pod("swap"));
  dir_.write("d.yaml~", pod("backup"));
  dir_.write("sub/e.yaml", pod("nested"));  // not recursive
  auto s = source_.scan();
  EXPECT_EQ(names(s), (std::vector<std::string>{"a-node", "b-node"}));
  EXPECT_TRUE(s.errors.empty());
}

TEST_F(FileSourceTest, ABrokenManifestIsReportedAndSkippedWhileOthersRun) {
  dir_.write("good.yaml", pod("good"));
  dir_.write("bad.yaml",
             "apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec: {containers: [{name: c}]}\n");
  auto s = source_.scan();
  EXPECT_EQ(names(s), (std::vector<std::string>{"good-node"}));
  ASSERT_EQ(s.errors.size(), 1u);
  EXPECT_NE(s.errors[0].path.find("bad.yaml"), std::string::npos);
  EXPECT_NE(s.errors[0].message.find("spec.containers[0].image: Required value"),
            std::string::npos);
}

TEST_F(FileSourceTest, ABrokenEditKeepsTheLastGoodPodRunning) {
  dir_.write("web.yaml", pod("web"));
  auto first = source_.scan();
  ASSERT_EQ(first.pods.size(), 1u);
  const std::string uid = first.pods[0].pod.metadata.uid;
  dir_.write(
      "web.yaml",
      "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: c");  // truncated
  auto broken = source_.scan();
  ASSERT_EQ(broken.pods.size(), 1u) << "the running pod is not lost";
  EXPECT_EQ(broken.pods[0].pod.metadata.uid, uid);
  ASSERT_EQ(broken.errors.size(), 1u);
  dir_.write("web.yaml", pod("web", "busybox:1.36"));
  auto fixed = source_.scan();
  ASSERT_EQ(fixed.pods.size(), 1u);
  EXPECT_NE(fixed.pods[0].pod.metadata.uid, uid) << "the fixed edit is a new pod";
  EXPECT_TRUE(fixed.errors.empty());
}

TEST_F(FileSourceTest, AFileBeingWrittenIsNotReadUntilTheWriterCloses) {
  const auto path = dir_.write("web.yaml", pod("web"));
  const std::string uid = source_.scan().pods.at(0).pod.metadata.uid;
  source_.noteWriting(path.string(), true);
  // Mid-write the file may hold a valid prefix of the new content: still the old pod.
  dir_.write("web.yaml", pod("web", "busybox:1.36"));
  EXPECT_EQ(source_.scan().pods.at(0).pod.metadata.uid, uid);
  source_.noteWriting(path.string(), false);
  EXPECT_NE(source_.scan().pods.at(0).pod.metadata.uid, uid);
}

TEST_F(FileSourceTest, AnUnfinishedWriteIsReadAfterAFullPeriod) {
  const auto path = dir_.write("web.yaml", pod("web"));
  const std::string uid = source_.scan().pods.at(0).pod.metadata.uid;
  source_.noteWriting(path.string(), true);
  dir_.write("web.yaml", pod("web", "busybox:1.36"));
  clock_.advance(std::chrono::seconds(21));  // the writer never closed (crashed, mmap)
  EXPECT_NE(source_.scan().pods.at(0).pod.metadata.uid, uid);
}

TEST_F(FileSourceTest, RemovedFilesRemoveTheirPods) {
  dir_.write("a.yaml", pod("a"));
  dir_.write("b.yaml", pod("b"));
  ASSERT_EQ(source_.scan().pods.size(), 2u);
  std::filesystem::remove(dir_.path() / "a.yaml");
  EXPECT_EQ(names(source_.scan()), (std::vector<std::string>{"b-node"}));
}

TEST_F(FileSourceTest, TwoFilesCannotDefineTheSamePod) {
  dir_.write("a.yaml", pod("same"));
  dir_.write("b.yaml", pod("same", "other:1"));
  auto s = source_.scan();
  EXPECT_EQ(s.pods.size(), 1u);
  ASSERT_EQ(s.errors.size(), 1u);
  EXPECT_NE(s.errors[0].message.find("already defined"), std::string::npos);
}

TEST_F(FileSourceTest, ConfigMapsAndSecretsBesideThePodsAreReadToo) {
  dir_.write("a.yaml", pod("a"));
  dir_.write("cfg.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {k: v}\n");
  dir_.write("pw.json",
             R"({"apiVersion":"v1","kind":"Secret","metadata":{"name":"pw"},"data":{"p":"eA=="}})");
  dir_.write("dup.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n");
  auto s = source_.scan();
  EXPECT_EQ(names(s), (std::vector<std::string>{"a-node"}));
  ASSERT_EQ(s.objects.size(), 2u);
  EXPECT_EQ(s.objects[0].name, "cfg");
  EXPECT_EQ(s.objects[0].data.at("k"), "v");
  EXPECT_EQ(s.objects[1].resource, "secrets");
  EXPECT_EQ(s.objects[1].data.at("p"), "x");
  ASSERT_EQ(s.errors.size(), 1u);
  EXPECT_EQ(s.errors[0].message, "configmaps/default/cfg is already defined by another manifest");
  // A broken edit keeps the last good version, as for pods.
  dir_.write("cfg.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {k: [}\n");
  s = source_.scan();
  ASSERT_EQ(s.objects.size(), 2u);
  EXPECT_EQ(s.objects[0].data.at("k"), "v");
}

TEST_F(FileSourceTest, AMissingDirectoryIsEmptyAndASingleFileWorks) {
  FileSource missing((dir_.path() / "nope").string(), "node", clock_, std::chrono::seconds(20));
  EXPECT_TRUE(missing.scan().pods.empty());
  const auto f = dir_.write("only.yaml", pod("only"));
  FileSource single(f.string(), "node", clock_, std::chrono::seconds(20));
  EXPECT_EQ(names(single.scan()), (std::vector<std::string>{"only-node"}));
}

TEST_F(FileSourceTest, SymlinksToSpecialFilesAreIgnored) {
  std::filesystem::create_symlink("/dev/zero", dir_.path() / "zero.yaml");
  dir_.write("a.yaml", pod("a"));
  EXPECT_EQ(names(source_.scan()), (std::vector<std::string>{"a-node"}));
}

}  // namespace
}  // namespace nodelet::staticpods
