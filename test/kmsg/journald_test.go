//go:build linux

package kmsg

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

const (
	journaldBinary = "/lib/systemd/systemd-journald"
	journaldSocket = "/run/systemd/journal/socket"
)

// journald is a real systemd-journald of the test's own, reading /dev/kmsg
// into /run/log/journal.
type journald struct {
	t   *testing.T
	cmd *exec.Cmd
}

// newJournald needs a machine where no journald runs: these tests stop and
// start it. What the test created is removed at the end.
func newJournald(t *testing.T) *journald {
	t.Helper()
	if _, err := os.Stat(journaldBinary); err != nil {
		testutil.SkipOrFail(t, journaldBinary+" is missing: install the Debian package systemd (.ci/run does)")
	}
	if pid, ok := journaldPid(); ok {
		testutil.SkipOrFail(t, "a systemd-journald runs on this machine (pid "+pid+"); this test starts and stops its own (run it under the heavy lock, with no other suite's journald running)")
	}
	var made []string
	for _, d := range []string{"/run/log/journal", "/run/systemd/journal"} {
		if _, err := os.Stat(d); os.IsNotExist(err) {
			made = append(made, d)
		}
	}
	j := &journald{t: t}
	t.Cleanup(func() {
		j.stop(syscall.SIGTERM)
		for _, d := range made {
			_ = os.RemoveAll(d)
		}
	})
	return j
}

func journaldPid() (string, bool) {
	exes, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, exe := range exes {
		if target, err := os.Readlink(exe); err == nil && filepath.Base(target) == "systemd-journald" {
			return filepath.Base(filepath.Dir(exe)), true
		}
	}
	return "", false
}

// start runs journald and waits until it has recorded a fresh marker, so
// that everything the kernel printed before is in the journal.
func (j *journald) start() {
	j.t.Helper()
	require.NoError(j.t, os.MkdirAll("/run/systemd/journal", 0o755))
	j.cmd = exec.Command(journaldBinary)
	require.NoError(j.t, j.cmd.Start())
	marker := fmt.Sprintf("otelcol-oomkill kmsg test: journald marker %d", time.Now().UnixNano())
	writeKmsg(j.t, marker)
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _ := exec.Command("journalctl", "-D", "/run/log/journal", "-k", "-q", "--no-pager", "-o", "cat", "-n", "50").CombinedOutput()
		if strings.Contains(string(out), marker) {
			return
		}
		require.True(j.t, time.Now().Before(deadline), "journald did not record the marker: %s", out)
		time.Sleep(100 * time.Millisecond)
	}
}

// stop ends journald; its journal files and socket file stay, as on a
// machine whose journald stopped.
func (j *journald) stop(sig syscall.Signal) {
	if j.cmd == nil {
		return
	}
	_ = j.cmd.Process.Signal(sig)
	_ = j.cmd.Wait()
	j.cmd = nil
}

// One real kill read both ways, at once: from /dev/kmsg and from the
// journal journald wrote. Both collectors send the same kill: same
// oom.kill.id (boot ID, the kernel's µs, pid), same body and pod and
// container, the same time to within the clocks' rounding.
func TestSameKillEitherSource(t *testing.T) {
	requireMachine(t)
	j := newJournald(t)
	j.start()
	cg := newCgroups(t)
	fromKmsg, fromJournal := startSink(t), startSink(t)
	a := newCollector(t, kmsgReceiver, t.TempDir(), fromKmsg)
	b := newCollector(t, "source: journal\nstart_at: end\n", t.TempDir(), fromJournal)
	a.start()
	b.start()

	ctr := cg.container(1)
	pid := oomKills(t, ctr, 1, 0)[0]
	a.eventually("the kill read from /dev/kmsg", 30*time.Second, func() bool { return len(fromKmsg.received()) == 1 })
	b.eventually("the kill read from the journal", 30*time.Second, func() bool { return len(fromJournal.received()) == 1 })
	k, jk := fromKmsg.received()[0], fromJournal.received()[0]
	assert.Equal(t, int64(pid), k.pid)
	assert.Equal(t, jk.killID, k.killID, "oom.kill.id")
	assert.Equal(t, jk.body, k.body)
	assert.Equal(t, jk.podUID, k.podUID)
	assert.Equal(t, jk.ctrID, k.ctrID)
	assert.Equal(t, ctr.id, k.ctrID)
	assert.WithinDuration(t, jk.time, k.time, 5*time.Millisecond, "the kernel's time, by either way")
	t.Logf("kill %s of pid %d at %s (kmsg) / %s (journal)", k.killID, pid, k.time.Format(time.RFC3339Nano), jk.time.Format(time.RFC3339Nano))
}

// source: auto, tried as a new user would on a machine whose journald
// stopped: the journal files are still there, the socket file too, but
// nothing writes them. auto reads /dev/kmsg and counts the kill. With
// journald back, auto reads the journal, resuming after the kmsg
// checkpoint's time; with journald stopped again, /dev/kmsg once more.
// Each kill is counted once over the three runs, which share a checkpoint.
func TestAutoFollowsTheLiveLog(t *testing.T) {
	requireMachine(t)
	j := newJournald(t)
	j.start()
	j.stop(syscall.SIGTERM)
	_, err := os.Stat(journaldSocket)
	require.NoError(t, err, "journald left its socket file")
	files, _ := filepath.Glob("/run/log/journal/*/*.journal")
	require.NotEmpty(t, files, "journald left its journal files")
	c, err := net.Dial("unixgram", journaldSocket)
	if err == nil {
		_ = c.Close()
	}
	require.Error(t, err, "nothing listens on the socket")

	cg := newCgroups(t)
	ctr := cg.container(0)
	sink := startSink(t)
	col := newCollector(t, "source: auto\nstart_at: end\n", t.TempDir(), sink)
	total := func() float64 { return col.metric(false, "container_oom_kill_count_total", nil) }

	col.start()
	assert.Regexp(t, `source: auto reads /dev/kmsg.*refuses messages: no journald runs`, col.log())
	oomKills(t, ctr, 1, 0)
	col.eventually("the kill, from /dev/kmsg", 30*time.Second, func() bool { return total() == 1 })
	col.stop(syscall.SIGTERM)

	j.start()
	col.start()
	assert.Regexp(t, `source: auto reads the journal.*accepts messages`, col.log())
	assert.Contains(t, col.log(), "Resuming after checkpoint", "after /dev/kmsg's last line, by the kernel's stamp of it")
	oomKills(t, ctr, 1, 0)
	col.eventually("the second kill, from the journal", 30*time.Second, func() bool { return total() == 2 })
	col.stop(syscall.SIGTERM)

	j.stop(syscall.SIGKILL)
	col.start()
	assert.Contains(t, col.log(), "Resuming after checkpoint", "after the journal's last line, by the kernel's stamp of it")
	oomKills(t, ctr, 1, 0)
	col.eventually("the third kill, from /dev/kmsg again", 30*time.Second, func() bool { return total() == 3 })
	time.Sleep(2 * time.Second)
	assert.Equal(t, 3.0, total(), "no kill counted twice across the switches")
	assert.Len(t, sink.received(), 3)
}
