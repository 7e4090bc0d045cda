#pragma once
// The command line: the kubelet's flags (same names, same --flag=value / --flag value forms,
// -v N), plus nodelet's own subcommands.
//   nodelet [flags]                 run the agent
//   nodelet check [-o yaml|json] FILE...   validate manifests, print pods as nodelet runs them
//   nodelet pods [--root-dir DIR]   the pods this node runs, like `kubectl get pods -o wide`
#include <string>
#include <utility>
#include <vector>

#include "agent/config.h"

namespace nodelet::agent {

enum class Command { Run, Check, Pods, CniConfig, Help, Version };

struct Args {
  Command command{Command::Run};
  std::vector<std::string> positional;                     // files for `check`
  std::string output{"yaml"};                              // `check -o`
  std::vector<std::pair<std::string, std::string>> flags;  // in order, names without dashes
};

// Syntax only: unknown flags and missing values are errors here.
Result<Args> parseArgs(const std::vector<std::string>& argv);
// Applies parsed flags over `cfg` (after the --config file): flags win.
Status applyFlags(const Args& args, Config& cfg);
std::string usage();
// "a,b,,c" -> {a, b, c}: the items between any of `seps`, empty ones dropped (flag lists,
// podCIDR lists). With `keep_empty`, Go's strings.Split: {a, b, "", c}, and "" -> {""} (the
// kubelet's /run command line, port-forward port lists).
std::vector<std::string> splitList(const std::string& v, const char* seps, bool keep_empty = false);

}  // namespace nodelet::agent
