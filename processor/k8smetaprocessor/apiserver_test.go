//go:build linux

// Linux only: test/harness/kubeapitest runs a real kube-apiserver there.

package k8smetaprocessor

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/otelcol-oomkill/otelcol-oomkill/processor/k8smetaprocessor/internal/kube"
	"github.com/otelcol-oomkill/otelcol-oomkill/processor/k8smetaprocessor/internal/metadatatest"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/kubeapitest"
)

// These tests run the processor against a real kube-apiserver and etcd
// (test/harness/kubeapitest). Pods get their container statuses through the
// status subresource, as a kubelet would set them.

// startReal starts the processor with auth_type kubeConfig on cluster.
func startReal(t *testing.T, cluster *kubeapitest.Cluster, mutate func(*Config)) *harness {
	t.Helper()
	t.Setenv("KUBECONFIG", cluster.Kubeconfig)
	return startHarness(t, NewFactory(), func(cfg *Config) {
		cfg.AuthType = "kubeConfig"
		cfg.NodeName = "node-a"
		cfg.WaitForUnknown = 500 * time.Millisecond
		if mutate != nil {
			mutate(cfg)
		}
	})
}

// createPod creates a pod like testPod on node with the given container IDs
// (running, previous) and sets its status as a kubelet would.
func createPod(t *testing.T, cluster *kubeapitest.Cluster, name, node, running, previous string) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	_, _ = cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{})
	p := testPod()
	p.Name, p.UID, p.Spec.NodeName = name, "", node
	p.Spec.InitContainers = nil
	p.Status = corev1.PodStatus{}
	p.OwnerReferences[0].APIVersion, p.OwnerReferences[0].UID = "apps/v1", "00000000-0000-0000-0000-000000000001"
	created, err := cluster.Client.CoreV1().Pods("shop").Create(ctx, p, metav1.CreateOptions{})
	require.NoError(t, err)
	cs := corev1.ContainerStatus{
		Name: "php", Image: "php:8.3-fpm", ContainerID: "containerd://" + running, Ready: true,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}},
	}
	if previous != "" {
		cs.RestartCount = 1
		cs.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ContainerID: "containerd://" + previous, Reason: "OOMKilled", ExitCode: 137}
	}
	created.Status = corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{cs}}
	updated, err := cluster.Client.CoreV1().Pods("shop").UpdateStatus(ctx, created, metav1.UpdateOptions{})
	require.NoError(t, err)
	return updated
}

func id(c byte) string { return strings.Repeat(string(c), 64) }

