#!/usr/bin/env bash
# nodelet's whole test suite, from a fresh Debian 12 machine: installs dependencies, builds
# (preset "dev": warnings are errors), starts the containerd rig, runs the unit and e2e tests
# with ctest, and tears the rig down whatever happens. Exits non-zero on any failure.
#   sudo ./tests/run.sh              everything
#   sudo ./tests/run.sh -L unit      only unit tests (any ctest arguments are passed on)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "tests/run.sh: run as root (sudo): the e2e tests drive a private containerd" >&2
  exit 1
fi
start=$(date +%s)
tests/lint.sh
packaging/install-deps.sh
cmake --preset dev >/dev/null
cmake --build --preset dev -j"$(nproc)"
tests/rig/rig.sh teardown >/dev/null 2>&1 || true   # leftovers of a crashed earlier run
trap 'tests/rig/rig.sh teardown' EXIT
NODELET_BIN=build/dev/agent/nodelet tests/rig/rig.sh setup   # the rig's CNI network is nodelet's
eval "$(tests/rig/rig.sh env | sed 's/^/export /')"
rc=0
ctest --preset dev -j"$(nproc)" "$@" || rc=$?
echo "tests/run.sh: finished in $(( $(date +%s) - start ))s"
exit $rc
