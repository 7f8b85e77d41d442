package k8seventsexporter

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/otel/attribute"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/apiwriter"
)

// These tests use client-go's fake clientset for the exporter's logic;
// apiserver_test.go runs the same paths against a real kube-apiserver.

func testPodObject(k testKill) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: k.pod, Namespace: k.ns, UID: types.UID(k.uid)}}
}

func events(t *testing.T, c *fake.Clientset, ns string) []eventsv1.Event {
	t.Helper()
	l, err := c.EventsV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	return l.Items
}

// writes counts the create and patch calls on events.
func writes(c *fake.Clientset) (creates, patches int) {
	for _, a := range c.Actions() {
		if a.GetResource().Resource != "events" {
			continue
		}
		switch a.GetVerb() {
		case "create":
			creates++
		case "patch":
			patches++
		}
	}
	return
}

func seriesCount(ev eventsv1.Event) int32 {
	if ev.Series == nil {
		return 1
	}
	return ev.Series.Count
}

func TestFirstKillWritesTheEvent(t *testing.T) {
	k := phpKill(0)
	c := fake.NewClientset(testPodObject(k))
	e, tel, _ := newTestExporter(t, c, nil)
	require.NoError(t, e.push(context.Background(), logsOf(k)))

	evs := events(t, c, "shop")
	require.Len(t, evs, 1)
	ev := evs[0]
	assert.Equal(t, corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: "shop", Name: k.pod, UID: types.UID(k.uid), FieldPath: "spec.containers{php-fpm}"}, ev.Regarding)
	assert.Equal(t, "Warning", ev.Type)
	assert.Equal(t, "OOMKilling", ev.Reason)
	assert.Equal(t, "OOMKill", ev.Action)
	assert.Equal(t, "otelcol-oomkill.io/k8sevents", ev.ReportingController)
	assert.Equal(t, "otelcol-oomkill-node-a", ev.ReportingInstance)
	assert.True(t, ev.EventTime.Time.Equal(k.at), "eventTime is the kill's time")
	assert.Nil(t, ev.Series)
	assert.Equal(t, `The kernel OOM killer killed process "php-fpm: pool" (pid 4000) in container "php-fpm": the container's memory limit (256Mi) was hit; the process used 250Mi of anonymous memory. The container kept running: Kubernetes records no restart for this.`, ev.Note)
	assert.Regexp(t, `^checkout-7f9c6d5b8-x2x9q\.oom-[0-9a-f]{16}$`, ev.Name)
	assert.EqualValues(t, 1, counter(t, tel, "k8sevents_events_created"))
	assert.EqualValues(t, 1, counter(t, tel, "k8sevents_api_requests", attribute.String("request", "get_pod"), attribute.String("outcome", "ok")))
}

// The Event names the container where the pod spec lists it, from k8smeta's
// oom.container.kind, as the kubelet's own events do.
func TestFieldPathByContainerKind(t *testing.T) {
	for kind, want := range map[string]string{
		"":          "spec.containers{php-fpm}", // no kind (k8smeta before it had one): an app container
		"app":       "spec.containers{php-fpm}",
		"init":      "spec.initContainers{php-fpm}",
		"ephemeral": "spec.ephemeralContainers{php-fpm}",
	} {
		k := phpKill(0)
		k.kind = kind
		c := fake.NewClientset(testPodObject(k))
		e, _, _ := newTestExporter(t, c, nil)
		require.NoError(t, e.push(context.Background(), logsOf(k)))
		evs := events(t, c, "shop")
		require.Len(t, evs, 1)
		assert.Equal(t, want, evs[0].Regarding.FieldPath, "kind %q", kind)
	}
}

