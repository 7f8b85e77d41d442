package oomparse

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A report whose summary names a victim that no line reports killed is the
// parser's own drift signal: the victim line was reworded (or lost).
func TestMissingVictimLine(t *testing.T) {
	kills, stats := feedAll(loadFixture(t, fixturePath("v6.x-victim-line-reworded.txt")))
	require.Len(t, kills, 1, "only the next report's kill is read from the text")
	assert.Equal(t, int64(4243), kills[0].PID)
	assert.True(t, kills[0].Attributed)
	assert.Equal(t, uint64(1), stats.MissingVictims, "the reworded report")
	assert.Equal(t, uint64(0), stats.Unrecognized, "the reworded line itself holds no OOM word this parser knows")

	a := NewAssembler(Options{})
	for _, m := range loadFixture(t, fixturePath("v6.x-victim-line-reworded.txt"))[:6] {
		a.Feed(m)
	}
	pid, _ := a.MissingVictim()
	assert.Equal(t, int64(0), pid, "not yet: the victim line may still come")
	a.Feed(Message{Text: "php-fpm invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0", BootID: "boot-1"})
	pid, task := a.MissingVictim()
	assert.Equal(t, int64(4242), pid)
	assert.Contains(t, task, ",task=php-fpm: pool")
}

func TestAlreadyExitingIsNotMissing(t *testing.T) {
	kills, stats := feedAll(loadFixture(t, fixturePath("v6.x-victim-already-exiting.txt")))
	require.Len(t, kills, 1)
	assert.Equal(t, int64(4243), kills[0].PID)
	assert.Equal(t, uint64(0), stats.MissingVictims)
	assert.Equal(t, uint64(0), stats.Unrecognized)
}

// With nothing more to read, Expire ends the report once ReportTTL passed.
func TestExpireNoticesMissingVictim(t *testing.T) {
	m := loadFixture(t, fixturePath("v6.x-victim-line-reworded.txt"))[:6]
	a := NewAssembler(Options{})
	for _, x := range m {
		a.Feed(x)
	}
	last := m[len(m)-1].Time
	a.Expire(last.Add(10 * time.Second))
	assert.Equal(t, uint64(0), a.Stats().MissingVictims, "within ReportTTL")
	a.Expire(last.Add(31 * time.Second))
	assert.Equal(t, uint64(1), a.Stats().MissingVictims)
}

// A group kill's repeat of its first victim and "Tasks in …" carry what
// the kernel's counters need: the group and the time.
func TestGroupLineAndRepeatCarryTheGroup(t *testing.T) {
	_, _, memcg := ctr(1)
	a := NewAssembler(Options{})
	var group, dup []Kill
	for _, m := range msgs(groupLines(memcg, 102, []int{100, 101, 102}, true)) {
		k, out := a.Feed(m)
		switch out {
		case LineGroup:
			group = append(group, k)
		case LineDuplicate:
			dup = append(dup, k)
		}
	}
	require.Len(t, group, 1)
	assert.Equal(t, memcg, group[0].TaskMemcg)
	assert.True(t, group[0].GroupKill)
	assert.False(t, group[0].Time.IsZero())
	require.Len(t, dup, 1)
	assert.Equal(t, int64(102), dup[0].PID)
	assert.Equal(t, memcg, dup[0].TaskMemcg)
}