func TestRealAPIServer(t *testing.T) {
	cluster := kubeapitest.Start(t)
	h := startReal(t, cluster, nil)

	running := createPod(t, cluster, "web-7d4b9c-aaaaa", "node-a", id('1'), "")
	restarted := createPod(t, cluster, "web-7d4b9c-bbbbb", "node-a", id('3'), id('2'))
	gone := createPod(t, cluster, "web-7d4b9c-ccccc", "node-a", id('4'), "")
	createPod(t, cluster, "web-7d4b9c-ddddd", "node-b", id('5'), "")

	eventuallyNamed := func(t *testing.T, ctr, pod string) {
		t.Helper()
		require.Eventually(t, func() bool {
			got := h.send(t, map[string]any{"container.id": ctr})
			return got["k8s.pod.name"] == pod
		}, 15*time.Second, 100*time.Millisecond, "container %s should resolve to %s", ctr[:8], pod)
	}

	t.Run("running container", func(t *testing.T) {
		eventuallyNamed(t, id('1'), running.Name)
		got := h.send(t, map[string]any{"container.id": id('1')})
		assert.Equal(t, "shop", got["k8s.namespace.name"])
		assert.Equal(t, "php", got["k8s.container.name"])
		assert.Equal(t, "web", got["k8s.deployment.name"])
		assert.Equal(t, string(running.UID), got["k8s.pod.uid"])
		assert.Equal(t, int64(256<<20), got["k8s.container.memory.limit"])
	})
	t.Run("restarted container: old ID only in lastState", func(t *testing.T) {
		eventuallyNamed(t, id('2'), restarted.Name)
	})
	t.Run("pod deleted just before its record arrives", func(t *testing.T) {
		eventuallyNamed(t, id('4'), gone.Name)
		require.NoError(t, cluster.Client.CoreV1().Pods("shop").Delete(context.Background(), gone.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}))
		require.Eventually(t, func() bool {
			_, err := cluster.Client.CoreV1().Pods("shop").Get(context.Background(), gone.Name, metav1.GetOptions{})
			return err != nil
		}, 10*time.Second, 50*time.Millisecond)
		time.Sleep(300 * time.Millisecond) // the watch delivers the delete
		got := h.send(t, map[string]any{"container.id": id('4')})
		assert.Equal(t, gone.Name, got["k8s.pod.name"])
	})
	t.Run("pod on another node is not cached", func(t *testing.T) {
		got := h.send(t, map[string]any{"container.id": id('5')})
		assert.NotContains(t, got, "k8s.pod.name")
	})
	t.Run("pod created just after its record arrives", func(t *testing.T) {
		done := make(chan map[string]any)
		go func() { done <- h.send(t, map[string]any{"container.id": id('6')}) }()
		time.Sleep(50 * time.Millisecond)
		late := createPod(t, cluster, "web-7d4b9c-eeeee", "node-a", id('6'), "")
		select {
		case got := <-done:
			// The record waited (wait_for_unknown) and the pod arrived in time.
			assert.Equal(t, late.Name, got["k8s.pod.name"])
		case <-time.After(10 * time.Second):
			t.Fatal("record was not released")
		}
	})
	t.Run("API server restarted mid-test", func(t *testing.T) {
		cluster.RestartAPIServer()
		after := createPod(t, cluster, "web-7d4b9c-fffff", "node-a", id('7'), "")
		eventuallyNamed(t, id('7'), after.Name)
		eventuallyNamed(t, id('1'), running.Name)
	})
}

// An API server that is down at startup does not hang the collector: Start
// returns after sync_timeout, records pass through, and once the server is
// up the watch syncs on its own.
func TestAPIServerDownAtStart(t *testing.T) {
	cluster := kubeapitest.Start(t)
	createPod(t, cluster, "web-7d4b9c-aaaaa", "node-a", id('1'), "")
	cluster.StopAPIServer()

	begin := time.Now()
	h := startReal(t, cluster, func(c *Config) { c.SyncTimeout = 2 * time.Second })
	assert.Less(t, time.Since(begin), 10*time.Second, "startup is bounded by sync_timeout")
	got := h.send(t, map[string]any{"container.id": id('1')})
	assert.NotContains(t, got, "k8s.pod.name", "passes through unenriched while the API is down")

	cluster.StartAPIServer()
	require.Eventually(t, func() bool {
		return h.send(t, map[string]any{"container.id": id('1')})["k8s.pod.name"] == "web-7d4b9c-aaaaa"
	}, 60*time.Second, 500*time.Millisecond, "the informer recovers on its own")
}

// kubeletCrashLoop sets, through the status subresource, what the kubelet
// reports for an init container the kernel OOM-kills at every start:
// attempt n running; killed (terminated, OOMKilled); in back-off (the
// kubelet names attempt n twice and drops attempt n-1); attempt n+1 running.
type kubeletCrashLoop struct {
	t       *testing.T
	cluster *kubeapitest.Cluster
	pod     *corev1.Pod
}

