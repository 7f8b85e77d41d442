//go:build e2enode && e2ecluster

package node

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/kubenode"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/promtest"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

const (
	collectorNS = "otelcol-oomkill"
	appNS       = "shop"
	appName     = "php-fpm"
)

// master is the workload: a master process that forks a worker every
// second (php-fpm-like). A worker that finds /tmp/grow-worker outgrows the
// memory limit; the master itself outgrows it when /tmp/grow-main appears.
const master = `
trap 'exit 0' TERM
while :; do
  if [ -e /tmp/grow-main ]; then rm -f /tmp/grow-main; x=1234567890; while :; do x=$x$x; done; fi
  sh -c 'if [ -e /tmp/grow-worker ]; then rm -f /tmp/grow-worker; x=1234567890; while :; do x=$x$x; done; fi; sleep 1'
done
`

// TestNodeStory is the seed's story on a real node: examples/kubernetes
// applied with kubectl as its README says, a php-fpm-like Deployment whose
// worker and then main process the kernel OOM-kills, the DaemonSet's
// collector counting both with names, a real Prometheus firing the shipped
// alert, and the collector pod replaced mid-test; then the same collector
// installed with `helm install` of charts/otelcol-oomkill instead, counting
// a kill with names.
func TestNodeStory(t *testing.T) {
	requireMachine(t, "/usr/bin/buildah", "/usr/bin/podman", "/usr/sbin/debootstrap", "/lib/systemd/systemd-journald",
		"/usr/bin/prometheus", "/bin/busybox")
	kubenode.Require(t)
	if _, err := os.Stat(filepath.Join(kubenode.BinDir(t), "kubectl")); err != nil {
		t.Fatalf("kubectl: %v (test/k8sbin/build.sh node builds it)", err)
	}
	collectorArchive := buildImage(t)
	out, err := exec.Command(testutil.RepoPath(t, "test/image/node-images.sh")).Output()
	require.NoError(t, err, "test/image/node-images.sh")
	archives := append(strings.Fields(string(out)), collectorArchive)
	j := testutil.Journald(t)
	// Registered before the node's teardown, so it runs after it.
	t.Cleanup(func() {
		if left := kubenode.Leftovers(); len(left) > 0 && !t.Failed() {
			t.Errorf("the node's teardown left: %v", left)
		}
	})
	n := kubenode.Start(t, archives...)
	ctx := context.Background()

	// examples/kubernetes as shipped, with the README's one edit for this
	// node: its journal group. The image name needs none: the archive holds
	// docker.io/library/otelcol-oomkill:0.1.0, what otelcol-oomkill:0.1.0 means.
	example := t.TempDir()
	require.NoError(t, os.CopyFS(example, os.DirFS(testutil.RepoPath(t, "examples/kubernetes"))))
	ds := filepath.Join(example, "03-daemonset.yaml")
	b, err := os.ReadFile(ds)
	require.NoError(t, err)
	re := regexp.MustCompile(`supplementalGroups: \[999, 4\]`)
	require.True(t, re.Match(b), "03-daemonset.yaml's supplementalGroups line, which the README tells to edit")
	require.NoError(t, os.WriteFile(ds, re.ReplaceAll(b, []byte(fmt.Sprintf("supplementalGroups: [%d, 4]", j.GID))), 0o644))
	out, err = n.Kubectl("apply", "-k", example)
	require.NoError(t, err, "kubectl apply -k examples/kubernetes:\n%s", out)
	t.Logf("kubectl apply -k:\n%s", out)

	collector := waitCollector(t, n, "")
	prom := startPrometheus(t, collector)

	// The workload.
	out, err = n.Kubectl("create", "namespace", appNS)
	require.NoError(t, err, "%s", out)
	deploy := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s, namespace: %[2]s}
spec:
  replicas: 1
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: %[1]s
          image: registry.local/otelcol-oomkill-test/busybox:1
          command: ["/bin/sh", "-c", %[3]q]
          resources:
            requests: {cpu: 10m, memory: 32Mi}
            limits: {memory: 32Mi}
