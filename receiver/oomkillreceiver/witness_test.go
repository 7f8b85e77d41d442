package oomkillreceiver

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/metadatatest"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/journaltest"
)

// These tests run the witness stage inside the receiver against counters
// of their own: plain files shaped like /proc/vmstat and a cgroup v1 memory
// hierarchy, which the test raises as the kernel would. Real kernels and
// real kills are in test/witness and test/kernellab.

// fakeKernel is a boot ID, a node counter and kubelet-shaped cgroups.
type fakeKernel struct {
	t              *testing.T
	dir, cgroupDir string
	mu             sync.Mutex
	node           int
	cgroups        map[string]int
	boot           string
}

func newFakeKernel(t *testing.T) *fakeKernel {
	k := &fakeKernel{t: t, dir: t.TempDir(), cgroups: map[string]int{}}
	k.cgroupDir = filepath.Join(k.dir, "cgroup")
	k.write("cgroup/memory/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
	k.newBoot(strings.Repeat("5", 32), time.Now().Add(-time.Hour))
	saved := kernelFiles
	kernelFiles = witnessFiles{vmstat: filepath.Join(k.dir, "vmstat"), bootID: filepath.Join(k.dir, "boot_id"), stat: filepath.Join(k.dir, "stat")}
	t.Cleanup(func() { kernelFiles = saved })
	return k
}

func (k *fakeKernel) write(rel, content string) {
	p := filepath.Join(k.dir, rel)
	require.NoError(k.t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(k.t, os.WriteFile(p, []byte(content), 0o644))
}

// newBoot: a reboot; every counter starts from zero.
func (k *fakeKernel) newBoot(boot string, at time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.boot = boot
	k.write("boot_id", fmt.Sprintf("%s-%s-%s-%s-%s\n", boot[:8], boot[8:12], boot[12:16], boot[16:20], boot[20:]))
	k.write("stat", fmt.Sprintf("cpu  1 2 3\nbtime %d\nprocesses 9\n", at.Unix()))
	k.node = 0
	for p := range k.cgroups {
		k.cgroups[p] = 0
		k.writeCgroup(p)
	}
	k.writeNode()
}

func (k *fakeKernel) writeNode() {
	k.write("vmstat", fmt.Sprintf("nr_free_pages 100\noom_kill %d\nthp_fault_alloc 0\n", k.node))
}

func (k *fakeKernel) writeCgroup(path string) {
	k.write("cgroup/memory"+path+"/memory.oom_control", fmt.Sprintf("oom_kill_disable 0\nunder_oom 0\noom_kill %d\n", k.cgroups[path]))
}

// container makes a kubelet-shaped container cgroup (and its pod's).
func (k *fakeKernel) container(n int) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	pod := fmt.Sprintf("/kubepods/burstable/pod%08d-0000-4000-8000-000000000000", n)
	ctr := fmt.Sprintf("%s/%064d", pod, n)
	for _, p := range []string{pod, ctr} {
		if _, ok := k.cgroups[p]; !ok {
			k.cgroups[p] = 0
			k.writeCgroup(p)
		}
	}
	return ctr
}

// kill counts a kill the way the kernel does, in cgroup path ("" outside
// any watched cgroup).
func (k *fakeKernel) kill(path string) time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.node++
	k.writeNode()
	if path != "" {
		k.cgroups[path]++
		k.writeCgroup(path)
	}
	return time.Now()
}

// witnessConfig reads the fake kernel with a short grace.
func (k *fakeKernel) witnessConfig(journalDir string) *Config {
	cfg := testConfig(journalDir)
	cfg.StartAt = StartAtEnd
	cfg.Witness = WitnessConfig{Enabled: true, PollInterval: 50 * time.Millisecond, Grace: 500 * time.Millisecond, MaxCgroups: 100}
	cfg.Outcome.CgroupRoot = k.cgroupDir
	cfg.Outcome.Delay = 0
	return cfg
}

// victimLine is what a 6.x kernel logs for a kill whose report it
// rate-limited: no cgroup.
func victimLine(pid int, at time.Time, boot string) journaltest.Entry {
	return journaltest.Entry{Message: fmt.Sprintf("Memory cgroup out of memory: Killed process %d (php-fpm) total-vm:1000kB, anon-rss:900kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:40kB oom_score_adj:0", pid), Time: at, BootID: boot, Hostname: hostName}
}

func fullReport(pid int, memcg string, at time.Time, boot string) []journaltest.Entry {
	return journaltest.Entries(journaltest.OOMReport("php-fpm", pid, 0, memcg), at, boot, hostName)
}

// counted is what the sinks hold per source and per container.
type counted struct {
	bySource    map[string]int64
	byContainer map[string]int64 // "" when no container
	records     map[string]int   // log records per oom.source
}

