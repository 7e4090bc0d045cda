#pragma once
// What e2e tests need from the containerd rig (tests/rig/rig.sh env), and bounded polling.
// e2e tests talk to real processes, so they wait on real time; every wait is bounded.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <thread>

namespace nodelet::e2e {

inline std::string env(const char* name, const char* fallback = "") {
  const char* v = std::getenv(name);
  return v ? v : fallback;
}

// Skips the test unless the rig is up (tests/run.sh exports these).
#define NODELET_REQUIRE_RIG()                                                        \
  do {                                                                               \
    if (::nodelet::e2e::env("NODELET_E2E_CRI_ENDPOINT").empty())                     \
      GTEST_SKIP() << "NODELET_E2E_CRI_ENDPOINT not set: run through tests/run.sh, " \
                      "which starts the containerd rig";                             \
  } while (0)

// Polls `pred` every `step` until it holds or `limit` passes. Returns whether it held.
inline bool waitFor(const std::function<bool()>& pred,
                    std::chrono::milliseconds limit = std::chrono::seconds(10),
                    std::chrono::milliseconds step = std::chrono::milliseconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;  // NOLINT(real-time)
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;  // NOLINT(real-time)
    std::this_thread::sleep_for(step);                               // NOLINT(real-time)
  }
}

inline std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Waits (bounded) until the file at `path` contains `needle`; `content` gets what was read last.
inline bool waitForFileContaining(const std::string& path, const std::string& needle,
                                  std::string& content,
                                  std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  return waitFor(
      [&] {
        content = readFile(path);
        return content.find(needle) != std::string::npos;
      },
      limit);
}

inline std::string randomSuffix() {
  std::random_device rd;
  std::uniform_int_distribution<uint64_t> d;
  char buf[17];
  snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(d(rd)));
  return std::string(buf, 10);
}

inline int runCommand(const std::string& cmd) { return std::system(cmd.c_str()); }

}  // namespace nodelet::e2e
