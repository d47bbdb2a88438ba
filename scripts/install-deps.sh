#!/usr/bin/env bash
# Installs everything Baetyl needs to build, run and test on Debian 12.
# Idempotent and non-interactive: packages already present are not touched.
#   scripts/install-deps.sh          build + runtime + test dependencies, and the npm packages
#                                    of modules/function-node (npm ci, when missing or stale)
#   scripts/install-deps.sh --build  only what the build needs
#   ARCH=arm64|armhf scripts/install-deps.sh [--build]   also what a cross build for that
#                                    architecture needs (scripts/install-cross-deps.sh)
set -euo pipefail

build_packages=(
  build-essential cmake pkg-config ccache
  libboost-dev libboost-system-dev libyaml-cpp-dev nlohmann-json3-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libspdlog-dev libcurl4-openssl-dev libssl-dev libsqlite3-dev
  libarchive-dev libacl1-dev libzstd-dev liblzma-dev libbz2-dev nettle-dev zlib1g-dev
  libgtest-dev libgmock-dev libbenchmark-dev
)
runtime_packages=(
  python3 python3-grpcio python3-protobuf python3-yaml
  ca-certificates docker.io
)
# The module images: curl asks the Docker daemon whether it answers (scripts/docker-daemon.sh),
# debootstrap creates debian:bookworm-slim when no registry has it (scripts/docker-base-image.sh),
# binutils strips the binaries copied into the images.
image_packages=(
  curl debootstrap binutils
)
# clang-14 and libFuzzer's runtime (libclang-rt-14-dev) build the fuzzers (scripts/fuzz.sh);
# valgrind counts the codec's instructions (docs/benchmarks-mqtt5-codec.md).
# prometheus: the real server that scrapes the master's metrics endpoint in the operations tests.
# systemd brings systemd-analyze (the unit's test), rpm brings rpmbuild (make package), and
# CPack's .deb step needs file to find the binaries whose libraries dpkg-shlibdeps reads.
test_packages=(
  mosquitto mosquitto-clients python3-paho-mqtt openssl procps prometheus
  busybox-static
  clang-14 libclang-rt-14-dev
  valgrind
  systemd rpm file
)

wanted=("${build_packages[@]}")
if [[ "${1:-}" != "--build" ]]; then
  wanted+=("${runtime_packages[@]}" "${image_packages[@]}" "${test_packages[@]}")
  # The Node runtime: Debian's nodejs and npm on a machine without Node.js (a fresh Debian 12);
  # a Node.js installed otherwise (with its npm) is used as it is.
  if ! command -v node >/dev/null; then
    wanted+=(nodejs npm)
  fi
fi

missing=()
for pkg in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

install_apt_packages() {
  if ((${#missing[@]} == 0)); then
    echo "install-deps: all ${#wanted[@]} packages present"
    return
  fi

  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null; then SUDO=sudo; else
      echo "install-deps: missing packages (${missing[*]}) and not root; run as root" >&2
      exit 1
    fi
  else
    SUDO=
  fi

  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # A fresh machine may have no package lists yet; refresh them when apt cannot find a package.
  if ! $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"; then
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
  # The Debian mosquitto package enables a system broker on port 1883; tests start their own.
  if [[ " ${missing[*]} " == *" mosquitto "* ]] && command -v systemctl >/dev/null; then
    $SUDO systemctl disable --now mosquitto >/dev/null 2>&1 || true
  fi
}

# The npm packages of the Node function runtime, pinned by modules/function-node/package-lock.json
# (node_modules is not in git). Installed again when missing or older than the lock file.
install_node_modules() {
  local dir
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/modules/function-node"
  if ! command -v npm >/dev/null; then
    echo "install-deps: npm not found beside $(command -v node): install the npm of that" \
         "Node.js (needed by the Node function runtime and its tests), then run this script" \
         "again" >&2
    exit 1
  fi
  if [[ -d "$dir/node_modules" && ! "$dir/package-lock.json" -nt "$dir/node_modules" ]]; then
    echo "install-deps: npm packages of modules/function-node up to date"
    return
  fi
  echo "install-deps: npm ci in modules/function-node"
  (cd "$dir" && npm ci --no-audit --no-fund)
  touch "$dir/node_modules"
}

install_apt_packages
if [[ "${1:-}" != "--build" ]]; then
  install_node_modules
fi
if [[ -n "${ARCH:-}" && "$ARCH" != "$(dpkg --print-architecture)" ]]; then
  "$(dirname "${BASH_SOURCE[0]}")/install-cross-deps.sh" "$ARCH"
fi
