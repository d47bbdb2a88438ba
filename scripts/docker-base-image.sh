#!/usr/bin/env bash
# Makes sure the image every module image starts from, debian:bookworm-slim, is in the local
# Docker daemon: present already, else pulled, else created here with debootstrap:
#   debootstrap --variant=minbase bookworm, stripped as the official slim image is (no docs, man
#   pages, info, locales, apt lists or caches; dpkg told to leave them out of later installs too),
#   then `docker import`ed with the official image's PATH and CMD.
# The Debian mirror is the one this machine's apt uses for bookworm (and bookworm-security), read
# from /etc/apt/sources.list and /etc/apt/sources.list.d/*.sources; DEBIAN_MIRROR and
# DEBIAN_SECURITY_MIRROR override them. The image's apt uses the same mirrors.
#
#
# For another architecture (ARM images, docs/arm.md) the base is Docker's per-architecture name of
# the official image, arm64v8/debian:bookworm-slim or arm32v7/debian:bookworm-slim, so that it never
# replaces the build machine's debian:bookworm-slim. It is created the same way from Debian's
# packages of that architecture (debootstrap --arch, its second stage run through qemu-user-static:
# scripts/qemu-binfmt.sh), then built `FROM scratch` with `docker build --platform`, which records
# the architecture in the image (`docker import` records the build machine's whatever it is told).
#
#   scripts/docker-base-image.sh [ARCH]   (needs a Docker daemon: scripts/docker-daemon.sh;
#                                         ARCH: a Debian architecture, default the build machine's)
set -euo pipefail
root_dir=$(cd "$(dirname "$0")/.." && pwd)
host_arch=$(dpkg --print-architecture)
arch=${1:-$host_arch}
suite=bookworm
platform=
case $arch in
  "$host_arch") image=debian:bookworm-slim ;;
  arm64) image=arm64v8/debian:bookworm-slim platform=linux/arm64 ;;
  armhf) image=arm32v7/debian:bookworm-slim platform=linux/arm/v7 ;;
  *)
    echo "docker-base-image: no base image for architecture '$arch' (arm64, armhf or" \
      "$host_arch)" >&2
    exit 2 ;;
esac
pull_timeout_seconds=${DOCKER_PULL_TIMEOUT:-120}

log() { echo "docker-base-image: $*"; }
fail() {
  echo "docker-base-image: $*" >&2
  exit 1
}

if docker image inspect "$image" >/dev/null 2>&1; then
  exit 0
fi

log "$image is not in the local daemon; trying docker pull"
if timeout "$pull_timeout_seconds" docker pull -q ${platform:+--platform "$platform"} "$image" \
  >/dev/null 2>&1; then
  log "pulled $image"
  exit 0
fi

# The first URI of an enabled `deb` source that serves exactly `suite`, in one-line or deb822 form.
apt_uri() {
  local wanted=$1
  local files=()
  [[ -f /etc/apt/sources.list ]] && files+=(/etc/apt/sources.list)
  for file in /etc/apt/sources.list.d/*.list; do [[ -f $file ]] && files+=("$file"); done
  if ((${#files[@]})); then
    awk -v suite="$wanted" '
      $1 == "deb" {
        i = 2
        if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
        if ($(i + 1) == suite) { print $i; exit }
      }' "${files[@]}"
  fi | head -n 1 | grep . && return 0
  for file in /etc/apt/sources.list.d/*.sources; do
    [[ -f $file ]] || continue
    awk -v suite="$wanted" '
      function flush() {
        if (enabled && types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ")) {
          split(uris, u, " "); print u[1]; found = 1; exit
        }
        types = ""; uris = ""; suites = ""; enabled = 1
      }
      BEGIN { enabled = 1 }
      /^[ \t]*$/ { flush(); next }
      /^[Tt]ypes:/ { sub(/^[^:]*:[ \t]*/, ""); types = $0 }
      /^URIs:/ { sub(/^[^:]*:[ \t]*/, ""); uris = $0 }
      /^Suites:/ { sub(/^[^:]*:[ \t]*/, ""); suites = $0 }
      /^Enabled:[ \t]*no/ { enabled = 0 }
      END { if (!found) flush() }' "$file"
  done | head -n 1 | grep .
}

