package oomkillreceiver

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/kubecgroup"
	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/metadata"
	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/metadatatest"
	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/oomparse"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/journaltest"
)

// randomName is what a process that renames itself (prctl PR_SET_NAME)
// may be called: up to 15 bytes of anything printable.
func randomName(r *rand.Rand) string {
	const chars = "abcdefghijklmnopqrstuvwxyz0123456789 -_:=,.()"
	b := make([]byte, 1+r.IntN(15))
	for i := range b {
		b[i] = chars[r.IntN(len(chars))]
	}
	return string(b)
}

func hex64(r *rand.Rand) string {
	return fmt.Sprintf("%016x%016x%016x%016x", r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64())
}

// A process renaming itself at random, OOM-killed 10,000 times, plus 3,000
// kills in 3,000 containers of a crash-looping CronJob: real journal
// files, the real file_storage, a restart. The series stay under the caps
// and their sum is every kill, before and after the restart.
func TestHostileCardinalityStaysUnderTheCaps(t *testing.T) {
	const renames, churn = 10_000, 3_000
	r := rand.New(rand.NewPCG(1, 2))
	at := time.Now().Add(-time.Hour)
	var entries []journaltest.Entry
	memcg := "/kubepods/burstable/pod" + testPod + "/" + testCtr
	for i := 0; i < renames; i++ {
		entries = append(entries, journaltest.Entries(journaltest.OOMReport(randomName(r), 10_000+i, 0, memcg), at.Add(time.Duration(i)*time.Millisecond), bootA, hostName)...)
	}
	for i := 0; i < churn; i++ {
		cg := fmt.Sprintf("/kubepods/besteffort/pod%08x-0000-4000-8000-%012x/%s", i, i, hex64(r))
		entries = append(entries, journaltest.Entries(journaltest.OOMReport("job", 50_000+i, 0, cg), at.Add(time.Duration(renames+i)*time.Millisecond), bootA, hostName)...)
	}
	dir := t.TempDir()
	journaltest.Write(t, filepath.Join(dir, "hostile.journal"), entries)

	cfg := testConfig(dir)
	cfg.StorageID = &storageID
	cfg.Series.MaxSeries = 500
	cfg.Series.MaxSeriesPerContainer = 10
	stateDir := t.TempDir()
	h := fileStorage(t, stateDir)
	run := startLogging(t, cfg, h, nopLogs{}, nil, nil)
	eventually(t, "every kill counted", func() bool { return lastTotal(run.metrics) == renames+churn })
	run.stop()
	stopStorage(h)

	got := latest(run.metrics.AllMetrics())
	points, overflow := 0, 0
	perContainer := map[string]int{}
	forEachPoint(got, func(res pcommon.Resource, dp pmetric.NumberDataPoint) {
		points++
		if v, ok := dp.Attributes().Get(overflowAttribute); ok && v.Bool() {
			overflow++
		}
		id, _ := res.Attributes().Get("container.id")
		perContainer[id.Str()]++
	})
	assert.LessOrEqual(t, points, 501, "500 series and the global overflow")
	assert.Equal(t, 10, perContainer[testCtr], "the renaming process: 9 names and its container's overflow")
	assert.Equal(t, 2, overflow, "its container's overflow and the global one")
	assert.Equal(t, int64(renames+churn), total(got))
	named := int64(9 + 490) // 9 names of the renaming process, one kill in each of 490 job containers
	metadatatest.AssertEqualOomkillReceiverOverflowKills(t, run.tel,
		[]metricdata.DataPoint[int64]{{Value: renames + churn - named}}, metricdatatest.IgnoreTimestamp())

	// What the checkpoint holds: one slot per live series.
	h = fileStorage(t, stateDir)
	c := storageClientFor(t, h)
	var slots int
	for i := 0; i < 600; i++ {
		if b, err := c.Get(context.Background(), slotKey(i)); err == nil && b != nil {
			slots++
		}
	}
	assert.Equal(t, 501, slots)
	require.NoError(t, c.Close(context.Background()))

	// After a restart the restored series still add up to every kill.
	again := startLogging(t, cfg, h, nopLogs{}, nil, nil)
	eventually(t, "restored totals exported", func() bool { return lastTotal(again.metrics) == renames+churn })
	assert.Equal(t, 501, len(latestKeys(again.metrics.AllMetrics())))
}

