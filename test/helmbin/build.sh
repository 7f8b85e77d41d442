#!/usr/bin/env bash
# Build the helm CLI for the chart tests (helm lint, helm template, the
# chart-vs-kustomize comparison, helm install on the real node), from the Go
# module proxy only, and cache it so that only the first run on a machine is
# slow.
#
# Usage: test/helmbin/build.sh
#   stdout: the path of the helm binary (last line).
#   stderr: progress and Go's build output.
#
# Cache: ${XDG_CACHE_HOME:-$HOME/.cache}/otelcol-oomkill/helm/<version>-<os>-<arch>/helm
# Built only when missing there; delete the directory to force a rebuild. The
# version is pinned by go.mod/go.sum beside this script (a wrapper module, like
# test/k8sbin, so helm's dependencies never enter the collector's module graph).
set -euo pipefail

HELM_VERSION=v4.3.2 # keep in sync with helm.sh/helm/v4 in go.mod

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

export GOWORK=off
# A static binary, as helm releases are; no C toolchain needed.
export CGO_ENABLED=0

cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/otelcol-oomkill/helm/${HELM_VERSION}-$(go env GOOS)-$(go env GOARCH)"
mkdir -p "$cache_dir"
out="$cache_dir/helm"

# Serialize concurrent runs (several test packages may ask at once).
if command -v flock >/dev/null 2>&1; then
	exec 9>"$cache_dir/.lock"
	flock 9
fi

if [[ -x "$out" ]]; then
	echo "helmbin: helm cached at $out" >&2
else
	tmp="$cache_dir/.helm.tmp.$$"
	trap 'rm -f "$tmp"' EXIT
	echo "helmbin: building helm $HELM_VERSION (slow the first time) ..." >&2
	start=$SECONDS
	# Without -X, `helm version` says v4.3 with no patch level.
	go build -o "$tmp" -ldflags "-X helm.sh/helm/v4/internal/version.version=${HELM_VERSION}" helm.sh/helm/v4/cmd/helm >&2
	mv -f "$tmp" "$out"
	trap - EXIT
	echo "helmbin: built in $((SECONDS - start)) s -> $out" >&2
fi
echo "$out"
