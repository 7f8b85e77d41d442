//go:build linux

// Linux only: test/harness/kubeapitest runs a real kube-apiserver there.

package k8smetaprocessor

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componentstatus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
