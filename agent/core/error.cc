#include "agent/core/error.h"

namespace nodelet {

std::string_view toString(ErrorCode c) {
  switch (c) {
    case ErrorCode::Unknown:
      return "Unknown";
    case ErrorCode::InvalidArgument:
      return "InvalidArgument";
    case ErrorCode::NotFound:
      return "NotFound";
    case ErrorCode::AlreadyExists:
      return "AlreadyExists";
    case ErrorCode::FailedPrecondition:
      return "FailedPrecondition";
    case ErrorCode::PermissionDenied:
      return "PermissionDenied";
    case ErrorCode::ResourceExhausted:
      return "ResourceExhausted";
    case ErrorCode::DeadlineExceeded:
      return "DeadlineExceeded";
    case ErrorCode::Unavailable:
      return "Unavailable";
    case ErrorCode::Unimplemented:
      return "Unimplemented";
    case ErrorCode::Cancelled:
      return "Cancelled";
    case ErrorCode::Internal:
      return "Internal";
  }
  return "Unknown";
}

}  // namespace nodelet
