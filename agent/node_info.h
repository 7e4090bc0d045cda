#pragma once
// Facts about this machine the agent needs: its IP, CPUs and memory, and whether swap is on.
#include <cstdint>
#include <string>

namespace nodelet::agent {

// The IPv4 address of the interface that carries the default route ("" when there is none).
std::string defaultRouteIp();
int64_t cpuMilli();
int64_t memoryBytes();
bool swapOn();

}  // namespace nodelet::agent
