package k8seventsexporter

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/kubernetes/fake"
)

// realClockExporter is the test exporter on the wall clock with the
// shortest flush interval and window the configuration allows.
func realClockExporter(t *testing.T, c *fake.Clientset, mutate func(*Config)) *eventsExporter {
	t.Helper()
	e, _, _ := newTestExporter(t, c, func(cfg *Config) {
		cfg.FlushInterval, cfg.Aggregation.Window = 100*time.Millisecond, time.Second
		if mutate != nil {
			mutate(cfg)
		}
	})
	e.now = time.Now
	return e
}

// An idle exporter does not wake up. After a kill it wakes once a flush
// interval later and once when the series' window ends, forgets the
// series, and sleeps again.
func TestIdleExporterSleeps(t *testing.T) {
	c := fake.NewClientset(testPodObject(phpKill(0)))
	e := realClockExporter(t, c, nil)
	time.Sleep(500 * time.Millisecond)
	assert.Zero(t, e.wakeups.Load(), "no series: no wake-up")

	k := phpKill(0)
	k.at = time.Now()
	require.NoError(t, e.push(context.Background(), logsOf(k)))
	require.Len(t, events(t, c, "shop"), 1)
	require.Eventually(t, func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.series.Len() == 0
	}, 10*time.Second, 20*time.Millisecond, "the written series is forgotten once its window ended")
	time.Sleep(time.Second)
	// One wake-up after the kill and one at the end of its window (one
	// only, if the first came late enough to forget the series); a 100ms
	// ticker would have made about 20.
	assert.Contains(t, []int64{1, 2}, e.wakeups.Load())
}

// A write the rate limit deferred is retried by the loop without any
// further kill arriving.
func TestDeferredWriteIsRetriedByTheLoop(t *testing.T) {
	c := fake.NewClientset(testPodObject(phpKill(0)))
	e := realClockExporter(t, c, func(cfg *Config) { cfg.RateLimit.PerPod = BucketConfig{QPS: 5, Burst: 1} })
	ctx := context.Background()
	a, b := phpKill(0), phpKill(1)
	a.at, b.at = time.Now(), time.Now()
	require.NoError(t, e.push(ctx, logsOf(a)))
	require.NoError(t, e.push(ctx, logsOf(b))) // the bucket is empty: deferred
	assert.EqualValues(t, 1, seriesCount(events(t, c, "shop")[0]))
	require.Eventually(t, func() bool { return seriesCount(events(t, c, "shop")[0]) == 2 }, 10*time.Second, 20*time.Millisecond)
}
