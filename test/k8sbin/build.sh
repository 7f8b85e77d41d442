#!/usr/bin/env bash
# Build kube-apiserver and etcd for integration tests, from the Go module proxy
# only, and cache them so that only the first run on a machine is slow.
#
# Usage: test/k8sbin/build.sh [node|kubectl]
#   stdout: the directory holding `kube-apiserver` and `etcd` (last line), ready
#           to be used as KUBEBUILDER_ASSETS for sigs.k8s.io/controller-runtime's
#           envtest. With `node`, also kubelet, kube-controller-manager,
#           kube-scheduler and kubectl for the real-node test (make e2e-node):
#           about 6 more minutes cold on 2 cores with kube-apiserver's build
#           cache warm. With `kubectl`, kubectl alone (the chart test).
#   stderr: progress and Go's build output.
#
# Cache: ${XDG_CACHE_HOME:-$HOME/.cache}/otelcol-oomkill/k8s/<version>-<os>-<arch>/
# A binary is built only when it is missing there. A cold build takes about
# 16 minutes on 2 cores (≈20 s with a warm Go build cache); run it with
# `nice -n 10` on a shared machine. Delete the directory to force a rebuild.
# Note: Go's own build cache defaults to $XDG_CACHE_HOME/go-build too, so
# pointing XDG_CACHE_HOME somewhere new also means a cold Go build (≈10+ min).
#
# Needs only Go and the module proxy: the versions are pinned by go.mod/go.sum
# beside this script (see the comment in go.mod for why it is a wrapper module).
set -euo pipefail

K8S_VERSION=v1.37.2 # keep in sync with k8s.io/kubernetes in go.mod
K8S_MINOR=37

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

# Build inside this module, never a go.work that might sit above it.
export GOWORK=off
# Static binaries, as Kubernetes releases them; no C toolchain needed.
export CGO_ENABLED=0

goos="$(go env GOOS)"
goarch="$(go env GOARCH)"
cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/otelcol-oomkill/k8s/${K8S_VERSION}-${goos}-${goarch}"
mkdir -p "$cache_dir"

log() { echo "k8sbin: $*" >&2; }

# Serialize concurrent runs (e.g. several test packages starting at once) so
# the slow build happens once; the others wait and then find the binaries.
if command -v flock >/dev/null 2>&1; then
	exec 9>"$cache_dir/.lock"
	flock 9
fi

# build NAME PACKAGE [go build flags...]: build PACKAGE to $cache_dir/NAME
# unless it is already there. Writes to a temporary name in the same directory
# and renames it, so an interrupted build never leaves a half-written binary.
build() {
	local name="$1" pkg="$2"
	shift 2
	local out="$cache_dir/$name"
	if [[ -x "$out" ]]; then
		log "$name: cached at $out"
		return
	fi
	local tmp="$cache_dir/.$name.tmp.$$"
	trap "rm -f '$tmp'" EXIT # expanded now: $tmp is local
	log "$name: building $pkg (slow the first time) ..."
	local start=$SECONDS
	go build -o "$tmp" "$@" "$pkg" >&2
	mv -f "$tmp" "$out"
	trap - EXIT
	log "$name: built in $((SECONDS - start)) s -> $out"
}

# Without these -X flags the apiserver reports /version as v0.0.0, which
# clients (and envtest's version checks) may reject.
version_ldflags="-X k8s.io/component-base/version.gitVersion=${K8S_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${K8S_MINOR}"
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver -ldflags "$version_ldflags"

# The etcd module root is etcd's main package; its version (the one
# k8s.io/kubernetes requires) is pinned in go.mod.
build etcd go.etcd.io/etcd/server/v3

if [[ "${1:-}" == node ]]; then
	for name in kube-scheduler kube-controller-manager kubelet kubectl; do
		build "$name" "k8s.io/kubernetes/cmd/$name" -ldflags "$version_ldflags"
	done
elif [[ "${1:-}" == kubectl ]]; then
	# The chart test compares `helm template` with `kubectl kustomize`.
	build kubectl k8s.io/kubernetes/cmd/kubectl -ldflags "$version_ldflags"
fi

echo "$cache_dir"
