#include "agent/core/metrics.h"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace nodelet::metrics {

void Histogram::observe(Duration d) { observeSeconds(std::chrono::duration<double>(d).count()); }

void Histogram::observeSeconds(double s) {
  for (size_t i = 0; i < bounds.size(); ++i)
    if (s <= bounds[i]) {
      ++buckets[i];
      break;
    }
  ++count;
  sum += s;
}

std::string formatValue(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<int64_t>(v));
  // The shortest text that reads back as the same double, as Go's client writes `le` bounds.
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

namespace {

std::string escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string labelText(const Labels& l) {
  if (l.empty()) return "";
  std::string s = "{";
  for (const auto& [k, v] : l) s += (s.size() > 1 ? "," : "") + k + "=\"" + escape(v) + "\"";
  return s + "}";
}

}  // namespace

void Writer::family(const std::string& name, const std::string& type, const std::string& help) {
  out_ += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

void Writer::sample(const std::string& name, const Labels& labels, double value) {
  out_ += name + labelText(labels) + " " + formatValue(value) + "\n";
}

void Writer::histogram(const std::string& name, const Labels& labels, const Histogram& h) {
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.bounds.size(); ++i) {
    cumulative += h.buckets[i];
    Labels l = labels;
    l["le"] = formatValue(h.bounds[i]);
    sample(name + "_bucket", l, static_cast<double>(cumulative));
  }
  Labels inf = labels;
  inf["le"] = "+Inf";
  sample(name + "_bucket", inf, static_cast<double>(h.count));
  sample(name + "_sum", labels, h.sum);
  sample(name + "_count", labels, static_cast<double>(h.count));
}

}  // namespace nodelet::metrics
