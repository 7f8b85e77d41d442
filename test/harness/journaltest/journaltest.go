// Package journaltest writes real journal files for tests: entries in the
// journal export format, converted by Debian's systemd-journal-remote.
package journaltest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

// RemoteBinary converts the export format to journal files.
const RemoteBinary = "/lib/systemd/systemd-journal-remote"

// Require fails the test when a tool the test needs is missing: in CI
// (CI=true) that is a broken setup; elsewhere the test is skipped, saying
// what to install.
func Require(t testing.TB, path, debianPackage string) {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		return
	}
	testutil.SkipOrFail(t, fmt.Sprintf("%s is missing: install the Debian package %s (.ci/run does)", path, debianPackage))
}

// Entry is one kernel journal entry.
type Entry struct {
	Message  string
	Time     time.Time
	BootID   string // 32 hex digits
	Hostname string
	// Monotonic is the entry's time since boot; zero means Time minus
	// BootTime. Within one boot the journal orders entries by it, so it
	// must agree with Time across files. SourceMonotonic, when set, is the
	// kernel's own stamp (journald's _SOURCE_MONOTONIC_TIMESTAMP).
	Monotonic       time.Duration
	SourceMonotonic time.Duration
	// Transport and Identifier default to the kernel's.
	Transport  string
	Identifier string
}

// BootTime is when every test boot began, for entries without Monotonic.
var BootTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Export renders entries in the journal export format.
func Export(entries []Entry) []byte {
	var b bytes.Buffer
	for _, e := range entries {
		if e.Monotonic == 0 {
			e.Monotonic = e.Time.Sub(BootTime)
		}
		tr, id := e.Transport, e.Identifier
		if tr == "" {
			tr = "kernel"
		}
		if id == "" {
			id = "kernel"
		}
		fmt.Fprintf(&b, "__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=%s\n_TRANSPORT=%s\nSYSLOG_IDENTIFIER=%s\nPRIORITY=3\nSYSLOG_FACILITY=0\n",
			e.Time.UnixMicro(), e.Monotonic.Microseconds(), e.BootID, tr, id)
		if e.Hostname != "" {
			fmt.Fprintf(&b, "_HOSTNAME=%s\n", e.Hostname)
		}
		if e.SourceMonotonic > 0 {
			fmt.Fprintf(&b, "_SOURCE_MONOTONIC_TIMESTAMP=%d\n", e.SourceMonotonic.Microseconds())
		}
		WriteField(&b, "MESSAGE", e.Message)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// ExportWriter is where WriteField writes (a bytes.Buffer, a bufio.Writer).
type ExportWriter interface {
	io.Writer
	io.ByteWriter
	io.StringWriter
}

// WriteField writes a text field, or the binary form the export format
// requires for values holding a newline. Write errors are the writer's to
// keep: a bytes.Buffer has none, a bufio.Writer returns them from Flush.
func WriteField(b ExportWriter, name, value string) {
	if !strings.Contains(value, "\n") {
		fmt.Fprintf(b, "%s=%s\n", name, value)
		return
	}
	_, _ = b.WriteString(name)
	_ = b.WriteByte('\n')
	n := uint64(len(value))
	for i := 0; i < 8; i++ {
		_ = b.WriteByte(byte(n >> (8 * i)))
	}
	_, _ = b.WriteString(value)
	_ = b.WriteByte('\n')
}

// Write appends entries to the journal file at path (created if missing;
// the name must end in .journal).
func Write(t testing.TB, path string, entries []Entry) {
	t.Helper()
	WriteExport(t, path, Export(entries))
}

// FromKernelFixture turns a kernel fixture (one message per line, "# "
// comments, "@|TEXT" continuing the message before on a new line) into
// entries 1 ms apart starting at start.
func FromKernelFixture(t testing.TB, path string, start time.Time, bootID, host string) []Entry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Entry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "@|"); ok && len(out) > 0 {
			out[len(out)-1].Message += "\n" + rest
			continue
		}
		if line == "" || strings.HasPrefix(line, "# ") || strings.HasPrefix(line, "@") {
			continue
		}
		at := start.Add(time.Duration(len(out)) * time.Millisecond)
		out = append(out, Entry{Message: line, Time: at, BootID: bootID, Hostname: host})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// WriteExport appends export-format data as is (e.g. a real journald's
// `journalctl -o export`) to the journal file at path.
func WriteExport(t testing.TB, path string, export []byte) {
	t.Helper()
	Require(t, RemoteBinary, "systemd-journal-remote")
	cmd := exec.Command(RemoteBinary, "-o", path, "-")
	cmd.Stdin = bytes.NewReader(export)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("systemd-journal-remote: %v\n%s", err, out)
	}
}

// OOMReport is what a 6.x kernel prints for a memory-cgroup OOM that kills
// pid (named comm, owned by uid) in memcg: invoker, summary, victim line.
func OOMReport(comm string, pid, uid int, memcg string) []string {
	return []string{
		comm + " invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
		fmt.Sprintf("oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=%s,task_memcg=%s,task=%s,pid=%d,uid=%d", memcg, memcg, comm, pid, uid),
		fmt.Sprintf("Memory cgroup out of memory: Killed process %d (%s) total-vm:221368kB, anon-rss:65024kB, file-rss:1628kB, shmem-rss:0kB, UID:%d pgtables:184kB oom_score_adj:0", pid, comm, uid),
	}
}

// Entries turns kernel lines into journal entries 1µs apart from at.
func Entries(lines []string, at time.Time, bootID, host string) []Entry {
	out := make([]Entry, len(lines))
	for i, l := range lines {
		out[i] = Entry{Message: l, Time: at.Add(time.Duration(i) * time.Microsecond), BootID: bootID, Hostname: host}
	}
	return out
}