func TestRepeatedKillsAggregateIntoOneSeries(t *testing.T) {
	c := fake.NewClientset(testPodObject(phpKill(0)))
	e, tel, _ := newTestExporter(t, c, func(cfg *Config) { cfg.RateLimit.PerPod = BucketConfig{QPS: 100, Burst: 100} })
	ctx := context.Background()

	// Three kills in one batch: one create, the series already at 3.
	require.NoError(t, e.push(ctx, logsOf(phpKill(0), phpKill(1), phpKill(2))))
	evs := events(t, c, "shop")
	require.Len(t, evs, 1)
	assert.EqualValues(t, 3, seriesCount(evs[0]))
	assert.True(t, evs[0].Series.LastObservedTime.Time.Equal(phpKill(2).at))
	assert.Contains(t, evs[0].Note, "(pid 4000)", "the note describes the series' first kill")

	// Two more: one patch to 5.
	require.NoError(t, e.push(ctx, logsOf(phpKill(3), phpKill(4))))
	evs = events(t, c, "shop")
	require.Len(t, evs, 1)
	assert.EqualValues(t, 5, seriesCount(evs[0]))
	creates, patches := writes(c)
	assert.Equal(t, 1, creates)
	assert.Equal(t, 1, patches)

	// The same batches again (a redelivery): nothing changes.
	c.ClearActions()
	require.NoError(t, e.push(ctx, logsOf(phpKill(0), phpKill(1), phpKill(2), phpKill(3), phpKill(4))))
	creates, patches = writes(c)
	assert.Zero(t, creates+patches, "a redelivered kill is not written again")
	assert.EqualValues(t, 5, seriesCount(events(t, c, "shop")[0]))
	assert.EqualValues(t, 5, counter(t, tel, "k8sevents_dedup_hits"))
	assert.EqualValues(t, 4, counter(t, tel, "k8sevents_kills_aggregated"), "every kill after the first")
	assert.EqualValues(t, 1, counter(t, tel, "k8sevents_events_updated"))
}

func TestRecordsWithoutKillIDAreDeduplicatedByBootTimePid(t *testing.T) {
	c := fake.NewClientset(testPodObject(phpKill(0)))
	e, tel, _ := newTestExporter(t, c, nil)
	k := phpKill(0)
	k.id = ""
	require.NoError(t, e.push(context.Background(), logsOf(k)))
	require.NoError(t, e.push(context.Background(), logsOf(k)))
	assert.EqualValues(t, 1, seriesCount(events(t, c, "shop")[0]))
	assert.EqualValues(t, 1, counter(t, tel, "k8sevents_dedup_hits"))
	k2 := k
	k2.pid++ // another kill at the same instant
	require.NoError(t, e.push(context.Background(), logsOf(k2)))
	assert.EqualValues(t, 2, seriesCount(events(t, c, "shop")[0]))
}

func TestDifferentContainersOrOutcomesAreSeparateEvents(t *testing.T) {
	c := fake.NewClientset(testPodObject(phpKill(0)))
	e, _, _ := newTestExporter(t, c, nil)
	a, b, d := phpKill(0), phpKill(1), phpKill(2)
	b.container = "sidecar"
	d.outcome = "exited"
	require.NoError(t, e.push(context.Background(), logsOf(a, b, d)))
	assert.Len(t, events(t, c, "shop"), 3)
}

func TestRateLimitDefersAndTheFlushWritesTheCount(t *testing.T) {
	c := fake.NewClientset(testPodObject(phpKill(0)))
	e, tel, now := newTestExporter(t, c, func(cfg *Config) {
		cfg.RateLimit.PerPod = BucketConfig{QPS: 0.1, Burst: 1} // one write, then one per 10s
	})
	ctx := context.Background()
	for i := range 10 {
		require.NoError(t, e.push(ctx, logsOf(phpKill(i))))
	}
	creates, patches := writes(c)
	assert.Equal(t, 1, creates)
	assert.Equal(t, 0, patches, "the bucket is empty")
	assert.EqualValues(t, 1, seriesCount(events(t, c, "shop")[0]))
	assert.EqualValues(t, 1, counter(t, tel, "k8sevents_rate_limited"), "one deferral, however many kills wait")

	*now = now.Add(10 * time.Second)
	e.mu.Lock()
	e.flushPending(ctx)
	e.mu.Unlock()
	_, patches = writes(c)
	assert.Equal(t, 1, patches)
	assert.EqualValues(t, 10, seriesCount(events(t, c, "shop")[0]))
}

func TestTotalRateLimitAcrossPods(t *testing.T) {
	var pods []runtime.Object
	var kills []testKill
	for i := range 5 {
		k := phpKill(i)
		k.pod, k.uid = k.pod+string(rune('a'+i)), k.uid[:len(k.uid)-1]+string(rune('a'+i))
		kills = append(kills, k)
		pods = append(pods, testPodObject(k))
	}
	c := fake.NewClientset(pods...)
	e, _, _ := newTestExporter(t, c, func(cfg *Config) { cfg.RateLimit.Total = BucketConfig{QPS: 0.01, Burst: 2} })
	require.NoError(t, e.push(context.Background(), logsOf(kills...)))
	creates, _ := writes(c)
	assert.Equal(t, 2, creates, "the overall bucket holds two writes")
}

