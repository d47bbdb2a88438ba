#!/usr/bin/env bash
# Installs what a cross build for ARM needs on a Debian 12 build machine (make ARCH=<arch>, or
# ARCH=<arch> scripts/install-deps.sh, call this). Idempotent and non-interactive.
#   scripts/install-cross-deps.sh arm64|armhf
# - adds the Debian architecture to dpkg (multiarch) and refreshes the package lists once;
# - installs gcc-<triplet>/g++-<triplet>, qemu-user-static (runs the test programs at build time and
#   the binaries in scripts/test-arm.sh) and the :<arch> -dev packages of the libraries the build
#   links; apt's plan is checked first and nothing is installed if it would remove a package;
# - unpacks the target's libyaml-cpp-dev under /usr/local/lib/baetyl-cross/<arch> (Debian 12's
#   libyaml-cpp-dev is not Multi-Arch: same, so installing its :<arch> copy would remove the build
#   machine's); cmake/BaetylCrossToolchain.cmake looks for it there.
set -euo pipefail

arch=${1:-}
case $arch in
  arm64) triplet=aarch64-linux-gnu ;;
  armhf) triplet=arm-linux-gnueabihf ;;
  *)
    echo "install-cross-deps: ARCH '$arch' is not a cross target (arm64 or armhf)" >&2
    exit 1 ;;
esac
cross_root=${BAETYL_CROSS_ROOT:-/usr/local/lib/baetyl-cross}

# The same libraries as build_packages of scripts/install-deps.sh, for the target.
libraries=(
  libboost-dev libboost-system-dev libyaml-cpp0.7 libfmt-dev libspdlog-dev
  libgrpc++-dev libprotobuf-dev libssl-dev libsqlite3-dev libcurl4-openssl-dev
  libarchive-dev libacl1-dev libzstd-dev liblzma-dev libbz2-dev nettle-dev zlib1g-dev
  libgtest-dev libgmock-dev
)
wanted=("gcc-$triplet" "g++-$triplet" qemu-user-static)
for library in "${libraries[@]}"; do wanted+=("$library:$arch"); done

if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else SUDO=; fi
else
  SUDO=
fi
need_root() {
  if [[ $(id -u) -ne 0 && -z $SUDO ]]; then
    echo "install-cross-deps: $1 needs root; run as root" >&2
    exit 1
  fi
}
export DEBIAN_FRONTEND=noninteractive
apt_get() { $SUDO apt-get -o DPkg::Lock::Timeout=600 "$@"; }

if [[ " $(dpkg --print-foreign-architectures | tr '\n' ' ') " != *" $arch "* ]]; then
  need_root "dpkg --add-architecture $arch"
  echo "install-cross-deps: adding the $arch architecture to dpkg"
  $SUDO dpkg --add-architecture "$arch"
  apt_get update -q
fi

missing=()
for pkg in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
if ((${#missing[@]})); then
  need_root "installing ${missing[*]}"
  plan() { apt-get install -s -q --no-install-recommends "${missing[@]}" 2>&1; }
  if ! plan >/dev/null; then apt_get update -q; fi
  removals=$(plan | awk '$1 == "Remv" { print $2 }')
  if [[ -n $removals ]]; then
    echo "install-cross-deps: installing ${missing[*]} would remove:" $removals >&2
    echo "install-cross-deps: nothing installed; see docs/arm.md" >&2
    exit 1
  fi
  echo "install-cross-deps: installing ${missing[*]}"
  apt_get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "install-cross-deps: all ${#wanted[@]} packages for $arch present"
fi

# libyaml-cpp-dev of the same version as the installed libyaml-cpp0.7:<arch>, unpacked.
version=$(dpkg-query -W -f='${Version}' "libyaml-cpp0.7:$arch")
stamp=$cross_root/$arch/libyaml-cpp-dev.version
if [[ ! -f $stamp || $(cat "$stamp") != "$version" ]]; then
  need_root "unpacking libyaml-cpp-dev:$arch under $cross_root"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && apt-get download -q -o APT::Sandbox::User=root \
    "libyaml-cpp-dev:$arch=$version" "libyaml-cpp0.7:$arch=$version")
  $SUDO rm -rf "$cross_root/$arch"
  $SUDO mkdir -p "$cross_root/$arch"
  for deb in "$work"/*.deb; do $SUDO dpkg-deb -x "$deb" "$cross_root/$arch"; done
  echo "$version" | $SUDO tee "$stamp" >/dev/null
  echo "install-cross-deps: libyaml-cpp-dev:$arch $version unpacked under $cross_root/$arch"
fi
