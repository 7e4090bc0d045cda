#!/usr/bin/env bash
# Installs what nodelet needs on Debian 12, from Debian's packages only.
#   packaging/install-deps.sh            build + runtime + test-rig dependencies
#   packaging/install-deps.sh --runtime  only what a node running nodelet needs
set -euo pipefail
runtime=(containerd runc containernetworking-plugins iptables iproute2 ca-certificates
         libgrpc++1.51 libprotobuf32 libcurl4 libyaml-cpp0.7 libspdlog1.10 libcpp-httplib0.11
         libseccomp2 libsystemd0)
build=(cmake g++ make pkg-config libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev
       protobuf-compiler nlohmann-json3-dev libspdlog-dev libyaml-cpp-dev libcpp-httplib-dev
       libseccomp-dev libsystemd-dev libcurl4-openssl-dev libssl-dev libgtest-dev libgmock-dev
       busybox-static curl dbus-daemon)
pkgs=("${runtime[@]}")
[ "${1:-}" = --runtime ] || pkgs+=("${build[@]}")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
