//go:build linux

// Package e2e is the user's whole story on real parts: real kernel OOM kills
// in kubelet-shaped memory cgroups, a real systemd-journald, the built
// otelcol-oomkill on its default journal settings with k8smeta against a real
// kube-apiserver, a real Prometheus evaluating the shipped alert rules, log
// records over OTLP to a real OTLP/gRPC endpoint, and Kubernetes Events on
// the killed containers' pods written by the k8sevents exporter.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/kubeapitest"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/promtest"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

const (
	memcgRoot = "/sys/fs/cgroup/memory"
	node      = "node-e2e"
	namespace = "shop"
	// cluster is the label a multi-cluster Prometheus setup adds to every
	// series, which the dashboard's cluster variable filters on.
	cluster = "e2e"
)

// requireRealKernel checks for what the test needs from the machine; CI
// has it all, so there a gap fails instead of skipping.
func requireRealKernel(t *testing.T) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (to create memory cgroups and run journald)")
	}
	if _, err := os.Stat(filepath.Join(memcgRoot, "memory.limit_in_bytes")); err != nil {
		missing = append(missing, "a cgroup v1 memory controller at "+memcgRoot)
	}
	for _, p := range []string{"/lib/systemd/systemd-journald", "/usr/bin/prometheus"} {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return
	}
	testutil.SkipOrFail(t, "end-to-end test needs "+strings.Join(missing, ", "))
}

// victim is one container the test OOM-kills.
type victim struct {
	pod, container, name string // pod and container names, and the victim's process name
	cgroup               func(uid, id string) string
	killMain             bool // the container's only process dies (no surviving parent)
	gone                 bool // the pod is deleted before the kill: no event may be written
	// before runs just before the kill: what the API says when the
	// record arrives (the container already restarted, the pod deleted).
	before func(*testing.T, *kubeapitest.Cluster, *victim)
	id     string
	uid    string
	pid    int
}

