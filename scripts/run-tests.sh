#!/usr/bin/env bash
# Runs every test of a build directory (unit and end-to-end) with CTest.
set -euo pipefail
build_dir=${1:-build}
cd "$(dirname "$0")/.."
if [[ ! -f "$build_dir/CTestTestfile.cmake" ]]; then
  echo "run-tests: $build_dir is not a configured build; run 'make' first" >&2
  exit 1
fi
# The test brokers and clients bind loopback ports of their own; a system broker is not needed.
# The docker-mode tests need a Docker daemon: start one when none answers (the docker_daemon
# test, a CTest fixture, does the same for a bare ctest run; both fail saying why when none can).
scripts/docker-daemon.sh "$build_dir"
cd "$build_dir"
ctest --output-on-failure --no-tests=error -j "$(nproc)" "${@:2}"
