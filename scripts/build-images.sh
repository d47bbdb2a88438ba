#!/usr/bin/env bash
# Builds the module images from a build tree (make image):
#   debian:bookworm-slim      present, pulled, or created here (scripts/docker-base-image.sh)
#   baetyl-runtime            + libssl3, ca-certificates           (scripts/images/)
#   baetyl-runtime-grpc       + libgrpc++1.51
#   one image per module      modules/<module>/Dockerfile, tagged baetyl-<module>:latest and with
#                             the seed's names, hub.baidubce.com/baetyl/baetyl-<name>:latest
# Each module image is built from a small context, BUILD_DIR/images/<module>, holding only what
# goes into the image (the stripped binary; the Node runtime's packages). Runtime packages sit in
# early layers and the binary in the last one, so a warm rebuild only copies changed binaries.
# The Docker daemon is started first when none answers (scripts/docker-daemon.sh); each build's
# output goes to BUILD_DIR/images/<image>.log, the image ID to BUILD_DIR/images/<module>.id.
#
# A cross build's tree (configured with cmake/toolchain-<arch>.cmake: make image ARCH=arm64) gives
# images of that architecture, built with `docker build --platform` (RUN steps run through
# qemu-user-static: scripts/qemu-binfmt.sh) and tagged apart so that the build machine's images
# stay as they are: base arm64v8/debian:bookworm-slim (arm32v7/... for armhf), then
# baetyl-runtime:latest-<arch>, baetyl-<module>:latest-<arch> and the seed's names with the same
# tag. The Dockerfiles take the tag of the image they start from as the build argument TAG
# (BASE for baetyl-runtime). Every binary must be an ELF file of the tree's architecture.
#
#   scripts/build-images.sh [BUILD_DIR] [MODULE...]   (default: build, every module)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${1:-build}
shift || true
[[ $build_dir == /* ]] || build_dir=$root/$build_dir
images_dir=$build_dir/images

# The architecture of the build tree: its toolchain file's, else the build machine's.
host_arch=$(dpkg --print-architecture)
toolchain=$(sed -n 's/^CMAKE_TOOLCHAIN_FILE:[A-Z]*=//p' "$build_dir/CMakeCache.txt" 2>/dev/null ||
  true)
arch=$host_arch
[[ $toolchain =~ toolchain-([a-z0-9]+)\.cmake$ ]] && arch=${BASH_REMATCH[1]}
image_tag=latest platform=() strip=strip objdump=objdump
case $arch in
  amd64) elf_machine="Advanced Micro Devices X86-64" ;;
  arm64) elf_machine=AArch64 triplet=aarch64-linux-gnu base=arm64v8/debian:bookworm-slim ;;
  armhf) elf_machine=ARM triplet=arm-linux-gnueabihf base=arm32v7/debian:bookworm-slim ;;
  *) elf_machine= ;;
esac
if [[ $arch != "$host_arch" ]]; then
  image_tag=latest-$arch
  platform=(--platform "$([[ $arch == arm64 ]] && echo linux/arm64 || echo linux/arm/v7)")
  strip=$triplet-strip objdump=$triplet-objdump
  command -v "$strip" >/dev/null ||
    { echo "build-images: $strip not found: run ARCH=$arch scripts/install-deps.sh" >&2; exit 1; }
else
  base=debian:bookworm-slim
fi

# module  seed image names (hub.baidubce.com/baetyl/<name>:latest) of the same image
seed_names() {
  case $1 in
    hub) echo baetyl-hub ;;
    function-manager) echo baetyl-function-manager ;;
    function-python) echo baetyl-function-python27 baetyl-function-python36 ;;
    function-node) echo baetyl-function-node85 ;;
    function-sql) echo baetyl-function-sql ;;
    remote-mqtt) echo baetyl-remote-mqtt ;;
    timer) echo baetyl-timer ;;
    agent) echo baetyl-agent ;;
    *) return 1 ;;
  esac
}
all_modules=(hub function-manager function-sql function-python function-node remote-mqtt timer agent)
modules=("$@")
((${#modules[@]})) || modules=("${all_modules[@]}")
for module in "${modules[@]}"; do
  seed_names "$module" >/dev/null || {
    echo "build-images: unknown module '$module' (modules: ${all_modules[*]})" >&2
    exit 1
  }
done

fail() {
  echo "build-images: $*" >&2
  exit 1
}

# Copies what `module`'s image holds into its context directory.
stage() {
  local module=$1 context=$images_dir/$1 program=baetyl-$1
  local binary=$build_dir/bin/$program
  [[ -f $binary ]] || fail "$binary is missing; build it first (make, or cmake --build)"
  rm -rf "$context"
  mkdir -p "$context/bin"
  case $module in
    function-python)
      cp "$binary" "$context/bin/" ;;
    function-node)
      local source=$root/modules/function-node
      [[ -f $source/node_modules/@grpc/grpc-js/package.json ]] ||
        fail "$source/node_modules is missing or incomplete; run scripts/install-deps.sh (npm ci)"
      cp "$binary" "$context/bin/"
      mkdir -p "$context/lib/baetyl/function-node"
      cp "$source/package.json" "$source/package-lock.json" "$context/lib/baetyl/function-node/"
      # Type declarations, TypeScript sources, source maps and read-mes are not run: 9 of 15 MB.
      tar -C "$source" -c --exclude='*.ts' --exclude='*.map' --exclude='*.md' node_modules |
        tar -C "$context/lib/baetyl/function-node" -x
      ;;
    *)
      # The images hold no sanitizer runtimes (libasan, libubsan).
      local needed machine
      machine=$(readelf -h "$binary" | sed -n 's/^ *Machine: *//p')
      [[ -z $elf_machine || $machine == "$elf_machine" ]] ||
        fail "$binary is built for '$machine', not $arch ($elf_machine)"
      needed=$("$objdump" -p "$binary" | awk '$1 == "NEEDED" { print $2 }')
      if [[ $needed == *libasan* || $needed == *libubsan* ]]; then
        fail "$binary is a sanitizer build; build the images from a Release build (make image)"
      fi
      "$strip" --strip-unneeded -o "$context/bin/$program" "$binary" ;;
  esac
}

# Builds one image: build <log name> <Dockerfile> <context> <tag>...
build() {
  local name=$1 dockerfile=$2 context=$3
  shift 3
  local tags=() tag
  for tag in "$@"; do tags+=(-t "$tag"); done
  local log=$images_dir/$name.log started=$SECONDS
  # The classic builder: it takes FROM images from the local daemon and caches by instruction.
  if ! DOCKER_BUILDKIT=0 docker build -f "$dockerfile" --iidfile "$images_dir/$name.id" \
      "${platform[@]}" --build-arg TAG="$image_tag" --build-arg BASE="$base" "${tags[@]}" "$context" \
      >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    fail "building $name failed (the lines above are the end of $log)"
  fi
  echo "build-images: $name built in $((SECONDS - started)) s"
}

"$root/scripts/docker-daemon.sh" "$build_dir"
((${#platform[@]} == 0)) || "$root/scripts/qemu-binfmt.sh" "$arch"
"$root/scripts/docker-base-image.sh" "$arch"
mkdir -p "$images_dir"
started=$SECONDS

empty_context=$images_dir/empty
mkdir -p "$empty_context"
build baetyl-runtime "$root/scripts/images/baetyl-runtime.Dockerfile" "$empty_context" \
  "baetyl-runtime:$image_tag"
build baetyl-runtime-grpc "$root/scripts/images/baetyl-runtime-grpc.Dockerfile" "$empty_context" \
  "baetyl-runtime-grpc:$image_tag"

for module in "${modules[@]}"; do
  stage "$module"
  tags=("baetyl-$module:$image_tag")
  for name in $(seed_names "$module"); do tags+=("hub.baidubce.com/baetyl/$name:$image_tag"); done
  build "$module" "$root/modules/$module/Dockerfile" "$images_dir/$module" "${tags[@]}"
done

echo "build-images: done in $((SECONDS - started)) s"

# Sizes in MB: the whole image, and its own layers above the image it starts from (`FROM`).
bytes() { docker image inspect -f '{{.Size}}' "$1"; }
report() {
  local image=$1 from=${2:-}
  local own=
  [[ -n $from ]] && own=$((($(bytes "$image") - $(bytes "$from")) / 1000000))
  printf '  %-36s %6s %6s\n' "${image%:latest}" $(($(bytes "$image") / 1000000)) "$own"
}
# The image a Dockerfile starts from, its build arguments replaced.
from_of() {
  awk -v tag="$image_tag" -v base="$base" '$1 == "FROM" {
    sub(/\$\{TAG\}/, tag, $2); sub(/\$\{BASE\}/, base, $2); print $2; exit }' "$1"
}
printf '  %-36s %6s %6s\n' image MB own
report "$base"
report "baetyl-runtime:$image_tag" "$(from_of "$root/scripts/images/baetyl-runtime.Dockerfile")"
report "baetyl-runtime-grpc:$image_tag" \
  "$(from_of "$root/scripts/images/baetyl-runtime-grpc.Dockerfile")"
for module in "${modules[@]}"; do
  report "baetyl-$module:$image_tag" "$(from_of "$root/modules/$module/Dockerfile")"
done
