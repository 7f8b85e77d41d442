#!/usr/bin/env bash
# make demo: the story otelcol-oomkill exists for, on this machine, in about a minute.
#
# A php-fpm-like master process keeps running while the kernel OOM-kills one of its workers.
# Kubernetes would record nothing (the container is not restarted). otelcol-oomkill reads the
# kernel's report from the journal and names the pod, namespace and container.
#
# Needs root, a memory cgroup controller, bin/otelcol-oomkill (make build) and the cached
# kube-apiserver + etcd (test/k8sbin/build.sh). Everything it starts, it stops; everything it
# creates, it removes.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/bin/otelcol-oomkill"
k8sbin=${KUBE_TEST_BINARIES:-${XDG_CACHE_HOME:-$HOME/.cache}/otelcol-oomkill/k8s/v1.37.2-linux-amd64}
work=$(mktemp -d /tmp/oomkill-demo.XXXXXX)
pids=()
cgroups=()

say()  { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die()  { printf 'demo: %s\n' "$*" >&2; exit 1; }

cleanup() {
  set +e
  say "Cleaning up"
  # Stop in reverse start order: collector, apiserver, etcd, journald.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[i]}" 2>/dev/null && wait "${pids[i]}" 2>/dev/null
  done
  for ((i = ${#cgroups[@]} - 1; i >= 0; i--)); do rmdir "${cgroups[i]}" 2>/dev/null; done
  [ -n "${started_journald:-}" ] && rm -rf "$journal_dir_created"
  rm -rf "$work"
  note "done"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || die "run as root: it creates memory cgroups and starts journald"
[ -x "$bin" ] || die "$bin is missing: run make build"
[ -x "$k8sbin/kube-apiserver" ] && [ -x "$k8sbin/etcd" ] || die "no kube-apiserver/etcd in $k8sbin: run test/k8sbin/build.sh"
memcg=/sys/fs/cgroup/memory
[ -d "$memcg" ] || die "no cgroup v1 memory controller at $memcg"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

say "1. A Kubernetes API server (etcd + kube-apiserver on loopback; no kubelet, so we play it)"
etcd_port=$(port); peer_port=$(port); api_port=$(port); prom_port=$(port)
"$k8sbin/etcd" --data-dir "$work/etcd" --log-level error \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "default=http://127.0.0.1:$peer_port" >"$work/etcd.log" 2>&1 &
pids+=($!)
openssl genrsa -out "$work/sa.key" 2048 2>/dev/null
openssl rsa -in "$work/sa.key" -pubout -out "$work/sa.pub" 2>/dev/null
token=demo-$RANDOM$RANDOM
echo "$token,demo,1,\"system:masters\"" >"$work/tokens.csv"
"$k8sbin/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" --bind-address 127.0.0.1 \
  --advertise-address 127.0.0.1 --secure-port "$api_port" --cert-dir "$work/certs" \
  --token-auth-file "$work/tokens.csv" --authorization-mode RBAC \
  --service-account-issuer https://kubernetes.default.svc --service-account-key-file "$work/sa.pub" \
  --service-account-signing-key-file "$work/sa.key" --service-cluster-ip-range 10.0.0.0/24 \
  --endpoint-reconciler-type none --disable-admission-plugins ServiceAccount >"$work/apiserver.log" 2>&1 &
pids+=($!)
api() { curl -sk -H "Authorization: Bearer $token" -H 'Content-Type: application/json' "$@"; }
for _ in $(seq 1 150); do [ "$(api "https://127.0.0.1:$api_port/readyz")" = ok ] && break; sleep 0.2; done
[ "$(api "https://127.0.0.1:$api_port/readyz")" = ok ] || die "kube-apiserver did not start; see $work/apiserver.log"
cat >"$work/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: demo, cluster: {server: "https://127.0.0.1:$api_port", insecure-skip-tls-verify: true}}]
users: [{name: demo, user: {token: "$token"}}]
contexts: [{name: demo, context: {cluster: demo, user: demo}}]
current-context: demo
EOF
note "API server ready on https://127.0.0.1:$api_port"

say "2. A Pod shop/checkout-7f9c6d5b8-x2x9q running container php-fpm (256 MiB limit)"
node=$(hostname)
container_id=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
api -X POST "https://127.0.0.1:$api_port/api/v1/namespaces" -d '{"metadata":{"name":"shop"}}' >/dev/null
pod=$(api -X POST "https://127.0.0.1:$api_port/api/v1/namespaces/shop/pods" -d '{
  "metadata": {"name": "checkout-7f9c6d5b8-x2x9q", "labels": {"app": "checkout", "pod-template-hash": "7f9c6d5b8"},
    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "checkout-7f9c6d5b8", "uid": "00000000-0000-0000-0000-000000000001", "controller": true}]},
  "spec": {"nodeName": "'"$node"'", "containers": [{"name": "php-fpm", "image": "php:8.3-fpm",
    "resources": {"limits": {"memory": "256Mi"}}}]}}')
pod_uid=$(jq -r .metadata.uid <<<"$pod")
# What the kubelet would report once the container runs:
jq --arg id "containerd://$container_id" '.status = {phase: "Running", containerStatuses: [{name: "php-fpm",
  image: "php:8.3-fpm", imageID: "", containerID: $id, ready: true, restartCount: 0,
  state: {running: {startedAt: "2026-01-01T00:00:00Z"}}}]}' <<<"$pod" |
  api -X PUT "https://127.0.0.1:$api_port/api/v1/namespaces/shop/pods/checkout-7f9c6d5b8-x2x9q/status" -d @- >/dev/null
note "pod UID $pod_uid, container ID ${container_id:0:12}…, node $node"

say "3. systemd-journald, which reads the kernel log (/dev/kmsg) into the journal"
if pgrep -x systemd-journal >/dev/null; then
  note "already running: left alone"
else
  journal_dir_created=/run/log/journal
  [ -d /run/log/journal ] && journal_dir_created=
  mkdir -p /run/systemd/journal
  /lib/systemd/systemd-journald >"$work/journald.log" 2>&1 &
  pids+=($!)
  started_journald=1
  sleep 1
  note "started (PID ${pids[-1]}); it will be stopped at the end"
fi

say "4. otelcol-oomkill: oomkill receiver → k8smeta processor → debug + Prometheus exporters"
cat >"$work/config.yaml" <<EOF
receivers:
  oomkill:
    start_at: end
    node_name: $node
processors:
  k8smeta:
    auth_type: kubeConfig
    node_name: $node
exporters:
  debug:
    verbosity: detailed
  prometheus:
    endpoint: 127.0.0.1:$prom_port
    resource_constant_labels: {included: ["*"]}
service:
  telemetry: {metrics: {level: none}}   # the debug exporter prints at info level
  pipelines:
    logs: {receivers: [oomkill], processors: [k8smeta], exporters: [debug]}
    metrics: {receivers: [oomkill], processors: [k8smeta], exporters: [prometheus]}
EOF
KUBECONFIG="$work/kubeconfig" "$bin" --config "$work/config.yaml" >"$work/collector.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do curl -s "127.0.0.1:$prom_port/metrics" >/dev/null && break; sleep 0.2; done
note "collector running; Prometheus exporter on 127.0.0.1:$prom_port"

say "5. The container's memory cgroup, shaped as kubelet (cgroupfs driver) and containerd make it"
cg="$memcg/kubepods/burstable/pod$pod_uid/$container_id"
for d in "$memcg/kubepods" "$memcg/kubepods/burstable" "$memcg/kubepods/burstable/pod$pod_uid" "$cg"; do
  [ -d "$d" ] || { mkdir "$d"; cgroups+=("$d"); }
done
echo $((64 << 20)) >"$cg/memory.limit_in_bytes"
note "$cg (limit 64 MiB)"

say "6. A master process forks a worker; the worker allocates 200 MiB; the kernel kills the worker"
python=$(command -v python3)
[ -x /usr/bin/python3 ] && python=/usr/bin/python3
# The master lives on after its worker's death (as php-fpm's would), until the demo ends.
bash -c '
  echo $$ > '"$cg"'/cgroup.procs
  '"$python"' -c "open(\"/proc/self/comm\",\"w\").write(\"php-fpm: pool\"); b = bytearray(200 << 20)" &
  wait $!; echo "    worker exit status $? (137 = SIGKILL by the OOM killer); master PID $$ still alive"
  exec sleep 120' >"$work/master.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q 'worker exit status' "$work/master.out" && break; sleep 0.1; done
cat "$work/master.out"
note "Kubernetes saw nothing: the container was not restarted, no OOMKilled status, no event."

say "7. What otelcol-oomkill made of it"
for _ in $(seq 1 50); do grep -q 'EventName: oom_kill' "$work/collector.log" && break; sleep 0.2; done
grep -q 'EventName: oom_kill' "$work/collector.log" || { tail -30 "$work/collector.log" >&2; die "no log record after 10 s"; }
note "The log record (debug exporter):"
sed -n '/ResourceLog #0/,/Trace ID/p' "$work/collector.log" | grep -E 'k8s\.|container\.|process\.|oom\.(constraint|attributed|memcg|container\.outcome)|Body|EventName|Timestamp' | sed 's/^/      /'
for _ in $(seq 1 50); do curl -s "127.0.0.1:$prom_port/metrics" | grep -q '^container_oom_kill_count_total.*k8s_pod_name' && break; sleep 0.2; done
note "The metric (Prometheus exporter):"
curl -s "127.0.0.1:$prom_port/metrics" | grep '^container_oom_kill_count_total' | tr ',' '\n' |
  grep -E 'k8s_pod_name|k8s_namespace_name|k8s_container_name|k8s_deployment_name|oom_container_outcome|process_executable_name|} ' | sed 's/^/      /'
note "oom.container.outcome=survived: the receiver looked at the container's cgroup right after the kill"
note "and found processes still running in it. This is the kill Kubernetes never shows; the alert"
note "ContainerOOMKilledSilently (examples/prometheus/alerts.yaml) pages on exactly these."
