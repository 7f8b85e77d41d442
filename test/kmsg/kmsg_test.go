//go:build linux

// Package kmsg tests the built collector reading this machine's own
// /dev/kmsg (source: kmsg), with no journald involved: real OOM kills in
// kubelet-shaped memory cgroups (under a prefix of the test's own, removed
// after), a forged kill written into /dev/kmsg, SIGKILL restarts while
// kills land, and the kernel's ring buffer overrunning the reader. Root;
// machine-wide (it writes into the kernel log and makes OOM kills): run it
// under the heavy lock, as `make kmsg-test` does.
package kmsg

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"
)

const kmsgReceiver = `
source: kmsg
start_at: end
`

// Each kill is counted once, with its pod and container, from the device
// alone; a forged kill report written into /dev/kmsg by a process is not.
func TestLiveKillsFromTheDevice(t *testing.T) {
	requireMachine(t)
	cg := newCgroups(t)
	sink := startSink(t)
	col := newCollector(t, kmsgReceiver, t.TempDir(), sink)
	col.start()
	assert.Contains(t, col.log(), "Reading the kernel log from /dev/kmsg")

	ctrs := []container{cg.container(0), cg.container(1), cg.container(2)}
	want := map[int64]container{}
	for _, c := range ctrs {
		for _, pid := range oomKills(t, c, 1, 0) {
			want[int64(pid)] = c
		}
	}
	// What a process could write to fake a kill in a real container: the
	// kernel's own summary and victim lines, word for word.
	forged := ctrs[0]
	writeKmsg(t,
		"oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg="+forged.path+",task_memcg="+forged.path+",task=forged,pid=4242,uid=0",
		"<3>Memory cgroup out of memory: Killed process 4242 (forged) total-vm:221368kB, anon-rss:65024kB, file-rss:1628kB, shmem-rss:0kB, UID:0 pgtables:184kB oom_score_adj:0")

	col.eventually("three kills sent", 30*time.Second, func() bool { return len(sink.received()) >= 3 })
	col.eventually("the forged lines seen and ignored", 10*time.Second, func() bool {
		return col.metric(true, "otelcol_oomkill_receiver_foreign_lines", nil) >= 2
	})
	time.Sleep(time.Second) // nothing more may come
	got := sink.received()
	require.Len(t, got, 3, "one record per real kill, none for the forged one")
	for _, k := range got {
		c, ok := want[k.pid]
		require.True(t, ok, "a record for pid %d, which the test did not kill", k.pid)
		assert.Equal(t, c.podUID, k.podUID, "pod of pid %d", k.pid)
		assert.Equal(t, c.id, k.ctrID, "container of pid %d", k.pid)
		assert.True(t, k.attributed)
		assert.Contains(t, k.body, fmt.Sprintf("Killed process %d (python3)", k.pid))
		assert.Regexp(t, `^[0-9a-f]{32}$`, k.killID)
		assert.WithinDuration(t, time.Now(), k.time, time.Minute)
		assert.Equal(t, 1.0, col.metric(false, "container_oom_kill_count_total", map[string]string{"k8s_pod_uid": c.podUID, "container_id": c.id}))
	}
	assert.Equal(t, 3.0, col.metric(true, "otelcol_oomkill_receiver_kills", nil))
	assert.Zero(t, col.metric(true, "otelcol_oomkill_receiver_unrecognized_lines", nil))
}

// The collector SIGKILLed and restarted at random moments while kills land
// counts every kill exactly once: the checkpoint holds the boot and the
// record's sequence number, and a restart reads on after it.
func TestSIGKILLRestartsWhileKillsLand(t *testing.T) {
	requireMachine(t)
	cg := newCgroups(t)
	sink := startSink(t)
	state := t.TempDir()
	col := newCollector(t, kmsgReceiver, state, sink)
	col.start()

	const perContainer = 8
	ctrs := []container{cg.container(0), cg.container(1)}
	var wg sync.WaitGroup
	pids := make([][]int, len(ctrs))
	for i, c := range ctrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pids[i] = oomKills(t, c, perContainer, 1200*time.Millisecond)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	restarts := 0
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-time.After(time.Duration(500+rand.IntN(1500)) * time.Millisecond):
			col.stop(syscall.SIGKILL)
			restarts++
			col.start()
		}
	}
	t.Logf("%d SIGKILL restarts while %d kills landed", restarts, perContainer*len(ctrs))
	require.GreaterOrEqual(t, restarts, 3)

	total := float64(perContainer * len(ctrs))
	col.eventually("every kill counted", 60*time.Second, func() bool {
		return col.metric(false, "container_oom_kill_count_total", nil) >= total
	})
	time.Sleep(2 * time.Second)
	assert.Equal(t, total, col.metric(false, "container_oom_kill_count_total", nil), "exactly once")
	for i, c := range ctrs {
		assert.Equal(t, float64(perContainer), col.metric(false, "container_oom_kill_count_total", map[string]string{"container_id": c.id}), "container %d", i)
	}
	// Log records: at least once each, and a copy sent again after a
	// SIGKILL between delivery and checkpoint carries the same kill ID.
	byPid := map[int64][]kill{}
	for _, k := range sink.received() {
		byPid[k.pid] = append(byPid[k.pid], k)
	}
	for _, ps := range pids {
		for _, pid := range ps {
			ks := byPid[int64(pid)]
			require.NotEmpty(t, ks, "no record of pid %d", pid)
			for _, k := range ks[1:] {
				assert.Equal(t, ks[0].killID, k.killID, "a record sent again is the same kill")
			}
		}
	}
}

