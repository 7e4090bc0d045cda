#pragma once
// resource.Quantity: "100m", "0.5", "64Mi", "1G", "1e3". Parsed exactly enough for a node agent:
// milli-units for CPU, bytes for memory and storage.
#include <cstdint>
#include <string_view>

#include "agent/core/error.h"

namespace nodelet::api {

// The quantity's value in thousandths, rounded up (as Quantity.MilliValue does).
Result<int64_t> parseQuantityMilli(std::string_view q);
// The quantity's value, rounded up to a whole number (as Quantity.Value does).
Result<int64_t> parseQuantity(std::string_view q);

}  // namespace nodelet::api
