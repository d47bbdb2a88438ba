#!/usr/bin/env bash
# Runs the example in the foreground until Ctrl-C: the master (`baetyl start`) in native mode on
# a copy of example/native, which starts the hub (baetyl-hub on 127.0.0.1:1883) and the timer
# (baetyl-timer, publishing to the topic `timer` every second). A subscriber prints what reaches
# the hub as `[received] <topic> <payload>` lines.
#
#   scripts/run-example.sh [BUILD_DIR]     (default: build)
#
# The work directory is BUILD_DIR/example-native: its configuration is copied fresh from
# example/native on every run, its data and logs (var/db/baetyl/*-data, var/log) are kept.
# The master API listens on the example's unix:///var/run/baetyl.sock, so run it as root.
set -euo pipefail
build_dir=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/$build_dir/bin
for program in baetyl baetyl-hub baetyl-timer; do
  [[ -x $bin/$program ]] || { echo "run-example: $bin/$program is missing; run 'make' first" >&2; exit 1; }
done

workdir=$root/$build_dir/example-native
mkdir -p "$workdir"
rm -rf "$workdir/etc" "$workdir"/var/db/baetyl/*-conf "$workdir/var/db/baetyl/application.yml"
cp -r "$root/example/native/." "$workdir/"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# The subscriber retries until the hub is up; it prints what the timer publishes.
(
  until mosquitto_sub -h 127.0.0.1 -p 1883 -u test -P hahaha -i example-printer -t 'timer/#' \
      -t timer -q 1 -F '[received] %t %p' 2>/dev/null; do
    sleep 0.5
  done
) &
pids+=($!)

echo "run-example: baetyl start -w $workdir (Ctrl-C to stop)"
set +e
"$bin/baetyl" start -w "$workdir" &
master=$!
trap 'kill -TERM $master 2>/dev/null' INT TERM
wait $master
status=$?
if kill -0 $master 2>/dev/null; then  # the wait was interrupted by Ctrl-C
  wait $master
  status=$?
fi
echo "run-example: baetyl exited with status $status"
exit $status
