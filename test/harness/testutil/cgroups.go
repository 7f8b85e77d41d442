package testutil

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
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

// CgroupPrefix starts the name of every test's own top cgroup; nothing
// named so may remain once the tests are done (make test checks).
const CgroupPrefix = "otelcol-oomkill-test-"

// Cgroups is a cgroup of the test's own, /otelcol-oomkill-test-<random> in
// the cgroup v1 hierarchies it names, under which the test makes
// kubelet-shaped cgroups (the receiver finds the kubepods part anywhere in
// a path): a test never touches the kubelet's own /kubepods, so the suites
// can run on a real node. When the test ends the prefix is removed with
// everything below it, in every hierarchy (a runtime such as podman, given
// a cgroup parent below it, makes its cgroups in all of them), and the test
// fails if anything remains.
type Cgroups struct {
	// Prefix is the top cgroup's path as the kernel names it.
	Prefix      string
	hierarchies []string
}

// NewCgroups makes the test's top cgroup in the given v1 hierarchies
// (memory for the limit; pids where the container's outcome is read from
// the process count, as runc puts a container in both), after taking the
// kill lock (LockKills) for the rest of the test. It needs root and cgroup
// v1: without them the test fails in CI and is skipped elsewhere.
func NewCgroups(t testing.TB, hierarchies ...string) *Cgroups {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (to create cgroups)")
	}
	for _, h := range hierarchies {
		if _, err := os.Stat(filepath.Join(CgroupV1Root, h, "cgroup.procs")); err != nil {
			missing = append(missing, "the cgroup v1 "+h+" hierarchy at "+filepath.Join(CgroupV1Root, h))
		}
	}
	if len(missing) > 0 {
		SkipOrFail(t, "kubelet-shaped cgroups need "+strings.Join(missing, ", "))
	}
	LockKills(t)
	c := &Cgroups{Prefix: "/" + CgroupPrefix + RandomHex(6), hierarchies: hierarchies}
	t.Cleanup(func() {
		if left := removeCgroupTree(c.Prefix); len(left) > 0 {
			t.Errorf("cgroups left behind: %s", strings.Join(left, ", "))
		}
	})
	for _, h := range hierarchies {
		if err := os.Mkdir(filepath.Join(CgroupV1Root, h, c.Prefix), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("cgroups of this test under %s", c.Prefix)
	return c
}

// Path is the kernel's name of rel (e.g. /kubepods/burstable/pod<uid>/<id>)
// below the test's prefix.
func (c *Cgroups) Path(rel string) string { return c.Prefix + rel }

// Cgroup is one cgroup below a test's prefix, in each of its hierarchies.
type Cgroup struct {
	// Path is the cgroup's path as the kernel names it (oom_memcg=, task_memcg=).
	Path        string
	hierarchies []string
}

// Make creates the cgroup path (from Path) and its parents in every
// hierarchy; with limit > 0 the memory hierarchy's memory.limit_in_bytes.
func (c *Cgroups) Make(t testing.TB, path string, limit int64) *Cgroup {
	t.Helper()
	if !strings.HasPrefix(path, c.Prefix+"/") {
		t.Fatalf("cgroup %s is not below the test's prefix %s", path, c.Prefix)
	}
	g := &Cgroup{Path: path, hierarchies: c.hierarchies}
	for _, h := range c.hierarchies {
		if err := os.MkdirAll(g.Dir(h), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if limit > 0 {
		if err := os.WriteFile(filepath.Join(g.Dir("memory"), "memory.limit_in_bytes"), []byte(strconv.FormatInt(limit, 10)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

// Dir is the cgroup's directory in hierarchy h.
func (g *Cgroup) Dir(h string) string { return filepath.Join(CgroupV1Root, h, g.Path) }

// RemoveWithPod removes the container's cgroup and then its pod's (the
// parent), in every hierarchy, as the runtime and then the kubelet do.
func (g *Cgroup) RemoveWithPod() {
	for _, h := range g.hierarchies {
		_ = os.Remove(g.Dir(h))
		_ = os.Remove(filepath.Dir(g.Dir(h)))
	}
}

// Remove removes the cgroup in every hierarchy, as a runtime does once its
// container is gone; its counters go with it.
func (g *Cgroup) Remove(t testing.TB) {
	t.Helper()
	for _, h := range g.hierarchies {
		if err := os.Remove(g.Dir(h)); err != nil {
			t.Fatal(err)
		}
	}
}

// join is the shell that moves the shell itself into the cgroup.
func (g *Cgroup) join() string {
	var b strings.Builder
	for _, h := range g.hierarchies {
		fmt.Fprintf(&b, "echo $$ > %s/cgroup.procs; ", g.Dir(h))
	}
	return b.String()
}

// hog is a python3 that names itself comm ($1), prints its pid and
// allocates 200 MiB, more than any limit the tests set.
const hog = `python3 -c 'import os, sys; open("/proc/self/comm", "w").write(sys.argv[1]); print(os.getpid(), flush=True); b = bytearray(200 << 20)' "$1"`

// KillOnly has the kernel OOM-kill the cgroup's only process, named comm,
// and returns its pid: the container exits with the kill.
func (g *Cgroup) KillOnly(t testing.TB, comm string) int {
	t.Helper()
	requirePython(t)
	out, err := exec.Command("bash", "-c", g.join()+"exec "+hog, "victim", comm).Output()
	lines := strings.Fields(string(out))
	if len(lines) == 0 {
		t.Fatalf("the victim printed nothing: %v", err)
	}
	pid, perr := strconv.Atoi(lines[0])
	if perr != nil {
		t.Fatal(perr)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the cgroup's only process must be killed by SIGKILL: %v", err)
	}
	return pid
}

// KillWorker has a master (bash) in the cgroup fork a worker, named comm,
// that the kernel OOM-kills while the master lives on, as php-fpm's master
// outlives its workers; the master stays in the cgroup until the test ends.
// It returns the worker's pid and the master.
func (g *Cgroup) KillWorker(t testing.TB, comm string) (int, *exec.Cmd) {
	t.Helper()
	requirePython(t)
	master := exec.Command("bash", "-c", g.join()+hog+` & wait $!; echo status=$?; kill -0 $$ && echo parent=alive; exec sleep 300`, "master", comm)
	stdout, err := master.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err = master.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = master.Process.Kill(); _ = master.Wait() })
	var lines []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if sc.Text() == "parent=alive" {
			break
		}
	}
	if len(lines) < 3 || lines[1] != "status=137" || lines[2] != "parent=alive" {
		t.Fatalf("want the worker's pid, status=137 (killed by SIGKILL) and parent=alive; the master printed %q", lines)
	}
	pid, err := strconv.Atoi(lines[0])
	if err != nil {
		t.Fatal(err)
	}
	return pid, master
}

// KillWorkers has a master in the cgroup run n workers named comm one
// after the other, each OOM-killed while the master lives on, and returns
// their pids. Run quickly one after the other, more than ten of them get
// reports the kernel rate-limits (10 per 5 s).
func (g *Cgroup) KillWorkers(t testing.TB, comm string, n int) []int {
	t.Helper()
	requirePython(t)
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

func requirePython(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		SkipOrFail(t, "python3 is missing (the OOM victims): install the Debian package python3 (.ci/run does)")
	}
}

// removeCgroupTree removes the cgroup rel (e.g. a test's prefix) and all
// below it in every mounted hierarchy, innermost first, killing what
// still runs there, and returns what could not be removed.
func removeCgroupTree(rel string) []string {
	hs, _ := filepath.Glob(filepath.Join(CgroupV1Root, "*"))
	var left []string
	for _, h := range hs {
		top := filepath.Join(h, rel)
		if _, err := os.Stat(top); err != nil {
			continue
		}
		var dirs []string
		_ = filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
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

// removeCgroup removes an empty cgroup; processes still in it are killed
// first, and given a few seconds to go.
func removeCgroup(dir string) bool {
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		err := os.Remove(dir)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
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
