#!/usr/bin/env bash
# Build "the OpenTelemetry-native alternative" for the benchmark: an ocb-built collector with
# contrib's journald receiver, the filter processor and the debug exporter (builder-config.yaml
# beside this script; the pipeline is config.yaml), from the Go module proxy only, and cache it
# so that only the first run on a machine is slow.
#
# Usage: test/bench/journaldcol/build.sh
#   stdout: the path of the `otelcol-journald` binary (last line).
#   stderr: progress, ocb's log and Go's build output.
#
# Cache: ${XDG_CACHE_HOME:-$HOME/.cache}/otelcol-oomkill/bench/
#   ocb-v0.160.0/builder                      ocb at the collector release built here (the main
#                                             build's ~/go/bin/builder is v0.165.0: left alone)
#   otelcol-journald-v0.160.0/                ocb's output_path: generated sources, go.mod and
#   otelcol-journald-v0.160.0/otelcol-journald  the binary
# The collector is built only when the binary is missing (or does not run). A cold build takes
# about 6 minutes on 2 cores (about 1 minute with a warm Go build cache); run it with
# `nice -n 10` on a shared machine. Delete the directory to force a rebuild.
#
# Needs only Go, the module proxy and, at run time, journalctl (the receiver execs it).
set -euo pipefail

OTELCOL_VERSION=v0.160.0 # core and contrib release; keep in sync with builder-config.yaml
DIST=otelcol-journald

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

# Resolve modules for the generated module only, never a go.work that might sit above it.
export GOWORK=off
# Static binary; ocb sets CGO_ENABLED from builder-config.yaml (false) for its own go commands.
export CGO_ENABLED=0

cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/otelcol-oomkill/bench"
ocb_dir="$cache_root/ocb-${OTELCOL_VERSION}"
out_dir="$cache_root/${DIST}-${OTELCOL_VERSION}"
bin="$out_dir/$DIST"
mkdir -p "$ocb_dir" "$out_dir"

log() { echo "journaldcol: $*" >&2; }

# Serialize concurrent runs so the slow build happens once; the others wait and then find the
# binary.
if command -v flock >/dev/null 2>&1; then
	exec 9>"$out_dir/.lock"
	flock 9
fi

# A binary that is there and answers --version is a finished build (an interrupted copy of the
# linker's output would not run).
if [[ -x "$bin" ]] && "$bin" --version >/dev/null 2>&1; then
	log "$DIST: cached at $bin"
	echo "$bin"
	exit 0
fi

ocb="$ocb_dir/builder"
if [[ -x "$ocb" ]] && "$ocb" version 2>&1 | grep -q " ${OTELCOL_VERSION}\$"; then
	log "ocb: cached at $ocb"
else
	log "ocb: installing go.opentelemetry.io/collector/cmd/builder@${OTELCOL_VERSION} into $ocb_dir ..."
	GOBIN="$ocb_dir" go install "go.opentelemetry.io/collector/cmd/builder@${OTELCOL_VERSION}" >&2
fi

# ocb resolves output_path (".") against the directory it runs in, and writes the binary there
# itself; remove it again if the build fails or is interrupted.
rm -f "$bin"
trap "rm -f '$bin'" EXIT
log "$DIST: building with ocb ${OTELCOL_VERSION} (slow the first time) ..."
start=$SECONDS
(cd "$out_dir" && "$ocb" --config "$here/builder-config.yaml" >&2)
"$bin" --version >&2
trap - EXIT
log "$DIST: built in $((SECONDS - start)) s -> $bin"

echo "$bin"
