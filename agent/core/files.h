#pragma once
// Reading a file whole, and writing one so that a reader never sees half of it: into <path>.tmp,
// then renamed over <path>. `durable` also syncs the file and its directory, for what must survive
// a power cut (credentials); files regenerated whenever missing skip it (an fsync costs
// milliseconds).
#include <sys/types.h>

#include <string>

#include "agent/core/error.h"

namespace nodelet {

// The whole file ("" when it cannot be read; `ok` says which).
std::string readFile(const std::string& path, bool* ok = nullptr);

Status writeFileAtomic(const std::string& path, const std::string& content, mode_t mode,
                       bool durable = false);

}  // namespace nodelet
