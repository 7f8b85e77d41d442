// Package realoom makes real kernel OOM kills in kubelet-shaped memory
// cgroups on this machine (cgroup v1, as the CI host has), under a cgroup
// prefix of the test's own that is removed when the test ends, and
// serialises them machine-wide.
//
// Kills are machine-wide facts: /proc/vmstat counts every one, and the
// oomkill receiver's witness reads it. A test that makes real kills holds
// the kill lock for as long as it runs (NewCgroups takes it), so a test
// that compares the node's counter with what it made sees its own kills
// only, whatever other test packages run in parallel.
//
// Its names follow test/harness/testutil's (Cgroups, Make, KillOnly,
// KillWorker), where it is meant to be folded in: there NewCgroups would
// take the same lock.
package realoom

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// CgroupV1Root is where the cgroup v1 hierarchies are mounted.
const CgroupV1Root = "/sys/fs/cgroup"

// KillLockPath is the machine-wide lock every test making real OOM kills
// holds while it runs.
var KillLockPath = filepath.Join(os.TempDir(), "otelcol-oomkill-kills.lock")

// LockKills holds the kill lock until the test ends.
func LockKills(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(KillLockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited > time.Second {
		t.Logf("waited %s for the kill lock (%s)", waited.Round(time.Second), KillLockPath)
	}
	t.Cleanup(func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	})
}

// NodeOOMKills is the node's count of OOM kills since boot (/proc/vmstat).
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