func TestDeletedPodWritesNoEventAndIsNotRetried(t *testing.T) {
	c := fake.NewClientset() // the pod is gone
	e, tel, _ := newTestExporter(t, c, nil)
	ctx := context.Background()
	require.NoError(t, e.push(ctx, logsOf(phpKill(0))))
	require.NoError(t, e.push(ctx, logsOf(phpKill(1))))
	assert.Empty(t, events(t, c, "shop"))
	assert.EqualValues(t, 2, counter(t, tel, "k8sevents_kills_dropped", attribute.String("reason", "pod_deleted")))
	gets := 0
	for _, a := range c.Actions() {
		if a.GetVerb() == "get" {
			gets++
		}
	}
	assert.Equal(t, 1, gets, "the second kill of a gone pod makes no API call")
}

func TestReplacedPodIsNotWritten(t *testing.T) {
	k := phpKill(0)
	p := testPodObject(k)
	p.UID = "another-uid" // a StatefulSet pod recreated under the same name
	c := fake.NewClientset(p)
	e, tel, _ := newTestExporter(t, c, nil)
	require.NoError(t, e.push(context.Background(), logsOf(k)))
	assert.Empty(t, events(t, c, "shop"))
	assert.EqualValues(t, 1, counter(t, tel, "k8sevents_kills_dropped", attribute.String("reason", "pod_deleted")))
}

func TestNamespaceGoneIsDroppedNotRetried(t *testing.T) {
	c := fake.NewClientset()
	c.PrependReactor("create", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, "shop")
	})
	e, tel, _ := newTestExporter(t, c, func(cfg *Config) { cfg.VerifyPod = false })
	require.NoError(t, e.push(context.Background(), logsOf(phpKill(0))))
	assert.EqualValues(t, 1, counter(t, tel, "k8sevents_kills_dropped", attribute.String("reason", "namespace_gone")))
}

func TestAPIErrorIsRetryableAndTheRetryWritesOnce(t *testing.T) {
	c := fake.NewClientset(testPodObject(phpKill(0)))
	down := true
	c.PrependReactor("create", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
		if down {
			return true, nil, apierrors.NewServiceUnavailable("etcd is down")
		}
		return false, nil, nil
	})
	e, _, _ := newTestExporter(t, c, func(cfg *Config) { cfg.RateLimit.PerPod = BucketConfig{QPS: 100, Burst: 100} })
	ctx := context.Background()
	batch := logsOf(phpKill(0), phpKill(1))
	err := e.push(ctx, batch)
	require.Error(t, err)
	assert.False(t, consumererror.IsPermanent(err), "the exporter helper retries it")
	down = false
	require.NoError(t, e.push(ctx, batch)) // the queue's retry
	evs := events(t, c, "shop")
	require.Len(t, evs, 1)
	assert.EqualValues(t, 2, seriesCount(evs[0]))
}

func TestForbiddenIsDroppedWithAClearError(t *testing.T) {
	c := fake.NewClientset()
	c.PrependReactor("create", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "events.k8s.io", Resource: "events"}, "", errors.New("RBAC"))
	})
	e, tel, now := newTestExporter(t, c, func(cfg *Config) { cfg.VerifyPod = false })
	// A restarted API server refuses until its RBAC caches are filled: retried.
	err := e.push(context.Background(), logsOf(phpKill(0)))
	require.Error(t, err)
	assert.False(t, consumererror.IsPermanent(err))
	// Still refused after the grace: a missing rule; given up, counted.
	*now = now.Add(apiwriter.ForbiddenGrace)
	require.NoError(t, e.push(context.Background(), logsOf(phpKill(0))))
	assert.EqualValues(t, 1, counter(t, tel, "k8sevents_kills_dropped", attribute.String("reason", "rejected")))
	c.ClearActions()
	require.NoError(t, e.push(context.Background(), logsOf(phpKill(1))))
	assert.Empty(t, c.Actions(), "no more writes for that series")
}

func TestExpiredEventStartsANewOne(t *testing.T) {
	c := fake.NewClientset(testPodObject(phpKill(0)))
	e, _, _ := newTestExporter(t, c, func(cfg *Config) { cfg.RateLimit.PerPod = BucketConfig{QPS: 100, Burst: 100} })
	ctx := context.Background()
	require.NoError(t, e.push(ctx, logsOf(phpKill(0))))
	first := events(t, c, "shop")[0].Name
	require.NoError(t, c.EventsV1().Events("shop").Delete(ctx, first, metav1.DeleteOptions{})) // the API server's TTL
	require.NoError(t, e.push(ctx, logsOf(phpKill(1), phpKill(2))))
	evs := events(t, c, "shop")
	require.Len(t, evs, 1)
	assert.NotEqual(t, first, evs[0].Name)
	assert.EqualValues(t, 2, seriesCount(evs[0]), "the new event counts the kills not yet written")
	assert.Contains(t, evs[0].Note, "(pid 4002)")
}

