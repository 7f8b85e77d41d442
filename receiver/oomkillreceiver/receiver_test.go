package oomkillreceiver

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/golden"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/pdatatest/plogtest"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/pdatatest/pmetrictest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/metadatatest"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/journaltest"
)

var update = flag.Bool("update", false, "rewrite golden files")

var t0 = time.Date(2026, 11, 28, 1, 0, 0, 0, time.UTC)

// Several real journal files in one directory: fixtures of three kernel
// eras and a report captured by a real journald, read from the beginning.
func TestReadsJournalDirectoryGolden(t *testing.T) {
	dir := t.TempDir()
	journaltest.Write(t, filepath.Join(dir, "a.journal"), kernelFixture(t, "v6.6-group-kill.txt", t0, bootA))
	journaltest.Write(t, filepath.Join(dir, "b.journal"), append(
		kernelFixture(t, "v6.8-rate-limited.txt", t0.Add(time.Minute), bootA),
		kernelFixture(t, "v4.14-memcg-reaper.txt", t0.Add(2*time.Minute), bootB)...))
	// A real journald's export of a real kill (testdata/journal/captured).
	exported, err := os.ReadFile(filepath.Join("..", "..", "testdata", "journal", "captured", "systemd_burstable_containerd_child.export"))
	require.NoError(t, err)
	journaltest.WriteExport(t, filepath.Join(dir, "c.journal"), exported)

	r := start(t, testConfig(dir), componenttest.NewNopHost(), nil, nil)
	eventually(t, "8 kills", func() bool { return r.logs.LogRecordCount() == 8 })
	eventually(t, "metrics total 8", func() bool { return lastTotal(r.metrics) == 8 })
	r.stop()

	logs := r.logs.AllLogs()
	metrics := r.metrics.AllMetrics()
	gotLogs, gotMetrics := logs[0], latest(metrics)
	for _, ld := range logs[1:] {
		ld.ResourceLogs().MoveAndAppendTo(gotLogs.ResourceLogs())
	}
	logsFile := filepath.Join("testdata", "golden", "logs.yaml")
	metricsFile := filepath.Join("testdata", "golden", "metrics.yaml")
	if *update {
		require.NoError(t, golden.WriteLogsToFile(logsFile, gotLogs))
		require.NoError(t, golden.WriteMetricsToFile(metricsFile, gotMetrics))
	}
	wantLogs, err := golden.ReadLogs(logsFile)
	require.NoError(t, err)
	require.NoError(t, plogtest.CompareLogs(wantLogs, gotLogs, plogtest.IgnoreObservedTimestamp(),
		plogtest.IgnoreResourceLogsOrder(), plogtest.IgnoreLogRecordsOrder()))
	wantMetrics, err := golden.ReadMetrics(metricsFile)
	require.NoError(t, err)
	require.NoError(t, pmetrictest.CompareMetrics(wantMetrics, gotMetrics, pmetrictest.IgnoreTimestamp(),
		pmetrictest.IgnoreStartTimestamp(), pmetrictest.IgnoreResourceMetricsOrder(), pmetrictest.IgnoreMetricDataPointsOrder(),
		pmetrictest.IgnoreMetricsOrder()))

	metadatatest.AssertEqualOomkillReceiverKills(t, r.tel, []metricdata.DataPoint[int64]{{Value: 8}}, metricdatatest.IgnoreTimestamp())
	metadatatest.AssertEqualOomkillReceiverUnattributedKills(t, r.tel, []metricdata.DataPoint[int64]{{Value: 2}}, metricdatatest.IgnoreTimestamp())
}

