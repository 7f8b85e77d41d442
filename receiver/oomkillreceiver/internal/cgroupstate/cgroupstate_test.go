package cgroupstate

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

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

	ob, err := o.Look("/kubepods.slice/pod.slice/live.scope")
	require.NoError(t, err)
	assert.Equal(t, Observation{State: Populated}, ob, "the populated flag leaves exited tasks out")
	assert.Equal(t, filepath.Join(root, "kubepods.slice/pod.slice/live.scope/cgroup.events"), o.EventsFile("/kubepods.slice/pod.slice/live.scope"))
	assert.Empty(t, o.EventsFile("/kubepods.slice/pod.slice/gone.scope"))
}

// memory.oom.group as mem_cgroup_get_oom_group reads it: set on the
// victim's cgroup or an ancestor up to the OOM domain.
func TestGroupKillFromFiles(t *testing.T) {
	root := t.TempDir()
	write := func(rel, content string) {
		p := filepath.Join(root, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	write("cgroup.controllers", "memory pids\n")
	write("kubepods/memory.oom.group", "1\n") // above every pod's limit
	write("kubepods/pod1/memory.oom.group", "0\n")
	write("kubepods/pod1/ctr/memory.oom.group", "1\n")
	write("kubepods/pod2/memory.oom.group", "1\n")
	write("kubepods/pod2/ctr/memory.oom.group", "0\n")
	write("kubepods/pod3/memory.oom.group", "0\n")
	write("kubepods/pod3/ctr/memory.oom.group", "0\n")
	o, err := New(root)
	require.NoError(t, err)
	for _, c := range []struct {
		path, domain string
		want         bool
	}{
		{"/kubepods/pod1/ctr", "/kubepods/pod1/ctr", true},
		{"/kubepods/pod2/ctr", "/kubepods/pod2/ctr", false}, // the pod's flag is above the domain
		{"/kubepods/pod2/ctr", "/kubepods/pod2", true},
		{"/kubepods/pod3/ctr", "/kubepods/pod3", false},
		{"/kubepods/pod3/ctr", "", true}, // a system OOM looks up to the root
	} {
		got, gerr := o.GroupKill(c.path, c.domain)
		require.NoError(t, gerr)
		assert.Equal(t, c.want, got, "%s in %q", c.path, c.domain)
	}

	v1 := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(v1, "memory"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(v1, "memory", "cgroup.procs"), nil, 0o644))
	o, err = New(v1)
	require.NoError(t, err)
	got, err := o.GroupKill("/kubepods/pod1/ctr", "")
	require.NoError(t, err)
	assert.False(t, got, "cgroup v1 has no group kills")
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

// What each count says of a killed process its parent has not reaped yet,
// on this machine's real hierarchies: the pids controller still counts the
// zombie, the unified hierarchy's populated flag does not, and inotify
// reports the flag's change.
func TestRealZombieAndNotify(t *testing.T) {
	const root = "/sys/fs/cgroup"
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates cgroups under /sys/fs/cgroup (CI runs as root)")
	}
	o, err := New(root)
	require.NoError(t, err)
	if o.Layout() != LayoutV1 {
		t.Skipf("this machine's cgroup filesystem is %v; this test needs cgroup v1 with pids (cgroup v2 is covered by the kernel lab)", o.Layout())
	}
	for _, h := range []string{"pids", "unified"} {
		if !exists(filepath.Join(root, h, "cgroup.procs")) {
			t.Skipf("no %s hierarchy at %s/%s", h, root, h)
		}
	}
	for _, unified := range []bool{false, true} {
		t.Run(fmt.Sprintf("unified=%v", unified), func(t *testing.T) {
			hierarchies := []string{"memory", "pids"}
			if unified {
				hierarchies = append(hierarchies, "unified")
			}
			// Under a prefix of the test's own, removed at the end: never the kubelet's tree.
			cgroups := testutil.NewCgroups(t, hierarchies...)
			ctr := cgroups.Make(t, cgroups.Path("/kubepods/burstable/pod"+testutil.RandomPodUID()+"/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"), 0).Path
			cmd := exec.Command("sleep", "60")
			require.NoError(t, cmd.Start())
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			for _, h := range hierarchies {
				require.NoError(t, os.WriteFile(filepath.Join(root, h, ctr, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644))
			}
			ob, err := o.Look(ctr)
			require.NoError(t, err)
			assert.Equal(t, Observation{State: Populated, CountsExited: !unified}, ob)

			events := o.EventsFile(ctr)
			var n *Notifier
			if unified {
				require.Equal(t, filepath.Join(root, "unified", ctr, "cgroup.events"), events)
				n, err = NewNotifier()
				require.NoError(t, err)
				t.Cleanup(func() { _ = n.Close() })
				require.NoError(t, n.Watch(events))
			} else {
				assert.Empty(t, events, "no populated flag to watch")
			}

			// Killed, not reaped: the test is its parent and waits below.
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			if unified {
				// A notification says only "look again": the kernel sends
				// at most one per 10 ms and delays the rest, so the one for
				// the process joining may arrive after Watch.
				deadline := time.After(5 * time.Second)
				for ob.State != Empty {
					select {
					case <-n.C:
					case <-deadline:
						t.Fatalf("inotify reported no change of cgroup.events to empty; last seen %v", ob)
					}
					ob, err = o.Look(ctr)
					require.NoError(t, err)
				}
				assert.Equal(t, Observation{State: Empty}, ob, "the zombie has left the populated count")
			} else {
				time.Sleep(100 * time.Millisecond)
				ob, err = o.Look(ctr)
				require.NoError(t, err)
				assert.Equal(t, Observation{State: Populated, CountsExited: true}, ob, "pids.current still counts the zombie")
			}
			_ = cmd.Wait()
			ob, err = o.Look(ctr)
			require.NoError(t, err)
			assert.Equal(t, Empty, ob.State, "reaped")
		})
	}
}
