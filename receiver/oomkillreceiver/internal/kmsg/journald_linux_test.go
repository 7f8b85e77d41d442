//go:build linux && realkernel

package kmsg

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

// A real OOM kill on this machine, its report read from /dev/kmsg by this
// package and from the journal by journald: record for record the same
// text (the multi-line "Memory cgroup stats" record included), the same
// kernel µs, the same boot, the same kernel-or-process verdict. Root and a
// journald of its own (none may run); machine-wide, so behind the
// realkernel tag: `make kmsg-test` runs it under the heavy lock.
func TestRecordsAsJournaldStoresThem(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.SkipOrFail(t, "needs root: memory cgroups, journald, writing /dev/kmsg")
	}
	memcg := "/sys/fs/cgroup/memory"
	if _, err := os.Stat(memcg + "/memory.limit_in_bytes"); err != nil {
		testutil.SkipOrFail(t, "needs the cgroup v1 memory controller at "+memcg+" (the kernel lab covers cgroup v2)")
	}
	startJournald(t)

	r, err := Open(Options{})
	require.NoError(t, err)
	defer r.Close()
	_, err = r.SeekEnd()
	require.NoError(t, err)

	tag := fmt.Sprintf("kmsg-journald-%d", time.Now().UnixNano())
	begin, end := "otelcol-oomkill "+tag+" begin", "otelcol-oomkill "+tag+" end"
	writeLine(t, begin)
	dir := filepath.Join(memcg, "oomkill-kmsg-test-"+tag, "kubepods", "burstable", "pod4a0c6c57-6b0e-4c8e-9a51-0d1e2f3a4b01", strings.Repeat("ab", 32))
	require.NoError(t, os.MkdirAll(dir, 0o755))
	t.Cleanup(func() {
		for d := dir; d != memcg; d = filepath.Dir(d) {
			_ = os.Remove(d)
		}
	})
	require.NoError(t, os.WriteFile(filepath.Join(dir, "memory.limit_in_bytes"), []byte(strconv.Itoa(64<<20)), 0o644))
	out, err := exec.Command("bash", "-c", `echo $$ > "$1/cgroup.procs"; python3 -c 'b = bytearray(200 << 20)' & wait $!; echo $?`, "hog", dir).Output()
	require.NoError(t, err)
	require.Equal(t, "137\n", string(out), "killed by SIGKILL")
	// A process's lines: one with a backslash and a tab, one of two lines
	// in one write (one record, as the kernel keeps multi-line messages:
	// on cgroup v2 the "Memory cgroup stats" dump is one; on this kind of
	// host, cgroup v1, the report has none).
	writeLine(t, `a forged line with a \ backslash and a tab	here`)
	writeLine(t, "a record of two lines:\nthe second")
	writeLine(t, end)

	// The device, from the begin marker to the end marker.
	var fromKmsg []Record
	inside := false
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, err := r.Next()
		require.NoError(t, err)
		if !ok {
			require.True(t, time.Now().Before(deadline), "the end marker did not come")
			time.Sleep(10 * time.Millisecond)
			continue
		}
		rec := r.Record()
		if rec.Message == end {
			break
		}
		if inside {
			fromKmsg = append(fromKmsg, rec)
		}
		inside = inside || rec.Message == begin
	}

	// The journal, the same span.
	var fromJournal []map[string]string
	deadline = time.Now().Add(20 * time.Second)
	for {
		export, err := exec.Command("journalctl", "-D", "/run/log/journal", "-k", "-o", "export", "--no-pager", "--since", "-10min").Output()
		require.NoError(t, err)
		fromJournal = between(exportEntries(t, export), begin, end)
		if fromJournal != nil {
			break
		}
		require.True(t, time.Now().Before(deadline), "journald did not record the end marker")
		time.Sleep(100 * time.Millisecond)
	}

	require.Len(t, fromJournal, len(fromKmsg), "records between the markers")
	multi, kernel := 0, 0
	for i, rec := range fromKmsg {
		e := fromJournal[i]
		assert.Equal(t, e["MESSAGE"], rec.Message, "record %d", i)
		assert.Equal(t, e["_SOURCE_MONOTONIC_TIMESTAMP"], strconv.FormatUint(rec.Usec, 10), "record %d: kernel µs", i)
		assert.Equal(t, e["_BOOT_ID"], r.BootID(), "record %d: boot", i)
		assert.Equal(t, e["SYSLOG_IDENTIFIER"] == "kernel", rec.FromKernel(), "record %d: the kernel's or a process's", i)
		assert.Equal(t, e["PRIORITY"], strconv.FormatUint(uint64(rec.Level), 10), "record %d: level", i)
		if strings.Contains(rec.Message, "\n") {
			multi++
		}
		if rec.FromKernel() {
			kernel++
		}
	}
	assert.Positive(t, multi, "a multi-line record among them")
	assert.GreaterOrEqual(t, kernel, 3, "the OOM report's records: invoker, summary, victim at least")
	t.Logf("%d records between the markers, %d of them the kernel's (a real OOM report), %d multi-line, read the same from /dev/kmsg and from journald's journal", len(fromKmsg), kernel, multi)
}

func writeLine(t *testing.T, s string) {
	t.Helper()
	require.NoError(t, os.WriteFile("/dev/kmsg", []byte(s+"\n"), 0))
}

// between returns the entries strictly between the markers, or nil until
// the end marker is there.
func between(entries []map[string]string, begin, end string) []map[string]string {
	start := -1
	for i, e := range entries {
		switch e["MESSAGE"] {
		case begin:
			start = i
		case end:
			if start >= 0 {
				out := entries[start+1 : i]
				if out == nil {
					out = []map[string]string{}
				}
				return out
			}
		}
	}
	return nil
}

// startJournald starts a systemd-journald of the test's own and stops it,
// removing the journal it wrote, at the end.
func startJournald(t *testing.T) {
	t.Helper()
	exes, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, exe := range exes {
		if target, err := os.Readlink(exe); err == nil && filepath.Base(target) == "systemd-journald" {
			testutil.SkipOrFail(t, "a systemd-journald runs ("+exe+"): this test runs its own")
		}
	}
	var made []string
	for _, d := range []string{"/run/log/journal", "/run/systemd/journal"} {
		if _, err := os.Stat(d); os.IsNotExist(err) {
			made = append(made, d)
		}
	}
	require.NoError(t, os.MkdirAll("/run/systemd/journal", 0o755))
	cmd := exec.Command("/lib/systemd/systemd-journald")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		for _, d := range made {
			_ = os.RemoveAll(d)
		}
	})
	for i := 0; i < 100; i++ {
		if _, err := os.Stat("/run/systemd/journal/socket"); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("journald did not start")
}
