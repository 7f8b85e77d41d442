package outcomewatch

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/cgroupstate"
	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/hostproc"
)

// fakeCgroups and fakeProcs are what the kernel shows, set by each test
// step; the real readers are tested against real kernels in their own
// packages and in test/e2e and the kernel lab.
type fakeCgroups struct {
	state  map[string]cgroupstate.State
	exited bool // the count includes zombies (pids.current)
	group  map[string]bool
	events map[string]string
	looks  int
}

func (f *fakeCgroups) Look(path string) (cgroupstate.Observation, error) {
	f.looks++
	return cgroupstate.Observation{State: f.state[path], CountsExited: f.exited}, nil
}

func (f *fakeCgroups) GroupKill(path, _ string) (bool, error) { return f.group[path], nil }
func (f *fakeCgroups) EventsFile(path string) string          { return f.events[path] }

type fakeProcs map[int64]hostproc.Status

func (f fakeProcs) Status(pid int64, _ string) (hostproc.Status, error) { return f[pid], nil }

type fakeNotifier struct {
	watched []string
	closed  bool
}

func (n *fakeNotifier) Watch(p string) error { n.watched = append(n.watched, p); return nil }
func (n *fakeNotifier) Close() error         { n.closed = true; return nil }

var (
	t0  = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	cfg = Config{Delay: 2 * time.Second, MaxAge: 30 * time.Second, Settle: 20 * time.Millisecond}
)

const (
	ctrA = "/kubepods/burstable/poda/aaaa"
	ctrB = "/kubepods/burstable/podb/bbbb"
)

func newTest(cg *fakeCgroups, procs Processes) *Watcher {
	return New(cfg, cg, procs, zap.NewNop())
}

func outcomes(rs []Result) map[uint64]Outcome {
	out := map[uint64]Outcome{}
	for _, r := range rs {
		out[r.ID] = r.Outcome
	}
	return out
}

func TestEmptyOrGoneIsExitedAtOnce(t *testing.T) {
	cg := &fakeCgroups{state: map[string]cgroupstate.State{ctrA: cgroupstate.Empty, ctrB: cgroupstate.Gone}}
	w := newTest(cg, fakeProcs{})
	a := w.Add(Kill{PID: 1, Cgroup: ctrA, Time: t0}, t0.Add(3*time.Millisecond))
	b := w.Add(Kill{PID: 2, Cgroup: ctrB, Time: t0}, t0.Add(3*time.Millisecond))
	got := outcomes(w.Poll(t0.Add(3 * time.Millisecond)))
	assert.Equal(t, map[uint64]Outcome{a: Exited, b: Exited}, got)
	assert.Zero(t, w.Len())
	assert.True(t, w.Next().IsZero(), "nothing pending, nothing to wake for")
}

func TestHistory(t *testing.T) {
	cg := &fakeCgroups{state: map[string]cgroupstate.State{ctrA: cgroupstate.Empty, ctrB: cgroupstate.Populated}}
	w := newTest(cg, fakeProcs{})
	now := t0.Add(time.Minute) // read a minute after the kill
	a := w.Add(Kill{PID: 1, Cgroup: ctrA, Time: t0}, now)
	b := w.Add(Kill{PID: 2, Cgroup: ctrB, Time: t0}, now)
	assert.Equal(t, map[uint64]Outcome{a: Unknown, b: Survived}, outcomes(w.Poll(now)),
		"empty by now may be anything since; processes left are processes that lived on")
}

func TestUnobservable(t *testing.T) {
	w := New(cfg, nil, nil, zap.NewNop())
	a := w.Add(Kill{PID: 1, Cgroup: ctrA, Time: t0}, t0)
	b := w.Add(Kill{PID: 2, Time: t0}, t0) // the report named no cgroup
	rs := w.Poll(t0)
	require.Len(t, rs, 2)
	assert.Equal(t, Result{ID: a, Outcome: Unknown, Unobservable: true}, rs[0])
	assert.Equal(t, Result{ID: b, Outcome: Unknown}, rs[1], "no cgroup named: unknown, not an unobservable cgroup")

	cg := &fakeCgroups{state: map[string]cgroupstate.State{ctrA: cgroupstate.Unknown}}
	w = newTest(cg, fakeProcs{})
	c := w.Add(Kill{PID: 3, Cgroup: ctrA, Time: t0}, t0)
	assert.Equal(t, []Result{{ID: c, Outcome: Unknown, Unobservable: true}}, w.Poll(t0))
}