func TestOOMKillToAlert(t *testing.T) {
	requireRealKernel(t)
	testutil.CollectorBinary(t)
	cgroups := testutil.NewCgroups(t, "memory")

	cluster := kubeapitest.Start(t)
	ctx := context.Background()
	_, err := cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{})
	require.NoError(t, err)

	victims := []*victim{
		{
			pod: "checkout-7f9c6d5b8-x2x9q", container: "php-fpm", name: "php-fpm: pool",
			cgroup: func(uid, id string) string { return cgroups.Path("/kubepods/burstable/pod" + uid + "/" + id) },
		},
		{
			pod: "tasks-0", container: "celery", name: "celery worker",
			cgroup: func(uid, id string) string {
				return cgroups.Path("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice/crio-" + id + ".scope")
			},
		},
		{
			pod: "report-29012345-abcde", container: "report", name: "java", killMain: true, before: restarted,
			cgroup: func(uid, id string) string {
				return cgroups.Path("/kubepods.slice/kubepods-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice/cri-containerd-" + id + ".scope")
			},
		},
		{
			pod: "batch-5c8d7-qwert", container: "worker", name: "python3", before: deleted, gone: true,
			cgroup: func(uid, id string) string { return cgroups.Path("/kubepods/besteffort/pod" + uid + "/" + id) },
		},
	}
	for i, v := range victims {
		v.id = strings.Repeat(strconv.Itoa(i+1), 8) + fmt.Sprintf("%056x", time.Now().UnixNano())
		v.uid = createRunningPod(t, cluster, v)
	}

	testutil.Journald(t)

	otlp := testutil.StartOTLPSink(t)
	promExporter, selfTelemetry := testutil.FreePort(t), testutil.FreePort(t)
	startCollector(t, cluster.Kubeconfig, promExporter, selfTelemetry, otlp.Addr())
	prom := startPrometheus(t, promExporter, selfTelemetry)

	for _, v := range victims {
		if v.before != nil {
			v.before(t, cluster, v)
		}
		v.pid = oomKill(t, cgroups, v)
		t.Logf("kernel killed %q (pid %d) in %s", v.name, v.pid, v.cgroup(v.uid, v.id))
	}

	t.Run("log records over OTLP", func(t *testing.T) {
		for _, v := range victims {
			lr, res := waitFor(t, otlp, v.pid)
			a := lr.Attributes().AsRaw()
			r := res.Resource().Attributes().AsRaw()
			assert.Equal(t, "oom_kill", lr.EventName())
			assert.Contains(t, lr.Body().Str(), fmt.Sprintf("Killed process %d (%s)", v.pid, v.name))
			assert.Equal(t, int64(v.pid), a["process.pid"])
			assert.Equal(t, v.name, a["process.executable.name"])
			assert.Equal(t, "memcg", a["oom.constraint"])
			assert.Equal(t, true, a["oom.attributed"])
			assert.Equal(t, v.cgroup(v.uid, v.id), a["oom.memcg"])
			assert.WithinDuration(t, time.Now(), lr.Timestamp().AsTime(), 2*time.Minute)
			assert.Equal(t, v.uid, r["k8s.pod.uid"])
			assert.Equal(t, v.id, r["container.id"])
			assert.Equal(t, v.pod, r["k8s.pod.name"])
			assert.Equal(t, namespace, r["k8s.namespace.name"])
			assert.Equal(t, v.container, r["k8s.container.name"])
			assert.Equal(t, node, r["k8s.node.name"])
			assert.Equal(t, int64(256<<20), r["k8s.container.memory.limit"])
			// A worker under a living parent: the container lived on; the
			// only process: it exited with the kill.
			want := "survived"
			if v.killMain {
				want = "exited"
			}
			assert.Equal(t, want, a["oom.container.outcome"], "outcome of %s", v.pod)
		}
	})

	t.Run("Kubernetes Event on the pod", func(t *testing.T) {
		for _, v := range victims {
			if v.gone {
				continue
			}
			var evs []corev1.Event
			ok := assert.Eventually(t, func() bool { evs = podEvents(t, cluster, v); return len(evs) > 0 }, 60*time.Second, 200*time.Millisecond, "no event on pod %s", v.pod)
			if !ok {
				continue
			}
			require.Len(t, evs, 1, "one event per killed container")
			ev := evs[0]
			assert.Equal(t, corev1.ObjectReference{
				Kind: "Pod", APIVersion: "v1", Namespace: namespace, Name: v.pod, UID: types.UID(v.uid),
				FieldPath: "spec.containers{" + v.container + "}",
			}, ev.InvolvedObject)
			assert.Equal(t, "Warning", ev.Type)
			assert.Equal(t, "OOMKilling", ev.Reason)
			assert.Equal(t, "otelcol-oomkill.io/k8sevents", ev.ReportingController)
			assert.Equal(t, "otelcol-oomkill-"+node, ev.ReportingInstance)
			// The limit named is the one the kernel hit (the cgroup's 64Mi), not
			// the pod spec's 256Mi the processor joined.
			assert.Contains(t, ev.Message, fmt.Sprintf("killed process %q (pid %d) in container %q: the container's memory limit (64Mi) was hit", v.name, v.pid, v.container))
			if v.killMain {
				assert.Contains(t, ev.Message, "The container exited: Kubernetes restarts it and reports OOMKilled.")
			} else {
				assert.Contains(t, ev.Message, "The container kept running: Kubernetes records no restart for this.")
			}
			assert.WithinDuration(t, time.Now(), ev.EventTime.Time, 2*time.Minute)
			assert.Nil(t, ev.Series, "killed once")
			t.Logf("event on pod %s: %s %s %q", v.pod, ev.Type, ev.Reason, ev.Message)
		}
		// The deleted pod's kill was dropped and counted, not retried.
		var gone *victim
		for _, v := range victims {
			if v.gone {
				gone = v
			}
		}
		require.Eventually(t, func() bool {
			return prom.Query(t, `otelcol_k8sevents_kills_dropped{reason="pod_deleted"}`) == 1
		}, 60*time.Second, 500*time.Millisecond, "the deleted pod's kill counted as dropped")
		assert.Empty(t, podEvents(t, cluster, gone))
		assert.Equal(t, float64(len(victims)-1), prom.Query(t, "otelcol_k8sevents_events_created"))
	})

	t.Run("metric scraped by Prometheus and alert firing with names", func(t *testing.T) {
		for _, v := range victims {
			q := fmt.Sprintf(`container_oom_kill_count_total{container_id=%q,k8s_pod_name=%q,k8s_namespace_name=%q,k8s_container_name=%q}`, v.id, v.pod, namespace, v.container)
			ok := assert.Eventually(t, func() bool { return prom.Query(t, q) == 1 }, 60*time.Second, 500*time.Millisecond, "%s = 1", q)
			if !ok {
				t.Fatalf("series in Prometheus: %s", prom.Raw(t, "container_oom_kill_count_total"))
			}
		}
		require.Eventually(t, func() bool {
			firing := prom.Firing(t, "ContainerOOMKilled")
			for _, v := range victims {
				found := false
				for _, l := range firing {
					found = found || (l["k8s_pod_name"] == v.pod && l["k8s_namespace_name"] == namespace && l["k8s_container_name"] == v.container)
				}
				if !found {
					return false
				}
			}
			return true
		}, 60*time.Second, time.Second, "ContainerOOMKilled firing for every killed container, on its first kill")
		// The receiver's own counters, scraped from the collector's telemetry:
		// every real kill counted and attributed, no kernel line unrecognized,
		// so the drift alert stays silent.
		require.Eventually(t, func() bool { return prom.Query(t, "otelcol_oomkill_receiver_kills") == float64(len(victims)) },
			30*time.Second, 500*time.Millisecond, "otelcol_oomkill_receiver_kills = %d", len(victims))
		assert.Zero(t, prom.Query(t, "otelcol_oomkill_receiver_unattributed_kills"))
		assert.Zero(t, prom.Query(t, "otelcol_oomkill_receiver_unrecognized_lines"))
		assert.Empty(t, prom.Firing(t, "OOMKillParserDrift"), "no OOM-looking line went unrecognized")
	})

	t.Run("every panel of the Grafana dashboard", func(t *testing.T) { checkDashboard(t, prom, victims) })
}

