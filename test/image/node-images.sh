#!/usr/bin/env bash
# The two other images the real-node test needs, made here with no registry and exported as OCI
# archives for `ctr -n k8s.io images import`:
#   registry.local/otelcol-oomkill-test/pause:1      the pod sandbox (pause/main.go, static)
#   registry.local/otelcol-oomkill-test/busybox:1    Debian's busybox-static, /bin/sh and applets
# Prints the two archives' paths. Cached under ${XDG_CACHE_HOME:-~/.cache}/otelcol-oomkill/image
# (the same store as build.sh), rebuilt when their inputs change. Root; Debian: buildah busybox-static.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
CACHE=${IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/otelcol-oomkill/image}
mkdir -p "$CACHE/storage" "$CACHE/tmp"
STORE=(--root "$CACHE/storage" --runroot /run/otelcol-oomkill-image --storage-driver overlay)
bh() { buildah "${STORE[@]}" "$@"; }
[ -x /bin/busybox ] || { echo "$0: /bin/busybox is missing: apt-get install busybox-static" >&2; exit 1; }
{ ldd /bin/busybox 2>&1 || true; } | grep -q 'not a dynamic' || { echo "$0: /bin/busybox is not static: apt-get install busybox-static" >&2; exit 1; }

# image NAME ARCHIVE KEY SETUP...: builds NAME from scratch unless ARCHIVE was made from KEY.
image() {
  local name=$1 archive=$2 key=$3
  shift 3
  if [ "$(cat "$archive.key" 2>/dev/null)" = "$key" ] && [ -s "$archive" ]; then echo "$archive"; return; fi
  local c
  c=$(bh from scratch)
  "$@" "$c"
  bh commit -q --rm "$c" "$name" >/dev/null
  rm -f "$archive"
  bh push -q "$name" "oci-archive:$archive.tmp:$name" >/dev/null
  mv "$archive.tmp" "$archive"
  echo "$key" >"$archive.key"
  echo "$archive"
}

pause_setup() {
  local bin=$CACHE/tmp/pause
  (cd "$here/pause" && CGO_ENABLED=0 GOWORK=off go build -trimpath -ldflags=-s -o "$bin" .)
  bh copy "$1" "$bin" /pause >/dev/null
  bh config --entrypoint '["/pause"]' --cmd '' "$1"
}
busybox_setup() {
  local mnt
  mnt=$(bh mount "$1")
  mkdir -p "$mnt/bin" "$mnt/tmp" "$mnt/proc" "$mnt/sys" "$mnt/dev" "$mnt/etc"
  chmod 1777 "$mnt/tmp"
  cp /bin/busybox "$mnt/bin/busybox"
  chroot "$mnt" /bin/busybox --install -s /bin
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$mnt/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$mnt/etc/group"
  bh umount "$1" >/dev/null
  bh config --cmd '["/bin/sh"]' --env PATH=/bin "$1"
}

pause_key=$(cat "$here/pause/main.go" "$0" | sha256sum | cut -c1-16)-$(go env GOVERSION)
busybox_key=$(cat /bin/busybox "$0" | sha256sum | cut -c1-16)
image registry.local/otelcol-oomkill-test/pause:1 "$CACHE/pause.oci.tar" "$pause_key" pause_setup
image registry.local/otelcol-oomkill-test/busybox:1 "$CACHE/busybox.oci.tar" "$busybox_key" busybox_setup
