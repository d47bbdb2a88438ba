#!/usr/bin/env bash
# The .deb on a clean system: a debian:bookworm-slim container (scripts/docker-base-image.sh makes
# the image when it is missing; apt in the container reaches the Debian mirror) installs the
# package with scripts/install.sh --with-native-example, then checks:
#   baetyl version and baetyl check pass;
#   baetyl start runs the native example: the hub answers a publish (its route t -> t/topic);
#   an upgrade to release 2 keeps an edited conf.yml;
#   apt-get purge leaves nothing behind in /usr/local, /etc/systemd and /run.
# Takes a few minutes (apt downloads the dependencies), hence not in make test; docs/install.md.
#
#   scripts/test-deb-container.sh [BUILD_DIR]      (programs built: make programs)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${1:-build}
[[ $build_dir == /* ]] || build_dir=$root/$build_dir
out=$build_dir/deb-container-test
rm -rf "$out"
mkdir -p "$out"

"$root/scripts/docker-daemon.sh" "$build_dir"
"$root/scripts/docker-base-image.sh"
BAETYL_PACKAGE_RELEASE=2 "$root/scripts/package.sh" "$build_dir" "$out/release-2" >/dev/null
"$root/scripts/package.sh" "$build_dir" "$out/release-1" >/dev/null

docker run --rm -i -v "$out:/pkgs:ro" -v "$root/scripts/install.sh:/install.sh:ro" \
  debian:bookworm-slim bash -s <<'INNER'
set -uo pipefail
export DEBIAN_FRONTEND=noninteractive
failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
snapshot() { find /usr/local /etc/systemd /run 2>/dev/null | grep -v '^/run/lock' | sort; }

apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends mosquitto-clients \
  >/dev/null || { echo "FAIL: apt-get cannot install mosquitto-clients"; exit 1; }
snapshot >/tmp/before

if /install.sh --with-native-example /pkgs/release-1/baetyl_*_amd64.deb >/tmp/install.log 2>&1
then pass "install.sh --with-native-example installs the .deb"
else fail "install.sh"; tail -30 /tmp/install.log; exit 1; fi

baetyl version && pass "baetyl version" || fail "baetyl version"
baetyl check && pass "baetyl check" || fail "baetyl check"

baetyl start >/tmp/baetyl.out 2>&1 &
master=$!
mqtt=(-h 127.0.0.1 -u test -P hahaha)
for _ in $(seq 60); do
  mosquitto_pub "${mqtt[@]}" -t probe -n 2>/dev/null && break
  sleep 0.5
done
mosquitto_sub "${mqtt[@]}" -t t/topic -C 1 -W 20 >/tmp/answer &
sub=$!
sleep 1
mosquitto_pub "${mqtt[@]}" -t t -q 1 -m '{"id":1}'
wait $sub
if [[ $(cat /tmp/answer) == '{"id":1}' ]]; then pass "the hub answers a publish in native mode"
else fail "no answer on t/topic"; tail -30 /tmp/baetyl.out; fi
kill -TERM $master
wait $master && pass "baetyl stops on SIGTERM" || fail "baetyl exit status $?"

echo "# edited by the user" >>/usr/local/etc/baetyl/conf.yml
/install.sh /pkgs/release-2/baetyl_*_amd64.deb >/tmp/upgrade.log 2>&1 || tail -30 /tmp/upgrade.log
[[ $(dpkg-query -W -f='${Version}' baetyl) == 1.0.0-2 ]] && pass "upgraded to 1.0.0-2" ||
  fail "not upgraded"
grep -q "edited by the user" /usr/local/etc/baetyl/conf.yml &&
  pass "the upgrade kept the edited conf.yml" || fail "the upgrade replaced conf.yml"

apt-get purge -y -q baetyl >/tmp/purge.log 2>&1 && pass "apt-get purge baetyl" ||
  { fail "apt-get purge baetyl"; tail -20 /tmp/purge.log; }
apt-get autoremove --purge -y -q >/dev/null 2>&1
snapshot >/tmp/after
if diff /tmp/before /tmp/after; then pass "purge leaves nothing behind"
else fail "purge left the entries above"; fi
echo "$failures failure(s)"
exit $((failures > 0))
INNER
