#!/usr/bin/env bash
# Packs a build's installed tree into BUILD_DIR/baetyl-<version>-linux-<arch>.tar.gz (make tarball,
# make tarball ARCH=arm64|armhf): `cmake --install --strip` into BUILD_DIR/tarball/baetyl-<version>
# (bin/ with every program, lib/baetyl/function-node with the Node runtime's packages), then tar.
# The archive unpacks to one directory whose bin/ may be copied to /usr/local/bin (docs/arm.md).
#   scripts/make-tarball.sh BUILD_DIR ARCH
set -euo pipefail
build_dir=${1:?usage: scripts/make-tarball.sh BUILD_DIR ARCH}
arch=${2:?usage: scripts/make-tarball.sh BUILD_DIR ARCH}
[[ -f $build_dir/CMakeCache.txt ]] || {
  echo "make-tarball: $build_dir is not a configured build; run 'make ARCH=$arch' first" >&2
  exit 1
}
version=$(awk -F= '/^CMAKE_PROJECT_VERSION:/ { print $2 }' "$build_dir/CMakeCache.txt")
name=baetyl-$version-linux-$arch
stage=$build_dir/tarball
rm -rf "$stage"
cmake --install "$build_dir" --prefix "$stage/$name" --strip >"$build_dir/tarball.log"
tar -C "$stage" -czf "$build_dir/$name.tar.gz" "$name"
echo "make-tarball: $build_dir/$name.tar.gz ($(du -k "$build_dir/$name.tar.gz" | cut -f1) KB)"
