#!/usr/bin/env bash
# Runs the example in the foreground until Ctrl-C.
#
# Until the master lands, this runs baetyl-timer with the example's timer configuration
# (example/native/var/db/baetyl/timer-conf/service.yml) against a local MQTT broker on
# 127.0.0.1:1883 (Debian's mosquitto, started here unless a broker already listens there),
# and prints what the timer publishes.
set -euo pipefail
build_dir=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
timer_bin=$root/$build_dir/bin/baetyl-timer
timer_conf=$root/example/native/var/db/baetyl/timer-conf/service.yml
[[ -x $timer_bin ]] || { echo "run-example: $timer_bin is missing; run 'make' first" >&2; exit 1; }

work=$(mktemp -d /tmp/baetyl-example.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

broker_listening() { (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; }

if broker_listening; then
  echo "run-example: a broker already listens on 127.0.0.1:1883; using it"
else
  cat > "$work/mosquitto.conf" <<CONF
listener 1883 127.0.0.1
allow_anonymous true
user $(id -un)
log_dest file $work/mosquitto.log
CONF
  mosquitto -c "$work/mosquitto.conf" &
  pids+=($!)
  for _ in $(seq 50); do broker_listening && break; sleep 0.1; done
  broker_listening || { echo "run-example: mosquitto did not start" >&2; exit 1; }
  echo "run-example: started mosquitto on 127.0.0.1:1883 as the hub"
fi

mosquitto_sub -h 127.0.0.1 -p 1883 -u test -P hahaha -t 'timer/#' -q 1 \
  -F '[received] %t %p' &
pids+=($!)

# The service's working directory, laid out as the master will lay it out.
mkdir -p "$work/service/etc/baetyl"
ln -s "$timer_conf" "$work/service/etc/baetyl/service.yml"
echo "run-example: running baetyl-timer with $timer_conf (Ctrl-C to stop)"
cd "$work/service"
set +e
BAETYL_SERVICE_NAME=timer BAETYL_SERVICE_INSTANCE_NAME=timer "$timer_bin" &
timer_pid=$!
trap 'kill -TERM $timer_pid 2>/dev/null' INT TERM
wait $timer_pid
status=$?
if kill -0 $timer_pid 2>/dev/null; then  # the wait was interrupted by Ctrl-C
  wait $timer_pid
  status=$?
fi
echo "run-example: baetyl-timer exited with status $status"
