#!/usr/bin/env bash
# Makes sure a Docker daemon answers on /var/run/docker.sock, starting one when none does:
# `systemctl start docker` where systemd runs, else `dockerd` in the background with its log in
# LOG_DIR (default: build). Waits until the daemon answers; exits non-zero with the reason when it
# cannot start (never a silent skip).
#
#   scripts/docker-daemon.sh [LOG_DIR]
set -euo pipefail
log_dir=${1:-build}
socket=/var/run/docker.sock
timeout_seconds=${DOCKER_START_TIMEOUT:-60}

answers() {
  # The Engine API's /_ping answers "OK" once the daemon is ready.
  [[ -S $socket ]] && [[ "$(curl -s --max-time 2 --unix-socket "$socket" http://localhost/_ping 2>/dev/null)" == OK ]]
}

if answers; then
  exit 0
fi

if ! command -v dockerd >/dev/null; then
  echo "docker-daemon: dockerd not found; run scripts/install-deps.sh (Debian package docker.io)" >&2
  exit 1
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "docker-daemon: no Docker daemon answers on $socket and starting one needs root" >&2
  exit 1
fi

if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
  echo "docker-daemon: systemctl start docker"
  systemctl start docker || true
fi
if ! answers && ! pgrep -x dockerd >/dev/null; then
  mkdir -p "$log_dir"
  log=$(cd "$log_dir" && pwd)/dockerd.log
  echo "docker-daemon: starting dockerd in the background (log: $log)"
  nohup dockerd >"$log" 2>&1 </dev/null &
fi

for ((i = 0; i < timeout_seconds * 4; i++)); do
  if answers; then
    echo "docker-daemon: Docker answers on $socket"
    exit 0
  fi
  sleep 0.25
done
echo "docker-daemon: Docker did not answer on $socket within ${timeout_seconds}s" >&2
[[ -n ${log:-} && -f $log ]] && tail -n 20 "$log" >&2
exit 1