func (k *kubeletCrashLoop) set(n int, state corev1.ContainerState, last string) {
	k.t.Helper()
	cs := corev1.ContainerStatus{Name: "oom-init", Image: "busybox:1", ContainerID: "containerd://" + attemptID(n), RestartCount: int32(n), State: state}
	if last != "" {
		cs.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ContainerID: "containerd://" + last, Reason: "OOMKilled", ExitCode: 137}
	}
	k.pod.Status = corev1.PodStatus{
		Phase: corev1.PodPending, InitContainerStatuses: []corev1.ContainerStatus{cs},
		ContainerStatuses: []corev1.ContainerStatus{{Name: "php", Image: "php:8.3-fpm", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "PodInitializing"}}}},
	}
	updated, err := k.cluster.Client.CoreV1().Pods(k.pod.Namespace).UpdateStatus(context.Background(), k.pod, metav1.UpdateOptions{})
	require.NoError(k.t, err)
	k.pod = updated
}

// TestRealAPIServerCrashLoop is the crash loop through a real API
// server and the informer: an init container killed at every start, every
// killed ID re-sent every minute as the oomkill receiver's refresh does.
// Each ID keeps the names, kind and limit it was first given, through the
// status changes that push it out, after the pod is deleted, and for as
// long as it is asked about; no refresh is held back; once forgotten, it
// is not waited for. The store's clock is driven by the test (one step a
// minute), the API and the watch are real.
func TestRealAPIServerCrashLoop(t *testing.T) {
	cluster := kubeapitest.Start(t)
	ctx := context.Background()
	_, _ = cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{})
	p := testPod()
	p.Name, p.UID = "celery-7d4b9c-ggggg", ""
	p.OwnerReferences[0].APIVersion, p.OwnerReferences[0].UID = "apps/v1", "00000000-0000-0000-0000-000000000001"
	p.Spec.InitContainers = []corev1.Container{{
		Name: "oom-init", Image: "busybox:1",
		Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("16Mi")}},
	}}
	created, err := cluster.Client.CoreV1().Pods("shop").Create(ctx, p, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Setenv("KUBECONFIG", cluster.Kubeconfig)
	client, err := kube.NewClient("kubeConfig", "")
	require.NoError(t, err)
	clk := newTestClock()
	h, k := startDirect(t, client, clk, func(c *Config) {
		c.NodeName = "node-a"
		c.WaitForUnknown = 2 * time.Second
	})
	loop := &kubeletCrashLoop{t: t, cluster: cluster, pod: created}

	want := func(n int) map[string]any {
		return map[string]any{
			"container.id": attemptID(n), "k8s.pod.uid": string(created.UID), "k8s.pod.name": created.Name,
			"k8s.namespace.name": "shop", "k8s.node.name": "node-a", "k8s.replicaset.name": "web-7d4b9c", "k8s.deployment.name": "web",
			"k8s.pod.label.app": "web", "k8s.pod.annotation.team": "payments",
			"k8s.container.name": "oom-init", "oom.container.kind": "init", "container.image.name": "busybox",
			"container.image.tags": []any{"1"}, "k8s.container.restart_count": int64(n), "k8s.container.memory.limit": int64(16 << 20),
			"k8s.container.memory.request": int64(16 << 20), // the API server defaults the request to the limit
		}
	}
	killed := map[int]bool{}
	refresh := func(step string) {
		t.Helper()
		for n := range killed {
			start := time.Now()
			got := h.send(t, map[string]any{"container.id": attemptID(n), "k8s.pod.uid": string(created.UID)})
			require.Equal(t, want(n), got, "%s: attempt %d", step, n)
			require.Less(t, time.Since(start), time.Second, "%s: attempt %d not held back", step, n)
		}
	}
	waitKnown := func(n int) {
		t.Helper()
		require.Eventually(t, func() bool {
			_, c, ok := k.store.ByContainerID(attemptID(n))
			return ok && c.RestartCount == int64(n)
		}, 15*time.Second, 20*time.Millisecond, "the watch delivers attempt %d", n)
	}

	const attempts = 8
	for n := 0; n < attempts; n++ {
		last := ""
		if n > 0 {
			last = attemptID(n - 1)
		}
		loop.set(n, corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}, last)
		waitKnown(n)
		// The kernel kills it; the receiver's record follows.
		loop.set(n, corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ContainerID: "containerd://" + attemptID(n), Reason: "OOMKilled", ExitCode: 137}}, last)
		killed[n] = true
		refresh(fmt.Sprintf("attempt %d killed", n))
		// Back-off: attempt n-1 leaves the status.
		loop.set(n, corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}, attemptID(n))
		for range 3 { // minutes of back-off, each with the receiver's refresh
			clk.advance(time.Minute)
			k.sweep()
			refresh(fmt.Sprintf("attempt %d back-off", n))
		}
	}
	require.Eventually(t, func() bool { return k.store.Stats().GoneContainers == attempts-1 }, 15*time.Second, 20*time.Millisecond,
		"all but the last left the status (the watch delivers the last back-off), and are remembered")

	require.NoError(t, cluster.Client.CoreV1().Pods("shop").Delete(ctx, created.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}))
	require.Eventually(t, func() bool { return k.store.Stats().GoneContainers == attempts }, 15*time.Second, 20*time.Millisecond,
		"the watch delivers the delete")
	for minute := 1; minute <= 30; minute++ {
		clk.advance(time.Minute)
		k.sweep()
		refresh(fmt.Sprintf("deleted pod, minute %d", minute))
	}

	// The receiver stops re-sending attempt 0 (retention): forgotten a grace
	// period later; a late record of it passes at once with the pod only.
	delete(killed, 0)
	for range 6 {
		clk.advance(time.Minute)
		k.sweep()
		refresh("attempt 0 no longer asked about")
	}
	start := time.Now()
	got := h.send(t, map[string]any{"container.id": attemptID(0), "k8s.pod.uid": string(created.UID)})
	assert.Less(t, time.Since(start), time.Second, "a forgotten ID is not waited for")
	assert.Equal(t, created.Name, got["k8s.pod.name"], "the pod is still asked about through its other IDs")
	assert.NotContains(t, got, "k8s.container.name")
	metadatatest.AssertEqualK8smetaContainersForgotten(t, h.tel, []metricdata.DataPoint[int64]{
		{Value: 1, Attributes: attribute.NewSet(attribute.String("reason", "expired"))},
	}, metricdatatest.IgnoreTimestamp())
	metadatatest.AssertEqualK8smetaLookupsNotWaited(t, h.tel, []metricdata.DataPoint[int64]{{Value: 1}}, metricdatatest.IgnoreTimestamp())
	_, err = h.tel.GetMetric("otelcol_k8smeta_lookups_held")
	assert.Error(t, err, "no record was ever held")
}

// The status follows the API server: a recoverable error while it is
// down, OK once the watch works again.
func TestStatusFollowsTheAPIServer(t *testing.T) {
	cluster := kubeapitest.Start(t)
	createPod(t, cluster, "web-7d4b9c-aaaaa", "node-a", id('1'), "")
	h := startReal(t, cluster, nil)
	assert.Empty(t, h.host.Statuses(), "synced at start: nothing to report")

	cluster.StopAPIServer()
	require.Eventually(t, func() bool { return lastStatus(h.host) == componentstatus.StatusRecoverableError }, 60*time.Second, 100*time.Millisecond)
	got := h.send(t, map[string]any{"container.id": id('1')})
	assert.Equal(t, "web-7d4b9c-aaaaa", got["k8s.pod.name"], "enriched from the pods already seen")

	cluster.StartAPIServer()
	require.Eventually(t, func() bool { return lastStatus(h.host) == componentstatus.StatusOK }, 60*time.Second, 100*time.Millisecond)
	assert.Equal(t, []componentstatus.Status{componentstatus.StatusRecoverableError, componentstatus.StatusOK}, h.host.Statuses()[:2],
		"one failing spell while the API server was down, however often the watch was retried")
}
