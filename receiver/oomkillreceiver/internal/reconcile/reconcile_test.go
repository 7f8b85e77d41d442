package reconcile

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func at(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

const (
	podA = "/kubepods/burstable/podaaaaaaaa-0000-4000-8000-000000000001"
	ctrA = podA + "/aaaa"
	ctrB = podA + "/bbbb"
	podC = "/kubepods/besteffort/podcccccccc-0000-4000-8000-000000000003"
	ctrC = podC + "/cccc"
)

// v1 is a cgroup v1 reading: each cgroup counts its own victims.
func v1(sec float64, node uint64, kills map[string]uint64) Reading {
	r := Reading{Start: at(sec), End: at(sec + 0.01), Node: node}
	for p, k := range kills {
		r.Cgroups = append(r.Cgroups, CgroupCount{Path: p, Count: Count{Kills: k}})
	}
	return r
}

// v2 is a cgroup v2 reading: counters are hierarchical.
func v2(sec float64, node uint64, counts map[string]Count) Reading {
	r := Reading{Start: at(sec), End: at(sec + 0.01), Node: node}
	for p, c := range counts {
		r.Cgroups = append(r.Cgroups, CgroupCount{Path: p, Count: c, Hierarchical: true})
	}
	return r
}

func kill(cgroup string, sec float64) Event { return Event{Kind: Kill, Cgroup: cgroup, Time: at(sec)} }

func newTest() *Reconciler { return New(Config{Grace: 10 * time.Second}) }

func TestBaselineIsNotAKill(t *testing.T) {
	rc := newTest()
	rc.Observe(v1(0, 7, map[string]uint64{ctrA: 3}))
	// A log line from before the first reading (history) matches nothing
	// and is not counted from the counters either.
	m := rc.Match([]Event{kill(ctrA, -30)})
	assert.Equal(t, []Match{{}}, m)
	rc.Observe(v1(5, 7, map[string]uint64{ctrA: 3}))
	assert.Empty(t, rc.Declare(at(60), at(60)))
}

func TestLoggedKillIsConfirmed(t *testing.T) {
	rc := newTest()
	rc.Observe(v1(0, 0, map[string]uint64{ctrA: 0}))
	rc.Observe(v1(2, 1, map[string]uint64{ctrA: 1}))
	m := rc.Match([]Event{kill(ctrA, 1)})
	assert.Equal(t, []Match{{Confirmed: true}}, m)
	assert.Empty(t, rc.Declare(at(60), at(60)), "nothing left for the counters")
}

func TestRiseWithoutLogLineAfterGrace(t *testing.T) {
	rc := newTest()
	rc.Observe(v1(0, 0, map[string]uint64{ctrA: 0, ctrB: 0}))
	rc.Observe(v1(2, 2, map[string]uint64{ctrA: 2, ctrB: 0}))
	assert.Empty(t, rc.Declare(at(11), at(11)), "within the grace")
	assert.Empty(t, rc.Declare(at(11.9), at(30)), "the log was last read to its end within the grace")
	d := rc.Declare(at(12.01), at(30))
	require.Len(t, d, 2)
	for _, k := range d {
		assert.Equal(t, ctrA, k.Cgroup)
		assert.Equal(t, at(0), k.From)
		assert.Equal(t, at(2.01), k.To)
	}
	assert.Equal(t, []int{0, 1}, []int{d[0].Index, d[1].Index})
	assert.Empty(t, rc.Declare(at(60), at(60)), "declared once")
}

func TestNodeLevelKill(t *testing.T) {
	rc := newTest()
	rc.Observe(v1(0, 10, map[string]uint64{ctrA: 0}))
	rc.Observe(v1(2, 12, map[string]uint64{ctrA: 0}))
	// One of the two is logged, in a cgroup that is not watched.
	m := rc.Match([]Event{kill("/system.slice/cron.service", 1)})
	assert.Equal(t, []Match{{Confirmed: true}}, m)
	d := rc.Declare(at(60), at(60))
	require.Len(t, d, 1)
	assert.Empty(t, d[0].Cgroup, "node level")
}

func TestDeclaredCgroupKillTakesItsNodeUnit(t *testing.T) {
	rc := newTest()
	rc.Observe(v1(0, 0, map[string]uint64{ctrA: 0}))
	rc.Observe(v1(2, 1, map[string]uint64{ctrA: 1}))
	d := rc.Declare(at(60), at(60))
	require.Len(t, d, 1)
	assert.Equal(t, ctrA, d[0].Cgroup, "on the container, not again at node level")
}

func TestUnnamedKillAttributedToTheOnlyRise(t *testing.T) {
	rc := newTest()
	rc.Observe(v1(0, 0, map[string]uint64{ctrA: 0, ctrB: 0, ctrC: 0}))
	// A burst: B's two reports were printed, A's three kills were
	// rate-limited (victim lines without cgroup).
	rc.Observe(v1(2, 5, map[string]uint64{ctrA: 3, ctrB: 2, ctrC: 0}))
	m := rc.Match([]Event{
		kill("", 1.1), kill(ctrB, 1.0), kill("", 1.2), kill(ctrB, 1.3), kill("", 1.4),
	})
	assert.Equal(t, []Match{
		{Confirmed: true, Attributed: ctrA},
		{Confirmed: true},
		{Confirmed: true, Attributed: ctrA},
		{Confirmed: true},
		{Confirmed: true, Attributed: ctrA},
	}, m, "the named kills go first, so only A's rise is left for the others")
	assert.Empty(t, rc.Declare(at(60), at(60)))
}

func TestUnnamedKillAmbiguousStaysUnattributed(t *testing.T) {
	rc := newTest()
	rc.Observe(v1(0, 0, map[string]uint64{ctrA: 0, ctrC: 0}))
	// A and C each lost a process; one victim line without cgroup was
	// logged; the other kill's line was lost. Which is which is unknown.
	rc.Observe(v1(2, 2, map[string]uint64{ctrA: 1, ctrC: 1}))
	m := rc.Match([]Event{kill("", 1)})
	assert.Equal(t, []Match{{Confirmed: true}}, m, "not attributed")
	d := rc.Declare(at(60), at(60))
	require.Len(t, d, 1, "one kill the log did not show")
	assert.Equal(t, "/kubepods", d[0].Cgroup, "A and C are in different pods: their common ancestor")
}

func TestContestWithinOnePodIsDeclaredOnThePod(t *testing.T) {
	rc := newTest()
	rc.Observe(v1(0, 0, map[string]uint64{ctrA: 0, ctrB: 0}))
	rc.Observe(v1(2, 3, map[string]uint64{ctrA: 2, ctrB: 1}))
	m := rc.Match([]Event{kill("", 1), kill("", 1.5)})
	assert.Equal(t, []Match{{Confirmed: true}, {Confirmed: true}}, m)
	d := rc.Declare(at(60), at(60))
	require.Len(t, d, 1)
	assert.Equal(t, podA, d[0].Cgroup)
}

func TestContestExplainedByLateNamedLine(t *testing.T) {
	rc := newTest()
	rc.Observe(v1(0, 0, map[string]uint64{ctrA: 0, ctrC: 0}))
	rc.Observe(v1(2, 2, map[string]uint64{ctrA: 1, ctrC: 1}))
	assert.Equal(t, []Match{{Confirmed: true}}, rc.Match([]Event{kill("", 1)}))
	// C's report comes in the next batch (the log lagged): both explained.
	assert.Equal(t, []Match{{Confirmed: true}}, rc.Match([]Event{kill(ctrC, 1.2)}))
	assert.Empty(t, rc.Declare(at(60), at(60)))
}

func TestLateLogLineIsNotCountedAgain(t *testing.T) {
	rc := newTest()
	rc.Observe(v1(0, 0, map[string]uint64{ctrA: 0}))
	rc.Observe(v1(2, 1, map[string]uint64{ctrA: 1}))
	require.Len(t, rc.Declare(at(30), at(30)), 1)
	// Its line comes after all (a journal catching up after a long lag).
	assert.Equal(t, []Match{{Late: true}}, rc.Match([]Event{kill(ctrA, 1.5)}))
	// A second line for the same window is a different kill: there is
	// nothing left to explain it.
	assert.Equal(t, []Match{{}}, rc.Match([]Event{kill(ctrA, 1.6)}))
	// Declared kills are forgotten after LateHorizon.
	rc.Observe(v1(40, 2, map[string]uint64{ctrA: 2}))
	require.Len(t, rc.Declare(at(60), at(60)), 1)
	rc.Declare(at(60), at(60).Add(11*time.Minute))
	assert.Equal(t, []Match{{}}, rc.Match([]Event{kill(ctrA, 41)}))
}

func TestLateNodeLevelLine(t *testing.T) {
	rc := newTest()
	rc.Observe(v1(0, 0, nil))
	rc.Observe(v1(2, 1, nil))
	require.Len(t, rc.Declare(at(30), at(30)), 1)
	assert.Equal(t, []Match{{Late: true}}, rc.Match([]Event{kill("/system.slice/x.service", 1)}))
	assert.Equal(t, []Match{{}}, rc.Match([]Event{kill("", 1)}))
}

func TestWindowsKeepKillsApart(t *testing.T) {
	rc := newTest()
	rc.Observe(v1(0, 0, map[string]uint64{ctrA: 0}))
	rc.Observe(v1(10, 1, map[string]uint64{ctrA: 1})) // its line is lost
	rc.Observe(v1(20, 2, map[string]uint64{ctrA: 2}))
	// The second kill's line: it belongs to the second window, so the
	// first stays unexplained, whatever the order of the runs.
	assert.Equal(t, []Match{{Confirmed: true}}, rc.Match([]Event{kill(ctrA, 15)}))
	d := rc.Declare(at(60), at(60))
	require.Len(t, d, 1)
	assert.Equal(t, at(0), d[0].From)
	assert.Equal(t, at(10.01), d[0].To)
}

func TestCounterRestartedAtSamePath(t *testing.T) {
	rc := newTest()
	rc.Observe(v1(0, 5, map[string]uint64{ctrA: 5}))
	rc.Observe(v1(2, 6, map[string]uint64{ctrA: 1}))
	d := rc.Declare(at(60), at(60))
	require.Len(t, d, 1)
	assert.Equal(t, ctrA, d[0].Cgroup)
}

func TestNewCgroupCountsFromZero(t *testing.T) {
	rc := newTest()
	rc.Observe(v1(0, 0, nil))
	// A container made and killed between two readings.
	rc.Observe(v1(2, 1, map[string]uint64{ctrA: 1}))
	d := rc.Declare(at(60), at(60))
	require.Len(t, d, 1)
	assert.Equal(t, ctrA, d[0].Cgroup)
}

func TestAfterTruncatedReadingNewCgroupIsNotTrusted(t *testing.T) {
	rc := newTest()
	r := v1(0, 4, map[string]uint64{ctrA: 0})
	r.Truncated = true
	rc.Observe(r)
	// ctrB existed, unwatched, with 4 old kills: they are not new.
	rc.Observe(v1(2, 4, map[string]uint64{ctrA: 0, ctrB: 4}))
	assert.Empty(t, rc.Declare(at(60), at(60)))
}

func TestV1VanishedCgroupCountsAtNodeLevel(t *testing.T) {
	rc := newTest()
	rc.Observe(v1(0, 0, map[string]uint64{ctrA: 0}))
	// A's last process was killed and its cgroup removed before the read.
	rc.Observe(v1(2, 1, nil))
	d := rc.Declare(at(60), at(60))
	require.Len(t, d, 1)
	assert.Empty(t, d[0].Cgroup, "v1 keeps nothing of a removed cgroup")

	rc = newTest()
	rc.Observe(v1(0, 0, map[string]uint64{ctrA: 0}))
	rc.Observe(v1(2, 1, nil))
	assert.Equal(t, []Match{{Confirmed: true}}, rc.Match([]Event{kill(ctrA, 1)}), "its logged kill is matched at node level")
	assert.Empty(t, rc.Declare(at(60), at(60)))
}

func TestV2RemovedContainerCountsOnItsPod(t *testing.T) {
	rc := newTest()
	rc.Observe(v2(0, 0, map[string]Count{podA: {}, ctrA: {}, ctrB: {}}))
	// A's only process was killed, its cgroup removed before the read;
	// the pod's hierarchical counter keeps the kill.
	rc.Observe(v2(2, 1, map[string]Count{podA: {Kills: 1}, ctrB: {}}))
	d := rc.Declare(at(60), at(60))
	require.Len(t, d, 1)
	assert.Equal(t, podA, d[0].Cgroup)

	rc = newTest()
	rc.Observe(v2(0, 0, map[string]Count{podA: {}, ctrA: {}, ctrB: {}}))
	rc.Observe(v2(2, 1, map[string]Count{podA: {Kills: 1}, ctrB: {}}))
	assert.Equal(t, []Match{{Confirmed: true}}, rc.Match([]Event{kill(ctrA, 1)}), "matched on the pod")
	assert.Empty(t, rc.Declare(at(60), at(60)))
}

func TestV2ChildRisesAreNotThePodsOwn(t *testing.T) {
	rc := newTest()
	rc.Observe(v2(0, 0, map[string]Count{podA: {}, ctrA: {}, ctrB: {}}))
	rc.Observe(v2(2, 3, map[string]Count{podA: {Kills: 3}, ctrA: {Kills: 2}, ctrB: {Kills: 1}}))
	m := rc.Match([]Event{kill(ctrA, 1), kill(ctrA, 1.1), kill(ctrB, 1.2)})
	assert.Equal(t, []Match{{Confirmed: true}, {Confirmed: true}, {Confirmed: true}}, m)
	assert.Empty(t, rc.Declare(at(60), at(60)))
}

func TestV2ReadingRaceIsTakenBack(t *testing.T) {
	rc := newTest()
	rc.Observe(v2(0, 0, map[string]Count{podA: {}, ctrA: {}}))
	// A kill landed after A's counter was read and before the pod's: the
	// pod shows it, A not yet.
	rc.Observe(v2(2, 0, map[string]Count{podA: {Kills: 1}, ctrA: {}}))
	// The next reading has it on A: the pod's unit was the same kill.
	rc.Observe(v2(3, 1, map[string]Count{podA: {Kills: 1}, ctrA: {Kills: 1}}))
	assert.Equal(t, []Match{{Confirmed: true}}, rc.Match([]Event{kill(ctrA, 2.5)}))
	assert.Empty(t, rc.Declare(at(60), at(60)), "counted once")
}

func TestV2ReadingRaceAfterMatch(t *testing.T) {
	rc := newTest()
	rc.Observe(v2(0, 0, map[string]Count{podA: {}, ctrA: {}}))
	rc.Observe(v2(2, 1, map[string]Count{podA: {Kills: 1}, ctrA: {}}))
	// The pod's unit was already used up (a line for the kill came in
	// between): the child's new unit is the same kill.
	assert.Equal(t, []Match{{Confirmed: true}}, rc.Match([]Event{kill(ctrA, 1.5)}))
	rc.Observe(v2(3, 1, map[string]Count{podA: {Kills: 1}, ctrA: {Kills: 1}}))
	assert.Empty(t, rc.Declare(at(60), at(60)), "counted once")
}

func TestGroupKillWithItsLog(t *testing.T) {
	rc := newTest()
	rc.Observe(v2(0, 0, map[string]Count{podA: {}, ctrA: {}}))
	// memory.oom.group=1, 4 processes: the victim, "Tasks in …", the four
	// members with the victim again. The kernel counted 5 and 1 group kill.
	rc.Observe(v2(2, 5, map[string]Count{podA: {Kills: 5, GroupKills: 1}, ctrA: {Kills: 5, GroupKills: 1}}))
	m := rc.Match([]Event{
		kill(ctrA, 1),
		{Kind: GroupKill, Cgroup: ctrA, Time: at(1)},
		kill(ctrA, 1),
		{Kind: Echo, Cgroup: ctrA, Time: at(1)},
		kill(ctrA, 1), kill(ctrA, 1),
	})
	for i, x := range m {
		assert.True(t, x.Confirmed, "event %d", i)
	}
	assert.Empty(t, rc.Declare(at(60), at(60)))
}

func TestGroupKillWithoutItsLog(t *testing.T) {
	rc := newTest()
	rc.Observe(v2(0, 0, map[string]Count{podA: {}, ctrA: {}}))
	rc.Observe(v2(2, 5, map[string]Count{podA: {Kills: 5, GroupKills: 1}, ctrA: {Kills: 5, GroupKills: 1}}))
	d := rc.Declare(at(60), at(60))
	assert.Len(t, d, 4, "five counted, the first victim twice: four processes")
	for _, k := range d {
		assert.Equal(t, ctrA, k.Cgroup)
	}
}

func TestRateLimitedGroupKill(t *testing.T) {
	rc := newTest()
	rc.Observe(v2(0, 0, map[string]Count{podA: {}, ctrA: {}}))
	rc.Observe(v2(2, 4, map[string]Count{podA: {Kills: 4, GroupKills: 1}, ctrA: {Kills: 4, GroupKills: 1}}))
	// The report was suppressed: the first victim without cgroup, then
	// "Tasks in" names the group, two members and the victim's repeat.
	m := rc.Match([]Event{
		kill("", 1),
		{Kind: GroupKill, Cgroup: ctrA, Time: at(1)},
		kill(ctrA, 1),
		{Kind: Echo, Cgroup: ctrA, Time: at(1)},
		kill(ctrA, 1),
	})
	assert.Equal(t, Match{Confirmed: true, Attributed: ctrA}, m[0], "the group's first victim is the container's")
	assert.Empty(t, rc.Declare(at(60), at(60)))
}

func TestRestartContinuesExactly(t *testing.T) {
	rc := newTest()
	rc.Observe(v1(0, 0, map[string]uint64{ctrA: 0, ctrB: 0}))
	rc.Observe(v1(2, 3, map[string]uint64{ctrA: 2, ctrB: 1}))
	rc.Match([]Event{kill(ctrA, 1)})
	require.True(t, rc.Changed())
	b, err := rc.Export().Marshal()
	require.NoError(t, err)
	rc.Saved()
	assert.False(t, rc.Changed())
	s, err := UnmarshalState(b)
	require.NoError(t, err)
	rc = Restore(Config{Grace: 10 * time.Second}, s)
	// While the collector was down, B lost two more processes; the log
	// catch-up brings one of A's lines and one of B's.
	rc.Observe(v1(30, 5, map[string]uint64{ctrA: 2, ctrB: 3}))
	m := rc.Match([]Event{kill(ctrA, 1.5), kill(ctrB, 20)})
	assert.Equal(t, []Match{{Confirmed: true}, {Confirmed: true}}, m)
	d := rc.Declare(at(60), at(60))
	byCgroup := map[string]int{}
	for _, k := range d {
		byCgroup[k.Cgroup]++
	}
	assert.Equal(t, map[string]int{ctrB: 2}, byCgroup, "B's first kill and one during the downtime")
}

func TestRestoreAfterReboot(t *testing.T) {
	rc := newTest()
	rc.Observe(v1(0, 40, map[string]uint64{ctrA: 7}))
	s := rc.Export()
	rc = Restore(Config{Grace: 10 * time.Second}, s)
	rc.StartBoot(at(100))
	// A new boot: counters start from zero; two kills since.
	rc.Observe(v1(130, 2, map[string]uint64{ctrC: 1}))
	assert.Equal(t, []Match{{Confirmed: true}}, rc.Match([]Event{kill(ctrC, 120)}))
	d := rc.Declare(at(200), at(200))
	require.Len(t, d, 1)
	assert.Empty(t, d[0].Cgroup)
	assert.Equal(t, at(100), d[0].From)
}

func TestOwedNodeUnit(t *testing.T) {
	rc := newTest()
	rc.Observe(v1(0, 0, map[string]uint64{ctrA: 0}))
	// The kill landed between the node read and A's read: A has it, the
	// node does not yet.
	rc.Observe(v1(2, 0, map[string]uint64{ctrA: 1}))
	require.Len(t, rc.Declare(at(30), at(30)), 1)
	rc.Observe(v1(31, 1, map[string]uint64{ctrA: 1}))
	assert.Empty(t, rc.Declare(at(60), at(60)), "its node rise was paid in advance")
}

func TestBoundMergesRunsKeepingCounts(t *testing.T) {
	rc := New(Config{Grace: 10 * time.Second, MaxRuns: 8})
	rc.Observe(v1(0, 0, map[string]uint64{ctrA: 0}))
	for i := 1; i <= 50; i++ {
		rc.Observe(v1(float64(i), uint64(i), map[string]uint64{ctrA: uint64(i)}))
	}
	runs := len(rc.node.kills) + len(rc.accounts[ctrA].kills)
	assert.LessOrEqual(t, runs, 8)
	assert.Equal(t, int64(50), rc.accounts[ctrA].kills.total())
	assert.Equal(t, int64(50), rc.node.kills.total())
	assert.Len(t, rc.Declare(at(100), at(100)), 50)
}

func TestCommonAncestor(t *testing.T) {
	assert.Equal(t, podA, commonAncestor([]string{ctrA, ctrB}))
	assert.Equal(t, podA, commonAncestor([]string{ctrA, podA}))
	assert.Equal(t, "/kubepods", commonAncestor([]string{ctrA, ctrC}))
	assert.Empty(t, commonAncestor([]string{ctrA, "/system.slice/x"}))
	assert.Equal(t, ctrA, commonAncestor([]string{ctrA}))
}