// A worker under a living master: survived once the worker is gone and
// the cgroup still holds the master Settle later.
func TestSurvivedOnceVictimGoneAndSettled(t *testing.T) {
	cg := &fakeCgroups{state: map[string]cgroupstate.State{ctrA: cgroupstate.Populated}}
	procs := fakeProcs{7: hostproc.Running}
	w := newTest(cg, procs)
	now := t0.Add(2 * time.Millisecond)
	id := w.Add(Kill{PID: 7, Comm: "php-fpm", Cgroup: ctrA, Time: t0}, now)
	assert.Empty(t, w.Poll(now), "the victim is still exiting")
	assert.Equal(t, now.Add(minPoll), w.Next(), "looked at again soon")

	now = w.Next()
	procs[7] = hostproc.Exited
	assert.Empty(t, w.Poll(now), "a zombie has left the cgroup: the settle starts")
	assert.Equal(t, now.Add(cfg.Settle), w.Next())

	procs[7] = hostproc.Gone
	assert.Empty(t, w.Poll(now.Add(cfg.Settle/2)), "not settled yet")
	now = now.Add(cfg.Settle)
	assert.Equal(t, map[uint64]Outcome{id: Survived}, outcomes(w.Poll(now)))
	assert.Zero(t, w.Len())
}

// A shell script's last command is killed and the shell ends with it: the
// cgroup empties during the settle, which makes the kill exited.
func TestEmptiedDuringSettleIsExited(t *testing.T) {
	cg := &fakeCgroups{state: map[string]cgroupstate.State{ctrA: cgroupstate.Populated}}
	procs := fakeProcs{7: hostproc.Gone}
	w := newTest(cg, procs)
	id := w.Add(Kill{PID: 7, Cgroup: ctrA, Time: t0}, t0)
	assert.Empty(t, w.Poll(t0))
	cg.state[ctrA] = cgroupstate.Empty
	assert.Equal(t, map[uint64]Outcome{id: Exited}, outcomes(w.Poll(t0.Add(cfg.Settle))))
}

// On cgroup v1 without the unified hierarchy the count is the pids
// controller's, which still holds a zombie: only a reaped victim is gone.
func TestZombieCountedByPidsController(t *testing.T) {
	cg := &fakeCgroups{state: map[string]cgroupstate.State{ctrA: cgroupstate.Populated}, exited: true}
	procs := fakeProcs{7: hostproc.Exited}
	w := newTest(cg, procs)
	id := w.Add(Kill{PID: 7, Cgroup: ctrA, Time: t0}, t0)
	now := t0
	for i := 0; i < 5; i++ {
		assert.Empty(t, w.Poll(now), "the zombie may be all the count holds")
		now = w.Next()
	}
	procs[7] = hostproc.Gone
	assert.Empty(t, w.Poll(now))
	assert.Equal(t, map[uint64]Outcome{id: Survived}, outcomes(w.Poll(now.Add(cfg.Settle))))
}

// Without the victims' processes in sight, survived is decided as before:
// processes left at Delay.
func TestWithoutProcessesSurvivedWaitsForDelay(t *testing.T) {
	cg := &fakeCgroups{state: map[string]cgroupstate.State{ctrA: cgroupstate.Populated, ctrB: cgroupstate.Populated}}
	w := newTest(cg, nil)
	a := w.Add(Kill{PID: 7, Cgroup: ctrA, Time: t0}, t0.Add(5*time.Millisecond))
	now := t0.Add(5 * time.Millisecond)
	for now.Before(t0.Add(cfg.Delay)) {
		require.Empty(t, w.Poll(now))
		next := w.Next()
		require.True(t, next.After(now))
		require.LessOrEqual(t, next.Sub(now), maxPoll)
		now = next
	}
	assert.Equal(t, t0.Add(cfg.Delay), now, "the deadline is Delay after the kill")
	assert.Equal(t, map[uint64]Outcome{a: Survived}, outcomes(w.Poll(now)))

	// An empty cgroup is still decided at once.
	cg.state[ctrB] = cgroupstate.Empty
	b := w.Add(Kill{PID: 8, Cgroup: ctrB, Time: now}, now)
	assert.Equal(t, map[uint64]Outcome{b: Exited}, outcomes(w.Poll(now)))
}

// A kill read late waits at most Delay from when it was read, and one
// whose kernel time is ahead of our clock no longer than Delay either.
func TestDeadline(t *testing.T) {
	cg := &fakeCgroups{state: map[string]cgroupstate.State{ctrA: cgroupstate.Populated}}
	w := newTest(cg, nil)
	read := t0.Add(time.Second)
	id := w.Add(Kill{PID: 7, Cgroup: ctrA, Time: t0.Add(10 * time.Second)}, read) // kernel clock ahead
	assert.Empty(t, w.Poll(read.Add(cfg.Delay-time.Millisecond)))
	assert.Equal(t, map[uint64]Outcome{id: Survived}, outcomes(w.Poll(read.Add(cfg.Delay))))
}

