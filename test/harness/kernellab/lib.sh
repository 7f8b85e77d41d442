# /lab/lib.sh: helpers for the kernel lab's guest scripts (busybox sh).
# Source it: . /lab/lib.sh

CG=/sys/fs/cgroup

# kl_mark TEXT: a line in the kernel log (and so in the journal), e.g. to
# bracket a scenario.
kl_mark() { echo "$*" > /dev/kmsg; }

# kl_mkcg PATH: create the cgroup PATH (relative to the cgroup2 root) and
# every missing ancestor, enabling the memory and pids controllers in each
# ancestor's subtree_control on the way down, as kubelet and systemd do.
kl_mkcg() {
	d=$CG
	old_ifs=$IFS
	IFS=/
	for p in $1; do
		[ -n "$p" ] || continue
		echo "+memory +pids" > "$d/cgroup.subtree_control" || return 1
		d=$d/$p
		[ -d "$d" ] || mkdir "$d" || return 1
	done
	IFS=$old_ifs
	echo "$d"
}

# kl_cgpath DRIVER QOS POD_UID CONTAINER_ID: the container cgroup kubelet
# makes. DRIVER is systemd or cgroupfs; QOS is guaranteed, burstable or
# besteffort. Prints the path relative to the cgroup root.
kl_cgpath() {
	driver=$1 qos=$2 uid=$3 cid=$4
	u=$(echo "$uid" | tr - _)
	case "$driver-$qos" in
	systemd-guaranteed) echo "kubepods.slice/kubepods-pod$u.slice/cri-containerd-$cid.scope" ;;
	systemd-*) echo "kubepods.slice/kubepods-$qos.slice/kubepods-$qos-pod$u.slice/cri-containerd-$cid.scope" ;;
	cgroupfs-guaranteed) echo "kubepods/pod$uid/$cid" ;;
	cgroupfs-*) echo "kubepods/$qos/pod$uid/$cid" ;;
	*) echo "kl_cgpath: unknown driver/qos $driver $qos" >&2; return 1 ;;
	esac
}

# kl_hog: touch 256 MiB (dd's buffer, filled from /dev/zero in one read)
# so the OOM killer kills it; far faster under emulation than growing a
# shell string.
kl_hog() { dd if=/dev/zero of=/dev/null bs=256M count=1 2>/dev/null; }

# kl_wait_empty DIR: wait (up to 10 s) until no process is left in DIR.
kl_wait_empty() {
	i=0
	while grep -q '^populated 1' "$1/cgroup.events" && [ $i -lt 1000 ]; do sleep 0.01; i=$((i + 1)); done
}

# kl_event DIR NAME: a counter of DIR's memory.events (oom_kill, oom, ...).
kl_event() { awk -v k="$2" '$1 == k { print $2 }' "$1/memory.events"; }

# kl_wait_stop: wait until the host calls Guest.Stop (with Config.Control).
kl_wait_stop() { while [ ! -e /run/kernellab/stop ]; do sleep 1; done; }
