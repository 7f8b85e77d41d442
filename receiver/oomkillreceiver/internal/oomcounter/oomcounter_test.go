package oomcounter

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	uid  = "1f6a2c3e-8b4d-4e5f-9a0b-123456789abc"
	uid_ = "1f6a2c3e_8b4d_4e5f_9a0b_123456789abc" //nolint:revive // the UID as systemd slice names carry it
	id   = "94fa0437bf378ced2c1cd2f9cb3eccb62ae833f896541a9407e69ebe3c03ec57"
)

// These tests build cgroup-shaped trees of plain files; the real
// filesystems are read in real_test.go.

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
}

func vmstat(t testing.TB, oomKill string) string {
	p := filepath.Join(t.TempDir(), "vmstat")
	content := "nr_free_pages 1234\npgfault 99\n"
	if oomKill != "" {
		content += "oom_kill " + oomKill + "\n"
	}
	writeFile(t, p, content+"unevictable_pgs_culled 0\n")
	return p
}

func v1Cgroup(t testing.TB, root, path string, kills int) {
	writeFile(t, filepath.Join(root, "memory", path, "memory.oom_control"),
		"oom_kill_disable 0\nunder_oom 0\noom_kill "+itoa(kills)+"\n")
}

func v2Cgroup(t testing.TB, root, path string, kills, group int) {
	writeFile(t, filepath.Join(root, path, "memory.events"),
		"low 0\nhigh 0\nmax 3\noom 2\noom_kill "+itoa(kills)+"\noom_group_kill "+itoa(group)+"\n")
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestKernelWithoutCounters(t *testing.T) {
	_, err := Open(t.TempDir(), vmstat(t, ""), 100)
	assert.ErrorIs(t, err, ErrNoCounters)
}

func TestNodeOnlyWithoutMemoryHierarchy(t *testing.T) {
	r, err := Open(t.TempDir(), vmstat(t, "42"), 100)
	require.NoError(t, err)
	assert.Equal(t, LayoutNone, r.Layout())
	s, err := r.Read()
	require.NoError(t, err)
	assert.Equal(t, Snapshot{Node: 42}, s)
}

func TestV1KubeletLayouts(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "memory", "memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
	cgfs := "/kubepods/burstable/pod" + uid + "/" + id
	guaranteed := "/kubepods/pod" + uid + "/" + strings.Repeat("b", 64)
	systemd := "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uid_ + ".slice/cri-containerd-" + id + ".scope"
	prefixed := "/node-test/kubepods/burstable/pod" + uid + "/" + strings.Repeat("c", 64)
	v1Cgroup(t, root, cgfs, 3)
	v1Cgroup(t, root, guaranteed, 1)
	v1Cgroup(t, root, systemd, 2)
	v1Cgroup(t, root, prefixed, 5)
	v1Cgroup(t, root, "/system.slice/cron.service", 7) // not the kubelet's: node level only
	for _, p := range []string{cgfs, guaranteed, systemd, prefixed} {
		v1Cgroup(t, root, filepath.Dir(p), 0)
	}
	r, err := Open(root, vmstat(t, "18"), 100)
	require.NoError(t, err)
	assert.Equal(t, LayoutV1, r.Layout())
	assert.False(t, r.Hierarchical())
	s, err := r.Read()
	require.NoError(t, err)
	got := map[string]uint64{}
	for _, c := range s.Cgroups {
		got[c.Path] = c.Kills
	}
	assert.Equal(t, map[string]uint64{
		cgfs: 3, filepath.Dir(cgfs): 0, guaranteed: 1, filepath.Dir(guaranteed): 0,
		systemd: 2, filepath.Dir(systemd): 0, prefixed: 5, filepath.Dir(prefixed): 0,
	}, got)
	assert.Equal(t, uint64(18), s.Node)
	assert.False(t, s.Truncated)
	// Children are read before their parents.
	pos := map[string]int{}
	for i, c := range s.Cgroups {
		pos[c.Path] = i
	}
	assert.Less(t, pos[cgfs], pos[filepath.Dir(cgfs)])
	assert.Less(t, pos[systemd], pos[filepath.Dir(systemd)])
}

func TestV2HierarchyAndGroupKills(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "cgroup.controllers"), "cpuset cpu io memory pids\n")
	pod := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uid_ + ".slice"
	ctr := pod + "/cri-containerd-" + id + ".scope"
	v2Cgroup(t, root, "/kubepods.slice", 5, 1)
	v2Cgroup(t, root, "/kubepods.slice/kubepods-burstable.slice", 5, 1)
	v2Cgroup(t, root, pod, 5, 1)
	v2Cgroup(t, root, ctr, 5, 1)
	r, err := Open(root, vmstat(t, "5"), 100)
	require.NoError(t, err)
	assert.Equal(t, LayoutV2, r.Layout())
	assert.True(t, r.Hierarchical())
	s, err := r.Read()
	require.NoError(t, err)
	require.Len(t, s.Cgroups, 4)
	assert.Equal(t, Cgroup{Path: ctr, Kills: 5, GroupKills: 1}, s.Cgroups[0], "the container first")
	assert.Equal(t, "/kubepods.slice", s.Cgroups[3].Path, "the root last")
	assert.Equal(t, []string{filepath.Join(root, "kubepods.slice", "memory.events")}, r.KubepodsRoots())
}

