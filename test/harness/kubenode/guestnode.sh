# The node's own side in the kernel lab's guest (kubenode.StartInGuest): its
# network, containerd, the images, the kubelet; then it waits for the host's
# Stop, stops them and leaves the tails of their logs in $OUT.
# /lab/node.sh (sourced) has the functions the host also calls through
# Guest.Exec, and the addresses in NODE_* variables.
set -u
. /lab/lib.sh
. /lab/node.sh

hostname "$NODE_NAME"
ip link set lo up
ip link set eth0 up
ip addr add "$NODE_IP/24" dev eth0
ip route add default via "$NODE_GATEWAY"
echo 1 > /proc/sys/net/ipv4/ip_forward
# A node's / is a shared mount (systemd makes it so); the kubelet and
# containerd rely on propagation for their mounts.
mount --make-rshared /
mkdir -p /var/log/journal /var/lib/kubelet /var/log/pods /var/log/containers /run/containerd "$NODE_LOGS"
node_say "network up: $(ip -4 -o addr show eth0 | awk '{print $4}')"

setsid containerd --config /etc/kubenode/containerd.toml > "$NODE_LOGS/containerd.log" 2>&1 < /dev/null &
i=0
until ctr version > /dev/null 2>&1; do
	i=$((i + 1))
	[ $i -lt 1200 ] || { node_say "containerd did not come up"; break; }
	sleep 0.5
done
node_say "containerd up"
for a in /lab/images/*.tar; do
	ctr -n k8s.io images import "$a" > /dev/null 2>> "$NODE_LOGS/import.log" || node_say "import $a failed"
done
node_say "images imported: $(ctr -n k8s.io images ls -q | grep -vc '^sha256:')"
node_kubelet_start
node_say "kubelet started"

kl_wait_stop
node_say "stopping"
node_kubelet_stop
ctr -n k8s.io tasks ls -q 2> /dev/null | while read -r id; do ctr -n k8s.io tasks kill -s KILL "$id" > /dev/null 2>&1; done
pkill_containerd() { for p in /proc/[0-9]*; do [ "$(cat "$p/comm" 2> /dev/null)" = containerd ] && kill "${p#/proc/}"; done; }
pkill_containerd
for f in "$NODE_LOGS"/*.log; do tail -n 400 "$f" > "$OUT/$(basename "$f")"; done
grep -E '^(MemTotal|MemAvailable|Shmem):' /proc/meminfo | tr -s ' \n' ' ' > "$OUT/memory"
