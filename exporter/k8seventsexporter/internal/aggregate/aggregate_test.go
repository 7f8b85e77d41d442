package aggregate

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

	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/kill"
	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/metadata"
	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/metadatatest"
)

var t0 = time.Date(2026, 12, 1, 21, 0, 0, 0, time.UTC)

func newTable(t *testing.T, opts Options) (*Table, *componenttest.Telemetry) {
	t.Helper()
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	tb, err := metadata.NewTelemetryBuilder(tel.NewTelemetrySettings())
	require.NoError(t, err)
	if opts.Window == 0 {
		opts.Window = time.Minute
	}
	if opts.MaxSeries == 0 {
		opts.MaxSeries, opts.MaxKillIDs = 10, 100
	}
	return New(opts, tb, zap.NewNop()), tel
}

func podKill(id string, at time.Duration) kill.Kill {
	return kill.Kill{
		ID: id, Time: t0.Add(at), PID: 1, Process: "php-fpm", Scope: kill.ScopeContainer, Outcome: "survived",
		Namespace: "shop", PodName: "web-0", PodUID: "uid-0", Container: "php", Node: "node-a",
	}
}

func dropped(reason string, n int64) metricdata.DataPoint[int64] {
	return metricdata.DataPoint[int64]{Attributes: attribute.NewSet(attribute.String("reason", reason)), Value: n}
}

func TestAKillCountsOnce(t *testing.T) {
	tab, _ := newTable(t, Options{})
	ctx := context.Background()
	s := tab.Add(ctx, podKill("a", 0))
	require.NotNil(t, s)
	assert.Same(t, s, tab.Add(ctx, podKill("b", time.Second)), "same key: same series")
	assert.Same(t, s, tab.Add(ctx, podKill("a", 0)), "a redelivered kill returns its series to flush")
	assert.Equal(t, 2, s.Count)
	assert.Equal(t, t0.Add(time.Second), s.Latest.Time)
	assert.Equal(t, "a", s.First.ID)
	assert.Equal(t, 2, tab.KillIDs())
}

func TestKillWithoutPodMakesNoSeries(t *testing.T) {
	tab, tel := newTable(t, Options{})
	k := podKill("a", 0)
	k.Namespace, k.PodName, k.PodUID = "", "", ""
	assert.Nil(t, tab.Add(context.Background(), k))
	assert.Nil(t, tab.Add(context.Background(), k), "redelivered: still nothing")
	metadatatest.AssertEqualK8seventsKillsDropped(t, tel, []metricdata.DataPoint[int64]{dropped(DropNoPod, 1)}, metricdatatest.IgnoreTimestamp())

	tab, _ = newTable(t, Options{NodeEvents: true})
	s := tab.Add(context.Background(), k)
	require.NotNil(t, s)
	assert.Equal(t, "default", s.Key.Namespace)
	assert.Equal(t, "node-a", s.Key.Regarding().Node)
}

func TestAbandonedSeriesDropsItsLaterKills(t *testing.T) {
	tab, tel := newTable(t, Options{})
	ctx := context.Background()
	s := tab.Add(ctx, podKill("a", 0))
	tab.Add(ctx, podKill("b", time.Second))
	tab.Abandon(ctx, s, DropPodDeleted, errors.New("gone"))
	assert.False(t, s.Pending())
	assert.Nil(t, tab.Add(ctx, podKill("c", 2*time.Second)))
	metadatatest.AssertEqualK8seventsKillsDropped(t, tel, []metricdata.DataPoint[int64]{dropped(DropPodDeleted, 3)}, metricdatatest.IgnoreTimestamp())
}

func TestWindowAndSweep(t *testing.T) {
	tab, _ := newTable(t, Options{Window: time.Minute})
	ctx := context.Background()
	s := tab.Add(ctx, podKill("a", 0))
	s.Written = s.Count
	late := tab.Add(ctx, podKill("b", 2*time.Minute))
	assert.NotSame(t, s, late, "after the window of a written series: a new event")
	assert.NotEqual(t, s.Name, late.Name)

	tab.Sweep(t0.Add(2*time.Minute + 59*time.Second))
	assert.Equal(t, 1, tab.Len(), "a pending series is never swept")
	late.Written = late.Count
	tab.Sweep(t0.Add(3*time.Minute + time.Nanosecond))
	assert.Equal(t, 0, tab.Len())
}

func TestRestartStartsANewEventWithTheUnwrittenKills(t *testing.T) {
	tab, _ := newTable(t, Options{})
	ctx := context.Background()
	s := tab.Add(ctx, podKill("a", 0))
	s.Written = 1
	tab.Add(ctx, podKill("b", time.Second))
	tab.Add(ctx, podKill("c", 2*time.Second))
	name := s.Name
	s.Restart()
	assert.Equal(t, 2, s.Count)
	assert.Zero(t, s.Written)
	assert.Equal(t, "c", s.First.ID)
	assert.NotEqual(t, name, s.Name)
	assert.Equal(t, 2, s.Event().Count)
}

func TestEvictedSeriesCountsItsUnwrittenKills(t *testing.T) {
	tab, tel := newTable(t, Options{MaxSeries: 1, MaxKillIDs: 10})
	ctx := context.Background()
	a := podKill("a", 0)
	b := podKill("b", 0)
	b.Container = "sidecar"
	tab.Add(ctx, a)
	tab.Add(ctx, b)
	assert.Equal(t, 1, tab.Len())
	assert.Equal(t, 1, tab.Unwritten())
	metadatatest.AssertEqualK8seventsKillsDropped(t, tel, []metricdata.DataPoint[int64]{dropped(DropEvicted, 1)}, metricdatatest.IgnoreTimestamp())
}
