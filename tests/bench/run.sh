#!/usr/bin/env bash
# Builds the release preset and runs tests/bench/bench.cc against a fresh rig.
#   sudo ./tests/bench/run.sh           pod start, crash/edit replacement, RSS and CPU
#   sudo ./tests/bench/run.sh probes    110 pods with probes next to 110 without
#   sudo ./tests/bench/run.sh cluster   cluster mode against the fake API server
#   sudo ./tests/bench/run.sh streams   exec and port-forward through the node server
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "bench: run as root" >&2; exit 1; }
packaging/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" --target nodelet nodelet_bench
tests/rig/rig.sh teardown >/dev/null 2>&1 || true
trap 'tests/rig/rig.sh teardown >/dev/null' EXIT
NODELET_BIN=build/release/agent/nodelet tests/rig/rig.sh setup
eval "$(tests/rig/rig.sh env | sed 's/^/export /')"
build/release/tests/nodelet_bench "$@"
