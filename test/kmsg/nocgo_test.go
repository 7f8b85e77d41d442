//go:build linux

package kmsg

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

// The distribution built with CGO_ENABLED=0 (make build-nocgo) is one
// static binary that reads /dev/kmsg, and says, when asked for the
// journal, that the journal needs the cgo build. It only reads the kernel
// log (from the oldest record held), so it needs root but no lock.
func TestCollectorWithoutCgo(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.SkipOrFail(t, "reading /dev/kmsg needs root (CAP_SYSLOG) here")
	}
	bin := testutil.RepoPath(t, "bin/otelcol-oomkill-nocgo")
	if _, serr := os.Stat(bin); serr != nil {
		testutil.SkipOrFail(t, bin+" is missing: run `make build-nocgo` (make cross does)")
	}
	out, err := exec.Command("file", "-L", bin).Output()
	if err == nil {
		assert.Contains(t, string(out), "statically linked", "no library needed")
	}

	sink := startSink(t)
	col := newCollector(t, "source: kmsg\nstart_at: beginning\n", t.TempDir(), sink)
	col.bin = bin
	col.start()
	col.eventually("records read from /dev/kmsg", 30*time.Second, func() bool {
		return col.metric(true, "otelcol_oomkill_receiver_entries_read", nil) > 0
	})
	t.Logf("read %v records of the kernel log", col.metric(true, "otelcol_oomkill_receiver_entries_read", nil))
	col.stop(syscall.SIGTERM)

	journal := newCollector(t, "source: journal\n", t.TempDir(), sink)
	cmd := exec.Command(bin, "--config", journal.cfg)
	done := make(chan struct{})
	var b []byte
	go func() { b, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the collector did not stop when its journal source could not start")
	}
	require.Error(t, err)
	assert.True(t, strings.Contains(string(b), "the oomkill receiver reads the systemd journal through libsystemd and runs only on Linux, built with cgo"), "%s", tail(string(b), 3000))
}
