//go:build e2enode && e2ecluster

package node

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/kubenode"
)

// The crash loop runs with shorter k8smeta and receiver timings than the
// shipped 5m and 1m, so that it outlasts deleted_pod_grace plus two
// refreshes in a few minutes. The shipped values keep the same order (a
// refresh well inside the grace period); the k8smeta unit tests run those
// with a driven clock.
const (
	testGrace   = 2 * time.Minute  // k8smeta deleted_pod_grace (its minimum)
	testRefresh = 15 * time.Second // oomkill metrics_refresh_interval
)

// oomOnEveryStart is a container's command that outgrows its memory limit
// at once: the kernel kills it (its main process) at every start.
const oomOnEveryStart = `x=1234567890; while :; do x=$x$x; done`

// crashLoopStory is the crash loop on the real node: an init
// container OOM-killed at every start (Init:CrashLoopBackOff), beside an
// app container crash-looping the same way whose pod is deleted after its
// third kill. Once the first IDs have left the pods' status, the collector
// is replaced (a rollout; the replacement has the shorter timings and
// restores the identities the first one saved). For longer than
// deleted_pod_grace plus two refresh intervals after that, every container
// ID the kernel killed is in exactly one series, named (container, kind,
// limit), the sums are the kernel's kills, the init container's Event
// counts them with fieldPath spec.initContainers{...}, and k8smeta held
// back no refresh. It returns the collector pod that replaced collector.
func crashLoopStory(t *testing.T, n *kubenode.Node, prom *prometheus, collector *corev1.Pod) *corev1.Pod {
	ctx := context.Background()
	start := time.Now()
	initPod := createCrashLoop(t, n, "celery-crashloop", "init")
	appPod := createCrashLoop(t, n, "php-crashloop", "app")

	// The init container's first ID leaves the pod's status at its second
	// kill (in back-off the kubelet names only the last attempt), the app
	// container's at its second too; the app pod is deleted after its
	// third kill: its series must keep their names while the receiver
	// exports them.
	var firstLeft time.Time
	require.Eventually(t, func() bool {
		if firstLeft.IsZero() && totalKills(kernelKills(t, initPod.UID)) >= 2 {
			firstLeft = time.Now()
		}
		return !firstLeft.IsZero() && totalKills(kernelKills(t, appPod.UID)) >= 3
	}, 3*time.Minute, time.Second, "two kills of the init container, three of the app container; %s", describe(n, appNS))
	require.NoError(t, n.Client.CoreV1().Pods(appNS).Delete(ctx, appPod.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}))
	deleted := time.Now()
	for _, c := range []struct {
		pod       *corev1.Pod
		container string
	}{{initPod, "oom-init"}, {appPod, "oom-app"}} {
		require.Eventually(t, func() bool {
			got := map[string]bool{}
			for _, s := range vector(t, prom, fmt.Sprintf(`container_oom_kill_count_total{k8s_pod_uid=%q,k8s_container_name=%q}`, c.pod.UID, c.container)) {
				got[s.labels["container_id"]] = true
			}
			for id := range kernelKills(t, c.pod.UID) {
				if !got[id] {
					return false
				}
			}
			return true
		}, time.Minute, time.Second, "the first collector names every killed %s: %s", c.container, prom.Raw(t, "container_oom_kill_count_total"))
	}

	collector = reconfigure(t, n, collector)
	prom.retarget(t, collector)
	restarted := time.Now()

	deadline := restarted.Add(testGrace + 2*testRefresh + 20*time.Second)
	t.Logf("crash loop: the init container's first ID left its status %v after the start, the app pod was deleted after %v, the collector replaced after %v; watching until %v",
		firstLeft.Sub(start).Round(time.Second), deleted.Sub(start).Round(time.Second), restarted.Sub(start).Round(time.Second), deadline.Sub(start).Round(time.Second))
	for time.Now().Before(deadline) {
		time.Sleep(10 * time.Second)
		// Fail early: an unnamed copy of a series appears at the first
		// refresh after k8smeta forgot an ID.
		require.Empty(t, unnamed(t, prom, initPod, "oom-init", time.Since(start)), "series without container names")
		require.Empty(t, unnamed(t, prom, appPod, "oom-app", time.Since(start)), "series without container names")
	}

	// The kubelet's count: attempts of the init container, all OOMKilled,
	// read while it waits out its back-off (no attempt running).
	var backOff corev1.ContainerStatus
	require.Eventually(t, func() bool {
		p, err := n.Client.CoreV1().Pods(appNS).Get(ctx, initPod.Name, metav1.GetOptions{})
		if err != nil || len(p.Status.InitContainerStatuses) != 1 {
			return false
		}
		backOff = p.Status.InitContainerStatuses[0]
		return backOff.State.Waiting != nil && backOff.State.Waiting.Reason == "CrashLoopBackOff"
	}, 6*time.Minute, time.Second, "the init container in back-off; %s", describe(n, appNS))
	require.NotNil(t, backOff.LastTerminationState.Terminated)
	assert.Equal(t, "OOMKilled", backOff.LastTerminationState.Terminated.Reason)
	attempts := int(backOff.RestartCount) + 1
	window := time.Since(start)
	t.Logf("crash loop: %d attempts of the init container killed in %v", attempts, window.Round(time.Second))

	for _, c := range []struct {
		pod             *corev1.Pod
		container, kind string
	}{{initPod, "oom-init", "init"}, {appPod, "oom-app", "app"}} {
		kernel := kernelKills(t, c.pod.UID)
		kills := totalKills(kernel)
		for id, k := range kernel {
			assert.Equal(t, 1, k, "%s: the kernel killed container %s once", c.container, id[:12])
		}
		if c.kind == "init" {
			assert.Equal(t, attempts, kills, "the kernel's kills are the kubelet's OOMKilled attempts")
			assert.Greater(t, time.Since(restarted), testGrace+2*testRefresh, "the loop outlasted the grace period and two refreshes after the restart")
		}

		// Every series the exporter had in the whole window, by container ID;
		// the scrape target's labels change with the collector pod.
		query := fmt.Sprintf(`last_over_time(container_oom_kill_count_total{k8s_pod_uid=%q}[%ds])`, c.pod.UID, int(window.Seconds())+30)
		labelSets := map[string]map[string]bool{}
		for _, s := range vector(t, prom, query) {
			id := s.labels["container_id"]
			assert.Equal(t, c.container, s.labels["k8s_container_name"], "%s: named", id)
			assert.Equal(t, c.kind, s.labels["oom_container_kind"], "%s: kind", id)
			assert.Equal(t, strconv.Itoa(32<<20), s.labels["k8s_container_memory_limit"], "%s: limit", id)
			assert.Equal(t, c.pod.Name, s.labels["k8s_pod_name"])
			if labelSets[id] == nil {
				labelSets[id] = map[string]bool{}
			}
			labelSets[id][resourceLabels(s.labels)] = true
		}
		for id := range kernel {
			assert.Len(t, labelSets[id], 1, "%s: container %s is in exactly one series over the window: %s", c.container, id[:12], prom.Raw(t, query))
		}
		assert.Len(t, labelSets, len(kernel), "%s: a series per killed container ID, no other", c.container)
		var sum float64
		require.Eventually(t, func() bool {
			sum = prom.Query(t, fmt.Sprintf(`sum(container_oom_kill_count_total{k8s_pod_uid=%q})`, c.pod.UID))
			return sum == float64(kills)
		}, time.Minute, time.Second, "%s: the sum over the pod's series is the kernel's %d kills: %s", c.container, kills, prom.Raw(t, "container_oom_kill_count_total"))
		t.Logf("crash loop: %s: the kernel killed %d container IDs %d times; %d series over the %v window; sum over the pod's series %v",
			c.container, len(kernel), kills, len(labelSets), window.Round(time.Second), sum)
	}

	// The init container's Event: its fieldPath, and one count per kill.
	var fieldPaths map[string]int32
	require.Eventually(t, func() bool {
		evs, err := n.Client.EventsV1().Events(appNS).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false
		}
		fieldPaths = map[string]int32{}
		var count int32
		for _, e := range evs.Items {
			if e.Reason != "OOMKilling" || e.Regarding.Name != initPod.Name {
				continue
			}
			kills := int32(1) // an event without series counts one
			if e.Series != nil {
				kills = e.Series.Count
			}
			fieldPaths[e.Regarding.FieldPath] += kills
			count += kills
		}
		return int(count) == attempts
	}, time.Minute, time.Second, "the Event counts the init container's %d kills; %s", attempts, describe(n, appNS))
	assert.Equal(t, map[string]int32{"spec.initContainers{oom-init}": int32(attempts)}, fieldPaths)
	t.Logf("crash loop: the init container's Event counts by fieldPath: %v", fieldPaths)

	// k8smeta named everything, evicted nothing and held no refresh back:
	// at most the first records of a kill (one in the logs pipeline, one
	// in the metrics pipeline) wait for a pod's status. (IDs nobody asks
	// about, such as the first collector pod's, expire: not counted here.)
	self := selfMetrics(t, collector)
	assert.Zero(t, self["otelcol_k8smeta_lookups_missed"], "no resource passed on without full names: %v", self)
	assert.LessOrEqual(t, self["otelcol_k8smeta_lookups_held"], float64(2*(attempts+totalKills(kernelKills(t, appPod.UID)))),
		"only a kill's first records may wait for the watch: %v", self)
	assert.Zero(t, self[`otelcol_k8smeta_containers_forgotten{reason="pod_cap"}`]+self[`otelcol_k8smeta_containers_forgotten{reason="cap"}`], "%v", self)
	t.Logf("crash loop: k8smeta %v", self)
	require.NoError(t, n.Client.CoreV1().Pods(appNS).Delete(ctx, initPod.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}))
	return collector
}