func countedBy(r *running) counted {
	c := counted{bySource: map[string]int64{}, byContainer: map[string]int64{}, records: map[string]int{}}
	forEachPoint(latest(r.metrics.AllMetrics()), func(res pcommon.Resource, dp pmetric.NumberDataPoint) {
		src, _ := dp.Attributes().Get("oom.source")
		ctr, _ := res.Attributes().Get("container.id")
		c.bySource[src.Str()] += dp.IntValue()
		c.byContainer[ctr.Str()] += dp.IntValue()
	})
	for _, lr := range logRecords(r.logs) {
		src, _ := lr.Attributes().Get("oom.source")
		c.records[src.Str()]++
	}
	return c
}

func idOf(path string) string { return path[strings.LastIndexByte(path, '/')+1:] }

func TestWitnessCountsKillsTheLogDidNotShow(t *testing.T) {
	k := newFakeKernel(t)
	a, b := k.container(1), k.container(2)
	dir := t.TempDir()
	core, logs := observer.New(zap.InfoLevel)
	r := startLogging(t, k.witnessConfig(dir), componenttest.NewNopHost(), nil, nil, zap.New(core))

	// A's kill is in the log; B's and one outside any pod are not.
	at := k.kill(a)
	journaltest.Write(t, filepath.Join(dir, "a.journal"), fullReport(4000, a, at, k.boot))
	k.kill(b)
	k.kill("")

	eventually(t, "three kills", func() bool {
		c := countedBy(r)
		return c.bySource["log"]+c.bySource["kernel_counter"] == 3
	})
	time.Sleep(time.Second) // nothing more may come
	c := countedBy(r)
	assert.Equal(t, map[string]int64{"log": 1, "kernel_counter": 2}, c.bySource)
	assert.Equal(t, map[string]int64{idOf(a): 1, idOf(b): 1, "": 1}, c.byContainer)
	assert.Equal(t, map[string]int{"log": 1, "kernel_counter": 2}, c.records)

	for _, lr := range logRecords(r.logs) {
		if src, _ := lr.Attributes().Get("oom.source"); src.Str() != "kernel_counter" {
			continue
		}
		_, hasPID := lr.Attributes().Get("process.pid")
		_, hasName := lr.Attributes().Get("process.executable.name")
		assert.False(t, hasPID, "no pid is invented")
		assert.False(t, hasName, "no process name is invented")
		assert.Contains(t, lr.Body().Str(), "that its log did not show")
		id, _ := lr.Attributes().Get("oom.kill.id")
		assert.Len(t, id.Str(), 32)
	}
	forEachPoint(latest(r.metrics.AllMetrics()), func(_ pcommon.Resource, dp pmetric.NumberDataPoint) {
		if src, _ := dp.Attributes().Get("oom.source"); src.Str() == "kernel_counter" {
			_, hasName := dp.Attributes().Get("process.executable.name")
			assert.False(t, hasName, "a counter's data point names no process")
		}
	})
	assert.Equal(t, 1, logs.FilterMessageSnippet("its log did not show").Len(), "the first such kill is logged once, at warning level")
	assert.Equal(t, zap.WarnLevel, logs.FilterMessageSnippet("its log did not show").All()[0].Level)
	metadatatest.AssertEqualOomkillReceiverCounterOnlyKills(t, r.tel, []metricdata.DataPoint[int64]{{Value: 2}}, metricdatatest.IgnoreTimestamp())
}

func TestWitnessAttributesRateLimitedKills(t *testing.T) {
	k := newFakeKernel(t)
	a, b := k.container(1), k.container(2)
	dir := t.TempDir()
	r := start(t, k.witnessConfig(dir), componenttest.NewNopHost(), nil, nil)

	// B's report is printed; A's three kills right after are rate-limited.
	var entries []journaltest.Entry
	entries = append(entries, fullReport(5000, b, k.kill(b), k.boot)...)
	for i := 0; i < 3; i++ {
		entries = append(entries, victimLine(5001+i, k.kill(a), k.boot))
	}
	journaltest.Write(t, filepath.Join(dir, "a.journal"), entries)

	eventually(t, "four kills", func() bool { return lastTotal(r.metrics) == 4 })
	time.Sleep(time.Second)
	c := countedBy(r)
	assert.Equal(t, map[string]int64{"log": 4}, c.bySource, "none counted twice")
	assert.Equal(t, map[string]int64{idOf(a): 3, idOf(b): 1}, c.byContainer, "the rate-limited kills on A")
	for _, lr := range logRecords(r.logs) {
		at, _ := lr.Attributes().Get("oom.attributed")
		assert.True(t, at.Bool())
	}
	metadatatest.AssertEqualOomkillReceiverCounterAttributedKills(t, r.tel, []metricdata.DataPoint[int64]{{Value: 3}}, metricdatatest.IgnoreTimestamp())
}