// createRunningPod creates the victim's Pod on node and sets its status as
// a kubelet would once the container runs.
func createRunningPod(t *testing.T, cluster *kubeapitest.Cluster, v *victim) string {
	t.Helper()
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: v.pod, Namespace: namespace},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{
			Name: v.container, Image: "registry.local/" + v.container + ":1.0",
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")}},
		}}},
	}
	created, err := cluster.Client.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{})
	require.NoError(t, err)
	created.Status = corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
		Name: v.container, Image: pod.Spec.Containers[0].Image, ContainerID: "containerd://" + v.id, Ready: true,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}},
	}}}
	_, err = cluster.Client.CoreV1().Pods(namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{})
	require.NoError(t, err)
	return string(created.UID)
}

// podEvents returns the events on the victim's pod, found as kubectl
// describe pod finds them.
func podEvents(t *testing.T, cluster *kubeapitest.Cluster, v *victim) []corev1.Event {
	t.Helper()
	sel := fields.Set{"involvedObject.kind": "Pod", "involvedObject.name": v.pod, "involvedObject.namespace": namespace, "involvedObject.uid": v.uid}
	l, err := cluster.Client.CoreV1().Events(namespace).List(context.Background(), metav1.ListOptions{FieldSelector: sel.AsSelector().String()})
	require.NoError(t, err)
	return l.Items
}

// restarted makes the API say what it says once kubelet restarted the
// container: a new running ID, the killed one only in lastState.
func restarted(t *testing.T, cluster *kubeapitest.Cluster, v *victim) {
	ctx := context.Background()
	pod, err := cluster.Client.CoreV1().Pods(namespace).Get(ctx, v.pod, metav1.GetOptions{})
	require.NoError(t, err)
	cs := &pod.Status.ContainerStatuses[0]
	cs.ContainerID = "containerd://" + strings.Repeat("f", 64)
	cs.RestartCount = 1
	cs.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ContainerID: "containerd://" + v.id, ExitCode: 137, Reason: "OOMKilled"}
	_, err = cluster.Client.CoreV1().Pods(namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	require.NoError(t, err)
}

