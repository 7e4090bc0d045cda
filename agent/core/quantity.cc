#include "agent/core/quantity.h"

#include <cmath>
#include <string>

namespace nodelet::api {
namespace {

// Returns the quantity times `scale` (1 or 1000), rounded up.
Result<int64_t> parseScaled(std::string_view q, long double scale) {
  auto bad = [&] {
    return fail(ErrorCode::InvalidArgument, "invalid quantity \"" + std::string(q) + "\"");
  };
  if (q.empty() || q.size() > 64) return bad();
  size_t i = 0;
  if (q[i] == '+' || q[i] == '-') ++i;
  size_t digits = 0;
  bool dot = false;
  for (; i < q.size(); ++i) {
    if (q[i] >= '0' && q[i] <= '9') {
      ++digits;
    } else if (q[i] == '.' && !dot) {
      dot = true;
    } else {
      break;
    }
  }
  if (digits == 0) return bad();
  const std::string number(q.substr(0, i));
  std::string_view suffix = q.substr(i);
  long double mult = 1;
  if (suffix.empty()) {
  } else if (suffix == "m") {
    mult = 1e-3L;
  } else if (suffix == "k") {
    mult = 1e3L;
  } else if (suffix == "M") {
    mult = 1e6L;
  } else if (suffix == "G") {
    mult = 1e9L;
  } else if (suffix == "T") {
    mult = 1e12L;
  } else if (suffix == "P") {
    mult = 1e15L;
  } else if (suffix == "E") {
    mult = 1e18L;
  } else if (suffix == "Ki") {
    mult = 1024.0L;
  } else if (suffix == "Mi") {
    mult = 1024.0L * 1024;
  } else if (suffix == "Gi") {
    mult = 1024.0L * 1024 * 1024;
  } else if (suffix == "Ti") {
    mult = 1024.0L * 1024 * 1024 * 1024;
  } else if (suffix == "Pi") {
    mult = 1024.0L * 1024 * 1024 * 1024 * 1024;
  } else if (suffix == "Ei") {
    mult = 1024.0L * 1024 * 1024 * 1024 * 1024 * 1024;
  } else if (suffix[0] == 'e' || suffix[0] == 'E') {
    int exp = 0;
    size_t j = 1;
    bool neg = false;
    if (j < suffix.size() && (suffix[j] == '+' || suffix[j] == '-')) neg = suffix[j++] == '-';
    if (j == suffix.size() || suffix.size() - j > 3) return bad();
    for (; j < suffix.size(); ++j) {
      if (suffix[j] < '0' || suffix[j] > '9') return bad();
      exp = exp * 10 + (suffix[j] - '0');
    }
    mult = std::pow(10.0L, neg ? -exp : exp);
  } else {
    return bad();
  }
  const long double v = std::stold(number) * mult * scale;
  if (!std::isfinite(v) || std::fabs(v) > 9.2e18L) return bad();
  return static_cast<int64_t>(std::ceil(v - 1e-9L));
}

}  // namespace

Result<int64_t> parseQuantityMilli(std::string_view q) { return parseScaled(q, 1000.0L); }
Result<int64_t> parseQuantity(std::string_view q) { return parseScaled(q, 1.0L); }

}  // namespace nodelet::api
