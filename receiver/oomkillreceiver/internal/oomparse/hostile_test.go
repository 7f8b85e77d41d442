package oomparse

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/kubecgroup"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/journaltest"
)

// report61 renders a 6.x memcg report for a victim with the given comm.
func report61(comm string, pid int, memcg string) []string {
	return journaltest.OOMReport(comm, pid, 0, memcg)
}

func msgs(lines []string) []Message {
	now := time.Date(2026, 11, 28, 1, 0, 0, 0, time.UTC)
	out := make([]Message, len(lines))
	for i, l := range lines {
		out[i] = Message{Text: l, Time: now.Add(time.Duration(i) * time.Millisecond), BootID: "b"}
	}
	return out
}

// A process names itself (≤15 bytes, any bytes but NUL) to imitate the
// kernel's delimiters; nothing about its pid, uid or cgroup may change.
func TestHostileComm(t *testing.T) {
	memcg := "/kubepods/burstable/pod" + podUID + "/" + ctrID
	for _, comm := range []string{
		"a,pid=1,uid=0", ") total-vm:1kB", "x,task=evil", "evil oom-kill:", " invoked oom-k", "Killed process",
		",task_memcg=/", "), UID 0, total", "x) score 1 or s", "1 (a) total-vm:", "", " ", "(", ")", "\\x0a",
		"kworker/0:1", "php-fpm: pool w",
	} {
		t.Run(comm, func(t *testing.T) {
			require.LessOrEqual(t, len(comm), 15)
			kills, stats := feedAll(msgs(report61(comm, 4321, memcg)))
			require.Len(t, kills, 1)
			k := kills[0]
			assert.Equal(t, int64(4321), k.PID)
			assert.Equal(t, comm, k.Comm)
			assert.Equal(t, OptInt{0, true}, k.UID)
			assert.Equal(t, memcg, k.TaskMemcg)
			assert.Equal(t, podUID, k.Cgroup.PodUID)
			assert.Equal(t, ctrID, k.Cgroup.ContainerID)
			assert.Equal(t, comm, k.Invoker.Comm)
			assert.True(t, k.Attributed)
			assert.Equal(t, uint64(0), stats.Unrecognized)
		})
	}
}

// Old formats delimit the name the same way.
func TestHostileCommOldFormats(t *testing.T) {
	memcg := "/kubepods/pod" + podUID + "/" + ctrID
	for _, comm := range []string{") total-vm:1kB", "), UID 0, total", "x) score 1 or s"} {
		lines := []string{
			comm + " invoked oom-killer: gfp_mask=0xd0, order=0, oom_score_adj=0",
			comm + " cpuset=" + ctrID + " mems_allowed=0",
			"Task in " + memcg + " killed as a result of limit of " + memcg,
			"Memory cgroup out of memory: Kill process 55 (" + comm + ") score 1000 or sacrifice child",
			"Killed process 55 (" + comm + "), UID 7, total-vm:1000kB, anon-rss:500kB, file-rss:0kB, shmem-rss:0kB",
		}
		kills, _ := feedAll(msgs(lines))
		require.Len(t, kills, 1, comm)
		assert.Equal(t, int64(55), kills[0].PID)
		assert.Equal(t, comm, kills[0].Comm)
		assert.Equal(t, OptInt{7, true}, kills[0].UID)
		assert.Equal(t, ctrID, kills[0].Cgroup.ContainerID)
	}
}

// A report whose victim line never came must not lend its cgroup to a later
// bare (rate-limited) victim line.
func TestTruncatedReportLendsNothing(t *testing.T) {
	memcg := "/kubepods/burstable/pod" + podUID + "/" + ctrID
	lines := report61("python3", 100, memcg)[:2] // victim line lost
	lines = append(lines, "Memory cgroup out of memory: Killed process 200 (python3) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0")
	kills, _ := feedAll(msgs(lines))
	require.Len(t, kills, 1)
	assert.False(t, kills[0].Attributed)
	assert.Equal(t, kubecgroup.KindOther, kills[0].Cgroup.Kind)
}

// Nothing carries across a reboot, even when the next line would match.
func TestBootChangeDropsReport(t *testing.T) {
	memcg := "/kubepods/burstable/pod" + podUID + "/" + ctrID
	m := msgs(report61("python3", 100, memcg))
	m[2].BootID = "other-boot"
	kills, stats := feedAll(m)
	require.Len(t, kills, 1)
	assert.False(t, kills[0].Attributed)
	assert.Equal(t, "other-boot", kills[0].BootID)
	assert.Equal(t, uint64(1), stats.Expired)
}

