package oomkillreceiver

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/metadatatest"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/journaltest"
)

// The receiver is stopped at random points while kills keep landing in the
// journal; across all runs every kill is logged exactly once and the final
// counter is exact, with the start time of the first run.
func TestRestartsCountEveryKillOnce(t *testing.T) {
	const kills = 60
	dir, state := t.TempDir(), t.TempDir()
	journalFile := filepath.Join(dir, "a.journal")
	journaltest.Write(t, journalFile, report(1000, time.Now(), bootA))

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the kernel, killing on its own schedule
		defer wg.Done()
		for i := 1; i < kills; i++ {
			journaltest.Write(t, journalFile, report(1000+i, time.Now(), bootA))
			time.Sleep(time.Duration(rand.IntN(30)) * time.Millisecond)
		}
	}()

	seen := map[int64]int{}
	var starts []pcommon.Timestamp
	run := func(wait func(*running)) {
		h := fileStorage(t, state)
		cfg := testConfig(dir)
		cfg.StorageID = &storageID
		r := start(t, cfg, h, nil, nil)
		wait(r)
		r.stop()
		stopStorage(h)
		for pid, n := range pids(logRecords(r.logs)) {
			seen[pid] += n
		}
		if all := r.metrics.AllMetrics(); len(all) > 0 {
			starts = append(starts, firstStart(all[0]))
		}
	}
	for i := 0; i < 8; i++ {
		run(func(*running) { time.Sleep(time.Duration(50+rand.IntN(300)) * time.Millisecond) })
	}
	wg.Wait()
	var final int64
	run(func(r *running) {
		eventually(t, "every kill counted", func() bool { final = lastTotal(r.metrics); return final >= kills })
	})

	assert.Equal(t, int64(kills), final, "counter after restarts")
	require.Len(t, seen, kills, "distinct kills logged")
	for pid, n := range seen {
		assert.Equal(t, 1, n, "pid %d logged %d times", pid, n)
	}
	for _, s := range starts {
		assert.Equal(t, starts[0], s, "start time kept across restarts")
	}
}

// firstStart is the start time of the first data point in md.
func firstStart(md pmetric.Metrics) pcommon.Timestamp {
	return md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Sum().DataPoints().At(0).StartTimestamp()
}

// The checkpoint's entry was vacuumed away while the collector was down:
// reading resumes at the oldest entry after the checkpoint's time, the gap
// is reported, and the counter continues from its saved value.
func TestCheckpointGap(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	var old []journaltest.Entry
	for i := 0; i < 3; i++ {
		old = append(old, report(600+i, t0.Add(time.Duration(i)*time.Second), bootA)...)
	}
	oldFile := filepath.Join(dir, "old.journal")
	journaltest.Write(t, oldFile, old)

	h := fileStorage(t, state)
	cfg := testConfig(dir)
	cfg.StorageID = &storageID
	r := start(t, cfg, h, nil, nil)
	eventually(t, "3 kills", func() bool { return lastTotal(r.metrics) == 3 })
	r.stop()
	stopStorage(h)

	require.NoError(t, os.Remove(oldFile)) // journald vacuumed it
	var newer []journaltest.Entry
	for i := 0; i < 2; i++ {
		newer = append(newer, report(700+i, t0.Add(time.Hour+time.Duration(i)*time.Second), bootA)...)
	}
	journaltest.Write(t, filepath.Join(dir, "new.journal"), newer)

	h = fileStorage(t, state)
	cfg = testConfig(dir)
	cfg.StorageID = &storageID
	cfg.StartAt = StartAtEnd // the checkpoint wins over start_at
	r = start(t, cfg, h, nil, nil)
	eventually(t, "counter continues to 5", func() bool { return lastTotal(r.metrics) == 5 })
	assert.Equal(t, map[int64]int{700: 1, 701: 1}, pids(logRecords(r.logs)))
	metadatatest.AssertEqualOomkillReceiverCheckpointGaps(t, r.tel, []metricdata.DataPoint[int64]{{Value: 1}}, metricdatatest.IgnoreTimestamp())
}