func latestKeys(payloads []pmetric.Metrics) map[string]bool {
	out := map[string]bool{}
	forEachPoint(latest(payloads), func(res pcommon.Resource, dp pmetric.NumberDataPoint) {
		out[fmt.Sprint(res.Attributes().AsRaw(), dp.Attributes().AsRaw())] = true
	})
	return out
}

func storageClientFor(t *testing.T, h host) storage.Client {
	t.Helper()
	c, err := storageClient(context.Background(), h, storageID, component.NewID(metadata.Type))
	require.NoError(t, err)
	return c
}

// countingStorage is an in-memory storage.Client that counts writes.
type countingStorage struct {
	data map[string][]byte
	sets int
}

func (c *countingStorage) Get(_ context.Context, k string) ([]byte, error) { return c.data[k], nil }
func (c *countingStorage) Set(_ context.Context, k string, v []byte) error {
	c.sets++
	c.data[k] = v
	return nil
}

func (c *countingStorage) Delete(_ context.Context, k string) error {
	delete(c.data, k)
	return nil
}
func (c *countingStorage) Close(context.Context) error { return nil }
func (c *countingStorage) Batch(ctx context.Context, ops ...*storage.Operation) error {
	for _, op := range ops {
		switch op.Type {
		case storage.Get:
			op.Value = c.data[op.Key]
		case storage.Set:
			_ = c.Set(ctx, op.Key, op.Value)
		case storage.Delete:
			_ = c.Delete(ctx, op.Key)
		}
	}
	return nil
}

// A checkpoint write carries the cursor and the series that changed, not
// the whole table; loading it back gives the same table.
func TestCheckpointWritesWhatChanged(t *testing.T) {
	ctx := context.Background()
	c := &countingStorage{data: map[string][]byte{}}
	cfg := SeriesConfig{MaxSeries: 1000, MaxSeriesPerContainer: 20, Retention: time.Hour, MaxExpiredSeries: 100}
	tab := newSeriesTable(cfg)
	now := time.Unix(1_000_000, 0)
	for i := 0; i < 500; i++ {
		tab.count(key(fmt.Sprintf("c%d", i), "x"), now)
	}
	cp := &checkpointRecord{Cursor: "s=1", StartTimeUnixNano: now.UnixNano()}
	require.NoError(t, saveCheckpoint(ctx, c, cp, tab))
	assert.Equal(t, 501, c.sets, "first save: the record and 500 slots")

	c.sets = 0
	tab.count(key("c7", "x"), now)
	cp.Cursor = "s=2"
	require.NoError(t, saveCheckpoint(ctx, c, cp, tab))
	assert.Equal(t, 2, c.sets, "the record and the one series that changed")

	c.sets = 0
	tab.expire(now.Add(2*time.Hour), func(resourceKey) bool { return false })
	require.NoError(t, saveCheckpoint(ctx, c, cp, tab))
	assert.Equal(t, 2, c.sets, "the record and the expired totals; 500 slot deletes")
	assert.Len(t, c.data, 2)

	back := newSeriesTable(cfg)
	got, _, err := loadCheckpoint(ctx, c, back)
	require.NoError(t, err)
	assert.Equal(t, "s=2", got.Cursor)
	assert.Empty(t, back.live)
	assert.Len(t, back.expired.byKey, 100, "bounded by max_expired_series")
	// One that comes back continues from its total (c7 had 2 kills).
	for i := 0; i < 500; i++ {
		k := key(fmt.Sprintf("c%d", i), "x")
		if _, ok := back.expired.byKey[k.hash()]; !ok {
			continue
		}
		back.count(k, now.Add(3*time.Hour))
		want := int64(2)
		if i == 7 {
			want = 3
		}
		assert.Equal(t, want, back.live[k].count, k.ContainerID)
	}
}