// reconfigure shortens deleted_pod_grace and metrics_refresh_interval in
// the example's ConfigMap and replaces the collector pod to apply them.
func reconfigure(t *testing.T, n *kubenode.Node, collector *corev1.Pod) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	cms := n.Client.CoreV1().ConfigMaps(collectorNS)
	cm, err := cms.Get(ctx, "otelcol-oomkill", metav1.GetOptions{})
	require.NoError(t, err)
	cfg := cm.Data["config.yaml"]
	for _, edit := range [][2]string{
		{"\n  k8smeta:\n", fmt.Sprintf("\n  k8smeta:\n    deleted_pod_grace: %v\n", testGrace)},
		{"\n  oomkill:\n", fmt.Sprintf("\n  oomkill:\n    metrics_refresh_interval: %v\n", testRefresh)},
	} {
		require.Equal(t, 1, strings.Count(cfg, edit[0]), "02-configmap.yaml has %q once", edit[0])
		cfg = strings.Replace(cfg, edit[0], edit[1], 1)
	}
	cm.Data["config.yaml"] = cfg
	_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.NoError(t, n.Client.CoreV1().Pods(collectorNS).Delete(ctx, collector.Name, metav1.DeleteOptions{}))
	return waitCollector(t, n, collector.Name)
}

// createCrashLoop creates a pod whose container (kind "init" or "app") the
// kernel OOM-kills at every start; an init container keeps the app
// container from starting.
func createCrashLoop(t *testing.T, n *kubenode.Node, name, kind string) *corev1.Pod {
	t.Helper()
	f := filepath.Join(t.TempDir(), name+".yaml")
	require.NoError(t, os.WriteFile(f, []byte(crashLoopManifest(name, kind)), 0o644))
	out, err := n.Kubectl("apply", "-f", f)
	require.NoError(t, err, "%s", out)
	return getPod(t, n, appNS, name)
}