// start_at end skips what is already there; appended entries and a new
// file in the directory (rotation) are followed.
func TestFollowsAppendsAndNewFiles(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.journal")
	journaltest.Write(t, a, report(100, time.Now().Add(-time.Hour), bootA))
	cfg := testConfig(dir)
	cfg.StartAt = StartAtEnd
	r := start(t, cfg, componenttest.NewNopHost(), nil, nil)
	time.Sleep(300 * time.Millisecond) // let it settle at the end
	journaltest.Write(t, a, report(101, time.Now(), bootA))
	eventually(t, "appended kill", func() bool { return r.logs.LogRecordCount() == 1 })
	journaltest.Write(t, filepath.Join(dir, "b.journal"), report(102, time.Now().Add(time.Second), bootA))
	eventually(t, "kill in a new file", func() bool { return r.logs.LogRecordCount() == 2 })
	assert.Equal(t, map[int64]int{101: 1, 102: 1}, pids(logRecords(r.logs)))
	eventually(t, "metrics total 2", func() bool { return lastTotal(r.metrics) == 2 })
}

// On reaching the end the receiver reopens the journal to unmap what it
// read; reading goes on right after the last entry: nothing skipped,
// nothing twice.
func TestReopensJournalAfterCatchingUp(t *testing.T) {
	defer func(n, idle int) { reopenAfter, reopenIdleAfter = n, idle }(reopenAfter, reopenIdleAfter)
	reopenAfter, reopenIdleAfter = 1000, 1 // reopen on reaching the end
	dir := t.TempDir()
	a := filepath.Join(dir, "a.journal")
	journaltest.Write(t, a, append(report(700, t0, bootA), report(701, t0.Add(time.Second), bootA)...))
	core, logged := observer.New(zap.DebugLevel)
	r := startLogging(t, testConfig(dir), componenttest.NewNopHost(), nil, nil, zap.New(core))
	eventually(t, "2 kills", func() bool { return r.logs.LogRecordCount() == 2 })
	eventually(t, "a reopen", func() bool { return logged.FilterMessageSnippet("Reopened the journal").Len() > 0 })
	journaltest.Write(t, a, report(702, t0.Add(2*time.Second), bootA))
	journaltest.Write(t, filepath.Join(dir, "b.journal"), report(703, t0.Add(3*time.Second), bootA))
	eventually(t, "4 kills", func() bool { return r.logs.LogRecordCount() == 4 })
	eventually(t, "a second reopen", func() bool { return logged.FilterMessageSnippet("Reopened the journal").Len() > 1 })
	journaltest.Write(t, a, report(704, t0.Add(4*time.Second), bootA))
	eventually(t, "5 kills", func() bool { return r.logs.LogRecordCount() == 5 })
	r.stop()
	assert.Equal(t, map[int64]int{700: 1, 701: 1, 702: 1, 703: 1, 704: 1}, pids(logRecords(r.logs)))
	assert.Zero(t, logged.FilterMessageSnippet("failed").Len()+logged.FilterMessageSnippet("vanished").Len())
}

// Mid-read, every reopenAfter entries, the same: every kill before and
// after the reopens is read once.
func TestReopensJournalWhileCatchingUp(t *testing.T) {
	defer func(n, idle int) { reopenAfter, reopenIdleAfter = n, idle }(reopenAfter, reopenIdleAfter)
	reopenAfter, reopenIdleAfter = batchEntries, 1<<30
	dir := t.TempDir()
	var entries []journaltest.Entry
	for i := 0; len(entries) < 5*batchEntries; i++ {
		at := t0.Add(time.Duration(len(entries)) * time.Millisecond)
		if i%1000 == 999 {
			entries = append(entries, report(800+i/1000, at, bootA)...)
			continue
		}
		entries = append(entries, journaltest.Entry{Message: fmt.Sprintf("eth0: renamed from tmp%05d", i), Time: at, BootID: bootA, Hostname: hostName})
	}
	journaltest.Write(t, filepath.Join(dir, "system.journal"), entries)
	core, logged := observer.New(zap.DebugLevel)
	r := startLogging(t, testConfig(dir), componenttest.NewNopHost(), nil, nil, zap.New(core))
	want := map[int64]int{}
	for _, e := range entries {
		var pid int64
		if _, err := fmt.Sscanf(e.Message, "Memory cgroup out of memory: Killed process %d", &pid); err == nil {
			want[pid] = 1
		}
	}
	eventually(t, "every kill", func() bool { return r.logs.LogRecordCount() >= len(want) })
	r.stop()
	assert.Equal(t, want, pids(logRecords(r.logs)))
	assert.GreaterOrEqual(t, logged.FilterMessageSnippet("Reopened the journal").Len(), 4)
}

