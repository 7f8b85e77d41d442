#!/usr/bin/env bash
# Builds the collector image from the repository's Dockerfile with no registry: the base images
# are made here from Debian packages, the image is built with buildah and exported as an OCI
# archive that containerd imports (`ctr -n k8s.io images import`) and podman runs.
#
#   test/image/build.sh            # prints the archive's path on its last line
#
# Everything lives under ${XDG_CACHE_HOME:-~/.cache}/otelcol-oomkill/image (override: IMAGE_CACHE):
#   storage/       buildah/podman image store (its own, not /var/lib/containers)
#   tmp/           buildah's RUN --mount=type=cache directories (Go build and module caches)
#   otelcol-oomkill-<version>.oci.tar   the exported image, named docker.io/library/otelcol-oomkill:<version>
# The bases are built once and kept (rebuilt when the host's Go version changes, or with
# REBUILD_BASES=1); the collector image is rebuilt with --layers, so an unchanged tree costs
# seconds and a changed one only the collector build (≈1-2 min warm).
#
# Needs (Debian): buildah podman debootstrap (and root). The mirror is the machine's apt source
# (/etc/apt/sources.list{,.d}); override with DEBIAN_MIRROR.
set -euo pipefail
cd "$(dirname "$0")/../.."

VERSION=0.1.0
NAME=docker.io/library/otelcol-oomkill:$VERSION
CACHE=${IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/otelcol-oomkill/image}
SUITE=bookworm

for tool in buildah podman debootstrap; do
  command -v "$tool" >/dev/null || { echo "$0: $tool is missing: apt-get install buildah podman debootstrap (.ci/run does)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "$0: run as root (buildah with the overlay driver, debootstrap)" >&2; exit 1; }

mkdir -p "$CACHE/storage" "$CACHE/tmp"
# buildah and podman share this store; runroot is per-boot state.
STORE=(--root "$CACHE/storage" --runroot /run/otelcol-oomkill-image --storage-driver overlay)
export TMPDIR=$CACHE/tmp   # buildah keeps RUN --mount=type=cache directories under it
bh() { buildah "${STORE[@]}" "$@"; }
have() { bh inspect --type image "$1" >/dev/null 2>&1; }

mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  local f m
  # deb822 (.sources): the URIs of the stanza whose Suites list bookworm; one-line: deb URI bookworm main
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    m=$(awk -v s="$SUITE" 'BEGIN{RS=""} $0 ~ "Suites:[^\n]*[ \t]" s "([ \t]|\n|$)" && $0 ~ "Components:[^\n]*main" {
          if (match($0, /URIs:[ \t]*[^ \t\n]+/)) { u=substr($0, RSTART, RLENGTH); sub(/URIs:[ \t]*/, "", u); print u; exit } }' "$f")
    [ -n "$m" ] && { echo "$m"; return; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    m=$(awk -v s="$SUITE" '$1=="deb" && $0 !~ /\[/ && $3==s {print $2; exit} $1=="deb" && $2 ~ /^\[/ && $4==s {print $3; exit}' "$f")
    [ -n "$m" ] && { echo "$m"; return; }
  done
  echo "$0: no Debian $SUITE mirror in /etc/apt/sources.list*; set DEBIAN_MIRROR" >&2
  return 1
}

GOVERSION=$(go env GOVERSION)
GOROOT=$(go env GOROOT)
RUNTIME_BASE=localhost/otelcol-oomkill-base/debian:$SUITE-minbase
BUILD_BASE=localhost/otelcol-oomkill-base/golang:$GOVERSION-$SUITE
[ -n "${REBUILD_BASES:-}" ] && bh rmi -f "$BUILD_BASE" "$RUNTIME_BASE" >/dev/null 2>&1 || true

# Runtime base: what debian:bookworm-slim is, a minbase debootstrap.
if ! have "$RUNTIME_BASE"; then
  m=$(mirror)
  echo "building $RUNTIME_BASE from $m"
  root=$(mktemp -d "$CACHE/tmp/rootfs.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  debootstrap --variant=minbase "$SUITE" "$root" "$m" >"$CACHE/tmp/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/tmp/debootstrap.log" >&2; exit 1; }
  # The security suite too, as in Debian's images (skipped when the machine has none).
  sec=$(awk 'BEGIN{RS=""} /Suites:[^\n]*-security/ { if (match($0, /URIs:[ \t]*[^ \t\n]+/)) { u=substr($0, RSTART, RLENGTH); sub(/URIs:[ \t]*/, "", u); print u; exit } }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$sec" ] && echo "deb $sec $SUITE-security main" >>"$root/etc/apt/sources.list"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" --numeric-owner -c . | podman "${STORE[@]}" import --change 'CMD ["bash"]' - "$RUNTIME_BASE" >/dev/null
  rm -rf "$root"; trap - EXIT
fi

# Build base: what golang:1.26-bookworm is, from the runtime base plus the host's Go toolchain
# (the same release CI uses) and the machine's extra CA certificates (the module proxy's TLS may
# go through them).
if ! have "$BUILD_BASE"; then
  echo "building $BUILD_BASE (Go from $GOROOT)"
  c=$(bh from --pull-never "$RUNTIME_BASE")
  trap 'bh rm "$c" >/dev/null 2>&1 || true' EXIT
  bh run --network host "$c" -- sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev make pkg-config git ca-certificates >/dev/null && rm -rf /var/lib/apt/lists/*'
  bh copy "$c" "$GOROOT" /usr/local/go
  if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
    bh copy "$c" /usr/local/share/ca-certificates/ /usr/local/share/ca-certificates/
    bh run --network host "$c" -- update-ca-certificates >/dev/null
  fi
  bh config --env GOPATH=/go --env PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --workingdir /go --cmd bash "$c"
  bh commit -q "$c" "$BUILD_BASE" >/dev/null
  bh rm "$c" >/dev/null; trap - EXIT
fi

# The collector image, from the Dockerfile as shipped, with only its base-image arguments set.
echo "building $NAME"
bh bud -q --pull-never --network host --layers \
  --build-arg BUILD_IMAGE="$BUILD_BASE" --build-arg RUNTIME_IMAGE="$RUNTIME_BASE" \
  -f Dockerfile -t "$NAME" . >/dev/null

archive=$CACHE/otelcol-oomkill-$VERSION.oci.tar
id=$(bh inspect --type image --format '{{.FromImageID}}' "$NAME")
if [ "$(cat "$archive.id" 2>/dev/null)" != "$id" ] || [ ! -s "$archive" ]; then
  rm -f "$archive" "$archive.id"
  bh push -q "$NAME" "oci-archive:$archive.tmp:$NAME" >/dev/null
  mv "$archive.tmp" "$archive"
  echo "$id" >"$archive.id"
fi
bh images --noheading "$NAME" >&2
echo "$archive"
