package k8smetaprocessor

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/otelcol-oomkill/otelcol-oomkill/processor/k8smetaprocessor/internal/metadata"
	"github.com/otelcol-oomkill/otelcol-oomkill/processor/k8smetaprocessor/internal/metadatatest"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/statustest"
)

var (
	idRunning  = strings.Repeat("a", 64)
	idPrevious = strings.Repeat("b", 64)
	idInit     = strings.Repeat("c", 64)
)

func testPod() *corev1.Pod {
	isController := true
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-7d4b9c-x2x9q", Namespace: "shop", UID: types.UID("1f6a2c3e-8b4d-4e5f-9a0b-123456789abc"),
			Labels:          map[string]string{"app": "web", "pod-template-hash": "7d4b9c"},
			Annotations:     map[string]string{"team": "payments", "kubectl.kubernetes.io/last-applied-configuration": "{…}"},
			OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "web-7d4b9c", Controller: &isController}},
		},
		Spec: corev1.PodSpec{
			NodeName:       "node-a",
			InitContainers: []corev1.Container{{Name: "migrate", Image: "registry.local:5000/shop/migrate:2.0"}},
			Containers: []corev1.Container{{
				Name: "php", Image: "php:8.3-fpm",
				Resources: corev1.ResourceRequirements{
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
					Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")},
				},
			}},
		},
		Status: corev1.PodStatus{
			InitContainerStatuses: []corev1.ContainerStatus{{Name: "migrate", ContainerID: "containerd://" + idInit}},
			ContainerStatuses: []corev1.ContainerStatus{{
				Name: "php", ContainerID: "containerd://" + idRunning, RestartCount: 1,
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ContainerID: "containerd://" + idPrevious, Reason: "OOMKilled"}},
			}},
		},
	}
}

type harness struct {
	client *fake.Clientset
	sink   *consumertest.LogsSink
	proc   interface {
		ConsumeLogs(context.Context, plog.Logs) error
	}
	tel  *componenttest.Telemetry
	host *statustest.Host
}

