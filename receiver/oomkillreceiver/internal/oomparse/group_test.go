package oomparse

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The lines a 6.x kernel prints for one memcg OOM, as the kernel lab saw
// them (testdata/kernel/kernellab): invoker, task table, summary, victim
// line; with memory.oom.group set, "Tasks in …" and a victim line per
// member, the first victim again among them.
func groupLines(memcg string, victim int, members []int, table bool) []string {
	// table: the report was printed in full (rate-limited otherwise).
	var l []string
	if table { // else the kernel rate-limited the report: dump_header prints nothing
		l = append(l, "dd invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0")
		l = append(l, "Tasks state (memory values in pages):",
			"[  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name")
		for _, p := range members {
			l = append(l, fmt.Sprintf("[%7d] %5d %5d %8d %8d %8d %8d %9d %14d %8d %13d %s", p, 0, p, 565, 395, 0, 0, 395, 36864, 0, 0, "sh"))
		}
		l = append(l, fmt.Sprintf("oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=%s,task_memcg=%s,task=dd,pid=%d,uid=0", memcg, memcg, victim))
	}
	l = append(l, killedLine(victim))
	if members != nil {
		l = append(l, "Tasks in "+memcg+" are going to be killed due to memory.oom.group set")
		for _, p := range members {
			l = append(l, killedLine(p))
		}
	}
	return l
}

func killedLine(pid int) string {
	return fmt.Sprintf("Memory cgroup out of memory: Killed process %d (sh) total-vm:2260kB, anon-rss:0kB, file-rss:0kB, shmem-rss:1580kB, UID:0 pgtables:40kB oom_score_adj:0", pid)
}

func ctr(n int) (pod, id, memcg string) {
	pod = fmt.Sprintf("4a0c6c57-6b0e-4c8e-9a51-0d1e2f3a4b%02d", n)
	id = strings.Repeat(fmt.Sprintf("%02d", n), 32)
	return pod, id, "/kubepods/burstable/pod" + pod + "/" + id
}

// byContainer counts kills per container ("" for unattributed) and group-flagged ones.
func byContainer(kills []Kill) (map[string]int, map[string]int) {
	all, group := map[string]int{}, map[string]int{}
	for _, k := range kills {
		all[k.Cgroup.ContainerID]++
		if k.GroupKill {
			group[k.Cgroup.ContainerID]++
		}
	}
	return all, group
}

// A group kill with its report, then a kill in another container whose
// report the kernel rate-limited: its bare victim line is not in the
// group's task table, so it is a new, unattributed kill.
func TestGroupKillThenRateLimitedReport(t *testing.T) {
	_, a, memcg := ctr(1)
	lines := groupLines(memcg, 102, []int{100, 101, 102}, true)
	lines = append(lines, killedLine(555))
	kills, stats := feedAll(msgs(lines))
	all, group := byContainer(kills)
	assert.Equal(t, map[string]int{a: 3, "": 1}, all)
	assert.Equal(t, map[string]int{a: 2}, group)
	assert.Equal(t, uint64(1), stats.Unattributed)
	assert.Equal(t, uint64(1), stats.Duplicates, "the first victim printed again")
	assert.Equal(t, int64(555), kills[3].PID)
}

// With a task table scoped to the cgroup, members after the first
// victim's repeat are still members.
func TestGroupKillMembersAfterFirstVictimRepeat(t *testing.T) {
	_, a, memcg := ctr(1)
	kills, _ := feedAll(msgs(groupLines(memcg, 101, []int{100, 101, 102, 103}, true)))
	all, group := byContainer(kills)
	assert.Equal(t, map[string]int{a: 4}, all)
	assert.Equal(t, map[string]int{a: 3}, group)
}

// A group kill whose own report was rate-limited: the kernel prints only
// the victim line, "Tasks in …" and the members (the dump, table and
// summary are what oom_kill_process rate-limits). The members before the
// first victim's repeat are the group's; the victim itself came before the
// group line and stays unattributed. A next rate-limited kill right after
// (here the victim of another group kill) is not taken for a member.
func TestRateLimitedGroupKill(t *testing.T) {
	_, a, ma := ctr(1)
	_, b, mb := ctr(2)
	lines := groupLines(ma, 202, []int{200, 201, 202}, false)
	lines = append(lines, groupLines(mb, 302, []int{300, 301, 302}, false)...)
	lines = append(lines, killedLine(999)) // a rate-limited kill of its own
	kills, stats := feedAll(msgs(lines))
	all, group := byContainer(kills)
	assert.Equal(t, map[string]int{a: 2, b: 2, "": 3}, all)
	assert.Equal(t, map[string]int{a: 2, b: 2}, group)
	assert.Equal(t, uint64(2), stats.Duplicates)
	assert.Equal(t, uint64(0), stats.Unrecognized)
	var bare []int64
	for _, k := range kills {
		if !k.Attributed {
			bare = append(bare, k.PID)
		}
	}
	assert.Equal(t, []int64{202, 302, 999}, bare)
}

