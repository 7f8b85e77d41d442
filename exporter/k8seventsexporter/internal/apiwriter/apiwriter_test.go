package apiwriter

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	"go.uber.org/zap"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/aggregate"
	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/kill"
	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/metadata"
	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/metadatatest"
)

var t0 = time.Date(2026, 12, 1, 21, 0, 0, 0, time.UTC)

// newWriter returns a writer without pod checks over client, the table
// it gives series up to, and the telemetry both count into.
func newWriter(t *testing.T, client *fake.Clientset) (*Writer, *aggregate.Table, *componenttest.Telemetry) {
	t.Helper()
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	tb, err := metadata.NewTelemetryBuilder(tel.NewTelemetrySettings())
	require.NoError(t, err)
	table := aggregate.New(aggregate.Options{Window: time.Hour, MaxSeries: 10, MaxKillIDs: 10}, tb, zap.NewNop())
	return New(client, table, Options{Now: func() time.Time { return t0 }}, tb, zap.NewNop()), table, tel
}

func podKill(id string, at time.Duration) kill.Kill {
	return kill.Kill{
		ID: id, Time: t0.Add(at), PID: 1, Process: "php-fpm", Scope: kill.ScopeContainer, AnonRSSKB: -1, LimitB: -1,
		Namespace: "shop", PodName: "web-0", PodUID: "uid-0", Container: "php", Node: "node-a",
	}
}

func requests(request, outcome string, n int64) metricdata.DataPoint[int64] {
	return metricdata.DataPoint[int64]{Attributes: attribute.NewSet(attribute.String("outcome", outcome), attribute.String("request", request)), Value: n}
}

// A create whose answer was lost (or an exporter restarted) finds the
// Event it made under the same name and brings its count up to date.
func TestAlreadyExistsPatchesTheCount(t *testing.T) {
	c := fake.NewClientset()
	w, table, tel := newWriter(t, c)
	ctx := context.Background()
	s := table.Add(ctx, podKill("a", 0))
	_, err := c.EventsV1().Events("shop").Create(ctx, &eventsv1.Event{ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: "shop"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	table.Add(ctx, podKill("b", time.Second))
	table.Add(ctx, podKill("c", 2*time.Second))

	require.NoError(t, w.Write(ctx, s))
	assert.Equal(t, 3, s.Written)
	ev, err := c.EventsV1().Events("shop").Get(ctx, s.Name, metav1.GetOptions{})
	require.NoError(t, err)
	require.NotNil(t, ev.Series)
	assert.EqualValues(t, 3, ev.Series.Count)
	metadatatest.AssertEqualK8seventsAPIRequests(t, tel, []metricdata.DataPoint[int64]{
		requests("create", "alreadyexists", 1), requests("patch", "ok", 1),
	}, metricdatatest.IgnoreTimestamp(), metricdatatest.IgnoreExemplars())
}

// A failure without an API status (connection refused, a timeout) is
// counted as "error" and returned for the exporter helper to retry.
func TestTransportErrorIsRetriedAndCounted(t *testing.T) {
	c := fake.NewClientset()
	c.PrependReactor("create", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("connection refused")
	})
	w, table, tel := newWriter(t, c)
	ctx := context.Background()
	s := table.Add(ctx, podKill("a", 0))
	err := w.Write(ctx, s)
	require.ErrorContains(t, err, "kubernetes API: connection refused")
	assert.True(t, s.Pending(), "nothing given up")
	metadatatest.AssertEqualK8seventsAPIRequests(t, tel, []metricdata.DataPoint[int64]{requests("create", "error", 1)},
		metricdatatest.IgnoreTimestamp(), metricdatatest.IgnoreExemplars())
}