// A version 1 checkpoint (every series in one record) is read and turned
// into slots at the next write.
func TestCheckpointVersion1IsMigrated(t *testing.T) {
	ctx := context.Background()
	v1 := `{"version":1,"cursor":"s=9","realtime_usec":5,"start_time_unix_nano":42,"series":[` +
		`{"k8s.pod.uid":"p","container.id":"c","oom.constraint":"memcg","process.executable.name":"php-fpm","count":7},` +
		`{"oom.constraint":"unknown","process.executable.name":"x","count":2}]}`
	c := &countingStorage{data: map[string][]byte{checkpointKey: []byte(v1)}}
	tab := newSeriesTable(testSeriesConfig())
	cp, _, err := loadCheckpoint(ctx, c, tab)
	require.NoError(t, err)
	assert.Equal(t, "s=9", cp.Cursor)
	assert.Equal(t, int64(9), sum(tab))
	for _, s := range tab.live {
		assert.Equal(t, int64(42), s.start.UnixNano(), "v1 series keep the receiver's start time")
	}
	require.NoError(t, saveCheckpoint(ctx, c, cp, tab))
	again := newSeriesTable(testSeriesConfig())
	cp2, _, err := loadCheckpoint(ctx, c, again)
	require.NoError(t, err)
	assert.Equal(t, checkpointVersion, cp2.Version)
	assert.Equal(t, int64(9), sum(again))
}

// Series saved before oom.source existed (version 2 slots without it) are
// the log's: a new kill of the same series continues its count, and a
// total remembered for an expired one is found again.
func TestSeriesFromBeforeOOMSourceContinue(t *testing.T) {
	ctx := context.Background()
	old := seriesKey{resourceKey: resourceKey{PodUID: "p", ContainerID: "c", CgroupPath: "/kubepods/podp/c"}, Constraint: "memcg", Executable: "php-fpm", Outcome: "survived"}
	slot, err := json.Marshal(seriesRecord{seriesKey: old, Count: 7, StartUnixNano: 42, LastCountedUnixNs: 43})
	require.NoError(t, err)
	require.NotContains(t, string(slot), "oom.source")
	gone := seriesKey{resourceKey: resourceKey{PodUID: "q", ContainerID: "d"}, Constraint: "memcg", Executable: "celery", Outcome: "exited"}
	expired := newExpiredTotals(10)
	expired.put(gone.hash(), expiredTotal{count: 4, startUnixNano: 40}) // hashed as the previous version did: no source
	c := &countingStorage{data: map[string][]byte{
		checkpointKey: []byte(`{"version":2,"cursor":"s=9","start_time_unix_nano":42,"slots":1}`),
		slotKey(0):    slot,
		expiredKey:    expired.marshal(),
	}}
	tab := newSeriesTable(testSeriesConfig())
	_, _, err = loadCheckpoint(ctx, c, tab)
	require.NoError(t, err)

	k := killRecord{Kill: oomparse.Kill{Constraint: "memcg", Comm: "php-fpm", TaskMemcg: "/kubepods/podp/c", Cgroup: kubecgroup.Ref{PodUID: "p", ContainerID: "c"}}, Outcome: "survived"}
	tab.count(keyOf(k), time.Now())
	require.Len(t, tab.live, 1, "the same series, now oom.source=log")
	for key, s := range tab.live {
		assert.Equal(t, sourceLog, key.Source)
		assert.Equal(t, int64(8), s.count)
	}
	back := killRecord{Kill: oomparse.Kill{Constraint: "memcg", Comm: "celery", Cgroup: kubecgroup.Ref{PodUID: "q", ContainerID: "d"}}, Outcome: "exited"}
	tab.count(keyOf(back), time.Now())
	assert.Equal(t, int64(5), tab.live[keyOf(back)].count, "an expired series of the previous version comes back continuing its total")
}
