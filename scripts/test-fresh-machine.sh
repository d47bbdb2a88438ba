#!/usr/bin/env bash
# The README's two commands on a fresh Debian 12: a clean clone of HEAD (nothing built, no
# node_modules) in a debian:bookworm container (debian:bookworm-slim when debian:bookworm can be
# neither found nor pulled), which gets `make` only, then runs
#   make test            (its exit status and CTest's summary are reported)
#   make run             for RUN_SECONDS (default 60) seconds, then Ctrl-C (SIGINT); the
#                        walkthrough's answers it printed are reported
# The container has no Docker daemon of its own: the docker-mode tests fail there, and the report
# says which tests failed. Takes long: the whole build on the machine's cores.
#
#   scripts/test-fresh-machine.sh [REPORT_FILE]     (default build/fresh-machine.log)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
report=${1:-$root/build/fresh-machine.log}
run_seconds=${RUN_SECONDS:-60}
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
git clone -q --no-hardlinks "$root" "$clone/baetyl"
git -C "$clone/baetyl" checkout -q "$(git -C "$root" rev-parse HEAD)"
revision=$(git -C "$clone/baetyl" rev-parse --short HEAD)

{
  echo "fresh machine: $image, clean clone of $revision, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  docker run --rm -i -v "$clone/baetyl:/baetyl" -e RUN_SECONDS="$run_seconds" "$image" \
    bash -s <<'INNER'
set -uo pipefail
export DEBIAN_FRONTEND=noninteractive
cd /baetyl
apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends make >/dev/null
start=$(date +%s)
make test >/tmp/test.log 2>&1
status=$?
echo "== make test: exit status $status after $(( $(date +%s) - start )) s"
grep -E "tests passed|tests failed|Total Test time" /tmp/test.log || tail -40 /tmp/test.log
sed -n '/The following tests FAILED/,$p' /tmp/test.log | head -40
start=$(date +%s)
timeout -s INT "$RUN_SECONDS" make run >/tmp/run.log 2>&1
status=$?
echo "== make run: ended after $(( $(date +%s) - start )) s with exit status $status"
grep -E "^\[received\]|^\[remotehub received\]|run-example:" /tmp/run.log | cut -c1-120
INNER
} 2>&1 | tee "$report"
