package oomkillreceiver

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"

	"github.com/otelcol-oomkill/otelcol-oomkill/internal/journaltest"
)

// BenchmarkCatchUp reads a real journal file of 100k kernel entries, one
// OOM report per 1000 entries, from the beginning, until every kill has
// been delivered: the work a restart after downtime does. Reports
// entries/s; run with `make bench`.
func BenchmarkCatchUp(b *testing.B) {
	const entries, every = 100_000, 1000
	dir := b.TempDir()
	first := time.Now().Add(-time.Hour)
	var batch []journaltest.Entry
	kills := 0
	for i := 0; len(batch) < entries; i++ {
		at := first.Add(time.Duration(len(batch)) * time.Millisecond)
		if i%every == every-1 {
			batch = append(batch, report(100_000+i, at, bootA)...)
			kills++
			continue
		}
		batch = append(batch, journaltest.Entry{Message: fmt.Sprintf("cni0: port %d(veth%08x) entered forwarding state", i%64, i), Time: at, BootID: bootA, Hostname: hostName})
	}
	journaltest.Write(b, filepath.Join(dir, "system.journal"), batch)
	b.ResetTimer()
	for b.Loop() {
		r := start(b, testConfig(dir), componenttest.NewNopHost(), nil, nil)
		for r.logs.LogRecordCount() < kills {
			time.Sleep(time.Millisecond)
		}
		// Shutdown waits for the reader's pending journal wait (≤1s):
		// not part of catching up.
		b.StopTimer()
		r.stop()
		b.StartTimer()
	}
	b.ReportMetric(float64(len(batch))*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}
