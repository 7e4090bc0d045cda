#pragma once
// Errors are values. Result<T> is std::expected<T, Error>; Status is Result<void>.
// An Error carries a code the caller may branch on and a message with context added on the way
// up: `return std::unexpected(err.wrap("pull " + image));`
#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace nodelet {

enum class ErrorCode {
  Unknown,
  InvalidArgument,
  NotFound,
  AlreadyExists,
  FailedPrecondition,
  PermissionDenied,
  ResourceExhausted,
  DeadlineExceeded,
  Unavailable,
  Unimplemented,
  Cancelled,
  Internal,
};

std::string_view toString(ErrorCode c);

struct Error {
  ErrorCode code{ErrorCode::Unknown};
  std::string message;

  // Prefixes context: Error{NotFound,"no such file"}.wrap("read a.yaml") -> "read a.yaml: no such
  // file".
  Error wrap(std::string_view context) const& {
    return Error{code, std::string(context) + ": " + message};
  }
  Error wrap(std::string_view context) && {
    message.insert(0, std::string(context) + ": ");
    return std::move(*this);
  }
  bool is(ErrorCode c) const { return code == c; }
};

template <class T>
using Result = std::expected<T, Error>;
using Status = Result<void>;

inline std::unexpected<Error> fail(ErrorCode code, std::string message) {
  return std::unexpected(Error{code, std::move(message)});
}

}  // namespace nodelet
