#!/usr/bin/env bash
# make install | install-native | uninstall | uninstall-native (docs/install.md).
#
#   scripts/install-tree.sh install docker|native BUILD_DIR PREFIX
#   scripts/install-tree.sh uninstall PREFIX
#
# install: the CMake components runtime, dev and example-<mode> of BUILD_DIR (built before) are
# installed into a staging directory, then copied under DESTDIR+PREFIX. What was copied and
# which directories did not exist before are added to PREFIX/share/baetyl/install-manifest, so
# that uninstall removes exactly that: the files, then those directories when they are empty.
# What the running Baetyl wrote (var/db/baetyl/*-data, logs, state) stays unless PURGE=1, which
# also removes var/db/baetyl, var/log/baetyl and var/run/baetyl under the prefix.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
manifest_name=share/baetyl/install-manifest

usage() {
  echo "usage: $0 install docker|native BUILD_DIR PREFIX | uninstall PREFIX" >&2
  exit 2
}

absolute_prefix() {
  [[ -n $1 ]] || { echo "install-tree: PREFIX is empty" >&2; exit 2; }
  [[ $1 == /* ]] && echo "$1" || echo "$PWD/$1"
}

do_install() {
  local mode=$1 build_dir=$2 prefix target
  prefix=$(absolute_prefix "$3")
  target=${DESTDIR:-}$prefix
  [[ -f $build_dir/cmake_install.cmake ]] ||
    { echo "install-tree: $build_dir is not a configured build; run 'make' first" >&2; exit 1; }
  local node_modules=$root/modules/function-node/node_modules
  [[ -f $node_modules/@grpc/grpc-js/package.json ]] ||
    { echo "install-tree: $node_modules is missing: run scripts/install-deps.sh" >&2; exit 1; }
  stage=$(mktemp -d)  # global: the EXIT trap removes it
  trap 'rm -rf "$stage"' EXIT
  for component in runtime dev "example-$mode"; do
    DESTDIR=$stage cmake --install "$build_dir" --prefix "$prefix" --component "$component" \
      >"$stage.log" 2>&1 || { cat "$stage.log" >&2; rm -f "$stage.log"; exit 1; }
  done
  rm -f "$stage.log"
  local tree=$stage$prefix
  mkdir -p "$tree/share/baetyl"
  : >"$tree/$manifest_name"

  # The prefix and its parents that do not exist yet are recorded as ., .., ../.., ...
  local entries=() dir up=. parent=$target
  while [[ ! -d $parent ]]; do
    entries+=("d $up")
    [[ $up == . ]] && up=.. || up=$up/..
    parent=$(dirname "$parent")
  done
  while IFS= read -r dir; do
    [[ -d $target/$dir ]] || entries+=("d $dir")
  done < <(cd "$tree" && find . -mindepth 1 -type d | sed 's|^\./||')
  while IFS= read -r file; do
    entries+=("f $file")
  done < <(cd "$tree" && find . ! -type d | sed 's|^\./||')

  # Earlier installs into the same prefix (install, then install-native) are merged.
  local previous=""
  [[ -f $target/$manifest_name ]] && previous=$(cat "$target/$manifest_name")
  mkdir -p "$target"
  cp -a "$tree/." "$target/"
  { [[ -n $previous ]] && printf '%s\n' "$previous"
    printf '%s\n' "${entries[@]}"; } | sort -u >"$target/$manifest_name.new"
  mv -f "$target/$manifest_name.new" "$target/$manifest_name"
  echo "install-tree: installed Baetyl ($mode mode, example/$mode) under $target"
  echo "install-tree: run it with: sudo $prefix/bin/baetyl start   (or systemd: docs/install.md)"
}

do_uninstall() {
  local prefix target manifest
  prefix=$(absolute_prefix "$1")
  target=${DESTDIR:-}$prefix
  manifest=$target/$manifest_name
  if [[ ! -f $manifest ]]; then
    echo "install-tree: $manifest not found: nothing installed by 'make install' under $target" >&2
    exit 1
  fi
  local entries
  entries=$(cat "$manifest")  # the manifest lists itself
  if [[ ${PURGE:-0} == 1 ]]; then
    rm -rf "$target/var/db/baetyl" "$target/var/log/baetyl" "$target/var/run/baetyl"
  fi
  local kind path
  while read -r kind path; do
    if [[ $kind == f && -n $path ]]; then rm -f "$target/$path"; fi
  done <<<"$entries"
  # Deepest directories first, then the prefix and its parents; one still holding files (user
  # data) stays.
  while read -r path; do
    rmdir "$target/$path" 2>/dev/null || true
  done < <(sed -n 's/^d //p' <<<"$entries" | grep -v '^\.' | awk '{ print length, $0 }' |
           sort -rn | cut -d' ' -f2-)
  local up dir=$target
  for up in $(sed -n 's/^d //p' <<<"$entries" | grep '^\.' | sort); do
    rmdir "$dir" 2>/dev/null || break
    dir=$(dirname "$dir")
  done
  echo "install-tree: removed what 'make install' put under $target"
  [[ -d $target/var/db/baetyl ]] &&
    echo "install-tree: kept $target/var/db/baetyl (data; PURGE=1 removes it)"
  return 0
}

case ${1:-} in
  install) (($# == 4)) || usage; [[ $2 == docker || $2 == native ]] || usage
           do_install "$2" "$3" "$4" ;;
  uninstall) (($# == 2)) || usage; do_uninstall "$2" ;;
  *) usage ;;
esac
