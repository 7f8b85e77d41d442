package oomkillreceiver

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/metadatatest"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/journaltest"
)

// kernelReport is report() with the kernel's own timestamps: usec µs after
// boot (journald's _SOURCE_MONOTONIC_TIMESTAMP), stored at `stored`.
func kernelReport(pid int, stored time.Time, usec time.Duration, boot string) []journaltest.Entry {
	es := report(pid, stored, boot)
	for i := range es {
		es[i].SourceMonotonic = usec + time.Duration(i)*time.Microsecond
	}
	return es
}

// writeCheckpoint stores cp as the receiver's checkpoint in the file
// storage on dir, as an earlier run would have.
func writeCheckpoint(t *testing.T, dir string, cp checkpointRecord) {
	t.Helper()
	h := fileStorage(t, dir)
	se := h.GetExtensions()[storageID].(storage.Extension)
	c, err := se.GetClient(context.Background(), component.KindReceiver, component.MustNewID("oomkill"), "")
	require.NoError(t, err)
	cp.Version, cp.StartTimeUnixNano = checkpointVersion, t0.UnixNano()
	b, err := json.Marshal(cp)
	require.NoError(t, err)
	require.NoError(t, c.Set(context.Background(), checkpointKey, b))
	require.NoError(t, c.Close(context.Background()))
	stopStorage(h)
}

// A checkpoint written reading /dev/kmsg, then the journal is read (auto
// found journald running again): lines of the checkpoint's boot up to its
// kernel timestamp were counted already, also those journald stored only
// later (it replays the kernel's buffer when it starts); the rest is read.
// The switch is not a gap.
func TestSwitchFromKmsgToJournalByKernelTime(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	var es []journaltest.Entry
	// Printed at 10 s, 11 s, 12 s after boot A; journald, started late,
	// stored all three at t0+1h.
	for i := 0; i < 3; i++ {
		es = append(es, kernelReport(900+i, t0.Add(time.Hour), time.Duration(10+i)*time.Second, bootA)...)
	}
	// Printed at 13 s, 14 s, stored at once.
	for i := 3; i < 5; i++ {
		es = append(es, kernelReport(900+i, t0.Add(time.Hour+time.Duration(i)*time.Second), time.Duration(10+i)*time.Second, bootA)...)
	}
	// Boot B, later.
	es = append(es, kernelReport(950, t0.Add(2*time.Hour), 5*time.Second, bootB)...)
	journaltest.Write(t, filepath.Join(dir, "system.journal"), es)

	// /dev/kmsg had read through the third kill (12 s, its victim line at
	// +2 µs) when the collector stopped.
	writeCheckpoint(t, state, checkpointRecord{
		Cursor: "kmsg;b=" + bootA + ";s=4711", RealtimeUsec: t0.Add(12 * time.Second).UnixMicro(),
		KernelBootID: bootA, KernelUsec: uint64((12*time.Second + 2*time.Microsecond).Microseconds()),
	})

	core, logs := observer.New(zap.InfoLevel)
	h := fileStorage(t, state)
	cfg := testConfig(dir)
	cfg.StorageID = &storageID
	r := startLogging(t, cfg, h, nil, nil, zap.New(core))
	eventually(t, "the kills after the checkpoint", func() bool { return lastTotal(r.metrics) == 3 })
	time.Sleep(300 * time.Millisecond)
	assert.Equal(t, map[int64]int{903: 1, 904: 1, 950: 1}, pids(logRecords(r.logs)))
	require.Len(t, logs.FilterMessageSnippet("Resuming after checkpoint").All(), 1)
	// A switch is not a gap.
	metadatatest.AssertEqualOomkillReceiverCheckpointGaps(t, r.tel, []metricdata.DataPoint[int64]{{Value: 0}}, metricdatatest.IgnoreTimestamp())
	r.stop()
	stopStorage(h)

	// The next checkpoint is the journal's, with the kernel's position.
	h = fileStorage(t, state)
	se := h.GetExtensions()[storageID].(storage.Extension)
	c, err := se.GetClient(context.Background(), component.KindReceiver, component.MustNewID("oomkill"), "")
	require.NoError(t, err)
	b, err := c.Get(context.Background(), checkpointKey)
	require.NoError(t, err)
	require.NoError(t, c.Close(context.Background()))
	var cp checkpointRecord
	require.NoError(t, json.Unmarshal(b, &cp))
	assert.True(t, strings.HasPrefix(cp.Cursor, "s="), "a journal cursor: %q", cp.Cursor)
	assert.Equal(t, bootB, cp.KernelBootID)
	assert.Equal(t, uint64((5*time.Second + 2*time.Microsecond).Microseconds()), cp.KernelUsec)
}
