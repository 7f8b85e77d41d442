package oomkillreceiver

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/journaltest"
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

// BenchmarkCatchUpManyContainers is BenchmarkCatchUp with one kill in 5
// kernel entries, each in a container of its own (a churning node's
// history): what bounded series make cheap. Reports entries/s and kills/s.
func BenchmarkCatchUpManyContainers(b *testing.B) {
	const kills = 20_000
	dir := b.TempDir()
	first := time.Now().Add(-time.Hour)
	var batch []journaltest.Entry
	for i := 0; i < kills; i++ {
		at := first.Add(time.Duration(i) * time.Millisecond)
		memcg := fmt.Sprintf("/kubepods/burstable/pod%08x-0000-4000-8000-%012x/%064x", i, i, i+1)
		batch = append(batch, journaltest.Entries(journaltest.OOMReport("php-fpm", 1000+i, 33, memcg), at, bootA, hostName)...)
		batch = append(batch, journaltest.Entry{Message: fmt.Sprintf("cni0: port %d(veth%08x) entered forwarding state", i%64, i), Time: at, BootID: bootA, Hostname: hostName})
		batch = append(batch, journaltest.Entry{Message: fmt.Sprintf("cni0: port %d(veth%08x) entered disabled state", i%64, i), Time: at, BootID: bootA, Hostname: hostName})
	}
	journaltest.Write(b, filepath.Join(dir, "system.journal"), batch)
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		cfg := testConfig(dir)
		cfg.StorageID = &storageID
		if os.Getenv("NO_OUTCOME") != "" {
			cfg.Outcome.CgroupRoot = ""
		}
		h := fileStorage(b, b.TempDir())
		b.StartTimer()
		r := start(b, cfg, h, nil, nil)
		for r.logs.LogRecordCount() < kills {
			time.Sleep(time.Millisecond)
		}
		b.StopTimer()
		r.stop()
		stopStorage(h)
		b.StartTimer()
	}
	b.ReportMetric(float64(len(batch))*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
	b.ReportMetric(float64(kills)*float64(b.N)/b.Elapsed().Seconds(), "kills/s")
}