// Without a table, the first victim's repeat may also be printed as "OOM
// victim … is already exiting" (it died meanwhile): it still ends what is
// certainly the group.
func TestRateLimitedGroupKillVictimExiting(t *testing.T) {
	_, a, ma := ctr(1)
	lines := []string{
		killedLine(202),
		"Tasks in " + ma + " are going to be killed due to memory.oom.group set",
		killedLine(200),
		"Memory cgroup out of memory: OOM victim 202 (dd) is already exiting. Skip killing the task",
		killedLine(777),
	}
	kills, _ := feedAll(msgs(lines))
	all, _ := byContainer(kills)
	assert.Equal(t, map[string]int{a: 1, "": 2}, all)
}

// Fifty members, all in the table, all counted once on the container.
func TestGroupKillManyMembers(t *testing.T) {
	_, a, memcg := ctr(3)
	var members []int
	for p := 1000; p < 1050; p++ {
		members = append(members, p)
	}
	kills, stats := feedAll(msgs(groupLines(memcg, 1025, members, true)))
	all, group := byContainer(kills)
	assert.Equal(t, map[string]int{a: 50}, all)
	assert.Equal(t, map[string]int{a: 49}, group)
	assert.Equal(t, uint64(1), stats.Duplicates)
	seen := map[int64]bool{}
	for _, k := range kills {
		require.False(t, seen[k.PID])
		seen[k.PID] = true
	}
}

// A member line long after the group (other kernel messages between) is
// not part of the group's burst.
func TestGroupBurstEnds(t *testing.T) {
	_, a, memcg := ctr(1)
	lines := groupLines(memcg, 101, []int{100, 101, 102}, true)
	for i := 0; i < 100; i++ {
		lines = append(lines, fmt.Sprintf("eth0: link flap %d", i))
	}
	lines = append(lines, killedLine(102)) // a pid the table had, too late
	kills, _ := feedAll(msgs(lines))
	all, _ := byContainer(kills)
	assert.Equal(t, map[string]int{a: 3}, all, "102 was counted in the group; its late repeat is a duplicate of the report")

	lines = groupLines(memcg, 101, []int{100, 101}, true)
	for i := 0; i < 100; i++ {
		lines = append(lines, fmt.Sprintf("eth0: link flap %d", i))
	}
	lines = append(lines, killedLine(100+50)) // in no table: a new kill
	kills, _ = feedAll(msgs(lines))
	all, _ = byContainer(kills)
	assert.Equal(t, map[string]int{a: 2, "": 1}, all)
}

// A table row outside a report, or a bracketed line that is no row, is not
// a report line.
func TestTableRowsOutsideReports(t *testing.T) {
	a := NewAssembler(Options{})
	for _, l := range []string{"[    123]     0   123      565      395 sh", "[mem 0x20000000-0xfffbffff] available for PCI devices", "[drm] Initialized"} {
		_, out := a.Feed(Message{Text: l, BootID: "b"})
		assert.Equal(t, LineIgnored, out, l)
	}
}

// The members of one group kill share their leader; OpenGroup names it
// from the "Tasks in …" line on, while members may follow.
func TestGroupRef(t *testing.T) {
	_, _, memcg := ctr(1)
	a := NewAssembler(Options{})
	var kills []Kill
	var open []bool
	for _, m := range msgs(groupLines(memcg, 102, []int{100, 101, 102}, true)) {
		k, out := a.Feed(m)
		if out == LineKill {
			kills = append(kills, k)
		}
		_, ok := a.OpenGroup()
		open = append(open, ok)
	}
	require.Len(t, kills, 3) // the leader, then members 100 and 101 (102 is the leader's repeat)
	leader := kills[0]
	assert.False(t, leader.GroupKill)
	assert.Equal(t, GroupRef{}, leader.Group, "the leader's line comes before the kernel names the group")
	for i, k := range kills[1:] {
		assert.True(t, k.GroupKill)
		assert.Equal(t, int64(102), k.Group.LeaderPID)
		assert.Equal(t, i+1, k.Group.Member)
		assert.False(t, k.Group.LeaderTime.IsZero())
	}
	assert.Equal(t, kills[1].Group.LeaderTime, kills[2].Group.LeaderTime)
	g, ok := a.OpenGroup()
	assert.True(t, ok)
	assert.Equal(t, int64(102), g.LeaderPID)
	assert.False(t, open[0], "no group before the report")

	// A kill of another container closes the group.
	_, _, other := ctr(2)
	for _, m := range msgs(groupLines(other, 200, nil, false)) {
		a.Feed(m)
	}
	_, ok = a.OpenGroup()
	assert.False(t, ok)
}
