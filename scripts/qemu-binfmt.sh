#!/usr/bin/env bash
# Makes the kernel run programs of another architecture through Debian's qemu-user-static, as
# Docker needs to build and run ARM images (`docker build --platform linux/arm64`, RUN steps and
# containers of ARM images) on an amd64 machine:
#   scripts/qemu-binfmt.sh arm64|armhf
# Mounts binfmt_misc when it is not mounted, then registers the qemu-user-static entry of the
# architecture (/usr/lib/binfmt.d/qemu-aarch64.conf or qemu-arm.conf, shipped by the package) unless
# the kernel has one already. Its `F` flag makes the kernel keep qemu open, so it also runs ARM
# programs inside containers, whose file systems have no qemu. Needs root for what is missing.
set -euo pipefail
arch=${1:?usage: scripts/qemu-binfmt.sh arm64|armhf}
case $arch in
  arm64) name=qemu-aarch64 ;;
  armhf) name=qemu-arm ;;
  *)
    echo "qemu-binfmt: no qemu registration for '$arch' (arm64 or armhf)" >&2
    exit 2 ;;
esac
fail() {
  echo "qemu-binfmt: $*" >&2
  exit 1
}

binfmt=/proc/sys/fs/binfmt_misc
if [[ ! -e $binfmt/register ]]; then
  [[ $(id -u) -eq 0 ]] || fail "binfmt_misc is not mounted on $binfmt; mounting it needs root"
  mount -t binfmt_misc binfmt_misc "$binfmt" || fail "mounting binfmt_misc on $binfmt failed"
fi
if [[ -e $binfmt/$name ]]; then
  grep -qx enabled "$binfmt/$name" || fail "$binfmt/$name is registered but disabled"
  exit 0
fi
conf=/usr/lib/binfmt.d/$name.conf
[[ -f $conf ]] || fail "$conf is missing: run ARCH=$arch scripts/install-deps.sh (qemu-user-static)"
[[ $(id -u) -eq 0 ]] || fail "registering $name with binfmt_misc needs root"
# The file holds one registration line; comments and blank lines are not written.
grep -v -e '^#' -e '^$' "$conf" >"$binfmt/register" || fail "registering $conf failed"
echo "qemu-binfmt: registered $name ($(sed -n 's/^interpreter //p' "$binfmt/$name"))"
