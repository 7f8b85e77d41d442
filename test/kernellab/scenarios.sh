# Real cgroup v2 OOM kills in kubelet-shaped cgroups, run by the kernel
# lab's guest (busybox sh, root, cgroup2 at /sys/fs/cgroup). Each scenario
# is bracketed by "KERNELLAB begin/end <name>" kernel-log markers and adds
# one line per container to $OUT/results:
#   <scenario> <pod uid> <container id> oom_group=N procs=N leaf_oom_kill=N leaf_group_kill=N pod_oom_kill=N master=<exit status>
# The memory hog is dd with a 256 MiB buffer filled from /dev/zero.
. /lab/lib.sh
set -u
: > "$OUT/results"

# container NAME DRIVER QOS POD_UID CONTAINER_ID OOM_GROUP PROCS LIMIT_ON LIMIT
#   Creates the container's cgroup and starts its master in the background
#   (MASTER_PID): a shell with PROCS-2 sleeping workers and one worker (dd)
#   that grows until the OOM killer picks it, once /tmp/go exists.
#   LIMIT_ON: container or pod (the pod's cgroup gets memory.max: the OOM
#   domain is the pod, the victim's cgroup the container).
container() {
	name=$1 driver=$2 qos=$3 uid=$4 cid=$5 group=$6 procs=$7 limit_on=$8 limit=$9
	rel=$(kl_cgpath "$driver" "$qos" "$uid" "$cid") || exit 1
	LEAF=$(kl_mkcg "$rel") || { echo "cannot create $rel" >&2; exit 1; }
	if [ "$limit_on" = pod ]; then echo "$limit" > "${LEAF%/*}/memory.max"; else echo "$limit" > "$LEAF/memory.max"; fi
	echo "$group" > "$LEAF/memory.oom.group"
	echo "$name $uid $cid oom_group=$group procs=$procs" > "/tmp/kl-${LEAF##*/}"
	sh -c '
		echo $$ > "$1/cgroup.procs"
		i=2 pids=""
		while [ $i -lt "$2" ]; do sleep 1000 & pids="$pids $!"; i=$((i + 1)); done
		while [ ! -e /tmp/go ]; do sleep 0.01; done
		dd if=/dev/zero of=/dev/null bs=256M count=1 2>/dev/null & hog=$!
		wait $hog
		echo "worker $hog exit $?"
		[ -n "$pids" ] && kill $pids
		wait
		echo "master $$ survived"' master "$LEAF" "$procs" >> "$OUT/$name.master" 2>&1 &
	MASTER_PID=$!
}

# finish LEAF MASTER_PID: wait for the master and the cgroup to empty, and
# record what the kernel counted.
finish() {
	wait "$2"
	st=$?
	kl_wait_empty "$1"
	echo "$(cat "/tmp/kl-${1##*/}") leaf_oom_kill=$(kl_event "$1" oom_kill) leaf_group_kill=$(kl_event "$1" oom_group_kill) pod_oom_kill=$(kl_event "${1%/*}" oom_kill) master=$st" >> "$OUT/results"
}

# scenario NAME ARGS...: one container, alone in its begin/end bracket.
scenario() {
	rm -f /tmp/go
	container "$@"
	kl_mark "KERNELLAB begin $1"
	touch /tmp/go
	finish "$LEAF" "$MASTER_PID"
	kl_mark "KERNELLAB end $1"
}

# Pod UIDs and container IDs are fixed, so fixtures keep their cgroup paths.
U=4a0c6c57-6b0e-4c8e-9a51-0d1e2f3a4b
C=1b2bcd0f6d6b4f3f8f2e1a9c8b7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c
scenario systemd_burstable_worker systemd burstable ${U}01 ${C}01 0 3 container 8M
scenario systemd_guaranteed_group systemd guaranteed ${U}02 ${C}02 1 4 container 8M
scenario cgroupfs_burstable_group cgroupfs burstable ${U}03 ${C}03 1 4 container 8M
scenario cgroupfs_guaranteed_worker cgroupfs guaranteed ${U}04 ${C}04 0 3 container 8M
scenario systemd_burstable_pod_limit systemd burstable ${U}05 ${C}05 0 3 pod 8M
scenario cgroupfs_burstable_pod_limit_group cgroupfs burstable ${U}06 ${C}06 1 4 pod 8M

# The kernel prints at most 10 full reports per 5 s (oom_kill_process's
# ratelimit). After a pause, 12 group kills in 12 pods and one worker kill
# in a 13th happen at once: the reports after the 10th are suppressed (no
# task table, no summary), their victim lines and "Tasks in ..." lines are
# not. Which pods lose their report is up to the scheduler; tests read that
# off the journal.
sleep 5.5
rm -f /tmp/go
leaves="" masters=""
for n in 10 11 12 13 14 15 16 17 18 19 20 21; do
	container rate_limited_burst systemd burstable ${U}$n ${C}$n 1 3 container 4M
	leaves="$leaves $LEAF" masters="$masters $MASTER_PID"
done
container rate_limited_burst cgroupfs burstable ${U}22 ${C}22 0 3 container 4M
leaves="$leaves $LEAF" masters="$masters $MASTER_PID"
kl_mark "KERNELLAB begin rate_limited_burst"
touch /tmp/go
set -- $masters
for l in $leaves; do finish "$l" "$1"; shift; done
kl_mark "KERNELLAB end rate_limited_burst"
