#include "cri/instrumented_service.h"

#include <fmt/format.h>

namespace nodelet::cri {

void OperationRecorder::record(const char* name, Duration d, bool error) {
  std::lock_guard g(mu_);
  auto& s = ops_[name];
  ++s.count;
  if (error) ++s.errors;
  s.total += d;
  s.max = std::max(s.max, d);
  s.latency.observe(d);
}

std::map<std::string, OperationStats> OperationRecorder::snapshot() const {
  std::lock_guard g(mu_);
  return ops_;
}

std::string OperationRecorder::summary() const {
  std::string out;
  for (const auto& [name, s] : snapshot()) {
    const auto ms = [](Duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
    out += fmt::format("{} n={} err={} mean={:.2f}ms max={:.2f}ms total={:.1f}ms; ", name, s.count,
                       s.errors, s.count ? ms(s.total) / static_cast<double>(s.count) : 0.0,
                       ms(s.max), ms(s.total));
  }
  return out;
}

}  // namespace nodelet::cri
