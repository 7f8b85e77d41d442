package oomkillreceiver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/journaltest"
)

// The memory context travels from real journal files to the log record:
// a cgroup v2 report whose statistics are one message of many lines, a
// system OOM's Mem-Info, and what a real journald stored of a real 6.1
// kill in the kernel lab. The counter's series carry none of it.
func TestMemoryContextOnLogRecords(t *testing.T) {
	dir := t.TempDir()
	journaltest.Write(t, filepath.Join(dir, "a.journal"), append(
		kernelFixture(t, "memory/v5.4-memcg-v2.txt", t0, bootA),
		kernelFixture(t, "memory/v6.1-global-meminfo.txt", t0.Add(time.Minute), bootA)...))
	exported, err := os.ReadFile(filepath.Join("..", "..", "testdata", "journal", "kernellab", "6.1.0-57-cloud-amd64", "systemd_burstable_worker.export"))
	require.NoError(t, err)
	journaltest.WriteExport(t, filepath.Join(dir, "b.journal"), exported)

	r := start(t, testConfig(dir), componenttest.NewNopHost(), nil, nil)
	eventually(t, "3 kills", func() bool { return r.logs.LogRecordCount() == 3 })
	eventually(t, "metrics total 3", func() bool { return lastTotal(r.metrics) == 3 })
	r.stop()

	byPID := map[int64]map[string]any{}
	for _, lr := range logRecords(r.logs) {
		pid, _ := lr.Attributes().Get("process.pid")
		byPID[pid.Int()] = lr.Attributes().AsRaw()
	}
	v2 := byPID[5001]
	for k, want := range map[string]any{
		"oom.memory.usage_bytes": int64(262144 << 10), "oom.memory.limit_bytes": int64(262144 << 10), "oom.memory.failcnt": int64(0),
		"oom.memory.swap.usage_bytes": int64(4096 << 10), "oom.memory.anon_bytes": int64(188743680), "oom.memory.file_bytes": int64(75497472),
		"oom.memory.shmem_bytes": int64(67108864), "oom.memory.sock_bytes": int64(262144), "oom.memory.slab_bytes": int64(1949696),
		"oom.memory.kernel_stack_bytes": int64(147456), "oom.tasks.count": int64(2), "oom.tasks.largest.name": "uwsgi",
		"oom.tasks.largest.pid": int64(5001), "oom.tasks.largest.rss_bytes": int64(47000 * os.Getpagesize()),
		"oom.victim.rss_share": 188000.0 / 262144,
	} {
		assert.Equal(t, want, v2[k], k)
	}
	for _, k := range []string{"oom.memory.kernel_bytes", "oom.memory.memsw.usage_bytes", "oom.system.free_bytes", "oom.group.id"} {
		assert.NotContains(t, v2, k, "not printed by this kernel")
	}

	sys := byPID[61234]
	pg := int64(os.Getpagesize())
	for k, want := range map[string]any{
		"oom.system.free_bytes": 12709 * pg, "oom.system.ram_bytes": 2097018 * pg,
		"oom.system.swap.free_bytes": int64(0), "oom.system.swap.total_bytes": int64(0), "oom.tasks.count": int64(2),
	} {
		assert.Equal(t, want, sys[k], k)
	}
	assert.NotContains(t, sys, "oom.memory.usage_bytes")

	lab := byPID[111]
	for k, want := range map[string]any{
		"oom.memory.usage_bytes": int64(8192 << 10), "oom.memory.anon_bytes": int64(8208384), "oom.memory.kernel_bytes": int64(180224),
		"oom.memory.swap.limit_bytes": int64(9007199254740988 << 10), "oom.tasks.count": int64(3), "oom.tasks.largest.name": "dd",
	} {
		assert.Equal(t, want, lab[k], k)
	}

	// The counter's data points: the same three attributes as ever.
	for _, md := range r.metrics.AllMetrics() {
		rms := md.ResourceMetrics()
		for i := 0; i < rms.Len(); i++ {
			ms := rms.At(i).ScopeMetrics().At(0).Metrics()
			for j := 0; j < ms.Len(); j++ {
				dps := ms.At(j).Sum().DataPoints()
				for d := 0; d < dps.Len(); d++ {
					keys := []string{}
					for k := range dps.At(d).Attributes().All() {
						keys = append(keys, k)
					}
					assert.ElementsMatch(t, []string{"oom.constraint", "oom.container.outcome", "oom.source", "process.executable.name"}, keys)
				}
			}
		}
	}
}