// A report older than ReportTTL, or more than ReportMaxLines messages old,
// expires before a pre-5.0 victim line could borrow it.
func TestReportExpiry(t *testing.T) {
	memcg := "/kubepods/pod" + podUID + "/" + ctrID
	lines := []string{
		"app invoked oom-killer: gfp_mask=0xd0, order=0, oom_score_adj=0",
		"Task in " + memcg + " killed as a result of limit of " + memcg,
		"Killed process 9 (app) total-vm:1kB, anon-rss:1kB, file-rss:0kB",
	}
	t.Run("time", func(t *testing.T) {
		m := msgs(lines)
		m[2].Time = m[1].Time.Add(31 * time.Second)
		kills, stats := feedAll(m)
		require.Len(t, kills, 1)
		assert.False(t, kills[0].Attributed)
		assert.Equal(t, uint64(1), stats.Expired)
	})
	t.Run("lines", func(t *testing.T) {
		a := NewAssembler(Options{ReportMaxLines: 10})
		m := msgs(lines)
		a.Feed(m[0])
		a.Feed(m[1])
		for i := 0; i < 11; i++ {
			a.Feed(Message{Text: "unrelated", Time: m[1].Time, BootID: "b"})
		}
		k, out := a.Feed(m[2])
		require.Equal(t, LineKill, out)
		assert.False(t, k.Attributed)
	})
	t.Run("within", func(t *testing.T) {
		m := msgs(lines)
		m[2].Time = m[1].Time.Add(29 * time.Second)
		kills, _ := feedAll(m)
		require.Len(t, kills, 1)
		assert.True(t, kills[0].Attributed)
	})
}

// Two full reports back to back each keep their own attribution.
func TestConsecutiveReports(t *testing.T) {
	other := "1f6a2c3e-0000-4e5f-9a0b-123456789abc"
	a := "/kubepods/burstable/pod" + podUID + "/" + ctrID
	b := "/kubepods/burstable/pod" + other + "/" + strings.Repeat("b", 64)
	kills, _ := feedAll(msgs(append(report61("one", 1, a), report61("two", 2, b)...)))
	require.Len(t, kills, 2)
	assert.Equal(t, podUID, kills[0].Cgroup.PodUID)
	assert.Equal(t, other, kills[1].Cgroup.PodUID)
	assert.Equal(t, "two", kills[1].Invoker.Comm)
}

// Huge lines are not parsed, but a huge OOM-looking line is counted.
func TestHugeLines(t *testing.T) {
	a := NewAssembler(Options{})
	_, out := a.Feed(Message{Text: strings.Repeat("x", 1<<20)})
	assert.Equal(t, LineIgnored, out)
	_, out = a.Feed(Message{Text: "Killed process 1 (x) " + strings.Repeat("x", 1<<20)})
	assert.Equal(t, LineUnrecognized, out)
	assert.Equal(t, uint64(1), a.Stats().Unrecognized)
}

// A victim line with fields a future kernel might add still counts, and the
// drift is visible.
func TestTrailerDrift(t *testing.T) {
	kills, stats := feedAll(msgs([]string{
		"Memory cgroup out of memory: Killed process 9 (app) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0 swap:12kB",
	}))
	require.Len(t, kills, 1)
	assert.Equal(t, int64(9), kills[0].PID)
	assert.Equal(t, uint64(1), stats.Unrecognized)
}

// Feeding irrelevant lines with a stale boot ID (as the receiver does to
// save a field read) changes nothing: the next relevant line still resets
// the report on a new boot.
func TestIrrelevantLinesIgnoreBoot(t *testing.T) {
	memcg := "/kubepods/burstable/pod" + podUID + "/" + ctrID
	a := NewAssembler(Options{})
	m := msgs(report61("python3", 100, memcg))
	require.False(t, a.Relevant("eth0: link up"))
	require.True(t, a.Relevant(m[2].Text))
	a.Feed(m[0])
	a.Feed(m[1])
	a.Feed(Message{Text: "eth0: link up", Time: m[1].Time, BootID: "b"})
	m[2].BootID = "rebooted"
	k, out := a.Feed(m[2])
	require.Equal(t, LineKill, out)
	assert.False(t, k.Attributed)
}
