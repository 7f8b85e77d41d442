# /lab/node.sh in the kernel lab's guest (kubenode.StartInGuest): the node's
# addresses and the functions the guest's script and the host (Guest.Exec)
# use. NODE_* come from /etc/kubenode/env, which the host writes.
. /etc/kubenode/env
NODE_LOGS=/var/log/kubenode

node_say() { read -r up _ < /proc/uptime; echo "kubenode: [$up] $*" > /dev/ttyS0; }

# node_kubelet_start [CONFIG]: the kubelet, detached, with /etc/kubenode/kubelet.yaml or CONFIG.
node_kubelet_start() {
	setsid kubelet --config "${1:-/etc/kubenode/kubelet.yaml}" --kubeconfig /etc/kubenode/kubelet.kubeconfig \
		--hostname-override "$NODE_NAME" --node-ip "$NODE_IP" >> "$NODE_LOGS/kubelet.log" 2>&1 < /dev/null &
	echo $! > /run/kubenode-kubelet.pid
}

# node_kubelet_stop: stops the kubelet (its containers keep running, as on
# a node whose kubelet restarts).
node_kubelet_stop() {
	pid=$(cat /run/kubenode-kubelet.pid 2> /dev/null) || return 0
	kill "$pid" 2> /dev/null
	i=0
	while [ -d "/proc/$pid" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
	rm -f /run/kubenode-kubelet.pid
}

# node_container_cgroup ID: the container's cgroup directory (cgroupfs
# driver: .../<id>; systemd: .../cri-containerd-<id>.scope).
node_container_cgroup() { find /sys/fs/cgroup/kubepods* -type d -name "*$1*" | head -n 1; }

# node_container_pid ID: the container's main process.
node_container_pid() { ctr -n k8s.io tasks ls | awk -v id="$1" '$1 == id { print $2 }'; }
