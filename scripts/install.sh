#!/usr/bin/env bash
# Installs Baetyl from its packages (docs/install.md), as root:
#
#   scripts/install.sh [OPTIONS] [PACKAGE | DIRECTORY]
#
#   PACKAGE      a baetyl .deb (or .rpm on a machine without dpkg)
#   DIRECTORY    a directory of packages, installed offline: baetyl, baetyl-dev with --dev, and
#                any .deb of their dependencies placed beside them (apt resolves among them and
#                the installed packages)
#   (none)       builds the packages first (make package in this source tree) and installs
#                those of BUILD_DIR/packages (BUILD_DIR: build)
# Options:
#   --with-docker-example   import example/docker: etc/baetyl/conf.yml and var/db/baetyl/... under
#                           /usr/local, and the drop-in that makes baetyl.service want Docker;
#                           installs Debian's docker.io with the package when dockerd is missing
#                           (the package only suggests it)
#   --with-native-example   import example/native (native processes, no Docker)
#   --dev                   also install baetyl-dev (the SDK)
#   --start                 start (or restart) baetyl.service when done; without it nothing is
#                           started
set -euo pipefail
prefix=/usr/local
root=$(cd "$(dirname "$0")/.." && pwd)
example=""
dev=0
start=0
source=""

die() { echo "install.sh: $*" >&2; exit 1; }

while (($#)); do
  case $1 in
    --with-docker-example) example=docker ;;
    --with-native-example) example=native ;;
    --dev) dev=1 ;;
    --start) start=1 ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *) [[ -z $source ]] || die "one package or directory only"; source=$1 ;;
  esac
  shift
done
[[ $(id -u) -eq 0 ]] || die "run as root (sudo $0 ...)"

if [[ -z $source ]]; then
  build_dir=${BUILD_DIR:-build}
  echo "install.sh: building the packages (make package BUILD_DIR=$build_dir)"
  make -C "$root" package BUILD_DIR="$build_dir"
  [[ $build_dir == /* ]] || build_dir=$root/$build_dir
  source=$build_dir/packages
fi

# The package files to install, as absolute paths.
packages=()
if [[ -d $source ]]; then
  source=$(cd "$source" && pwd)
  if command -v dpkg >/dev/null; then kind=deb; else kind=rpm; fi
  for file in "$source"/*."$kind"; do
    [[ -e $file ]] || continue
    name=$(basename "$file")
    [[ $dev == 1 || $name != baetyl-dev[_-]* ]] || continue
    packages+=("$file")
  done
  ((${#packages[@]})) || die "no .$kind package in $source"
elif [[ -f $source ]]; then
  packages=("$(cd "$(dirname "$source")" && pwd)/$(basename "$source")")
  kind=${source##*.}
else
  die "$source: no such package or directory"
fi

# Docker mode needs Docker, which the package only suggests.
if [[ $kind == deb && $example == docker ]] && ! command -v dockerd >/dev/null; then
  packages+=(docker.io)
fi
echo "install.sh: installing ${packages[*]}"
case $kind in
  deb)
    export DEBIAN_FRONTEND=noninteractive
    # Keep a configuration file the user edited (an upgrade never overwrites it).
    apt_options=(-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
    if ! apt-get install "${apt_options[@]}" "${packages[@]}"; then
      echo "install.sh: retrying after apt-get update" >&2
      apt-get update -q
      apt-get install "${apt_options[@]}" "${packages[@]}"
    fi ;;
  rpm)
    if command -v dnf >/dev/null; then dnf install -y "${packages[@]}"; else
      rpm -Uvh --replacepkgs "${packages[@]}"; fi ;;
  *) die "$source: not a .deb or .rpm" ;;
esac

systemd_running() { [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; }

if [[ -n $example ]]; then
  from=$prefix/share/baetyl/example/$example
  [[ -d $from ]] || die "$from is missing: is the baetyl package installed?"
  echo "install.sh: importing the $example example configuration into $prefix"
  cp -r "$from/." "$prefix/"
  dropin=/etc/systemd/system/baetyl.service.d/docker.conf
  if [[ $example == docker ]]; then
    mkdir -p "$(dirname "$dropin")"
    cp "$prefix/share/baetyl/systemd/docker.conf" "$dropin"
  else
    rm -f "$dropin"
    rmdir "$(dirname "$dropin")" 2>/dev/null || true
  fi
  if systemd_running; then systemctl daemon-reload; fi
fi

if [[ $start == 1 ]]; then
  systemd_running || die "systemd is not running: start Baetyl with 'sudo baetyl start'"
  systemctl restart baetyl.service
  systemctl --no-pager status baetyl.service || true
else
  echo "install.sh: done; start Baetyl with 'sudo systemctl start baetyl'" \
       "(or in the foreground: 'sudo baetyl start')"
fi
