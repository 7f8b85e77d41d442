package k8smetaprocessor

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processorhelper"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/otelcol-oomkill/otelcol-oomkill/internal/resend"
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
			NodeName: "node-a",
			InitContainers: []corev1.Container{{
				Name: "migrate", Image: "registry.local:5000/shop/migrate:2.0",
				Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}},
			}},
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
	logs *observer.ObservedLogs
	stop func()
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

// startHarness starts a logs processor from f with the tests' settings and
// a sink behind it (startLogs).
func startHarness(t testing.TB, f processor.Factory, mutate func(*Config)) *harness {
	t.Helper()
	return startLogs(t, mutate, statustest.NewHost(), func(set processor.Settings, cfg *Config, next consumer.Logs) (processor.Logs, error) {
		return f.CreateLogs(context.Background(), set, cfg, next)
	})
}

// startLogs starts the logs processor create makes on host, with the
// tests' settings (labels "app", annotations "team", a short wait for
// unknown IDs, logs observed) and a sink behind it; both stop when the test
// ends, or earlier with h.stop.
func startLogs(t testing.TB, mutate func(*Config), host *statustest.Host, create func(processor.Settings, *Config, consumer.Logs) (processor.Logs, error)) *harness {
	t.Helper()
	h := &harness{sink: &consumertest.LogsSink{}, tel: componenttest.NewTelemetry(), host: host}
	cfg := createDefaultConfig()
	cfg.Extract.Labels = []string{"app"}
	cfg.Extract.Annotations = []string{"team"}
	cfg.WaitForUnknown = 300 * time.Millisecond
	if mutate != nil {
		mutate(cfg)
	}
	core, logs := observer.New(zap.InfoLevel)
	set := processortest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = h.tel.NewTelemetrySettings()
	set.Logger = zap.New(core)
	h.logs = logs
	p, err := create(set, cfg, h.sink)
	require.NoError(t, err)
	require.NoError(t, p.Start(context.Background(), host))
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			require.NoError(t, p.Shutdown(context.Background()))
			require.NoError(t, h.tel.Shutdown(context.Background()))
		})
	}
	t.Cleanup(h.stop)
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

// phpContainer is the php container's attributes for one of its IDs; the
// restart count is the attempt the ID belongs to.
func phpContainer(id string, restartCount int64) map[string]any {
	return map[string]any{
		"container.id": id, "k8s.container.name": "php", "oom.container.kind": "app", "container.image.name": "php",
		"container.image.tags": []any{"8.3-fpm"}, "k8s.container.restart_count": restartCount,
		"k8s.container.memory.limit": int64(256 << 20), "k8s.container.memory.request": int64(128 << 20),
	}
}

