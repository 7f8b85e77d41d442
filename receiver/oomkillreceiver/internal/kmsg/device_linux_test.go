//go:build linux

package kmsg

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/kernlog"
)

// These tests read this machine's own /dev/kmsg; they write nothing to it
// (test/kmsg does, with real OOM kills, under the machine-wide lock).

// openDevice opens the real device, or explains why this machine cannot:
// CI runs as root, so there a failure to open is a failure.
func openDevice(t *testing.T) *Reader {
	t.Helper()
	r, err := Open(Options{})
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skipf("this test reads the machine's /dev/kmsg: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func TestDeviceReadsTheKernelLog(t *testing.T) {
	r := openDevice(t)
	boot, err := ReadBootID(BootIDFile)
	require.NoError(t, err)
	assert.Equal(t, boot, r.BootID())
	require.NoError(t, r.SeekHead())
	var seqs []uint64
	kernel, last := 0, uint64(0)
	for {
		ok, err := r.Next()
		require.NoError(t, err)
		if !ok {
			break
		}
		_, err = r.Text()
		require.NoError(t, err, "every record parses")
		seq := r.Record().Seq
		if len(seqs) > 0 {
			assert.Equal(t, seqs[len(seqs)-1]+1, seq, "sequence numbers follow each other")
		}
		usec := r.Stamp().MonotonicUsec
		assert.GreaterOrEqual(t, usec+1_000_000, last, "kernel time hardly goes back")
		last = usec
		seqs = append(seqs, seq)
		if r.Origin().Kernel {
			kernel++
		}
	}
	require.NotEmpty(t, seqs)
	assert.Positive(t, kernel)
	// The newest record was printed before now, and after boot.
	assert.False(t, r.Stamp().Time.After(time.Now()))
	assert.Equal(t, r.Stamp().Time, r.Origin().Stored)
	t.Logf("%d records held, seq %d..%d, %d of them the kernel's", len(seqs), seqs[0], seqs[len(seqs)-1], kernel)
}

// A reader opened again after a position reads on from the record after it.
func TestDeviceResumesAfterPosition(t *testing.T) {
	r := openDevice(t)
	require.NoError(t, r.SeekHead())
	var positions []kernlog.Position
	var seqs []uint64
	for {
		ok, err := r.Next()
		require.NoError(t, err)
		if !ok {
			break
		}
		p, err := r.Position()
		require.NoError(t, err)
		positions, seqs = append(positions, p), append(seqs, r.Record().Seq)
	}
	require.GreaterOrEqual(t, len(positions), 3)
	saved := positions[len(positions)-3]

	again := openDevice(t)
	found, err := again.SeekAfter(saved)
	require.NoError(t, err)
	assert.True(t, found)
	ok, err := again.Next()
	require.NoError(t, err, "nothing lost")
	require.True(t, ok)
	assert.Equal(t, seqs[len(seqs)-3]+1, again.Record().Seq)

	// At the end, a Wait blocks until cancelled: no record, no wake-up.
	newest, err := again.SeekEnd()
	require.NoError(t, err)
	assert.False(t, newest.IsZero())
	ok, err = again.Next()
	require.NoError(t, err)
	if ok {
		t.Skip("the kernel printed a record meanwhile; the wait cannot be checked now")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	require.NoError(t, again.Wait(ctx))
	assert.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond, "blocked until the deadline")
}

func TestOpenMissingDevice(t *testing.T) {
	_, err := Open(Options{Device: t.TempDir() + "/kmsg"})
	require.ErrorContains(t, err, "mount the node's /dev/kmsg (hostPath, type CharDevice)")
}

// Without CAP_SYSLOG (and CAP_SYSADMIN, which the kernel still accepts in
// its place) a process may not read the kernel log where
// kernel.dmesg_restrict=1; the error says what to grant. Run in a child
// whose capabilities setpriv(1) took away.
func TestOpenWithoutCapSyslog(t *testing.T) {
	if os.Getenv("KMSG_TEST_CHILD") == "open" {
		_, err := Open(Options{})
		require.Error(t, err)
		os.Stdout.WriteString("ERROR: " + err.Error() + "\n")
		return
	}
	b, err := os.ReadFile("/proc/sys/kernel/dmesg_restrict")
	require.NoError(t, err)
	if strings.TrimSpace(string(b)) != "1" {
		t.Skip("kernel.dmesg_restrict is 0 here: anyone may read the kernel log")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to drop capabilities from a child that would otherwise have them")
	}
	setpriv, err := exec.LookPath("setpriv")
	require.NoError(t, err, "setpriv (util-linux)")
	cmd := exec.Command(setpriv, "--bounding-set", "-syslog,-sys_admin", "--inh-caps", "-syslog,-sys_admin", "--",
		os.Args[0], "-test.run=^TestOpenWithoutCapSyslog$", "-test.count=1")
	cmd.Env = append(os.Environ(), "KMSG_TEST_CHILD=open")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "ERROR: cannot open /dev/kmsg: operation not permitted; reading the kernel log needs CAP_SYSLOG (kernel.dmesg_restrict is 1 on this node)")
}