// deleted deletes the victim's pod, as when its record arrives after the
// pod is gone.
func deleted(t *testing.T, cluster *kubeapitest.Cluster, v *victim) {
	ctx := context.Background()
	require.NoError(t, cluster.Client.CoreV1().Pods(namespace).Delete(ctx, v.pod, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}))
	require.Eventually(t, func() bool {
		_, err := cluster.Client.CoreV1().Pods(namespace).Get(ctx, v.pod, metav1.GetOptions{})
		return err != nil
	}, 10*time.Second, 50*time.Millisecond)
	time.Sleep(500 * time.Millisecond) // the collector's watch sees the delete
}

// oomKill makes the kernel OOM-kill a process named v.name in the victim's
// memory cgroup (64 MiB limit, 200 MiB allocated) and returns its pid. For
// a child, a bash parent in the same cgroup survives (checked); otherwise
// the process is the cgroup's only one.
func oomKill(t *testing.T, cgroups *testutil.Cgroups, v *victim) int {
	t.Helper()
	cg := cgroups.Make(t, v.cgroup(v.uid, v.id), 64<<20)
	if v.killMain {
		return cg.KillOnly(t, v.name)
	}
	// The parent lives on, as php-fpm's master would, past the receiver's
	// look at the cgroup (oom.container.outcome=survived).
	pid, _ := cg.KillWorker(t, v.name)
	return pid
}

func startCollector(t *testing.T, kubeconfig string, promPort, selfPort int, otlpAddr string) {
	t.Helper()
	state := t.TempDir()
	cfg := testutil.WriteConfig(t, fmt.Sprintf(`
extensions:
  file_storage:
    directory: %s
receivers:
  oomkill:
    storage: file_storage
    node_name: %s
processors:
  k8smeta:
    auth_type: kubeConfig
    node_name: %s
exporters:
  prometheus:
    endpoint: 127.0.0.1:%d
    resource_constant_labels:
      excluded: [k8s.container.restart_count]
  otlp_grpc:
    endpoint: %s
    tls:
      insecure: true
  k8sevents:
    auth_type: kubeConfig
    flush_interval: 200ms
service:
  extensions: [file_storage]
  telemetry:
    resource:
      attributes:
        - name: k8s.node.name
          value: %s
    metrics:
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: %d
                with_resource_constant_labels:
                  included: [k8s.node.name]
  pipelines:
    logs:
      receivers: [oomkill]
      processors: [k8smeta]
      exporters: [otlp_grpc, k8sevents]
    metrics:
      receivers: [oomkill]
      processors: [k8smeta]
      exporters: [prometheus]
`, state, node, node, promPort, otlpAddr, node, selfPort))
	c := testutil.StartCollector(t, cfg, testutil.ProcessOptions{Env: []string{"KUBECONFIG=" + kubeconfig}})
	// Receivers start last, after k8smeta's first pod list: kills before
	// then are before start_at: end.
	c.WaitReady(t, 60*time.Second)
}

// waitFor returns the log record of the kill of pid and its resource.
func waitFor(t *testing.T, sink *testutil.OTLPSink, pid int) (lr plog.LogRecord, res plog.ResourceLogs) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, ld := range sink.Logs() {
			for i := 0; i < ld.ResourceLogs().Len(); i++ {
				rl := ld.ResourceLogs().At(i)
				for j := 0; j < rl.ScopeLogs().Len(); j++ {
					lrs := rl.ScopeLogs().At(j).LogRecords()
					for k := 0; k < lrs.Len(); k++ {
						if p, ok := lrs.At(k).Attributes().Get("process.pid"); ok && p.Int() == int64(pid) {
							lr, res = lrs.At(k), rl
							return true
						}
					}
				}
			}
		}
		return false
	}, 60*time.Second, 200*time.Millisecond, "no log record for pid %d", pid)
	return lr, res
}

// startPrometheus runs a real Prometheus scraping the collector's exporter
// (target) and its own telemetry (self), where the receiver's counters
// live, every second, and evaluating the shipped alert rules. Every series
// gets a cluster label, as in a multi-cluster setup.
func startPrometheus(t *testing.T, target, self int) *promtest.Server {
	t.Helper()
	return promtest.Start(t, fmt.Sprintf(`
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: otelcol-oomkill
    static_configs:
      - targets: ["127.0.0.1:%d", "127.0.0.1:%d"]
        labels: {cluster: %s}
`, testutil.RepoPath(t, "examples/prometheus/alerts.yaml"), target, self, cluster))
}