func crashLoopManifest(name, kind string) string {
	container := fmt.Sprintf(`
    - name: oom-%[1]s
      image: registry.local/otelcol-oomkill-test/busybox:1
      command: ["/bin/sh", "-c", %[2]q]
      resources:
        requests: {cpu: 10m, memory: 32Mi}
        limits: {memory: 32Mi}`, kind, oomOnEveryStart)
	spec := "  containers:" + container
	if kind == "init" {
		spec = "  initContainers:" + container + `
  containers:
    - name: worker
      image: registry.local/otelcol-oomkill-test/busybox:1
      command: ["/bin/sh", "-c", "sleep 3600"]
      resources:
        requests: {cpu: 10m, memory: 32Mi}
        limits: {memory: 32Mi}`
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %[1]s, namespace: %[2]s, labels: {app: %[1]s}}
spec:
  terminationGracePeriodSeconds: 1
%[3]s
`, name, appNS, spec)
}

// kernelKills reads the kernel's OOM kills in a pod's containers from the
// journal (the kernel's own "oom-kill:" lines): container ID → kills.
func kernelKills(t *testing.T, uid types.UID) map[string]int {
	t.Helper()
	out, err := exec.Command("journalctl", "-k", "--no-pager", "-o", "cat", "--grep", "oom-kill:.*pod"+string(uid)).Output()
	if err != nil && len(out) == 0 {
		return map[string]int{} // journalctl exits 1 when nothing matches
	}
	re := regexp.MustCompile(`task_memcg=[^,]*pod` + regexp.QuoteMeta(string(uid)) + `/([0-9a-f]{64})`)
	kills := map[string]int{}
	for _, m := range re.FindAllStringSubmatch(string(out), -1) {
		kills[m[1]]++
	}
	return kills
}

func totalKills(kills map[string]int) int {
	n := 0
	for _, k := range kills {
		n += k
	}
	return n
}

// unnamed returns the series of a pod seen in the last window that lack
// the container's name.
func unnamed(t *testing.T, prom *prometheus, pod *corev1.Pod, container string, window time.Duration) []sample {
	t.Helper()
	return vector(t, prom, fmt.Sprintf(`last_over_time(container_oom_kill_count_total{k8s_pod_uid=%q,k8s_container_name!=%q}[%ds])`,
		pod.UID, container, int(window.Seconds())+30))
}

var reasonLabel = regexp.MustCompile(`[{,]reason="([^"]*)"`)