func newHarness(t testing.TB, mutate func(*Config), objs ...*corev1.Pod) *harness {
	t.Helper()
	client := fake.NewClientset()
	for _, o := range objs {
		_, err := client.CoreV1().Pods(o.Namespace).Create(context.Background(), o, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	h := startHarness(t, newFactory(func(*Config) (kubernetes.Interface, error) { return client, nil }), mutate)
	h.client = client
	return h
}

// startHarness starts a logs processor from f with the tests' settings
// (labels "app", annotations "team", a short wait for unknown IDs) and a
// sink behind it; both stop when the test ends.
func startHarness(t testing.TB, f processor.Factory, mutate func(*Config)) *harness {
	t.Helper()
	h := &harness{sink: &consumertest.LogsSink{}, tel: componenttest.NewTelemetry(), host: statustest.NewHost()}
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.Extract.Labels = []string{"app"}
	cfg.Extract.Annotations = []string{"team"}
	cfg.WaitForUnknown = 300 * time.Millisecond
	if mutate != nil {
		mutate(cfg)
	}
	set := processortest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = h.tel.NewTelemetrySettings()
	p, err := f.CreateLogs(context.Background(), set, cfg, h.sink)
	require.NoError(t, err)
	require.NoError(t, p.Start(context.Background(), h.host))
	t.Cleanup(func() {
		require.NoError(t, p.Shutdown(context.Background()))
		require.NoError(t, h.tel.Shutdown(context.Background()))
	})
	h.proc = p
	return h
}

// send passes one record with the given resource attributes and returns
// the resource attributes as the next consumer saw them.
func (h *harness) send(t *testing.T, attrs map[string]any) map[string]any {
	t.Helper()
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	require.NoError(t, rl.Resource().Attributes().FromRaw(attrs))
	rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty().Body().SetStr("Killed process 1 (php-fpm)")
	h.sink.Reset()
	require.NoError(t, h.proc.ConsumeLogs(context.Background(), ld))
	require.Equal(t, 1, h.sink.LogRecordCount(), "the record is passed on")
	return h.sink.AllLogs()[0].ResourceLogs().At(0).Resource().Attributes().AsRaw()
}

func wantPod(extra map[string]any) map[string]any {
	m := map[string]any{
		"k8s.pod.uid": "1f6a2c3e-8b4d-4e5f-9a0b-123456789abc", "k8s.pod.name": "web-7d4b9c-x2x9q",
		"k8s.namespace.name": "shop", "k8s.node.name": "node-a",
		"k8s.replicaset.name": "web-7d4b9c", "k8s.deployment.name": "web",
		"k8s.pod.label.app": "web", "k8s.pod.annotation.team": "payments",
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func phpContainer(id string) map[string]any {
	return map[string]any{
		"container.id": id, "k8s.container.name": "php", "container.image.name": "php",
		"container.image.tags": []any{"8.3-fpm"}, "k8s.container.restart_count": int64(1),
		"k8s.container.memory.limit": int64(256 << 20), "k8s.container.memory.request": int64(128 << 20),
	}
}

func TestEnrichByContainerID(t *testing.T) {
	h := newHarness(t, nil, testPod())
	t.Run("running", func(t *testing.T) {
		assert.Equal(t, wantPod(phpContainer(idRunning)), h.send(t, map[string]any{"container.id": idRunning}))
	})
	t.Run("previous container of a restarted one", func(t *testing.T) {
		assert.Equal(t, wantPod(phpContainer(idPrevious)), h.send(t, map[string]any{"container.id": idPrevious}))
	})
	t.Run("runtime prefix accepted", func(t *testing.T) {
		got := h.send(t, map[string]any{"container.id": "containerd://" + idRunning})
		assert.Equal(t, "php", got["k8s.container.name"])
	})
	t.Run("init container", func(t *testing.T) {
		got := h.send(t, map[string]any{"container.id": idInit})
		assert.Equal(t, "migrate", got["k8s.container.name"])
		assert.Equal(t, "registry.local:5000/shop/migrate", got["container.image.name"])
		assert.Equal(t, []any{"2.0"}, got["container.image.tags"])
	})
	t.Run("pod uid only", func(t *testing.T) {
		assert.Equal(t, wantPod(nil), h.send(t, map[string]any{"k8s.pod.uid": "1f6a2c3e-8b4d-4e5f-9a0b-123456789abc"}))
	})
	t.Run("existing attributes are kept", func(t *testing.T) {
		got := h.send(t, map[string]any{"container.id": idRunning, "k8s.node.name": "from-receiver"})
		assert.Equal(t, "from-receiver", got["k8s.node.name"])
		assert.Equal(t, "web-7d4b9c-x2x9q", got["k8s.pod.name"])
	})
	t.Run("no ids: untouched", func(t *testing.T) {
		assert.Equal(t, map[string]any{"host.name": "x"}, h.send(t, map[string]any{"host.name": "x"}))
	})
}

// A pod deleted just before its record arrives is still resolved.
func TestDeletedPodStaysResolvable(t *testing.T) {
	h := newHarness(t, nil, testPod())
	require.NoError(t, h.client.CoreV1().Pods("shop").Delete(context.Background(), "web-7d4b9c-x2x9q", metav1.DeleteOptions{}))
	require.Eventually(t, func() bool {
		_, ok := h.client.Tracker().Get(corev1.SchemeGroupVersion.WithResource("pods"), "shop", "web-7d4b9c-x2x9q")
		return ok != nil
	}, time.Second, 10*time.Millisecond)
	time.Sleep(100 * time.Millisecond) // the informer sees the delete
	assert.Equal(t, wantPod(phpContainer(idRunning)), h.send(t, map[string]any{"container.id": idRunning}))
}

// A record that arrives before its pod is known waits for the watch.
func TestRecordBeforePodIsHeld(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.WaitForUnknown = 5 * time.Second })
	go func() {
		time.Sleep(200 * time.Millisecond)
		_, _ = h.client.CoreV1().Pods("shop").Create(context.Background(), testPod(), metav1.CreateOptions{})
	}()
	start := time.Now()
	got := h.send(t, map[string]any{"container.id": idRunning})
	assert.Equal(t, "web-7d4b9c-x2x9q", got["k8s.pod.name"])
	assert.Less(t, time.Since(start), 5*time.Second, "released as soon as the pod was seen")
}

// Unknown IDs pass through untouched after the bounded wait.
func TestUnknownPassesThrough(t *testing.T) {
	h := newHarness(t, nil, testPod())
	other := strings.Repeat("d", 64)
	assert.Equal(t, map[string]any{"container.id": other}, h.send(t, map[string]any{"container.id": other}))
}

func TestWorkloadNames(t *testing.T) {
	yes := true
	for _, tt := range []struct {
		kind, name string
		labels     map[string]string
		want       map[string]any
	}{
		{"StatefulSet", "db", nil, map[string]any{"k8s.statefulset.name": "db"}},
		{"DaemonSet", "agent", nil, map[string]any{"k8s.daemonset.name": "agent"}},
		{"Job", "backup-29012345", nil, map[string]any{"k8s.job.name": "backup-29012345", "k8s.cronjob.name": "backup"}},
		{"Job", "migrate", nil, map[string]any{"k8s.job.name": "migrate"}},
		{"ReplicaSet", "standalone", map[string]string{"pod-template-hash": "abc"}, map[string]any{"k8s.replicaset.name": "standalone"}},
	} {
		p := testPod()
		p.Name, p.UID = tt.name+"-pod", types.UID("00000000-0000-0000-0000-00000000000"+string(rune('1'+len(tt.name)%9)))
		p.Labels = tt.labels
		p.OwnerReferences = []metav1.OwnerReference{{Kind: tt.kind, Name: tt.name, Controller: &yes}}
		h := newHarness(t, func(c *Config) { c.Extract = ExtractConfig{} }, p)
		got := h.send(t, map[string]any{"k8s.pod.uid": string(p.UID)})
		for k, v := range tt.want {
			assert.Equal(t, v, got[k], "%s %s: %s", tt.kind, tt.name, k)
		}
		for _, k := range []string{"k8s.deployment.name", "k8s.replicaset.name", "k8s.statefulset.name", "k8s.daemonset.name", "k8s.job.name", "k8s.cronjob.name"} {
			if _, want := tt.want[k]; !want {
				assert.NotContains(t, got, k, "%s %s", tt.kind, tt.name)
			}
		}
	}
}

// The cache sizes are observed when the metrics are collected.
func TestCacheSizeGauges(t *testing.T) {
	h := newHarness(t, nil, testPod())
	metadatatest.AssertEqualK8smetaCachedPods(t, h.tel, []metricdata.DataPoint[int64]{{Value: 1}}, metricdatatest.IgnoreTimestamp())
	// The running, the previous and the init container's IDs.
	metadatatest.AssertEqualK8smetaCachedContainers(t, h.tel, []metricdata.DataPoint[int64]{{Value: 3}}, metricdatatest.IgnoreTimestamp())
	p := testPod()
	p.Name, p.UID = "web-7d4b9c-yyyyy", "2f6a2c3e-8b4d-4e5f-9a0b-123456789abc"
	p.Status = corev1.PodStatus{}
	_, err := h.client.CoreV1().Pods("shop").Create(context.Background(), p, metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		m, err := h.tel.GetMetric("otelcol_k8smeta_cached_pods")
		return err == nil && m.Data.(metricdata.Gauge[int64]).DataPoints[0].Value == 2
	}, 10*time.Second, 10*time.Millisecond)
}