func TestTruncationKeepsPodsBeforeContainers(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "cgroup.controllers"), "memory\n")
	v2Cgroup(t, root, "/kubepods", 0, 0)
	for i := 0; i < 3; i++ {
		pod := "/kubepods/pod" + strings.Replace(uid, "1f", "0"+itoa(i), 1)
		v2Cgroup(t, root, pod, 0, 0)
		v2Cgroup(t, root, pod+"/"+id, 0, 0)
	}
	r, err := Open(root, vmstat(t, "0"), 4)
	require.NoError(t, err)
	s, err := r.Read()
	require.NoError(t, err)
	assert.True(t, s.Truncated)
	require.Len(t, s.Cgroups, 4)
	for _, c := range s.Cgroups {
		assert.NotContains(t, c.Path, id, "containers are dropped first")
	}
}

func TestVanishedCgroupIsLeftOut(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "memory", "memory.oom_control"), "oom_kill 0\n")
	ctr := "/kubepods/burstable/pod" + uid + "/" + id
	v1Cgroup(t, root, ctr, 1)
	// A directory without its file stands for a cgroup removed between
	// listing and reading.
	require.NoError(t, os.MkdirAll(filepath.Join(root, "memory", "kubepods", "burstable", "pod"+uid, strings.Repeat("d", 64)), 0o755))
	r, err := Open(root, vmstat(t, "1"), 100)
	require.NoError(t, err)
	s, err := r.Read()
	require.NoError(t, err)
	var paths []string
	for _, c := range s.Cgroups {
		paths = append(paths, c.Path)
	}
	assert.Equal(t, []string{ctr}, paths, "the pod has no memory.oom_control here either")
}

func TestNotifierWakesOnModify(t *testing.T) {
	n, err := NewNotifier()
	require.NoError(t, err)
	defer n.Close()
	f := filepath.Join(t.TempDir(), "memory.events")
	writeFile(t, f, "oom_kill 0\n")
	require.NoError(t, n.Watch(f))
	require.NoError(t, n.Watch(f), "watching twice is harmless")
	select {
	case <-n.C:
		t.Fatal("woken before any change")
	case <-time.After(50 * time.Millisecond):
	}
	require.NoError(t, os.WriteFile(f, []byte("oom_kill 1\n"), 0o644))
	select {
	case <-n.C:
	case <-time.After(5 * time.Second):
		t.Fatal("no wake-up after the file changed")
	}
	require.NoError(t, n.Close())
}

func TestMaxCgroupsZeroIsNodeLevelOnly(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "memory", "memory.oom_control"), "oom_kill 0\n")
	v1Cgroup(t, root, "/kubepods/burstable/pod"+uid+"/"+id, 1)
	r, err := Open(root, vmstat(t, "1"), 0)
	require.NoError(t, err)
	s, err := r.Read()
	require.NoError(t, err)
	assert.Empty(t, s.Cgroups)
	assert.True(t, s.Truncated)
}