// The kernel's ring buffer overwrote records the collector had not read:
// while it was stopped (found from the checkpoint) and while it was
// frozen mid-run (the device says EPIPE). Both are counted as gaps and
// logged with the number of records lost, and reading goes on.
func TestRingBufferOverrun(t *testing.T) {
	requireMachine(t)
	cg := newCgroups(t)
	sink := startSink(t)
	state := t.TempDir()
	col := newCollector(t, kmsgReceiver, state, sink)
	col.start()
	ctr := cg.container(0)
	oomKills(t, ctr, 1, 0)
	col.eventually("the first kill", 30*time.Second, func() bool { return len(sink.received()) == 1 })
	col.stop(syscall.SIGTERM)

	saved := savedSeq(t, state)
	flood(t)
	oomKills(t, ctr, 1, 0)
	// Nothing is written between here and the start: what the buffer holds
	// now is what the collector finds.
	oldest := oldestSeq(t)
	require.Greater(t, oldest, saved+1, "the flood overwrote the records after the checkpoint")
	lostWhileStopped := oldest - saved - 1

	col.start()
	col.eventually("the kill after the flood", 30*time.Second, func() bool { return len(sink.received()) == 2 })
	assert.Contains(t, col.log(), fmt.Sprintf(`"%d kernel log lines lost: overwritten in the kernel's ring buffer before they were read (the collector was not reading)`, lostWhileStopped))
	assert.Equal(t, 1.0, col.metric(true, "otelcol_oomkill_receiver_checkpoint_gaps", nil))

	// Frozen: the collector holds its place in the device while the
	// buffer is overwritten; when it runs again its next read fails with
	// EPIPE and the kernel moves it to the oldest record held.
	time.Sleep(time.Second)
	newest := newestSeq(t)
	require.NoError(t, col.cmd.Process.Signal(syscall.SIGSTOP))
	flood(t)
	oldest = oldestSeq(t)
	require.NoError(t, col.cmd.Process.Signal(syscall.SIGCONT))
	lostWhileFrozen := oldest - newest - 1
	col.eventually("the second gap", 30*time.Second, func() bool {
		return col.metric(true, "otelcol_oomkill_receiver_checkpoint_gaps", nil) == 2
	})
	assert.Contains(t, col.log(), fmt.Sprintf(`"%d kernel log lines lost: overwritten in the kernel's ring buffer before they were read (the reader fell behind)`, lostWhileFrozen))
	oomKills(t, ctr, 1, 0)
	col.eventually("a kill after both gaps", 30*time.Second, func() bool { return len(sink.received()) == 3 })
	assert.Equal(t, 3.0, col.metric(false, "container_oom_kill_count_total", nil))
	t.Logf("lost while stopped: %d records; while frozen: %d", lostWhileStopped, lostWhileFrozen)
}

// savedSeq reads the kmsg sequence number in the receiver's checkpoint,
// from the file_storage extension's bbolt file.
func savedSeq(t *testing.T, state string) uint64 {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(state, "receiver_oomkill_*"))
	require.NoError(t, err)
	require.Len(t, files, 1, "one storage file in %s", state)
	db, err := bbolt.Open(files[0], 0o600, &bbolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	require.NoError(t, err)
	defer db.Close()
	var cp struct {
		Cursor string `json:"cursor"`
	}
	require.NoError(t, db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("default"))
		if b == nil {
			return fmt.Errorf("no bucket in %s", files[0])
		}
		return json.Unmarshal(b.Get([]byte("oomkill.checkpoint")), &cp)
	}))
	m := regexp.MustCompile(`^kmsg;b=[0-9a-f]{32};s=(\d+)$`).FindStringSubmatch(cp.Cursor)
	require.NotNil(t, m, "a kmsg cursor in the checkpoint: %q", cp.Cursor)
	seq, err := strconv.ParseUint(m[1], 10, 64)
	require.NoError(t, err)
	return seq
}

// flood writes twice the kernel's log buffer into /dev/kmsg.
func flood(t *testing.T) {
	t.Helper()
	size, _, errno := syscall.Syscall(syscall.SYS_SYSLOG, 10, 0, 0) // SYSLOG_ACTION_SIZE_BUFFER
	require.Zero(t, errno)
	line := "otelcol-oomkill kmsg test: flooding the ring buffer " + strings.Repeat("x", 900)
	lines := make([]string, 2*int(size)/len(line)+1)
	for i := range lines {
		lines[i] = line
	}
	writeKmsg(t, lines...)
	t.Logf("wrote %d records of %d bytes into a %d-byte buffer", len(lines), len(line), size)
}

// oldestSeq and newestSeq read the device as the kernel holds it now.
func oldestSeq(t *testing.T) uint64 {
	t.Helper()
	seqs := heldSeqs(t)
	return seqs[0]
}

func newestSeq(t *testing.T) uint64 {
	t.Helper()
	seqs := heldSeqs(t)
	return seqs[len(seqs)-1]
}

func heldSeqs(t *testing.T) []uint64 {
	t.Helper()
	fd, err := syscall.Open("/dev/kmsg", syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	require.NoError(t, err)
	defer syscall.Close(fd)
	buf := make([]byte, 1<<16)
	var seqs []uint64
	for {
		n, err := syscall.Read(fd, buf)
		if errors.Is(err, syscall.EAGAIN) {
			break
		}
		if errors.Is(err, syscall.EPIPE) {
			continue
		}
		require.NoError(t, err)
		f := strings.SplitN(string(buf[:n]), ",", 3)
		seq, err := strconv.ParseUint(f[1], 10, 64)
		require.NoError(t, err)
		seqs = append(seqs, seq)
	}
	require.NotEmpty(t, seqs)
	return seqs
}
