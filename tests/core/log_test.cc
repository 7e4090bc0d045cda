// Logging under systemd: the journal is recognised by JOURNAL_STREAM, lines then carry the
// syslog priority instead of a timestamp of their own.
#include "agent/core/log.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "tests/common/temp_dir.h"

namespace nodelet::log {
namespace {

TEST(LogTest, TheJournalIsTheStreamJournalStreamNames) {
  testing::TempDir dir;
  const std::string path = dir.str() + "/stream";
  FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_TRUE(f);
  struct stat st {};
  ASSERT_EQ(::fstat(fileno(f), &st), 0);
  const std::string mine =
      std::to_string(st.st_dev) + ":" + std::to_string(static_cast<unsigned long long>(st.st_ino));
  EXPECT_TRUE(stderrIsJournal(mine.c_str(), fileno(f)));
  const std::string other = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1);
  EXPECT_FALSE(stderrIsJournal(other.c_str(), fileno(f))) << "stderr was redirected elsewhere";
  EXPECT_FALSE(stderrIsJournal(nullptr, fileno(f)));
  EXPECT_FALSE(stderrIsJournal("garbage", fileno(f)));
  std::fclose(f);
}

TEST(LogTest, PrioritiesAndPatterns) {
  EXPECT_EQ(syslogPriority(Level::Error), 3);
  EXPECT_EQ(syslogPriority(Level::Warn), 4);
  EXPECT_EQ(syslogPriority(Level::Info), 6);
  EXPECT_EQ(syslogPriority(Level::Debug), 7);
  EXPECT_EQ(pattern(true).find("%H"), std::string_view::npos) << "no double timestamps";
  EXPECT_NE(pattern(false).find("%H:%M:%S"), std::string_view::npos);
}

}  // namespace
}  // namespace nodelet::log