func TestEnrichByContainerID(t *testing.T) {
	h := newHarness(t, nil, testPod())
	t.Run("running", func(t *testing.T) {
		assert.Equal(t, wantPod(phpContainer(idRunning, 1)), h.send(t, map[string]any{"container.id": idRunning}))
	})
	t.Run("previous container of a restarted one", func(t *testing.T) {
		assert.Equal(t, wantPod(phpContainer(idPrevious, 0)), h.send(t, map[string]any{"container.id": idPrevious}))
	})
	t.Run("runtime prefix accepted", func(t *testing.T) {
		got := h.send(t, map[string]any{"container.id": "containerd://" + idRunning})
		assert.Equal(t, "php", got["k8s.container.name"])
	})
	t.Run("init container", func(t *testing.T) {
		got := h.send(t, map[string]any{"container.id": idInit})
		assert.Equal(t, "migrate", got["k8s.container.name"])
		assert.Equal(t, "init", got["oom.container.kind"])
		assert.Equal(t, int64(64<<20), got["k8s.container.memory.limit"])
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
	assert.Equal(t, wantPod(phpContainer(idRunning, 1)), h.send(t, map[string]any{"container.id": idRunning}))
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

// testClock is a settable clock for the store's grace periods.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock { return &testClock{t: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)} }

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// startDirect starts the processor like startHarness, on client, and also
// returns it, its clock set to clk.
func startDirect(t *testing.T, client kubernetes.Interface, clk *testClock, mutate func(*Config)) (*harness, *k8smeta) {
	t.Helper()
	return startDirectOn(t, statustest.NewHost(), client, clk, mutate)
}

// startDirectOn is startDirect on host (with its extensions).
func startDirectOn(t *testing.T, host *statustest.Host, client kubernetes.Interface, clk *testClock, mutate func(*Config)) (*harness, *k8smeta) {
	t.Helper()
	var k *k8smeta
	h := startLogs(t, mutate, host, func(set processor.Settings, cfg *Config, next consumer.Logs) (processor.Logs, error) {
		var err error
		if k, err = newK8smeta(cfg, set, func(*Config) (kubernetes.Interface, error) { return client, nil }); err != nil {
			return nil, err
		}
		k.now = clk.now
		return processorhelper.NewLogs(context.Background(), set, cfg, next, k.processLogs,
			processorhelper.WithStart(k.Start), processorhelper.WithShutdown(k.Shutdown))
	})
	return h, k
}

// crashLoopStatus is the status the kubelet gives a pod whose init
// container was OOM-killed n times and runs attempt n: only the current
// and the previous container ID.
func crashLoopStatus(n int) corev1.PodStatus {
	cs := corev1.ContainerStatus{
		Name: "migrate", ContainerID: "containerd://" + attemptID(n), RestartCount: int32(n),
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
	}
	if n > 0 {
		cs.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ContainerID: "containerd://" + attemptID(n-1), Reason: "OOMKilled", ExitCode: 137}
	}
	return corev1.PodStatus{Phase: corev1.PodPending, InitContainerStatuses: []corev1.ContainerStatus{cs}}
}

func attemptID(n int) string { return fmt.Sprintf("%064x", 0xc0ffee00+n) }

// migrateContainer is the init container's attributes for attempt n.
func migrateContainer(n int) map[string]any {
	return map[string]any{
		"container.id": attemptID(n), "k8s.container.name": "migrate", "oom.container.kind": "init",
		"container.image.name": "registry.local:5000/shop/migrate", "container.image.tags": []any{"2.0"},
		"k8s.container.restart_count": int64(n), "k8s.container.memory.limit": int64(64 << 20),
	}
}

// The crash loop with the kubelet's status, minute by minute: an
// init container killed every 5 minutes for 2 hours, every series re-sent
// every minute (metrics_refresh_interval) for an hour after its kill
// (series.retention), as the oomkill receiver does. Every ID keeps the
// names it was first given in every export, also after the pod is deleted,
// and no refresh is held back.
func TestCrashLoopKeepsNames(t *testing.T) {
	p := testPod()
	p.Status = crashLoopStatus(0)
	client := fake.NewClientset(p)
	clk := newTestClock()
	h, k := startDirect(t, client, clk, nil)
	ctx := context.Background()

	killedAt := map[int]time.Time{}
	restarts := 0
	refresh := func(minute int) {
		for n, at := range killedAt {
			if clk.now().Sub(at) > time.Hour {
				continue
			}
			start := time.Now()
			got := h.send(t, map[string]any{"container.id": attemptID(n), "k8s.pod.uid": string(p.UID)})
			require.Equal(t, wantPod(migrateContainer(n)), got, "minute %d, attempt %d", minute, n)
			require.Less(t, time.Since(start), 250*time.Millisecond, "minute %d, attempt %d: not held back", minute, n)
		}
	}
	for minute := 1; minute <= 120; minute++ {
		clk.advance(time.Minute)
		if minute%5 == 0 {
			killedAt[restarts] = clk.now()
			restarts++
			p.Status = crashLoopStatus(restarts)
			_, err := client.CoreV1().Pods("shop").UpdateStatus(ctx, p, metav1.UpdateOptions{})
			require.NoError(t, err)
			require.Eventually(t, func() bool {
				_, _, ok := k.store.ByContainerID(attemptID(restarts))
				return ok
			}, 5*time.Second, 5*time.Millisecond)
		}
		refresh(minute)
		k.sweep()
	}
	require.NoError(t, client.CoreV1().Pods("shop").Delete(ctx, p.Name, metav1.DeleteOptions{}))
	require.Eventually(t, func() bool {
		return k.store.Stats().Pods == 1 && k.store.Stats().GoneContainers == k.store.Stats().Containers
	},
		5*time.Second, 5*time.Millisecond, "the informer delivers the delete")
	for minute := 121; minute <= 180; minute++ {
		clk.advance(time.Minute)
		refresh(minute)
		k.sweep()
	}
	_, err := h.tel.GetMetric("otelcol_k8smeta_lookups_held")
	assert.Error(t, err, "no record was ever held")
	st := k.store.Stats()
	assert.Zero(t, st.Forgotten.PodCap+st.Forgotten.Cap, "no eviction with the defaults")
	assert.LessOrEqual(t, st.Containers, 14, "only the IDs still re-sent, and a grace period's worth")
}

// Beyond gone_containers.max_per_pod the ID looked up longest ago is
// forgotten: counted, logged, and from then on its records pass on at once
// with the pod's attributes only.
func TestEvictionCountedLoggedNotWaited(t *testing.T) {
	p := testPod()
	p.Status = crashLoopStatus(0)
	client := fake.NewClientset(p)
	h, k := startDirect(t, client, newTestClock(), func(c *Config) {
		c.GoneContainers = GoneContainersConfig{MaxPerPod: 2, Max: 10, MaxGivenUp: 10}
	})
	for n := 1; n <= 5; n++ { // gone: 0..3; kept: 2, 3
		p.Status = crashLoopStatus(n)
		_, err := client.CoreV1().Pods("shop").UpdateStatus(context.Background(), p, metav1.UpdateOptions{})
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			_, _, ok := k.store.ByContainerID(attemptID(n))
			return ok
		}, 5*time.Second, 5*time.Millisecond)
	}
	// Counted and logged as they happen (by the sweep loop, woken by the
	// IDs that left the status).
	require.Eventually(t, func() bool {
		m, err := h.tel.GetMetric("otelcol_k8smeta_containers_forgotten")
		return err == nil && m.Data.(metricdata.Sum[int64]).DataPoints[0].Value == 2
	}, 5*time.Second, 5*time.Millisecond)
	metadatatest.AssertEqualK8smetaContainersForgotten(t, h.tel, []metricdata.DataPoint[int64]{
		{Value: 2, Attributes: attribute.NewSet(attribute.String("reason", "pod_cap"))},
	}, metricdatatest.IgnoreTimestamp())
	warned := h.logs.FilterMessageSnippet("Forgot container IDs still in use")
	require.Equal(t, 1, warned.Len(), "the first eviction is logged at once, the next within the minute adds to the next line")
	assert.Equal(t, "shop/web-7d4b9c-x2x9q", warned.All()[0].ContextMap()["last_pod"])

	start := time.Now()
	got := h.send(t, map[string]any{"container.id": attemptID(0), "k8s.pod.uid": string(p.UID)})
	assert.Less(t, time.Since(start), 250*time.Millisecond, "a forgotten ID is not waited for (wait_for_unknown 300ms)")
	assert.Equal(t, wantPod(map[string]any{"container.id": attemptID(0)}), got)
	assert.Equal(t, wantPod(migrateContainer(2)), h.send(t, map[string]any{"container.id": attemptID(2), "k8s.pod.uid": string(p.UID)}))
	metadatatest.AssertEqualK8smetaLookupsNotWaited(t, h.tel, []metricdata.DataPoint[int64]{{Value: 1}}, metricdatatest.IgnoreTimestamp())
}

