#include "agent/app.h"

#include <cstdio>
#include <string>
#include <vector>

#include "agent/config.h"
#include "agent/core/log.h"
#include "agent/flags.h"
#include "nodelet/version.h"

namespace nodelet::agent {

int runMain(int argc, char** argv) {
  std::vector<std::string> argv_s(argv, argv + argc);
  auto args = parseArgs(argv_s);
  if (!args) {
    std::fprintf(stderr, "nodelet: %s\n", args.error().message.c_str());
    return 2;
  }
  switch (args->command) {
    case Command::Help:
      std::fputs(usage().c_str(), stdout);
      return 0;
    case Command::Version:
      std::printf("nodelet %s (Kubernetes %s)\n", kVersion, kKubeVersion);
      return 0;
    case Command::Check:
    case Command::Pods:
    case Command::Run:
      break;
  }
  Config cfg;
  if (auto s = applyFlags(*args, cfg); !s) {  // --config may come from the flags
    std::fprintf(stderr, "nodelet: %s\n", s.error().message.c_str());
    return 2;
  }
  if (!cfg.config_file.empty()) {
    if (auto s = loadConfigFile(cfg.config_file, cfg); !s) {
      std::fprintf(stderr, "nodelet: %s\n", s.error().message.c_str());
      return 2;
    }
    (void)applyFlags(*args, cfg);  // flags win over the file
  }
  if (auto s = validateConfig(cfg); !s) {
    std::fprintf(stderr, "nodelet: %s\n", s.error().message.c_str());
    return 2;
  }
  log::setVerbosity(cfg.verbosity);
  std::fprintf(stderr, "nodelet: the agent itself is not built yet in this revision\n");
  return 1;
}

}  // namespace nodelet::agent