`, appName, appNS, master)
	f := filepath.Join(t.TempDir(), "deploy.yaml")
	require.NoError(t, os.WriteFile(f, []byte(deploy), 0o644))
	out, err = n.Kubectl("apply", "-f", f)
	require.NoError(t, err, "%s", out)
	app := waitRunning(t, n, appNS, "app="+appName)
	first := strings.TrimPrefix(app.Status.ContainerStatuses[0].ContainerID, "containerd://")
	require.Len(t, first, 64, "the kubelet's container ID")

	series := func(id string) string {
		return fmt.Sprintf(`container_oom_kill_count_total{k8s_namespace_name=%q,k8s_pod_name=%q,k8s_container_name=%q,k8s_deployment_name=%q,container_id=%q}`,
			appNS, app.Name, appName, appName, id)
	}

	// outcome narrows series to one oom.container.outcome: what the receiver
	// saw in the victim's cgroup, which must agree with the kubelet's view.
	outcome := func(id, o string) string {
		return strings.TrimSuffix(series(id), "}") + fmt.Sprintf(`,oom_container_outcome=%q}`, o)
	}

	t.Run("a worker outgrows the limit", func(t *testing.T) {
		touch(t, n, first, "/tmp/grow-worker")
		require.Eventually(t, func() bool { return prom.Query(t, series(first)) == 1 }, 2*time.Minute, time.Second,
			"the collector counts the worker's kill with the pod's names: %s", prom.Raw(t, "container_oom_kill_count_total"))
		pod := getPod(t, n, appNS, app.Name)
		cs := pod.Status.ContainerStatuses[0]
		assert.Equal(t, int32(0), cs.RestartCount, "the kubelet saw no restart")
		assert.NotNil(t, cs.State.Running, "the container keeps running")
		assert.Nil(t, cs.LastTerminationState.Terminated, "no OOMKilled in the pod's status")
		assert.Equal(t, 1.0, prom.Query(t, outcome(first, "survived")),
			"the kill Kubernetes did not see is survived: %s", prom.Raw(t, "container_oom_kill_count_total"))
		require.Eventually(t, func() bool {
			for _, a := range prom.Firing(t, "ContainerOOMKilled") {
				if a["container_id"] == first && a["k8s_pod_name"] == app.Name {
					return true
				}
			}
			return false
		}, time.Minute, time.Second, "the shipped alert ContainerOOMKilled fires")
	})

	t.Run("an OOMKilling Event on the pod", func(t *testing.T) {
		var note string
		require.Eventually(t, func() bool {
			evs, err := n.Client.EventsV1().Events(appNS).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false
			}
			for _, e := range evs.Items {
				if e.Reason == "OOMKilling" && e.Regarding.Kind == "Pod" && e.Regarding.Name == app.Name {
					note = e.Note
					return true
				}
			}
			return false
		}, time.Minute, time.Second, "the k8sevents exporter's Event; %s", describe(n, appNS))
		t.Logf("Event note: %s", note)
		// The kernel printed its full report: the note names the size of the
		// limit that was hit and where the memory was.
		assert.Regexp(t, `memory limit \([0-9.]+[KMG]i(, the sum of its containers' limits)?\) was hit`, note)
		assert.Regexp(t, `Usage [0-9.]+[KMG]i of [0-9.]+[KMG]i: anon [^;]+; [0-9]+ process(es)?; the victim held `, note)
	})

	t.Run("the collector pod is replaced", func(t *testing.T) {
		require.NoError(t, n.Client.CoreV1().Pods(collectorNS).Delete(ctx, collector.Name, metav1.DeleteOptions{}))
		require.Eventually(t, func() bool {
			_, err := n.Client.CoreV1().Pods(collectorNS).Get(ctx, collector.Name, metav1.GetOptions{})
			return err != nil
		}, 2*time.Minute, 500*time.Millisecond, "the old collector pod is gone")
		// A kill while no collector runs: the replacement must count it once.
		touch(t, n, first, "/tmp/grow-worker")
		waitJournal(t, 2, first)
		collector = waitCollector(t, n, collector.Name)
		prom.retarget(t, collector)
		require.Eventually(t, func() bool { return prom.Query(t, series(first)) == 2 }, 2*time.Minute, time.Second,
			"the replacement resumes from the checkpoint: %s", prom.Raw(t, "container_oom_kill_count_total"))
		time.Sleep(5 * time.Second) // nothing re-read: still 2
		assert.Equal(t, 2.0, prom.Query(t, series(first)))
	})

	t.Run("the main process outgrows the limit", func(t *testing.T) {
		touch(t, n, first, "/tmp/grow-main")
		var cs corev1.ContainerStatus
		require.Eventually(t, func() bool {
			cs = getPod(t, n, appNS, app.Name).Status.ContainerStatuses[0]
			return cs.RestartCount == 1 && cs.LastTerminationState.Terminated != nil
		}, 2*time.Minute, time.Second, "the kubelet restarts the container")
		assert.Equal(t, "OOMKilled", cs.LastTerminationState.Terminated.Reason)
		assert.Equal(t, "containerd://"+first, cs.LastTerminationState.Terminated.ContainerID)
		assert.NotEqual(t, "containerd://"+first, cs.ContainerID)
		require.Eventually(t, func() bool { return prom.Query(t, series(first)) == 3 }, 2*time.Minute, time.Second,
			"the main process's kill, named through the old container ID: %s", prom.Raw(t, "container_oom_kill_count_total"))
		assert.Equal(t, 1.0, prom.Query(t, outcome(first, "exited")),
			"the kill the kubelet reports as OOMKilled is exited: %s", prom.Raw(t, "container_oom_kill_count_total"))
		assert.Equal(t, 2.0, prom.Query(t, outcome(first, "survived")), "the two worker kills before it")
		// The kubelet's container's kills are in the node's log: the
		// kernel's counters (the witness, on as shipped) confirmed them and
		// counted none of them again, the one made while no collector ran
		// included.
		assert.Equal(t, 3.0, prom.Query(t, strings.TrimSuffix(series(first), "}")+`,oom_source="log"}`),
			"every kill read from the log, none counted from the kernel's counters: %s", prom.Raw(t, "container_oom_kill_count_total"))
	})

	t.Run("the collector runs as the DaemonSet says", func(t *testing.T) {
		pod := getPod(t, n, collectorNS, collector.Name)
		var id string
		for _, cs := range pod.Status.ContainerStatuses {
			if cs.Name == "otelcol-oomkill" {
				id = strings.TrimPrefix(cs.ContainerID, "containerd://")
			}
		}
		require.NotEmpty(t, id)
		info, err := n.Ctr("containers", "info", id)
		require.NoError(t, err, "%s", info)
		var c struct {
			Spec struct {
				Process struct {
					User struct {
						UID            int   `json:"uid"`
						GID            int   `json:"gid"`
						AdditionalGids []int `json:"additionalGids"`
					} `json:"user"`
					Capabilities    map[string][]string `json:"capabilities"`
					NoNewPrivileges bool                `json:"noNewPrivileges"`
				} `json:"process"`
				Root struct {
					Readonly bool `json:"readonly"`
				} `json:"root"`
			} `json:"Spec"`
		}
		require.NoError(t, json.Unmarshal(info, &c))
		assert.Equal(t, collectorUID, c.Spec.Process.User.UID)
		assert.Equal(t, collectorUID, c.Spec.Process.User.GID)
		assert.Contains(t, c.Spec.Process.User.AdditionalGids, j.GID)
		for set, caps := range c.Spec.Process.Capabilities {
			assert.Empty(t, caps, "capability set %s", set)
		}
		assert.True(t, c.Spec.Process.NoNewPrivileges)
		assert.True(t, c.Spec.Root.Readonly, "read-only root filesystem")
		tasks, err := n.Ctr("tasks", "ls")
		require.NoError(t, err)
		pid := ""
		for _, l := range strings.Split(string(tasks), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == id {
				pid = f[1]
			}
		}
		require.NotEmpty(t, pid, "the collector's task")
		status, err := os.ReadFile("/proc/" + pid + "/status")
		require.NoError(t, err)
		assert.Contains(t, string(status), "CapEff:\t0000000000000000")
		assert.Regexp(t, `Uid:\s+10001\s+10001\s+10001\s+10001`, string(status))
	})

	t.Run("a crash loop keeps one named series per container ID", func(t *testing.T) {
		collector = crashLoopStory(t, n, prom, collector)
	})

	t.Run("the chart installed with helm counts a kill with names", func(t *testing.T) {
		helmReplacesKustomize(t, n, example, j.GID, prom, collector.Name)
		now := strings.TrimPrefix(getPod(t, n, appNS, app.Name).Status.ContainerStatuses[0].ContainerID, "containerd://")
		touch(t, n, now, "/tmp/grow-worker")
		require.Eventually(t, func() bool { return prom.Query(t, outcome(now, "survived")) == 1 }, 2*time.Minute, time.Second,
			"the chart's collector counts the worker's kill with the pod's names: %s", prom.Raw(t, "container_oom_kill_count_total"))
	})
}