// An ID waited for in vain once is not waited for again.
func TestGivenUpIsNotWaitedFor(t *testing.T) {
	h := newHarness(t, nil, testPod())
	other := strings.Repeat("d", 64)
	start := time.Now()
	h.send(t, map[string]any{"container.id": other})
	assert.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond, "the first record waits wait_for_unknown")
	for range 3 {
		start = time.Now()
		assert.Equal(t, map[string]any{"container.id": other}, h.send(t, map[string]any{"container.id": other}))
		assert.Less(t, time.Since(start), 250*time.Millisecond, "later ones pass at once")
	}
	metadatatest.AssertEqualK8smetaLookupsHeld(t, h.tel, []metricdata.DataPoint[int64]{{Value: 1}}, metricdatatest.IgnoreTimestamp())
	metadatatest.AssertEqualK8smetaLookupsNotWaited(t, h.tel, []metricdata.DataPoint[int64]{{Value: 3}}, metricdatatest.IgnoreTimestamp())
	metadatatest.AssertEqualK8smetaLookupsMissed(t, h.tel, []metricdata.DataPoint[int64]{{Value: 4}}, metricdatatest.IgnoreTimestamp())
}

// A delivery marked as re-sending data (the oomkill receiver's refresh) is
// never held, even for an ID not waited for before; the same record in a
// first delivery is.
func TestResentIsNotWaitedFor(t *testing.T) {
	h := newHarness(t, nil, testPod())
	unknown := map[string]any{"container.id": strings.Repeat("d", 64), "k8s.pod.uid": string(testPod().UID)}
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	require.NoError(t, rl.Resource().Attributes().FromRaw(unknown))
	rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	start := time.Now()
	require.NoError(t, h.proc.ConsumeLogs(resend.NewContext(context.Background()), ld))
	assert.Less(t, time.Since(start), 250*time.Millisecond, "not held (wait_for_unknown 300ms)")
	assert.Equal(t, wantPod(map[string]any{"container.id": unknown["container.id"]}),
		h.sink.AllLogs()[0].ResourceLogs().At(0).Resource().Attributes().AsRaw(), "the pod's attributes, as far as known")
	metadatatest.AssertEqualK8smetaLookupsNotWaited(t, h.tel, []metricdata.DataPoint[int64]{{Value: 1}}, metricdatatest.IgnoreTimestamp())
	_, err := h.tel.GetMetric("otelcol_k8smeta_lookups_held")
	assert.Error(t, err, "nothing held")

	start = time.Now()
	h.send(t, unknown)
	assert.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond, "not given up by the re-send: a first delivery still waits")
	metadatatest.AssertEqualK8smetaLookupsHeld(t, h.tel, []metricdata.DataPoint[int64]{{Value: 1}}, metricdatatest.IgnoreTimestamp())
}

// resource_attributes turns single attributes off.
func TestResourceAttributesOff(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.ResourceAttributes.K8sContainerRestartCount.Enabled = false
		c.ResourceAttributes.OomContainerKind.Enabled = false
	}, testPod())
	want := wantPod(phpContainer(idRunning, 1))
	delete(want, "k8s.container.restart_count")
	delete(want, "oom.container.kind")
	assert.Equal(t, want, h.send(t, map[string]any{"container.id": idRunning}))
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