// The records of one memory.oom.group kill share oom.group.id and say how
// many processes it killed; the first victim, read before the kernel named
// the group, is one of them.
func TestGroupKillIncident(t *testing.T) {
	dir := t.TempDir()
	journaltest.Write(t, filepath.Join(dir, "a.journal"), append(
		kernelFixture(t, "v6.6-group-kill.txt", t0, bootA),
		kernelFixture(t, "v6.6-group-kill.txt", t0.Add(time.Minute), bootA)...))
	r := start(t, testConfig(dir), componenttest.NewNopHost(), nil, nil)
	eventually(t, "6 kills", func() bool { return r.logs.LogRecordCount() == 6 })
	r.stop()
	ids := map[string]int{}
	for _, lr := range logRecords(r.logs) {
		id, ok := lr.Attributes().Get("oom.group.id")
		require.True(t, ok, "every process of a group kill: %v", lr.Attributes().AsRaw())
		size, _ := lr.Attributes().Get("oom.group.size")
		assert.Equal(t, int64(3), size.Int())
		ids[id.Str()]++
	}
	assert.Len(t, ids, 2, "two incidents")
	for _, n := range ids {
		assert.Equal(t, 3, n)
	}
}

// A read of the journal that ends on a member line of a group kill waits
// for the rest of the burst before delivering, so oom.group.size counts
// every member and the records go out together.
func TestGroupKillBurstIsNotSplit(t *testing.T) {
	defer func(d time.Duration) { groupSettle = d }(groupSettle)
	groupSettle = 2 * time.Second // the test appends the rest well within it
	dir := t.TempDir()
	j := filepath.Join(dir, "a.journal")
	entries := kernelFixture(t, "v6.6-group-kill.txt", time.Now(), bootA)
	split := 0
	for i, e := range entries {
		if strings.Contains(e.Message, "Killed process 5000 ") {
			split = i + 1
		}
	}
	require.NotZero(t, split)
	journaltest.Write(t, j, entries[:split]) // the leader, "Tasks in …", the first member
	r := start(t, testConfig(dir), componenttest.NewNopHost(), nil, nil)
	time.Sleep(500 * time.Millisecond)
	assert.Zero(t, r.logs.LogRecordCount(), "no delivery while the burst may go on")
	journaltest.Write(t, j, entries[split:])
	eventually(t, "3 kills", func() bool { return r.logs.LogRecordCount() == 3 })
	r.stop()
	assert.Len(t, r.logs.AllLogs(), 1, "one delivery")
	for _, lr := range logRecords(r.logs) {
		size, ok := lr.Attributes().Get("oom.group.size")
		require.True(t, ok)
		assert.Equal(t, int64(3), size.Int())
	}
}

// Real group kills (Debian's 6.1 and 6.12 in the kernel lab, cgroup v2,
// memory.oom.group=1, 4 processes, memory.events oom_group_kill=1): all 4
// records share one oom.group.id and say 4.
func TestGroupKillIncidentRealKernels(t *testing.T) {
	for _, rel := range []string{"6.1.0-57-cloud-amd64", "6.12.117+deb12-cloud-amd64"} {
		t.Run(rel, func(t *testing.T) {
			dir := t.TempDir()
			exported, err := os.ReadFile(filepath.Join("..", "..", "testdata", "journal", "kernellab", rel, "cgroupfs_burstable_group.export"))
			require.NoError(t, err)
			journaltest.WriteExport(t, filepath.Join(dir, "a.journal"), exported)
			r := start(t, testConfig(dir), componenttest.NewNopHost(), nil, nil)
			eventually(t, "4 kills", func() bool { return r.logs.LogRecordCount() == 4 })
			r.stop()
			ids := map[string]bool{}
			for _, lr := range logRecords(r.logs) {
				id, ok := lr.Attributes().Get("oom.group.id")
				require.True(t, ok, "%v", lr.Attributes().AsRaw())
				ids[id.Str()] = true
				size, _ := lr.Attributes().Get("oom.group.size")
				assert.Equal(t, int64(4), size.Int())
			}
			assert.Len(t, ids, 1)
		})
	}
}
