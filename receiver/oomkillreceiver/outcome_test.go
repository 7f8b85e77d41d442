package oomkillreceiver

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/journaltest"
)

// fakeNode is a cgroup v2 filesystem and a host procfs as files, so a
// victim can be kept "still exiting" for as long as a test needs. The real
// files are read on real kernels by test/e2e and the kernel lab.
type fakeNode struct {
	t                    *testing.T
	cgroupRoot, procRoot string
}

func newFakeNode(t *testing.T) *fakeNode {
	n := &fakeNode{t: t, cgroupRoot: t.TempDir(), procRoot: t.TempDir()}
	n.write(n.cgroupRoot, "cgroup.controllers", "cpu memory pids\n")
	// kthreadd: this procfs shows the host's pid namespace.
	n.write(n.procRoot, "2/stat", "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0")
	return n
}

func (n *fakeNode) write(root, rel, content string) {
	p := filepath.Join(root, rel)
	require.NoError(n.t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(n.t, os.WriteFile(p, []byte(content), 0o644))
}

func (n *fakeNode) populated(cgroup string, yes bool) {
	v := "0"
	if yes {
		v = "1"
	}
	n.write(n.cgroupRoot, cgroup+"/cgroup.events", "populated "+v+"\nfrozen 0\n")
}

func (n *fakeNode) process(pid int, comm string) {
	n.write(n.procRoot, strconv.Itoa(pid)+"/stat", fmt.Sprintf("%d (%s) R 1 1 1 0 -1 4194560 0 0 0 0", pid, comm))
}

func (n *fakeNode) reaped(pid int) {
	require.NoError(n.t, os.RemoveAll(filepath.Join(n.procRoot, strconv.Itoa(pid))))
}

func (n *fakeNode) config(journalDir string) *Config {
	cfg := testConfig(journalDir)
	cfg.Outcome.CgroupRoot, cfg.Outcome.ProcRoot = n.cgroupRoot, n.procRoot
	cfg.Outcome.Delay, cfg.Outcome.MaxAge, cfg.Outcome.Settle = time.Minute, 2*time.Minute, 10*time.Millisecond
	return cfg
}

func outcomesByPID(records []plog.LogRecord) map[int64]string {
	out := map[int64]string{}
	for _, lr := range records {
		pid, _ := lr.Attributes().Get("process.pid")
		o, _ := lr.Attributes().Get("oom.container.outcome")
		out[pid.Int()] = o.Str()
	}
	return out
}

const testMemcg = "/kubepods/burstable/pod" + testPod + "/" + testCtr

// A kill whose victim is still exiting holds only itself: a later kill
// whose container is visibly empty is delivered meanwhile, and the slow
// one as soon as its victim is gone.
func TestSlowVictimHoldsOnlyItsOwnKill(t *testing.T) {
	n := newFakeNode(t)
	other := "/kubepods/burstable/pod" + testPod + "/" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	n.populated(testMemcg, true)
	n.process(4001, "php-fpm")
	n.populated(other, false)
	dir := t.TempDir()
	now := time.Now()
	entries := journaltest.Entries(journaltest.OOMReport("php-fpm", 4001, 33, testMemcg), now, bootA, hostName)
	entries = append(entries, journaltest.Entries(journaltest.OOMReport("java", 4002, 0, other), now.Add(time.Millisecond), bootA, hostName)...)
	journaltest.Write(t, filepath.Join(dir, "a.journal"), entries)

	r := start(t, n.config(dir), host{}, nil, nil)
	eventually(t, "the emptied container's kill", func() bool { return len(logRecords(r.logs)) == 1 })
	assert.Equal(t, map[int64]string{4002: "exited"}, outcomesByPID(logRecords(r.logs)))
	time.Sleep(200 * time.Millisecond)
	assert.Len(t, logRecords(r.logs), 1, "the worker is still exiting: its kill waits")

	n.reaped(4001)
	eventually(t, "the worker's kill", func() bool { return len(logRecords(r.logs)) == 2 })
	assert.Equal(t, map[int64]string{4001: "survived", 4002: "exited"}, outcomesByPID(logRecords(r.logs)))
	assert.Equal(t, int64(2), lastTotal(r.metrics))
}

// A kill held when the collector stops is saved with the checkpoint,
// whose position is past it: the next run decides and delivers it, once,
// and the run after that neither reads nor sends it again.
func TestHeldKillAcrossRestarts(t *testing.T) {
	n := newFakeNode(t)
	n.populated(testMemcg, true)
	n.process(4242, "php-fpm")
	dir, state := t.TempDir(), t.TempDir()
	journaltest.Write(t, filepath.Join(dir, "a.journal"), journaltest.Entries(journaltest.OOMReport("php-fpm", 4242, 33, testMemcg), time.Now(), bootA, hostName))

	run := func(during func(*running)) *running {
		h := fileStorage(t, state)
		cfg := n.config(dir)
		cfg.StorageID = &storageID
		r := start(t, cfg, h, nil, nil)
		during(r)
		r.stop()
		stopStorage(h)
		return r
	}
	r := run(func(*running) { time.Sleep(500 * time.Millisecond) })
	assert.Empty(t, logRecords(r.logs), "the victim is still exiting")

	r = run(func(r *running) {
		time.Sleep(300 * time.Millisecond)
		assert.Empty(t, logRecords(r.logs), "still exiting after the restart")
		n.reaped(4242)
		eventually(t, "the held kill", func() bool { return len(logRecords(r.logs)) == 1 })
	})
	assert.Equal(t, map[int64]string{4242: "survived"}, outcomesByPID(logRecords(r.logs)))
	assert.Equal(t, int64(1), lastTotal(r.metrics))

	r = run(func(r *running) {
		eventually(t, "the restored counter", func() bool { return lastTotal(r.metrics) == 1 })
		time.Sleep(300 * time.Millisecond)
	})
	assert.Empty(t, logRecords(r.logs), "delivered once")
	assert.Equal(t, int64(1), lastTotal(r.metrics))
}

// outcome.max_pending bounds the held kills: reading pauses while it is
// reached, and goes on once a held kill is decided.
func TestMaxPendingPausesReading(t *testing.T) {
	n := newFakeNode(t)
	n.populated(testMemcg, true)
	dir := t.TempDir()
	file := filepath.Join(dir, "a.journal")
	killAt := func(pid int) []journaltest.Entry {
		n.process(pid, "php-fpm")
		return journaltest.Entries(journaltest.OOMReport("php-fpm", pid, 33, testMemcg), time.Now(), bootA, hostName)
	}
	journaltest.Write(t, file, killAt(5000))
	cfg := n.config(dir)
	cfg.Outcome.MaxPending = 1
	r := start(t, cfg, host{}, nil, nil)
	entriesRead := func() int64 {
		m, err := r.tel.GetMetric("otelcol_oomkill_receiver_entries_read")
		if err != nil {
			return 0
		}
		return m.Data.(metricdata.Sum[int64]).DataPoints[0].Value
	}
	eventually(t, "the first report read", func() bool { return entriesRead() == 3 })
	journaltest.Write(t, file, append(killAt(5001), killAt(5002)...))
	time.Sleep(300 * time.Millisecond)
	assert.Equal(t, int64(3), entriesRead(), "one kill held, max_pending 1: reading paused")
	assert.Empty(t, logRecords(r.logs))

	n.reaped(5000)
	eventually(t, "reading goes on", func() bool { return entriesRead() == 9 })
	n.reaped(5001)
	n.reaped(5002)
	eventually(t, "every kill", func() bool { return len(logRecords(r.logs)) == 3 })
	assert.Equal(t, map[int64]string{5000: "survived", 5001: "survived", 5002: "survived"}, outcomesByPID(logRecords(r.logs)))
}
