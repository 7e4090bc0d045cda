#pragma once
// Standard base64 (with or without padding, whitespace ignored), as kubeconfig's *-data fields,
// Secret data and ConfigMap binaryData carry it.
#include <string>
#include <string_view>

#include "agent/core/error.h"

namespace nodelet {

Result<std::string> base64Decode(std::string_view in);
std::string base64Encode(std::string_view in);  // standard, padded

}  // namespace nodelet
