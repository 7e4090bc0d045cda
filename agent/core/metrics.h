#pragma once
// Prometheus metrics, as few parts as nodelet needs: a latency histogram (the client library's
// default buckets, or the kubelet's own for the metrics that have their own) and the text
// exposition format (version 0.0.4). The registry is the agent's; components keep their own
// counters.
#include <array>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "agent/core/clock.h"

namespace nodelet::metrics {

// Seconds: .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10, then +Inf.
inline constexpr std::array<double, 11> kDefaultBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                           0.5,   1,    2.5,   5,    10};

// The client library's ExponentialBuckets: `start`, then each bound `factor` times the one
// before (multiplied step by step, as Go does, so the doubles are the same).
template <size_t N>
constexpr std::array<double, N> exponentialBuckets(double start, double factor) {
  std::array<double, N> b{};
  for (auto& v : b) {
    v = start;
    start *= factor;
  }
  return b;
}
// kubelet_runtime_operations_duration_seconds: ExponentialBuckets(0.005, 2.5, 14).
inline constexpr auto kRuntimeOperationBuckets = exponentialBuckets<14>(0.005, 2.5);
// The pod startup SLI histograms (kubelet_pod_start_sli_duration_seconds and
// kubelet_pod_start_total_duration_seconds): round numbers up to an hour.
inline constexpr std::array<double, 25> kPodStartupBuckets = {
    0.5, 1,   2,   3,   4,   5,   6,   8,   10,   20,   30,   45,  60,
    120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600};

struct Histogram {
  // `bounds` must outlive the histogram (the constants above do).
  explicit Histogram(std::span<const double> upper_bounds = kDefaultBuckets)
      : bounds(upper_bounds), buckets(upper_bounds.size()) {}
  std::span<const double> bounds;  // upper bounds in seconds, ascending; +Inf is implied
  std::vector<uint64_t> buckets;   // not cumulative
  uint64_t count{0};
  double sum{0};
  void observe(Duration d);
  void observeSeconds(double s);
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
