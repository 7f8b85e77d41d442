#!/usr/bin/env bash
# What `make run` (run) or `make test` (test) needs from the machine besides Go. On Debian or
# Ubuntu as root, the missing Debian packages are installed with apt-get; anywhere else (not root,
# not Debian), it stops at once and lists exactly what to install. Nothing missing: it says nothing.
# The list and why each package is needed: CONTRIBUTING.md, "Prerequisites".
set -euo pipefail

usage() { echo "usage: $0 run|test" >&2; exit 2; }
[[ $# -eq 1 ]] || usage

# package:probe — the probe (a command, or a path starting with /) tells, off Debian, whether
# what the package brings is there.
run_pkgs=(
	build-essential:cc build-essential:make   # cgo: the journal reader links libsystemd
	libsystemd-dev:/usr/include/systemd/sd-journal.h
)
test_pkgs=(
	systemd:journalctl systemd:/lib/systemd/systemd-journald      # a real journald; journalctl
	systemd-journal-remote:/lib/systemd/systemd-journal-remote   # real journal files from fixtures
	prometheus:/usr/bin/prometheus prometheus:promtool           # a real Prometheus; rule tests
	python3:python3 curl:curl jq:jq openssl:openssl              # OOM victims, make demo, test keys
	buildah:buildah podman:podman debootstrap:debootstrap         # the image, built with no registry
	containerd:containerd runc:runc                              # the real node of make e2e-node
	containernetworking-plugins:/usr/lib/cni/bridge iptables:iptables iproute2:ip
	busybox-static:/bin/busybox                                  # the node's workload image
)
# Installed without their recommends (a GUI, firmware): the kernel lab's qemu.
norecommends_pkgs=(qemu-system-x86:qemu-system-x86_64)

case "$1" in
run) wanted=("${run_pkgs[@]}"); norecommends=() ;;
test) wanted=("${run_pkgs[@]}" "${test_pkgs[@]}"); norecommends=("${norecommends_pkgs[@]}") ;;
*) usage ;;
esac

# Go is not a Debian package here: the project needs Go 1.26 (go.mod).
if ! command -v go >/dev/null 2>&1; then
	echo "make $1: Go is missing: install Go 1.26 (https://go.dev/doc/install) and put it on PATH." >&2
	exit 1
fi
gov="$(go env GOVERSION)"
if [[ ! "$gov" =~ ^go1\.(2[6-9]|[3-9][0-9]) ]]; then
	echo "make $1: $gov is too old: install Go 1.26 or newer." >&2
	exit 1
fi

debian=false
if [[ -f /etc/debian_version ]] && command -v dpkg-query >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
	debian=true
fi

# missing PKG:PROBE...: the packages (each once) whose part is not there.
missing() {
	local seen=" " entry pkg probe
	for entry in "$@"; do
		pkg="${entry%%:*}" probe="${entry#*:}"
		[[ "$seen" == *" $pkg "* ]] && continue
		if $debian; then
			[[ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" == installed ]] && continue
		elif [[ "$probe" == /* ]]; then
			[[ -e "$probe" ]] && continue
		else
			command -v "$probe" >/dev/null 2>&1 && continue
		fi
		seen+="$pkg "
		echo "$pkg"
	done
}

mapfile -t need < <(missing "${wanted[@]}")
mapfile -t need_norec < <(missing ${norecommends[@]+"${norecommends[@]}"})
[[ ${#need[@]} -eq 0 && ${#need_norec[@]} -eq 0 ]] && exit 0

if ! $debian || [[ $(id -u) -ne 0 ]]; then
	why="not root"
	$debian || why="not Debian or Ubuntu (no apt-get/dpkg)"
	{
		echo "make $1 needs these Debian packages, and cannot install them here ($why):"
		[[ ${#need[@]} -gt 0 ]] && echo "  apt-get install -y ${need[*]}"
		[[ ${#need_norec[@]} -gt 0 ]] && echo "  apt-get install -y --no-install-recommends ${need_norec[*]}"
		$debian || echo "Elsewhere install their equivalents (CONTRIBUTING.md says what each one is for); the tests expect Debian's paths."
	} >&2
	exit 1
fi

echo "make $1: installing ${need[*]} ${need_norec[*]}" >&2
apt-get update -qq
export DEBIAN_FRONTEND=noninteractive
[[ ${#need[@]} -gt 0 ]] && apt-get install -y -qq "${need[@]}" >&2
[[ ${#need_norec[@]} -gt 0 ]] && apt-get install -y -qq --no-install-recommends "${need_norec[@]}" >&2
exit 0
