package oomparse

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// labContainer is a "# container:" header line of a kernel-lab fixture.
type labContainer struct {
	pod, ctr     string
	group, procs int
}

func labContainers(t *testing.T, path string) []labContainer {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []labContainer
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "# container: ")
		if !ok {
			continue
		}
		var c labContainer
		for _, kv := range strings.Fields(rest) {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "memory.oom.group":
				c.group, _ = strconv.Atoi(v)
			case "processes":
				c.procs, _ = strconv.Atoi(v)
			}
		}
		f := strings.Fields(rest)
		c.pod, c.ctr = f[1], f[3]
		out = append(out, c)
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, out, "%s: no # container: lines", path)
	return out
}

// TestKernelLabFixtures runs the reports of real cgroup v2 OOM kills that
// Debian's 6.1 and 6.12 kernels printed in the kernel lab
// (test/kernellab, make kernel-lab-fixtures): every process once, on its
// pod and container, group members flagged. A report the kernel
// rate-limited (no "oom-kill:" summary for the container) leaves its first
// victim unattributed; the members of a group kill are still named by the
// "Tasks in … memory.oom.group" line, and a kill after a group kill is not
// taken for one of its members.
func TestKernelLabFixtures(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(kernelFixtures, "kernellab", "*", "*.txt"))
	require.NoError(t, err)
	releases := map[string]bool{}
	rateLimited := 0
	for _, p := range files {
		if filepath.Base(p) == "results.txt" {
			continue
		}
		releases[filepath.Base(filepath.Dir(p))] = true
		t.Run(filepath.Base(filepath.Dir(p))+"/"+filepath.Base(p), func(t *testing.T) {
			msgs := loadFixture(t, p)
			kills, stats := feedAll(msgs)
			type count struct{ kills, group int }
			want, got := map[string]count{}, map[string]count{}
			wantTotal, wantUnattributed := 0, 0
			for _, c := range labContainers(t, p) {
				full := false
				for _, m := range msgs {
					if strings.HasPrefix(m.Text, "oom-kill:") && (strings.Contains(m.Text, c.ctr+",task=") || strings.Contains(m.Text, c.ctr+".scope,task=")) {
						full = true
					}
				}
				k := c.pod + "/" + c.ctr
				switch {
				case full && c.group == 1:
					want[k] = count{c.procs, c.procs - 1}
				case full:
					want[k] = count{1, 0}
				case c.group == 1:
					want[k] = count{c.procs - 1, c.procs - 1}
					wantUnattributed++
				default:
					wantUnattributed++
				}
				if !full {
					rateLimited++
				}
				if c.group == 1 {
					wantTotal += c.procs
				} else {
					wantTotal++
				}
			}
			pids := map[int64]bool{}
			unattributed := 0
			for _, k := range kills {
				assert.False(t, pids[k.PID], "pid %d counted twice", k.PID)
				pids[k.PID] = true
				assert.Equal(t, ConstraintMemcg, k.Constraint, "pid %d", k.PID)
				if !k.Attributed {
					unattributed++
					assert.Empty(t, k.Cgroup.ContainerID)
					continue
				}
				c := got[k.Cgroup.PodUID+"/"+k.Cgroup.ContainerID]
				c.kills++
				if k.GroupKill {
					c.group++
				}
				got[k.Cgroup.PodUID+"/"+k.Cgroup.ContainerID] = c
			}
			assert.Equal(t, want, got, "kills per pod/container (kills, group members)")
			assert.Equal(t, wantTotal, len(kills), "kills")
			assert.Equal(t, wantUnattributed, unattributed, "unattributed kills")
			assert.Equal(t, uint64(0), stats.Unrecognized, "unrecognized lines")
		})
	}
	assert.Len(t, releases, 2, "fixtures of the 6.1 and the 6.12 kernel")
	assert.Positive(t, rateLimited, "the fixtures hold rate-limited reports")
}
