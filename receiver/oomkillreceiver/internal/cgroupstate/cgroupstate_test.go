package cgroupstate

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

// A cgroup v2 tree as files: cgroup.events is what the kernel writes.
func TestUnifiedLayoutFromFiles(t *testing.T) {
	root := t.TempDir()
	write := func(rel, content string) {
		p := filepath.Join(root, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	write("cgroup.controllers", "cpu memory pids\n")
	write("kubepods.slice/pod.slice/live.scope/cgroup.events", "populated 1\nfrozen 0\n")
	write("kubepods.slice/pod.slice/dead.scope/cgroup.events", "populated 0\nfrozen 0\n")
	o, err := New(root)
	require.NoError(t, err)
	assert.Equal(t, LayoutUnified, o.Layout())
	for path, want := range map[string]State{
		"/kubepods.slice/pod.slice/live.scope":   Populated,
		"/kubepods.slice/pod.slice/dead.scope":   Empty,
		"/kubepods.slice/pod.slice/gone.scope":   Gone,
		"/kubepods.slice/other.slice/gone.scope": Unknown, // parent missing: not this hierarchy's
	} {
		got, oerr := o.Observe(path)
		require.NoError(t, oerr, path)
		assert.Equal(t, want, got, path)
	}
	for _, bad := range []string{"", "relative/path"} {
		_, oerr := o.Observe(bad)
		assert.Error(t, oerr, bad)
	}
	// A path that climbs stays under the root: here it is the root cgroup,
	// which always has processes.
	s, err := o.Observe("/kubepods.slice/../../..")
	require.NoError(t, err)
	assert.Equal(t, Populated, s)
}

func TestNoCgroupFilesystem(t *testing.T) {
	o, err := New(t.TempDir())
	require.NoError(t, err)
	assert.Equal(t, LayoutNone, o.Layout())
	s, err := o.Observe("/kubepods/x")
	require.NoError(t, err)
	assert.Equal(t, Unknown, s)
	_, err = New(filepath.Join(t.TempDir(), "missing"))
	assert.Error(t, err)
}

// The real cgroup v1 hierarchies of this machine: a process in a
// kubelet-shaped cgroup, then none, then no cgroup.
func TestRealCgroupV1(t *testing.T) {
	const root = "/sys/fs/cgroup"
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates cgroups under /sys/fs/cgroup (CI runs as root)")
	}
	o, err := New(root)
	require.NoError(t, err)
	if o.Layout() != LayoutV1 {
		t.Skipf("this machine's cgroup filesystem is %v; the v1 test needs the memory controller on v1 (cgroup v2 is covered by the kernel lab)", o.Layout())
	}
	for _, withPids := range []bool{true, false} {
		t.Run(fmt.Sprintf("pids=%v", withPids), func(t *testing.T) {
			hierarchies := []string{"memory"}
			if withPids {
				hierarchies = append(hierarchies, "pids")
			}
			// Under a prefix of the test's own, removed at the end: never the kubelet's tree.
			cgroups := testutil.NewCgroups(t, hierarchies...)
			pod := cgroups.Path("/kubepods/burstable/pod" + testutil.RandomPodUID())
			ctr := cgroups.Make(t, pod+"/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 0).Path
			cmd := exec.Command("sleep", "60")
			require.NoError(t, cmd.Start())
			for _, h := range hierarchies {
				require.NoError(t, os.WriteFile(filepath.Join(root, h, ctr, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644))
			}
			s, err := o.Observe(ctr)
			require.NoError(t, err)
			assert.Equal(t, Populated, s)

			require.NoError(t, cmd.Process.Kill())
			_ = cmd.Wait()
			s, err = o.Observe(ctr)
			require.NoError(t, err)
			assert.Equal(t, Empty, s, "the killed process was reaped; the cgroup has none left")

			for _, h := range hierarchies {
				require.NoError(t, os.Remove(filepath.Join(root, h, ctr)))
			}
			s, err = o.Observe(ctr)
			require.NoError(t, err)
			assert.Equal(t, Gone, s, "the runtime removed the container's cgroup; the pod's is still there")

			for _, h := range hierarchies {
				require.NoError(t, os.Remove(filepath.Join(root, h, pod)))
			}
			s, err = o.Observe(ctr)
			require.NoError(t, err)
			assert.Equal(t, Unknown, s, "with the parent gone too, this hierarchy may not be the one the kernel named")
		})
	}
}
