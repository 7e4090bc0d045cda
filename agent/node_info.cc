#include "agent/node_info.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace nodelet::agent {

std::string defaultRouteIp() {
  std::ifstream route("/proc/net/route");
  std::string line, iface;
  std::getline(route, line);  // header
  while (std::getline(route, line)) {
    std::istringstream f(line);
    std::string name, dest;
    if (f >> name >> dest && dest == "00000000") {
      iface = name;
      break;
    }
  }
  if (iface.empty()) return "";
  ifaddrs* addrs = nullptr;
  if (getifaddrs(&addrs) != 0) return "";
  std::string ip;
  for (ifaddrs* a = addrs; a; a = a->ifa_next) {
    if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET || iface != a->ifa_name) continue;
    char buf[INET_ADDRSTRLEN];
    const auto* sin = reinterpret_cast<const sockaddr_in*>(a->ifa_addr);
    if (inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf)) ip = buf;
    break;
  }
  freeifaddrs(addrs);
  return ip;
}

int64_t cpuMilli() { return static_cast<int64_t>(sysconf(_SC_NPROCESSORS_ONLN)) * 1000; }

int64_t memoryBytes() {
  struct sysinfo si {};
  if (sysinfo(&si) != 0) return 0;
  return static_cast<int64_t>(si.totalram) * si.mem_unit;
}

bool swapOn() {
  std::ifstream swaps("/proc/swaps");
  std::string line;
  std::getline(swaps, line);  // header
  return static_cast<bool>(std::getline(swaps, line)) && !line.empty();
}

}  // namespace nodelet::agent
