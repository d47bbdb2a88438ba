#!/usr/bin/env bash
# The README's two commands on a fresh Debian 12: a clean clone of HEAD (nothing built, no
# node_modules) in a debian:bookworm container (debian:bookworm-slim when debian:bookworm can be
# neither found nor pulled), which gets `make` only, then runs
#   make test            (its exit status and CTest's summary are reported)
#   make run             for RUN_SECONDS (default 60) seconds, then Ctrl-C (SIGINT); the
#                        walkthrough's answers it printed are reported
# The container has no Docker daemon of its own: it uses the host's (its socket mounted), and the
# clone and the tests' temporary directories (TMPDIR) are at the same paths inside and outside, so
# the directories the master asks Docker to bind exist on the host; the container shares the
# host's network, so the ports the tests publish on 127.0.0.1 are its own loopback's. A
# policy-rc.d keeps Debian's docker.io package from starting a second daemon in the container.
# Everything in the container runs under `nice -n NICE` (default 15). Where the network intercepts
# TLS with a certificate authority of its own, the host trusts it through
# /usr/local/share/ca-certificates; npm in the container is given those certificates too
# (NODE_EXTRA_CA_CERTS), as a machine on that network needs. Takes long: the whole build on the
# machine's cores.
#
#   scripts/test-fresh-machine.sh [REPORT_FILE]     (default build/fresh-machine.log)
# COMPILER_CACHE=DIR lends the container a ccache directory (e.g. the host's ~/.cache/ccache) for
# the ccache that install-deps.sh installs there: the build then takes minutes instead of an hour
# on two cores. It changes how fast the build goes, not what it builds; the report says it was used.
# The whole output of make test and make run is kept beside it (REPORT_FILE without .log, plus
# -test.log and -run.log).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
report=${1:-$root/build/fresh-machine.log}
run_seconds=${RUN_SECONDS:-60}
niceness=${NICE:-15}
mkdir -p "$(dirname "$report")"

"$root/scripts/docker-daemon.sh" "$root/build"
image=debian:bookworm
if ! docker image inspect "$image" >/dev/null 2>&1 &&
   ! timeout 120 docker pull -q "$image" >/dev/null 2>&1; then
  "$root/scripts/docker-base-image.sh"
  image=debian:bookworm-slim
fi

clone=$(mktemp -d)
trap 'rm -rf "$clone"' EXIT
mkdir "$clone/tmp" "$clone/logs"
extra_ca=()
compiler_cache=()
if [[ -n ${COMPILER_CACHE:-} ]]; then
  compiler_cache=(-v "$COMPILER_CACHE:/var/cache/baetyl-ccache" -e CCACHE_DIR=/var/cache/baetyl-ccache
                  -e CCACHE_BASEDIR="$clone" -e CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-20G}")
fi
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
  cat /usr/local/share/ca-certificates/*.crt >"$clone/host-ca.pem"
  extra_ca=(-e NODE_EXTRA_CA_CERTS="$clone/host-ca.pem")
fi
git clone -q --no-hardlinks "$root" "$clone/baetyl"
git -C "$clone/baetyl" checkout -q "$(git -C "$root" rev-parse HEAD)"
revision=$(git -C "$clone/baetyl" rev-parse --short HEAD)

{
  echo "fresh machine: $image, clean clone of $revision, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  ((${#extra_ca[@]} == 0)) || echo "npm trusts the host's local CA certificates"
  ((${#compiler_cache[@]} == 0)) || echo "the build uses the compiler cache $COMPILER_CACHE"
  docker run --rm -i --network host -v /var/run/docker.sock:/var/run/docker.sock \
    -v "$clone:$clone" -w "$clone/baetyl" -e TMPDIR="$clone/tmp" -e LOGS="$clone/logs" \
    -e RUN_SECONDS="$run_seconds" "${extra_ca[@]}" "${compiler_cache[@]}" \
    "$image" nice -n "$niceness" bash -s <<'INNER' || echo "$?" >"$clone/logs/status"
set -uo pipefail
export DEBIAN_FRONTEND=noninteractive
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends make >/dev/null
start=$(date +%s)
make test >"$LOGS/test.log" 2>&1
status=$?
test_status=$status
echo "== make test: exit status $status after $(( $(date +%s) - start )) s"
grep -E "tests passed|tests failed|Total Test time" "$LOGS/test.log" || tail -40 "$LOGS/test.log"
sed -n '/The following tests FAILED/,$p' "$LOGS/test.log" | head -40
start=$(date +%s)
timeout -s INT "$RUN_SECONDS" make run >"$LOGS/run.log" 2>&1
status=$?
echo "== make run: ended after $(( $(date +%s) - start )) s with exit status $status"
grep -E "^\[received\]|^\[remotehub received\]|run-example:" "$LOGS/run.log" | cut -c1-120
exit "$test_status"
INNER
  container_status=$(cat "$clone/logs/status" 2>/dev/null || echo 0)
  echo "== ended $(date -u +%Y-%m-%dT%H:%M:%SZ), the container's exit status $container_status"
} 2>&1 | tee "$report"
cp "$clone/logs/test.log" "${report%.log}-test.log" 2>/dev/null || true
cp "$clone/logs/run.log" "${report%.log}-run.log" 2>/dev/null || true
# The status of make test in the container (0 when it passed).
exit "$(cat "$clone/logs/status" 2>/dev/null || echo 0)"