// memory.oom.group: the kernel kills every member; one member gone says
// nothing about the rest. Only an empty cgroup decides early.
func TestGroupKillNeverSurvivesEarly(t *testing.T) {
	cg := &fakeCgroups{
		state: map[string]cgroupstate.State{ctrA: cgroupstate.Populated, ctrB: cgroupstate.Populated},
		group: map[string]bool{ctrB: true},
	}
	procs := fakeProcs{1: hostproc.Gone, 2: hostproc.Gone, 3: hostproc.Gone}
	w := newTest(cg, procs)
	a := w.Add(Kill{PID: 1, Cgroup: ctrA, Group: true, Time: t0}, t0) // from the report
	b := w.Add(Kill{PID: 2, Cgroup: ctrB, Time: t0}, t0)              // memory.oom.group read at once
	now := t0
	for i := 0; i < 10; i++ {
		require.Empty(t, w.Poll(now))
		now = w.Next()
	}
	cg.state[ctrA], cg.state[ctrB] = cgroupstate.Empty, cgroupstate.Empty
	assert.Equal(t, map[uint64]Outcome{a: Exited, b: Exited}, outcomes(w.Poll(now)))
}

// Kills are decided per cgroup: a victim that takes long to exit holds
// only the kills of its own cgroup, and every victim of a cgroup must be
// gone before its processes count as survivors.
func TestPerCgroupReadiness(t *testing.T) {
	cg := &fakeCgroups{state: map[string]cgroupstate.State{ctrA: cgroupstate.Populated, ctrB: cgroupstate.Populated}}
	procs := fakeProcs{1: hostproc.Running, 2: hostproc.Gone, 3: hostproc.Gone}
	w := newTest(cg, procs)
	a1 := w.Add(Kill{PID: 1, Cgroup: ctrA, Time: t0}, t0)
	a2 := w.Add(Kill{PID: 2, Cgroup: ctrA, Time: t0}, t0)
	b := w.Add(Kill{PID: 3, Cgroup: ctrB, Time: t0}, t0)
	assert.Empty(t, w.Poll(t0))
	assert.Equal(t, map[uint64]Outcome{b: Survived}, outcomes(w.Poll(t0.Add(cfg.Settle))), "B does not wait for A's slow victim")
	assert.Equal(t, 2, w.Len())
	procs[1] = hostproc.Gone
	now := w.Next()
	assert.Empty(t, w.Poll(now))
	assert.Equal(t, map[uint64]Outcome{a1: Survived, a2: Survived}, outcomes(w.Poll(now.Add(cfg.Settle))))
}

// A new victim in a settling cgroup starts the settle again.
func TestNewVictimRestartsSettle(t *testing.T) {
	cg := &fakeCgroups{state: map[string]cgroupstate.State{ctrA: cgroupstate.Populated}}
	procs := fakeProcs{1: hostproc.Gone, 2: hostproc.Running}
	w := newTest(cg, procs)
	a := w.Add(Kill{PID: 1, Cgroup: ctrA, Time: t0}, t0)
	assert.Empty(t, w.Poll(t0))
	b := w.Add(Kill{PID: 2, Cgroup: ctrA, Time: t0.Add(10 * time.Millisecond)}, t0.Add(10*time.Millisecond))
	assert.Empty(t, w.Poll(t0.Add(cfg.Settle)), "the second victim is still there")
	procs[2] = hostproc.Gone
	now := w.Next()
	assert.Empty(t, w.Poll(now), "both gone: the settle starts again")
	assert.Equal(t, now.Add(cfg.Settle), w.Next())
	assert.Equal(t, map[uint64]Outcome{a: Survived, b: Survived}, outcomes(w.Poll(now.Add(cfg.Settle))))
}

// inotify exists only while a watched cgroup is pending; a change wakes a
// look at once, before the cgroup is due.
func TestNotifierOnlyWhilePending(t *testing.T) {
	cg := &fakeCgroups{
		state:  map[string]cgroupstate.State{ctrA: cgroupstate.Populated},
		events: map[string]string{ctrA: "/sys/fs/cgroup" + ctrA + "/cgroup.events"},
	}
	w := newTest(cg, nil)
	var n *fakeNotifier
	wake := make(chan struct{}, 1)
	made := 0
	w.newNotifier = func() (Notifier, <-chan struct{}, error) {
		made++
		n = &fakeNotifier{}
		return n, wake, nil
	}
	id := w.Add(Kill{PID: 1, Cgroup: ctrA, Time: t0}, t0)
	require.NotNil(t, n)
	assert.Equal(t, []string{cg.events[ctrA]}, n.watched)
	assert.Empty(t, w.Poll(t0))
	looks := cg.looks
	assert.Empty(t, w.Poll(t0), "not due, not woken: not looked at")
	assert.Equal(t, looks, cg.looks)

	cg.state[ctrA] = cgroupstate.Empty
	wake <- struct{}{}
	assert.Equal(t, map[uint64]Outcome{id: Exited}, outcomes(w.Poll(t0)), "woken before it was due")
	assert.True(t, n.closed, "nothing pending: the inotify instance is closed")
	assert.Nil(t, w.Wake())
	assert.Equal(t, 1, made)
}
