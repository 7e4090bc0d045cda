#pragma once
// Writing a file so that a reader never sees half of it: into <path>.tmp, then renamed over
// <path>. `durable` also syncs the file and its directory, for what must survive a power cut
// (credentials); files regenerated whenever missing skip it (an fsync costs milliseconds).
#include <sys/types.h>

#include <string>

#include "agent/core/error.h"

namespace nodelet {

Status writeFileAtomic(const std::string& path, const std::string& content, mode_t mode,
                       bool durable = false);

}  // namespace nodelet