func TestKillAfterTheWindowStartsANewSeries(t *testing.T) {
	c := fake.NewClientset(testPodObject(phpKill(0)))
	e, _, _ := newTestExporter(t, c, func(cfg *Config) { cfg.Aggregation.Window = time.Minute })
	late := phpKill(1)
	late.at = phpKill(0).at.Add(2 * time.Minute)
	require.NoError(t, e.push(context.Background(), logsOf(phpKill(0))))
	require.NoError(t, e.push(context.Background(), logsOf(late)))
	assert.Len(t, events(t, c, "shop"), 2)
}

func TestNoPodNoEvent(t *testing.T) {
	k := phpKill(0)
	k.ns, k.pod, k.uid, k.container, k.constraint, k.memcg = "", "", "", "", "system", ""
	c := fake.NewClientset()
	e, tel, _ := newTestExporter(t, c, nil)
	require.NoError(t, e.push(context.Background(), logsOf(k)))
	assert.Empty(t, c.Actions())
	assert.EqualValues(t, 1, counter(t, tel, "k8sevents_kills_dropped", attribute.String("reason", "no_pod")))
}

func TestNodeEventForASystemKillOutsidePods(t *testing.T) {
	k := phpKill(0)
	k.ns, k.pod, k.uid, k.container, k.constraint, k.memcg, k.outcome, k.process = "", "", "", "", "system", "", "", "journald"
	c := fake.NewClientset()
	e, _, _ := newTestExporter(t, c, func(cfg *Config) { cfg.NodeEvents = true })
	require.NoError(t, e.push(context.Background(), logsOf(k)))
	evs := events(t, c, "default")
	require.Len(t, evs, 1)
	assert.Equal(t, corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: "node-a", UID: "node-a"}, evs[0].Regarding)
	assert.Equal(t, `The kernel OOM killer killed process "journald" (pid 4000) outside any pod: the node ran out of memory; the process used 250Mi of anonymous memory.`, evs[0].Note)
}

func TestSeriesAndKillIDsAreBounded(t *testing.T) {
	var pods []runtime.Object
	c := fake.NewClientset(pods...)
	e, tel, _ := newTestExporter(t, c, func(cfg *Config) {
		cfg.VerifyPod = false
		cfg.Aggregation.MaxSeries, cfg.Aggregation.MaxKillIDs = 3, 5
		cfg.RateLimit.Total = BucketConfig{QPS: 0.001, Burst: 1}
	})
	for i := range 10 {
		k := phpKill(i)
		k.container = string(rune('a' + i))
		require.NoError(t, e.push(context.Background(), logsOf(k)))
	}
	assert.Equal(t, 3, e.series.Len())
	assert.Equal(t, 5, e.series.KillIDs())
	// One series was written; the others waited on the bucket and those
	// pushed out of the cache are counted.
	assert.EqualValues(t, 6, counter(t, tel, "k8sevents_kills_dropped", attribute.String("reason", "evicted")))
}

// An event's object name is how a create repeated after a restart finds
// the event it made: it must not change between versions for the same
// series and first kill.
func TestEventNameIsStableAcrossVersions(t *testing.T) {
	c := fake.NewClientset(testPodObject(phpKill(0)))
	e, _, _ := newTestExporter(t, c, nil)
	require.NoError(t, e.push(context.Background(), logsOf(phpKill(0))))
	evs := events(t, c, "shop")
	require.Len(t, evs, 1)
	assert.Equal(t, "checkout-7f9c6d5b8-x2x9q.oom-668d4ed37c7b2527", evs[0].Name)

	k := phpKill(1)
	k.ns, k.pod, k.uid, k.container, k.constraint, k.memcg, k.outcome, k.process = "", "", "", "", "system", "", "", "journald"
	e, _, _ = newTestExporter(t, c, func(cfg *Config) { cfg.NodeEvents = true })
	require.NoError(t, e.push(context.Background(), logsOf(k)))
	evs = events(t, c, "default")
	require.Len(t, evs, 1)
	assert.Equal(t, "node-a.oom-cd259474d50016e3", evs[0].Name)
}