// waitCollector waits for the DaemonSet's Ready pod other than old.
func waitCollector(t *testing.T, n *kubenode.Node, old string) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	require.Eventually(t, func() bool {
		pods, err := n.Client.CoreV1().Pods(collectorNS).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=otelcol-oomkill"})
		if err != nil {
			return false
		}
		for i, p := range pods.Items {
			if p.Name == old || p.DeletionTimestamp != nil {
				continue
			}
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					pod = &pods.Items[i]
					return true
				}
			}
		}
		return false
	}, 10*time.Minute, time.Second, "the DaemonSet's collector pod is Ready; %s", describe(n, collectorNS))
	return pod
}

func waitRunning(t *testing.T, n *kubenode.Node, ns, selector string) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	require.Eventually(t, func() bool {
		pods, err := n.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
		if err != nil || len(pods.Items) != 1 {
			return false
		}
		p := &pods.Items[0]
		if len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Running != nil {
			pod = p
			return true
		}
		return false
	}, 5*time.Minute, time.Second, "pod %s in %s runs; %s", selector, ns, describe(n, ns))
	return pod
}

func getPod(t *testing.T, n *kubenode.Node, ns, name string) *corev1.Pod {
	t.Helper()
	p, err := n.Client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	require.NoError(t, err)
	return p
}