// SkipOrFail stops a test that lacks a prerequisite: it fails in CI (CI
// set, where everything is installed) and is skipped elsewhere.
func SkipOrFail(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// Cgroups is the test's own top cgroup, /otelcol-oomkill-test-<random>, in
// the v1 hierarchies it names.
type Cgroups struct {
	Prefix      string
	hierarchies []string
}

// NewCgroups takes the kill lock and makes the test's top cgroup; it is
// removed with everything below it when the test ends.
func NewCgroups(t testing.TB, hierarchies ...string) *Cgroups {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (to create cgroups)")
	}
	if _, err := os.Stat(filepath.Join(CgroupV1Root, "memory", "memory.oom_control")); err != nil {
		missing = append(missing, "a cgroup v1 memory controller at "+CgroupV1Root+"/memory")
	}
	if _, err := exec.LookPath("python3"); err != nil {
		missing = append(missing, "python3 (the OOM victims)")
	}
	if len(missing) > 0 {
		SkipOrFail(t, "real OOM kills need "+strings.Join(missing, ", "))
	}
	LockKills(t)
	c := &Cgroups{Prefix: "/otelcol-oomkill-test-" + RandomHex(6), hierarchies: hierarchies}
	t.Cleanup(func() {
		if left := removeTree(c.Prefix, hierarchies); len(left) > 0 {
			t.Errorf("cgroups left behind: %s", strings.Join(left, ", "))
		}
	})
	for _, h := range hierarchies {
		if err := os.Mkdir(filepath.Join(CgroupV1Root, h, c.Prefix), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// Path is the kernel's name of rel below the test's prefix.
func (c *Cgroups) Path(rel string) string { return c.Prefix + rel }

// Cgroup is one cgroup below a test's prefix.
type Cgroup struct {
	// Path as the kernel names it.
	Path        string
	hierarchies []string
}

// Make creates path (from Path) in every hierarchy, with a memory limit
// when limit > 0.
func (c *Cgroups) Make(t testing.TB, path string, limit int64) *Cgroup {
	t.Helper()
	g := &Cgroup{Path: path, hierarchies: c.hierarchies}
	for _, h := range c.hierarchies {
		if err := os.MkdirAll(g.Dir(h), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if limit > 0 {
		if err := os.WriteFile(filepath.Join(g.Dir("memory"), "memory.limit_in_bytes"), []byte(strconv.FormatInt(limit, 10)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

// Dir is the cgroup's directory in hierarchy h.
func (g *Cgroup) Dir(h string) string { return filepath.Join(CgroupV1Root, h, g.Path) }

// Remove removes the cgroup (as a runtime does once its container is
// gone); its counters go with it.
func (g *Cgroup) Remove(t testing.TB) {
	t.Helper()
	for _, h := range g.hierarchies {
		if err := os.Remove(g.Dir(h)); err != nil {
			t.Fatal(err)
		}
	}
}

func (g *Cgroup) join() string {
	var b strings.Builder
	for _, h := range g.hierarchies {
		fmt.Fprintf(&b, "echo $$ > %s/cgroup.procs; ", g.Dir(h))
	}
	return b.String()
}

// hog names itself $1, prints its pid and allocates 200 MiB.
const hog = `python3 -c 'import os, sys; open("/proc/self/comm", "w").write(sys.argv[1]); print(os.getpid(), flush=True); b = bytearray(200 << 20)' "$1"`

// KillOnly has the kernel OOM-kill the cgroup's only process, named comm,
// and returns its pid.
func (g *Cgroup) KillOnly(t testing.TB, comm string) int {
	t.Helper()
	out, err := exec.Command("bash", "-c", g.join()+"exec "+hog, "victim", comm).Output()
	pid, perr := strconv.Atoi(strings.TrimSpace(string(out)))
	if perr != nil {
		t.Fatalf("the victim printed %q: %v", out, err)
	}
	if ws, ok := exitStatus(err); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the cgroup's only process must be killed by SIGKILL: %v", err)
	}
	return pid
}

// KillWorkers has a master in the cgroup run n workers named comm one
// after the other, each OOM-killed while the master lives on, and returns
// their pids. Run quickly one after the other, more than ten of them get
// reports the kernel rate-limits (10 per 5 s).
func (g *Cgroup) KillWorkers(t testing.TB, comm string, n int) []int {
	t.Helper()
	script := g.join() + fmt.Sprintf(`for i in $(seq %d); do %s & wait $! || echo status=$?; done`, n, hog)
	out, err := exec.Command("bash", "-c", script, "master", comm).Output()
	if err != nil {
		t.Fatalf("the master must outlive its workers: %v\n%s", err, out)
	}
	var pids []int
	killed := 0
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if sc.Text() == "status=137" {
			killed++
			continue
		}
		pid, err := strconv.Atoi(sc.Text())
		if err != nil {
			t.Fatalf("unexpected output %q", out)
		}
		pids = append(pids, pid)
	}
	if len(pids) != n || killed != n {
		t.Fatalf("want %d workers each killed by SIGKILL (status=137); the master printed:\n%s", n, out)
	}
	return pids
}

func exitStatus(err error) (syscall.WaitStatus, bool) {
	ee, ok := err.(*exec.ExitError) //nolint:errorlint // exec returns it unwrapped
	if !ok {
		return 0, false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ws, ok
}

// removeTree removes rel and all below it in the hierarchies, innermost
// first, killing what still runs there; it returns what remains.
func removeTree(rel string, hierarchies []string) []string {
	var left []string
	for _, h := range hierarchies {
		top := filepath.Join(CgroupV1Root, h, rel)
		var dirs []string
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if !removeCgroup(dirs[i]) {
				left = append(left, dirs[i])
			}
		}
	}
	return left
}

func removeCgroup(dir string) bool {
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		err := os.Remove(dir)
		if err == nil || os.IsNotExist(err) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		procs, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		for _, f := range strings.Fields(string(procs)) {
			if pid, err := strconv.Atoi(f); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}

// RandomHex returns n random bytes in hex.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// RandomPodUID returns a random pod UID (8-4-4-4-12).
func RandomPodUID() string {
	u := RandomHex(16)
	return fmt.Sprintf("%s-%s-%s-%s-%s", u[:8], u[8:12], u[12:16], u[16:20], u[20:])
}
