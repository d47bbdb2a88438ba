#!/usr/bin/env bash
# Runs the example in the foreground until Ctrl-C: the master (`baetyl start`) on a copy of
# example/<MODE>, the docs' function walkthrough: the hub (on 127.0.0.1:1883, user test/hahaha),
# the function manager and the Python, Node and SQL runtimes it starts on demand.
#   native  every service a process of the build tree (baetyl-hub, ...)
#   docker  every service a container of the module images, built first (scripts/build-images.sh,
#           which starts the Docker daemon when none answers; seconds when they are up to date);
#           the hubs' containers publish 1883 and 1884 on 127.0.0.1, and a timer publishes to
#           `timer`
# A subscriber prints everything under t/ (and `timer`) as `[received] <topic> <payload>` lines,
# and once the hub is up the script publishes {"id":1} and {"id":20} to `t` (publish more with
# mosquitto_pub -h 127.0.0.1 -u test -P hahaha -t t -m '{"id":3}').
# In both modes, also the remote walkthrough: remote-mqtt bridges the hub and a second hub,
# remotehub (127.0.0.1:1884); the script publishes to t1 on the hub, which reaches remotehub
# (`[remotehub received] t1 ...`).
#   agent   example/native-agent: a hub, a timer and the agent, linked to the test cloud of
#           test/cloud, which the script starts too (BUILD_DIR/example-agent-cloud: MQTT with
#           mutual TLS on 127.0.0.1:8884, HTTPS on 127.0.0.1:8443; its PKI and the device
#           certificate of edge-1 are made on the first run); it prints `timer` only, and
#           publishes nothing. docs/agent.md walks through it.
#
#   scripts/run-example.sh [BUILD_DIR] [native|docker|agent]     (default: build native)
#
# The work directory is BUILD_DIR/example-<MODE>: its configuration is copied fresh from
# example/<MODE> on every run, its data and logs (var/db/baetyl/*-data, *-log, var/log) are kept.
# The master API listens on the example's unix:///var/run/baetyl.sock, so run it as root (the
# agent example's socket is in its work directory).
set -euo pipefail
build_dir=${1:-build}
mode=${2:-native}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/$build_dir/bin
case $mode in
  native)
    programs=(baetyl baetyl-hub baetyl-function-manager baetyl-function-python
              baetyl-function-node baetyl-function-sql baetyl-remote-mqtt)
    topics=(-t 't/#' -t t) ;;
  docker)
    programs=(baetyl)
    topics=(-t 't/#' -t t -t timer) ;;
  agent)
    programs=(baetyl baetyl-hub baetyl-timer baetyl-agent)
    topics=(-t timer) ;;
  *)
    echo "run-example: unknown mode '$mode' (native, docker or agent)" >&2
    exit 1 ;;
esac
for program in "${programs[@]}"; do
  [[ -x $bin/$program ]] || { echo "run-example: $bin/$program is missing; run 'make' first" >&2; exit 1; }
done
if [[ $mode == docker ]]; then
  "$root/scripts/build-images.sh" "$build_dir"
fi

workdir=$root/$build_dir/example-$mode
example=$root/example/$mode
[[ $mode == agent ]] && example=$root/example/native-agent
mkdir -p "$workdir"
rm -rf "$workdir/etc" "$workdir"/var/db/baetyl/*-conf "$workdir/var/db/baetyl/application.yml"
cp -r "$example/." "$workdir/"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

if [[ $mode == agent ]]; then
  cloud_dir=$root/$build_dir/example-agent-cloud
  cloud=(/usr/bin/python3 "$root/test/cloud/cloud.py")
  [[ -f $cloud_dir/pki/ca.pem ]] || "${cloud[@]}" init "$cloud_dir" --device edge-1
  "${cloud[@]}" serve "$cloud_dir" --mqtt-port 8884 --https-port 8443 &
  pids+=($!)
  mkdir -p "$workdir/var/db/baetyl/agent-cert"
  cp "$cloud_dir/pki/ca.pem" "$workdir/var/db/baetyl/agent-cert/ca.pem"
  cp "$cloud_dir/pki/device-edge-1.pem" "$workdir/var/db/baetyl/agent-cert/client.pem"
  cp "$cloud_dir/pki/device-edge-1.key" "$workdir/var/db/baetyl/agent-cert/client.key"
  echo "run-example: the node's last report: test/cloud/cloud.py report $cloud_dir --device edge-1"
fi

mqtt=(-h 127.0.0.1 -p 1883 -u test -P hahaha)
# The subscriber retries until the hub is up.
(
  until mosquitto_sub "${mqtt[@]}" -i example-printer "${topics[@]}" -q 1 \
      -F '[received] %t %p' 2>/dev/null; do
    sleep 0.5
  done
) &
pids+=($!)
# What the bridge brings to remotehub.
[[ $mode == agent ]] || (
  until mosquitto_sub -h 127.0.0.1 -p 1884 -u test -P hahaha -i example-remote-printer -t t1 \
      -q 1 -F '[remotehub received] %t %p' 2>/dev/null; do
    sleep 0.5
  done
) &
pids+=($!)
# The walkthrough's two messages, once the hub and the manager's rules are there.
[[ $mode == agent ]] || (
  until mosquitto_pub "${mqtt[@]}" -i example-probe -t example/ready -n 2>/dev/null; do
    sleep 0.5
  done
  sleep 2
  for payload in '{"id":1}' '{"id":20}'; do
    echo "run-example: publishing $payload to t"
    mosquitto_pub "${mqtt[@]}" -i example-publisher -t t -q 1 -m "$payload"
    sleep 2
  done
  echo "run-example: publishing hello to t1 (remote-mqtt forwards it to remotehub)"
  mosquitto_pub "${mqtt[@]}" -i example-publisher -t t1 -q 1 -m hello
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