func TestWitnessLateLineIsNotCountedTwice(t *testing.T) {
	k := newFakeKernel(t)
	a := k.container(1)
	dir := t.TempDir()
	r := start(t, k.witnessConfig(dir), componenttest.NewNopHost(), nil, nil)

	at := k.kill(a)
	eventually(t, "the counters' kill", func() bool { return countedBy(r).bySource["kernel_counter"] == 1 })
	// Its line comes after the grace (a journal that lagged far behind).
	journaltest.Write(t, filepath.Join(dir, "a.journal"), fullReport(6000, a, at, k.boot))
	// A later kill's line still counts.
	at2 := k.kill(a)
	journaltest.Write(t, filepath.Join(dir, "a.journal"), fullReport(6001, a, at2, k.boot))
	eventually(t, "the next kill", func() bool { return countedBy(r).bySource["log"] == 1 })
	time.Sleep(time.Second)
	assert.Equal(t, map[string]int64{"kernel_counter": 1, "log": 1}, countedBy(r).bySource)
	metadatatest.AssertEqualOomkillReceiverLateLogKills(t, r.tel, []metricdata.DataPoint[int64]{{Value: 1}}, metricdatatest.IgnoreTimestamp())
}

// Kills while the collector is down are reconciled at start: the counters'
// last values are in the checkpoint. Kills of another boot are not.
func TestWitnessAcrossRestartsAndReboots(t *testing.T) {
	k := newFakeKernel(t)
	a := k.container(1)
	dir, state := t.TempDir(), t.TempDir()
	journalFile := filepath.Join(dir, "a.journal")
	journaltest.Write(t, journalFile, []journaltest.Entry{{Message: "boot", Time: time.Now(), BootID: k.boot, Hostname: hostName}})
	run := func(during func(*running)) counted {
		h := fileStorage(t, state)
		cfg := k.witnessConfig(dir)
		cfg.StorageID = &storageID
		r := start(t, cfg, h, nil, nil)
		during(r)
		c := countedBy(r)
		r.stop()
		stopStorage(h)
		return c
	}
	run(func(r *running) {
		at := k.kill(a)
		journaltest.Write(t, journalFile, fullReport(7000, a, at, k.boot))
		eventually(t, "first kill", func() bool { return lastTotal(r.metrics) == 1 })
	})
	// Down: one kill logged, one not.
	at := k.kill(a)
	journaltest.Write(t, journalFile, fullReport(7001, a, at, k.boot))
	k.kill(a)
	c := run(func(r *running) {
		eventually(t, "both", func() bool { return lastTotal(r.metrics) == 3 })
		time.Sleep(time.Second)
	})
	assert.Equal(t, map[string]int64{"log": 2, "kernel_counter": 1}, c.bySource)

	// Down again, and the node reboots: two kills since boot, one logged.
	k.newBoot(strings.Repeat("6", 32), time.Now())
	at = k.kill(a)
	journaltest.Write(t, journalFile, fullReport(100, a, at, k.boot))
	k.kill("")
	c = run(func(r *running) {
		eventually(t, "after the reboot", func() bool { return lastTotal(r.metrics) == 5 })
		time.Sleep(time.Second)
	})
	assert.Equal(t, map[string]int64{"log": 3, "kernel_counter": 2}, c.bySource)
	assert.Equal(t, map[string]int64{idOf(a): 4, "": 1}, c.byContainer)
}

func TestWitnessOffOnKernelsWithoutCounters(t *testing.T) {
	k := newFakeKernel(t)
	k.write("vmstat", "nr_free_pages 100\n") // 3.10: no oom_kill
	core, logs := observer.New(zap.InfoLevel)
	r := startLogging(t, k.witnessConfig(t.TempDir()), componenttest.NewNopHost(), nil, nil, zap.New(core))
	r.stop()
	assert.Equal(t, 1, logs.FilterMessageSnippet("witness is off").Len())
}

// While the counters cannot be read, kills read from the log are kept and
// matched at the next reading: their rises are not counted again.
func TestWitnessDefersWhileCountersUnreadable(t *testing.T) {
	k := newFakeKernel(t)
	a := k.container(1)
	dir := t.TempDir()
	core, logs := observer.New(zap.InfoLevel)
	r := startLogging(t, k.witnessConfig(dir), componenttest.NewNopHost(), nil, nil, zap.New(core))
	time.Sleep(200 * time.Millisecond) // the baseline is read

	vm := kernelFiles.vmstat
	at := k.kill(a)
	require.NoError(t, os.Rename(vm, vm+".away")) // unreadable
	journaltest.Write(t, filepath.Join(dir, "a.journal"), fullReport(8000, a, at, k.boot))
	eventually(t, "the log's kill", func() bool { return lastTotal(r.metrics) == 1 })
	require.Eventually(t, func() bool {
		return logs.FilterMessageSnippet("Reading the kernel's OOM-kill counters failed").Len() > 0
	},
		5*time.Second, 10*time.Millisecond)
	require.NoError(t, os.Rename(vm+".away", vm))
	time.Sleep(2 * time.Second) // a reading, then past the grace
	assert.Equal(t, map[string]int64{"log": 1}, countedBy(r).bySource, "not counted again from the counters")
}
