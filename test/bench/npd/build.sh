#!/usr/bin/env bash
# Build node-problem-detector (NPD) with its journald log watcher, from the Go
# module proxy only, for the side-by-side benchmark, and cache the binary so
# that only the first run on a machine is slow.
#
# Usage: test/bench/npd/build.sh
#   stdout: the path of the `node-problem-detector` binary (last line).
#   stderr: progress and Go's build output.
#
# Cache: ${XDG_CACHE_HOME:-$HOME/.cache}/otelcol-oomkill/bench/npd-<version>/
# The binary is built only when it is missing there. A cold build takes about
# 6 minutes on 2 cores (≈20 s of module downloads, the rest compiling; ≈10-20 s
# with a warm Go build cache); run it with `nice -n 10` on a shared machine.
# Delete the directory to force a rebuild.
#
# Needs Go, the module proxy, a C compiler and libsystemd-dev: the journald
# watcher is behind the `journald` build tag and uses cgo
# (github.com/coreos/go-systemd/v22/sdjournal includes <systemd/sd-journal.h>
# and dlopens libsystemd.so.0 at run time).
#
# Versions are pinned by go.mod/go.sum beside this script: a wrapper module
# whose only content is a `tool` directive for NPD's main package. They were
# made with
#   GONOSUMDB=k8s.io/node-problem-detector GOFLAGS=-mod=mod \
#     go get -tool k8s.io/node-problem-detector/cmd/nodeproblemdetector@v0.8.20
# because `go install k8s.io/node-problem-detector/...@v0.8.20` fails: the
# proxy refuses the module's version list and the checksum database has no
# entry for it (hence GONOSUMDB; the hash go.sum records here is what the
# proxy served).
set -euo pipefail

NPD_VERSION=v0.8.20 # keep in sync with k8s.io/node-problem-detector in go.mod
NPD_PKG=k8s.io/node-problem-detector/cmd/nodeproblemdetector

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

# Build inside this module, never a go.work that might sit above it.
export GOWORK=off
# NPD is not in the checksum database; go.sum beside this script pins it.
export GONOSUMDB="k8s.io/node-problem-detector${GONOSUMDB:+,$GONOSUMDB}"
# Let go fill in a go.sum line if a Go release wants one it lacks, rather
# than fail; go.mod/go.sum are the pinned state and normally stay unchanged.
export GOFLAGS=-mod=mod
# The journald watcher needs cgo.
export CGO_ENABLED=1

cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/otelcol-oomkill/bench/npd-${NPD_VERSION}"
mkdir -p "$cache_dir"

log() { echo "npd: $*" >&2; }

# Serialize concurrent runs so the slow build happens once; the others wait
# and then find the binary.
if command -v flock >/dev/null 2>&1; then
	exec 9>"$cache_dir/.lock"
	flock 9
fi

name=node-problem-detector
out="$cache_dir/$name"
if [[ -x "$out" ]]; then
	log "$name: cached at $out"
else
	if [[ ! -e /usr/include/systemd/sd-journal.h ]]; then
		log "warning: /usr/include/systemd/sd-journal.h not found; install libsystemd-dev"
	fi
	# Write to a temporary name in the same directory and rename it, so an
	# interrupted build never leaves a half-written binary.
	tmp="$cache_dir/.$name.tmp.$$"
	trap "rm -f '$tmp'" EXIT
	log "$name: building $NPD_PKG@$NPD_VERSION -tags journald (slow the first time) ..."
	start=$SECONDS
	# Without the -X flag NPD reports its version as "UNKNOWN".
	go build -tags journald -o "$tmp" \
		-ldflags "-X k8s.io/node-problem-detector/pkg/version.version=${NPD_VERSION}" \
		"$NPD_PKG" >&2
	mv -f "$tmp" "$out"
	trap - EXIT
	log "$name: built in $((SECONDS - start)) s -> $out"
fi

echo "$out"