func describe(n *kubenode.Node, ns string) string {
	out, _ := n.Kubectl("-n", ns, "get", "pods,events", "-o", "wide")
	return string(out)
}

// touch creates a file in a running container's filesystem, from the host
// (through its main process's /proc/<pid>/root).
func touch(t *testing.T, n *kubenode.Node, containerID, path string) {
	t.Helper()
	tasks, err := n.Ctr("tasks", "ls")
	require.NoError(t, err, "%s", tasks)
	for _, l := range strings.Split(string(tasks), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == containerID {
			require.NoError(t, os.WriteFile(filepath.Join("/proc", f[1], "root", path), nil, 0o644))
			return
		}
	}
	t.Fatalf("no task for container %s:\n%s", containerID, tasks)
}

// waitJournal waits until the journal holds want kills in the container's cgroup.
func waitJournal(t *testing.T, want int, containerID string) {
	t.Helper()
	var got int
	require.Eventually(t, func() bool {
		out, _ := exec.Command("journalctl", "-k", "--no-pager", "-o", "cat", "--grep", "task_memcg=.*"+containerID).Output()
		got = strings.Count(string(out), "oom-kill:")
		return got >= want
	}, time.Minute, 500*time.Millisecond, "kills of %s in the journal", containerID)
}

// prometheus scrapes the collector pod (a file_sd target the test rewrites
// when the pod is replaced) with the shipped alert rules.
type prometheus struct {
	*promtest.Server
	targets string
}

func startPrometheus(t *testing.T, collector *corev1.Pod) *prometheus {
	t.Helper()
	p := &prometheus{targets: filepath.Join(t.TempDir(), "targets.json")}
	p.retarget(t, collector)
	p.Server = promtest.Start(t, fmt.Sprintf(`
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: otelcol-oomkill
    file_sd_configs:
      - files: [%q]
        refresh_interval: 1s
`, testutil.RepoPath(t, "examples/prometheus/alerts.yaml"), p.targets))
	return p
}

// retarget points the scrape at the pod's metrics port, as a pod service
// discovery would.
func (p *prometheus) retarget(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	require.NotEmpty(t, pod.Status.PodIP)
	b, _ := json.Marshal([]map[string]any{{"targets": []string{pod.Status.PodIP + ":9464"}, "labels": map[string]string{"pod": pod.Name}}})
	tmp := p.targets + ".tmp"
	require.NoError(t, os.WriteFile(tmp, b, 0o644))
	require.NoError(t, os.Rename(tmp, p.targets))
}
