#!/usr/bin/env bash
# make package: the .deb and .rpm packages (baetyl and baetyl-dev, see cmake/BaetylPackage.cmake)
# from a build tree whose programs are built, into OUT_DIR (default BUILD_DIR/packages).
#   scripts/package.sh [BUILD_DIR [OUT_DIR]]     BAETYL_PACKAGE_RELEASE=N: release number (1)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${1:-build}
[[ $build_dir == /* ]] || build_dir=$root/$build_dir
[[ -f $build_dir/CPackConfig.cmake ]] ||
  { echo "package: $build_dir is not a configured build; run 'make' first" >&2; exit 1; }
for tool in dpkg-shlibdeps rpmbuild; do
  command -v "$tool" >/dev/null ||
    { echo "package: $tool not found: run scripts/install-deps.sh" >&2; exit 1; }
done
node_modules=$root/modules/function-node/node_modules
[[ -f $node_modules/@grpc/grpc-js/package.json ]] ||
  { echo "package: $node_modules is missing: run scripts/install-deps.sh" >&2; exit 1; }
# The release number is read when CMake configures (cmake/BaetylPackage.cmake).
cmake "$build_dir" >/dev/null
out=${2:-$build_dir/packages}
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -rf "$out"/baetyl*.deb "$out"/baetyl*.rpm "$out/_CPack_Packages"
(cd "$build_dir" && cpack --config CPackConfig.cmake -B "$out") >"$build_dir/package.log" 2>&1 ||
  { cat "$build_dir/package.log" >&2; exit 1; }
rm -rf "$out/_CPack_Packages"
echo "package: built"
ls -1 "$out"/*.deb "$out"/*.rpm
