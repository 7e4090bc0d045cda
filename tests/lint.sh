#!/usr/bin/env bash
# Time comes only from the Clock: real clocks and sleeps are allowed in agent/core/real_clock.cc
# and on lines marked NOLINT(real-time) (e2e tests waiting on real processes, gRPC deadlines).
set -euo pipefail
cd "$(dirname "$0")/.."
hits=$(git grep -nE 'std::chrono::(steady|system)_clock::now|sleep_for|usleep\(' -- '*.cc' '*.h' \
       | grep -v 'agent/core/real_clock.cc' | grep -v 'NOLINT(real-time)' || true)
if [ -n "$hits" ]; then
  echo "lint: real time or sleeps outside the Clock:" >&2
  echo "$hits" >&2
  exit 1
fi
echo "lint: ok"
