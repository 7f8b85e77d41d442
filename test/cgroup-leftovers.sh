#!/usr/bin/env bash
# No cgroup a test made may outlive the suites. Tests make kubelet-shaped cgroups only below a
# prefix of their own, /otelcol-oomkill-test-<random> (test/harness/testutil), and remove it; so the
# suites never touch the kubelet's own tree and can run on a real node.
#   cgroup-leftovers.sh snapshot FILE   before the suites: the kubelet-shaped cgroups at each
#                                       hierarchy's root (a real node's kubelet has them) and any
#                                       test prefix an earlier, interrupted run left
#   cgroup-leftovers.sh check FILE      after them: fails naming any test prefix or kubelet-shaped
#                                       cgroup that was not there before; names (without failing)
#                                       prefixes an interrupted earlier run left, so they can be removed
set -euo pipefail

kubelet_shaped() {
  for root in /sys/fs/cgroup /sys/fs/cgroup/*; do
    for d in "$root/kubepods" "$root/kubepods.slice"; do
      if [ -d "$d" ]; then echo "$d"; fi
    done
  done | sort
}

test_prefixes() {
  ls -d /sys/fs/cgroup/otelcol-oomkill-test-* /sys/fs/cgroup/*/otelcol-oomkill-test-* 2>/dev/null | sort || true
}

case "${1:-}" in
snapshot)
  { kubelet_shaped; test_prefixes; } | sort > "$2"
  ;;
check)
  old=$(comm -12 "$2" <(test_prefixes))
  if [ -n "$old" ]; then
    echo "cgroups an earlier, interrupted test run left (not this run's; remove them with rmdir, deepest first):" >&2
    printf '%s\n' $old >&2
  fi
  left=$(comm -13 "$2" <(test_prefixes))
  appeared=$(comm -13 "$2" <(kubelet_shaped))
  if [ -n "$left$appeared" ]; then
    echo "cgroups the tests left behind (each test removes its own: test/harness/testutil.NewCgroups):" >&2
    printf '%s\n' $left $appeared >&2
    exit 1
  fi
  echo "no cgroup left behind by the tests"
  ;;
*)
  echo "usage: $0 snapshot|check FILE" >&2
  exit 2
  ;;
esac