[[ $(id -u) -eq 0 ]] || fail "$image is neither local nor pullable, and creating it needs root"
command -v debootstrap >/dev/null ||
  fail "$image is neither local nor pullable, and debootstrap is missing: run scripts/install-deps.sh"

mirror=${DEBIAN_MIRROR:-$(apt_uri "$suite" || true)}
security_mirror=${DEBIAN_SECURITY_MIRROR:-$(apt_uri "$suite-security" || true)}
[[ -n $mirror ]] ||
  fail "no apt source for $suite in /etc/apt/sources.list{,.d}; set DEBIAN_MIRROR to a Debian mirror"

root=$(mktemp -d "${TMPDIR:-/var/tmp}/baetyl-bookworm-slim.XXXXXX")
trap 'rm -rf "$root"' EXIT

if [[ -n $platform ]]; then
  # debootstrap's second stage runs the target's programs in the new tree.
  "$root_dir/scripts/qemu-binfmt.sh" "$arch"
fi

log "creating $image with debootstrap --variant=minbase --arch=$arch $suite from $mirror"
started=$SECONDS
if ! debootstrap --variant=minbase --arch="$arch" "$suite" "$root" "$mirror" >"$root.log" 2>&1; then
  tail -n 20 "$root.log" >&2
  rm -f "$root.log"
  fail "debootstrap failed (the lines above are the end of its output)"
fi
rm -f "$root.log"

# What the official slim image leaves out, now and in every later apt-get install.
cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
cat >"$root/etc/apt/apt.conf.d/docker-no-languages" <<'EOF'
Acquire::Languages "none";
EOF
cat >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests" <<'EOF'
Apt::AutoRemove::SuggestsImportant "false";
EOF

rm -f "$root/etc/apt/sources.list"
{
  printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\n' \
    "$mirror" "$suite" "$suite"
  printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
  if [[ -n $security_mirror ]]; then
    printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\n' \
      "$security_mirror" "$suite"
    printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
  fi
} >"$root/etc/apt/sources.list.d/debian.sources"

# Docs, man pages, locales, apt lists and caches, logs; the build machine's name and resolver.
find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$root"/usr/share/{man,groff,info,lintian,linda,locale}/* \
  "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
  "$root"/var/log/* "$root"/tmp/* "$root"/var/tmp/*
: >"$root/etc/resolv.conf"
: >"$root/etc/hostname"

exclude=(--exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' --exclude='./run/*')
env_path=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
label="org.baetyl.base=debootstrap --variant=minbase --arch=$arch $suite"
if [[ -z $platform ]]; then
  tar -C "$root" --numeric-owner --xattrs -c "${exclude[@]}" . |
    docker import --change "ENV $env_path" --change 'CMD ["bash"]' \
      --change "LABEL ${label%%=*}=\"${label#*=}\"" - "$image" >/dev/null
else
  context=$root.context
  mkdir -p "$context"
  trap 'rm -rf "$root" "$context"' EXIT
  tar -C "$root" --numeric-owner --xattrs -c "${exclude[@]}" -f "$context/rootfs.tar" .
  cat >"$context/Dockerfile" <<EOF
FROM scratch
ADD rootfs.tar /
ENV $env_path
LABEL ${label%%=*}="${label#*=}"
CMD ["bash"]
EOF
  DOCKER_BUILDKIT=0 docker build --platform "$platform" -t "$image" "$context" \
    >"$context/build.log" 2>&1 || {
    tail -n 20 "$context/build.log" >&2
    fail "building $image from the tree failed (the lines above are the end of its output)"
  }
  recorded=$(docker image inspect -f '{{.Os}}/{{.Architecture}}' "$image")
  [[ $platform == "$recorded" || $platform == "$recorded"/* ]] ||
    fail "$image was recorded as $recorded, not $platform"
fi
size=$(docker image inspect -f '{{.Size}}' "$image")
log "created $image ($((size / 1000000)) MB) in $((SECONDS - started)) s"