// The next consumer refuses for a while: reading pauses, nothing is lost,
// nothing is sent twice.
func TestConsumerRefusesThenAccepts(t *testing.T) {
	dir := t.TempDir()
	var entries []journaltest.Entry
	for i := 0; i < 5; i++ {
		entries = append(entries, report(200+i, t0.Add(time.Duration(i)*time.Second), bootA)...)
	}
	journaltest.Write(t, filepath.Join(dir, "a.journal"), entries)
	logs := &flakyLogs{failures: 4}
	r := start(t, testConfig(dir), componenttest.NewNopHost(), logs, nil)
	eventually(t, "5 kills after the consumer recovers", func() bool { return logs.sink.LogRecordCount() == 5 })
	eventually(t, "metrics total 5", func() bool { return lastTotal(r.metrics) == 5 })
	r.stop()
	assert.Equal(t, map[int64]int{200: 1, 201: 1, 202: 1, 203: 1, 204: 1}, pids(logRecords(&logs.sink)))
	metadatatest.AssertEqualOomkillReceiverDeliveryRetries(t, r.tel, []metricdata.DataPoint[int64]{{Value: 4}}, metricdatatest.IgnoreTimestamp())
}

// A corrupted journal file beside a good one: the good file's kills are all
// read, the receiver keeps running.
func TestCorruptedJournalFile(t *testing.T) {
	dir := t.TempDir()
	var good, bad []journaltest.Entry
	for i := 0; i < 3; i++ {
		good = append(good, report(300+i, t0.Add(time.Duration(i)*time.Second), bootA)...)
		bad = append(bad, report(400+i, t0.Add(time.Hour+time.Duration(i)*time.Second), bootA)...)
	}
	journaltest.Write(t, filepath.Join(dir, "good.journal"), good)
	badPath := filepath.Join(dir, "bad.journal")
	journaltest.Write(t, badPath, bad)
	corrupt(t, badPath)

	r := start(t, testConfig(dir), componenttest.NewNopHost(), nil, nil)
	eventually(t, "the good file's 3 kills", func() bool {
		p := pids(logRecords(r.logs))
		return p[300] == 1 && p[301] == 1 && p[302] == 1
	})
	// Entries after the damage are still read, and so is a later append.
	eventually(t, "the kill after the damaged one", func() bool { return pids(logRecords(r.logs))[402] == 1 })
	journaltest.Write(t, filepath.Join(dir, "good.journal"), report(500, t0.Add(2*time.Hour), bootA))
	eventually(t, "a kill appended later", func() bool { return pids(logRecords(r.logs))[500] == 1 })
	for pid, n := range pids(logRecords(r.logs)) {
		assert.Equal(t, 1, n, "pid %d", pid)
	}
	// The damaged entry cannot be read: it is counted and logged, not lost silently.
	metadatatest.AssertEqualOomkillReceiverReadErrors(t, r.tel, []metricdata.DataPoint[int64]{{Value: 1}}, metricdatatest.IgnoreTimestamp())
}

// A process with write access to /dev/kmsg can put any line in the journal
// under the kernel transport: journald tags it with the writer's identifier,
// and the receiver must not count it as a kill.
func TestIgnoresLinesWrittenToKmsgByProcesses(t *testing.T) {
	dir := t.TempDir()
	entries := report(600, t0, bootA)
	for _, e := range report(601, t0.Add(time.Second), bootA) {
		e.Identifier = "evil" // as journald tags "evil: ..." written to /dev/kmsg
		entries = append(entries, e)
	}
	entries = append(entries, report(602, t0.Add(2*time.Second), bootA)...)
	journaltest.Write(t, filepath.Join(dir, "system.journal"), entries)

	r := start(t, testConfig(dir), componenttest.NewNopHost(), nil, nil)
	eventually(t, "the kernel's 2 kills", func() bool { return len(logRecords(r.logs)) == 2 })
	r.stop()
	assert.Equal(t, map[int64]int{600: 1, 602: 1}, pids(logRecords(r.logs)))
	// Each forged line that could touch the parser is counted: invoker, summary, victim.
	metadatatest.AssertEqualOomkillReceiverForeignLines(t, r.tel, []metricdata.DataPoint[int64]{{Value: 3}}, metricdatatest.IgnoreTimestamp())
}

