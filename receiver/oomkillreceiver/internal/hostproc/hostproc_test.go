//go:build linux

package hostproc

import (
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
)

// hostProcfs is this machine's /proc when the test runs in the host's pid
// namespace (CI does); otherwise the test says so and stops.
func hostProcfs(t *testing.T) *Procfs {
	t.Helper()
	p, err := Open("/proc")
	if err != nil {
		t.Skipf("this test runs in the host's pid namespace, to see real processes come and go: %v", err)
	}
	return p
}

// A real child process: running, then a zombie until reaped, then gone.
func TestRealProcessLifecycle(t *testing.T) {
	p := hostProcfs(t)
	cmd := exec.Command("sleep", "60")
	require.NoError(t, cmd.Start())
	pid := int64(cmd.Process.Pid)
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	s, err := p.Status(pid, "sleep")
	require.NoError(t, err)
	assert.Equal(t, Running, s)

	s, err = p.Status(pid, "sleeper")
	require.NoError(t, err)
	assert.Equal(t, Unknown, s, "another name under the pid: not this process, or not as the report printed it")

	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	// Not reaped yet: a zombie once the kernel has run its exit.
	require.Eventually(t, func() bool {
		s, err = p.Status(pid, "sleep")
		return err == nil && s == Exited
	}, 5*time.Second, time.Millisecond, "a killed child its parent has not reaped is a zombie")

	_ = cmd.Wait()
	s, err = p.Status(pid, "sleep")
	require.NoError(t, err)
	assert.Equal(t, Gone, s, "reaped")
}

// A comm with parentheses and spaces ends at the last ')'.
func TestHostileName(t *testing.T) {
	p := hostProcfs(t)
	const name = ") Z (x) R"
	cmd := exec.Command("python3", "-c", `import sys,time; open("/proc/self/comm","w").write(sys.argv[1]); print(flush=True); time.sleep(60)`, name)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start(), "python3 (a test prerequisite) renames the test process")
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	_, err = out.Read(make([]byte, 1))
	require.NoError(t, err)
	s, err := p.Status(int64(cmd.Process.Pid), name)
	require.NoError(t, err)
	assert.Equal(t, Running, s)
}

func TestOpenRefusesOtherProcfs(t *testing.T) {
	_, err := Open(t.TempDir())
	assert.ErrorContains(t, err, "does not show the host's processes")

	// A pid namespace's own procfs: its pid 2 is an ordinary process.
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "2"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "2", "stat"), []byte("2 (sh) S 1 2 1 0 -1 4194560 0 0 0 0"), 0o644))
	_, err = Open(dir)
	assert.ErrorContains(t, err, "another pid namespace")
}

// A real procfs of a pid namespace of its own, as a pod without hostPID
// has: refused, since the kernel's pids do not name its processes.
func TestOpenRefusesRealPodProcfs(t *testing.T) {
	hostProcfs(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a pid namespace and mount its procfs (CI runs as root)")
	}
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", "sleep 60 & sleep 60 & wait")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// The namespace's init is unshare's child; its mount namespace holds
	// the namespace's procfs.
	var inner string
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "task", strconv.Itoa(cmd.Process.Pid), "children"))
		inner = strings.TrimSpace(string(b))
		if inner == "" {
			return false
		}
		b, _ = os.ReadFile(filepath.Join("/proc", inner, "root", "proc", "2", "stat"))
		return len(b) > 0
	}, 5*time.Second, 10*time.Millisecond)
	t.Cleanup(func() {
		if pid, err := strconv.Atoi(inner); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL) // the namespace dies with its init
		}
	})
	_, err := Open(filepath.Join("/proc", inner, "root", "proc"))
	assert.ErrorContains(t, err, "another pid namespace")
}
