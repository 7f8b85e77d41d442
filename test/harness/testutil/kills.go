package testutil

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Kills are machine-wide facts: /proc/vmstat counts every one, and the
// oomkill receiver's witness reads it. A test that makes real kills holds
// the kill lock while it runs (NewCgroups takes it), so a test that
// compares the node's counter with the kills it made (test/witness) sees
// its own only, whatever other test packages run in parallel.

// KillLockPath is the machine-wide lock every test making real OOM kills
// holds while it runs.
var KillLockPath = filepath.Join(os.TempDir(), "otelcol-oomkill-kills.lock")

// killLock is this process's hold of the kill lock: a second test of the
// same package (or a second NewCgroups in one test) shares it, since a
// second flock of the file from this process would wait for itself.
var killLock struct {
	sync.Mutex
	f     *os.File
	holds int
}

// LockKills holds the kill lock until the test ends.
func LockKills(t testing.TB) {
	t.Helper()
	killLock.Lock()
	defer killLock.Unlock()
	if killLock.holds == 0 {
		f, err := os.OpenFile(KillLockPath, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			_ = f.Close()
			t.Fatal(err)
		}
		if waited := time.Since(start); waited > time.Second {
			t.Logf("waited %s for the kill lock (%s)", waited.Round(time.Second), KillLockPath)
		}
		killLock.f = f
	}
	killLock.holds++
	t.Cleanup(func() {
		killLock.Lock()
		defer killLock.Unlock()
		if killLock.holds--; killLock.holds == 0 {
			_ = syscall.Flock(int(killLock.f.Fd()), syscall.LOCK_UN)
			_ = killLock.f.Close()
			killLock.f = nil
		}
	})
}

// NodeOOMKills is the node's count of OOM kills since boot (/proc/vmstat
// oom_kill, 4.13+).
func NodeOOMKills(t testing.TB) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/vmstat")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "oom_kill "); ok {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("/proc/vmstat has no oom_kill (kernel before 4.13)")
	return 0
}