// corrupt garbles the journal object holding the victim line of pid 401,
// as a torn write or a bad disk would: its object header and the start of
// its payload.
func corrupt(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	i := bytes.Index(b, []byte("MESSAGE=Memory cgroup out of memory: Killed process 401 "))
	require.Positive(t, i, "victim line of pid 401 not found in %s", path)
	for j := i - 64; j < i+24; j++ {
		b[j] ^= 0x5a
	}
	require.NoError(t, os.WriteFile(path, b, 0o640))
}

// A missing journal directory stops startup with a message saying what to
// fix, instead of reading as "no OOM kills".
func TestMissingJournalDirectory(t *testing.T) {
	cfg := testConfig(filepath.Join(t.TempDir(), "nope"))
	f := NewFactory()
	lr, err := f.CreateLogs(context.Background(), metadatatest.NewSettings(componenttest.NewTelemetry()), cfg, &nopLogs{})
	require.NoError(t, err)
	err = lr.Start(context.Background(), componenttest.NewNopHost())
	require.ErrorContains(t, err, "no journal directory")
	require.ErrorContains(t, err, "journal.directory")
	require.NoError(t, lr.Shutdown(context.Background()))
}

// A storage ID that names no extension fails startup clearly.
func TestMissingStorageExtension(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.StorageID = &storageID
	f := NewFactory()
	lr, err := f.CreateLogs(context.Background(), metadatatest.NewSettings(componenttest.NewTelemetry()), cfg, &nopLogs{})
	require.NoError(t, err)
	err = lr.Start(context.Background(), componenttest.NewNopHost())
	require.ErrorContains(t, err, `storage "file_storage/test": no such extension`)
	require.NoError(t, lr.Shutdown(context.Background()))
}

// A receiver that has seen nothing exports every counter at 0, so a
// dashboard shows a healthy node as 0 rather than as no data.
func TestCountersExportedAtZero(t *testing.T) {
	r := start(t, testConfig(t.TempDir()), componenttest.NewNopHost(), nil, nil)
	zero := []metricdata.DataPoint[int64]{{Value: 0}}
	for name, assertEqual := range map[string]func(*testing.T, *componenttest.Telemetry, []metricdata.DataPoint[int64], ...metricdatatest.Option){
		"checkpoint_gaps":          metadatatest.AssertEqualOomkillReceiverCheckpointGaps,
		"counter_attributed_kills": metadatatest.AssertEqualOomkillReceiverCounterAttributedKills,
		"counter_only_kills":       metadatatest.AssertEqualOomkillReceiverCounterOnlyKills,
		"delivery_retries":         metadatatest.AssertEqualOomkillReceiverDeliveryRetries,
		"entries_read":             metadatatest.AssertEqualOomkillReceiverEntriesRead,
		"foreign_lines":            metadatatest.AssertEqualOomkillReceiverForeignLines,
		"kills":                    metadatatest.AssertEqualOomkillReceiverKills,
		"late_log_kills":           metadatatest.AssertEqualOomkillReceiverLateLogKills,
		"outcome_unobservable":     metadatatest.AssertEqualOomkillReceiverOutcomeUnobservable,
		"overflow_kills":           metadatatest.AssertEqualOomkillReceiverOverflowKills,
		"read_errors":              metadatatest.AssertEqualOomkillReceiverReadErrors,
		"series_expired":           metadatatest.AssertEqualOomkillReceiverSeriesExpired,
		"unattributed_kills":       metadatatest.AssertEqualOomkillReceiverUnattributedKills,
		"unrecognized_lines":       metadatatest.AssertEqualOomkillReceiverUnrecognizedLines,
	} {
		t.Run(name, func(t *testing.T) { assertEqual(t, r.tel, zero, metricdatatest.IgnoreTimestamp()) })
	}
}