// resourceLabels is a series' labels without the scrape target's, which
// change when the collector pod is replaced.
func resourceLabels(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		if k != "instance" && k != "job" && k != "pod" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%q,", k, labels[k])
	}
	return b.String()
}

// sample is one element of an instant vector.
type sample struct {
	labels map[string]string
	value  float64
}

// vector runs an instant query and returns its samples with their labels.
func vector(t *testing.T, prom *prometheus, q string) []sample {
	t.Helper()
	var r struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	resp, err := http.Get(prom.Base + "/api/v1/query?query=" + url.QueryEscape(q))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
	out := make([]sample, 0, len(r.Data.Result))
	for _, v := range r.Data.Result {
		f, _ := strconv.ParseFloat(v.Value[1].(string), 64)
		out = append(out, sample{labels: v.Metric, value: f})
	}
	return out
}

// selfMetrics reads the collector's own k8smeta counters (:8888, the
// DaemonSet's telemetry port), by name and, where they have one, reason
// (`name{reason="x"}`), summed over their other labels.
func selfMetrics(t *testing.T, collector *corev1.Pod) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + collector.Status.PodIP + ":8888/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "otelcol_k8smeta_") {
			continue
		}
		name := line[:strings.IndexAny(line, "{ ")]
		f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			continue
		}
		key := strings.TrimSuffix(name, "_total")
		if m := reasonLabel.FindStringSubmatch(line); m != nil {
			key += `{reason="` + m[1] + `"}`
		}
		out[key] += f
	}
	require.NoError(t, sc.Err())
	return out
}
