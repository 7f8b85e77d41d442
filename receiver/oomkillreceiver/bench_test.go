package oomkillreceiver

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/journaltest"
)

// cpuClock sums the CPU time (user and system, all threads) this process
// spends while it runs: on a busy machine wall time measures the neighbours
// as much as the code, CPU time much less.
type cpuClock struct {
	total, since time.Duration
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (c *cpuClock) start() { c.since = processCPU() }
func (c *cpuClock) stop()  { c.total += processCPU() - c.since }

// report adds CPU ms per op to b's results.
func (c *cpuClock) report(b *testing.B) {
	b.ReportMetric(float64(c.total.Microseconds())/1000/float64(b.N), "cpu-ms/op")
}

// BenchmarkCatchUp reads a real journal file of 100k kernel entries, one
// OOM report per 1000 entries, from the beginning, until every kill has
// been delivered: the work a restart after downtime does. Reports
// entries/s and the process's CPU time per op; run with `make bench`.
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
	var cpu cpuClock
	b.ResetTimer()
	for b.Loop() {
		cpu.start()
		r := start(b, testConfig(dir), componenttest.NewNopHost(), nil, nil)
		for r.logs.LogRecordCount() < kills {
			time.Sleep(time.Millisecond)
		}
		// Shutting down is not part of catching up.
		b.StopTimer()
		cpu.stop()
		r.stop()
		b.StartTimer()
	}
	b.ReportMetric(float64(len(batch))*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
	cpu.report(b)
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
	var cpu cpuClock
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
		cpu.start()
		r := start(b, cfg, h, nil, nil)
		for r.logs.LogRecordCount() < kills {
			time.Sleep(time.Millisecond)
		}
		b.StopTimer()
		cpu.stop()
		r.stop()
		stopStorage(h)
		b.StartTimer()
	}
	b.ReportMetric(float64(len(batch))*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
	b.ReportMetric(float64(kills)*float64(b.N)/b.Elapsed().Seconds(), "kills/s")
	cpu.report(b)
}
