#!/usr/bin/env bash
# The .deb on a clean system: a debian:bookworm-slim container (scripts/docker-base-image.sh makes
# the image when it is missing; apt in the container reaches the Debian mirror) installs the
# package with scripts/install.sh --with-native-example (apt-get install, recommendations
# included, as the docs' install command does), then checks:
#   baetyl version and baetyl check pass;
#   baetyl start runs the native example: the hub answers a publish (its route t -> t/topic);
#   an upgrade to release 2 keeps an edited conf.yml;
#   apt-get purge baetyl, then apt-get purge of every package the install pulled in (its
#   dependencies and recommendations: some, such as ca-certificates, which apt recommends, would
#   stay after apt-get autoremove), leaves the installed packages and the file system as they
#   were before the install: the same paths, every directory of /usr/local included (apt's and
#   dpkg's own records, caches and logs aside).
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
# Every path of the file system but the kernel's, the test's own, and the package manager's
# records, caches and logs (which an install and a purge change by design).
snapshot() {
  find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /tmp -o -path /pkgs \
    -o -path /install.sh -o -path /var/cache -o -path /var/log -o -path /var/lib/apt \) -prune \
    -o -print 2>/dev/null |
    grep -v -E '^/var/lib/dpkg/((status|available|diversions|statoverride)-old|lock.*)$' |
    grep -v -E '^/var/lib/dpkg/(status|available|triggers/.*)$' |
    sort
}

apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends mosquitto-clients \
  >/dev/null || { echo "FAIL: apt-get cannot install mosquitto-clients"; exit 1; }
packages() {
  dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' | awk '$1 == "ii" {print $2}' | sort
}
snapshot >/tmp/before
packages >/tmp/packages-before

if /install.sh --with-native-example /pkgs/release-1/baetyl_*_amd64.deb >/tmp/install.log 2>&1
then pass "install.sh --with-native-example installs the .deb"
else fail "install.sh"; tail -30 /tmp/install.log; exit 1; fi
packages | comm -13 /tmp/packages-before - | grep -v -x baetyl >/tmp/pulled-in

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
# shellcheck disable=SC2046
apt-get purge -y -q $(cat /tmp/pulled-in) >/tmp/purge-deps.log 2>&1 &&
  pass "apt-get purge of the $(wc -l </tmp/pulled-in) packages the install pulled in" ||
  { fail "apt-get purge of what the install pulled in"; tail -20 /tmp/purge-deps.log; }
if packages | diff /tmp/packages-before -; then pass "the installed packages are those of before"
else fail "the installed packages differ from those of before (above)"; fi
snapshot >/tmp/after
if diff /tmp/before /tmp/after; then
  pass "purge leaves the file system as before the install ($(wc -l </tmp/after) paths compared)"
else fail "purge left (>) or removed (<) the paths above"; fi
echo "$failures failure(s)"
exit $((failures > 0))
INNER
