#pragma once
// Prometheus metrics, as few parts as nodelet needs: a latency histogram with the client
// library's default buckets (what the kubelet's duration metrics use) and the text exposition
// format (version 0.0.4). The registry is the agent's; components keep their own counters.
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "agent/core/clock.h"

namespace nodelet::metrics {

// Seconds: .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10, then +Inf.
inline constexpr std::array<double, 11> kDefaultBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                           0.5,   1,    2.5,   5,    10};

struct Histogram {
  std::array<uint64_t, kDefaultBuckets.size()> buckets{};  // not cumulative
  uint64_t count{0};
  double sum{0};
  void observe(Duration d);
};

using Labels = std::map<std::string, std::string>;

// Builds an exposition: one family (HELP, TYPE) at a time, then its samples.
class Writer {
 public:
  void family(const std::string& name, const std::string& type, const std::string& help);
  void sample(const std::string& name, const Labels& labels, double value);
  void histogram(const std::string& name, const Labels& labels, const Histogram& h);
  const std::string& text() const { return out_; }

 private:
  std::string out_;
};

std::string formatValue(double v);

}  // namespace nodelet::metrics
