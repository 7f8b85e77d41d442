// Package outcomewatch decides, for each OOM kill, whether the victim's
// container lived on, as soon as the kernel shows it, and never by guess.
//
// A kill's outcome is visible when:
//   - its cgroup has no process left, or is gone (exited): the kernel says
//     so at once (cgroup v2's populated flag, which inotify reports as it
//     changes; the pids controller's count on cgroup v1);
//   - its victims are gone and its cgroup still holds processes, and still
//     does Settle later (survived). "Gone" is the victim's own entry in a
//     procfs of the host's pid namespace: reaped, or a zombie where the
//     cgroup's count leaves zombies out. Nothing in the cgroup filesystem
//     names another pid namespace's processes, and counts cannot stand in
//     for names: a master that forks a new worker hides the victim's
//     exit, another process's exit fakes it. Settle lets a parent that
//     ends when its child is killed (a shell script's last command) end
//     before the container is called alive.
//
// A kill whose outcome is not visible yet waits, at most Delay from when it
// happened (and from when it was added); then its cgroup is read once as
// before: processes left mean survived. Group kills (memory.oom.group)
// never count as survived early: their members die one by one. Kills are
// decided per cgroup, so one slow victim holds only the kills of its own
// container.
package outcomewatch

import (
	"time"

	"go.uber.org/zap"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/cgroupstate"
	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/hostproc"
)

// Outcome is what became of a victim's container.
type Outcome int

const (
	// Unknown: not observable truthfully.
	Unknown Outcome = iota
	// Survived: processes lived on in the cgroup after the kill.
	Survived
	// Exited: no process left, seen in time.
	Exited
)

func (o Outcome) String() string {
	switch o {
	case Survived:
		return "survived"
	case Exited:
		return "exited"
	default:
		return "unknown"
	}
}

// Config times the decisions.
type Config struct {
	// Delay is the longest a kill waits for its outcome to become visible.
	Delay time.Duration
	// MaxAge: a cgroup found empty or gone later than this after the kill
	// may have emptied for any reason since: its outcome is Unknown.
	MaxAge time.Duration
	// Settle is how long a cgroup must stay populated after its victims
	// are gone to count as survived.
	Settle time.Duration
}

// Kill is one victim, as the kernel's report named it.
type Kill struct {
	PID  int64
	Comm string
	// Cgroup is the victim's memory cgroup (task_memcg); "" when the
	// report named none: Unknown at once.
	Cgroup string
	// Domain is the cgroup whose limit was hit (oom_memcg); "" for a
	// system OOM.
	Domain string
	// Group: the report says the kernel killed the whole cgroup
	// (memory.oom.group).
	Group bool
	// Time is when the kernel killed it.
	Time time.Time
}

// Result is one decided kill.
type Result struct {
	ID      uint64
	Outcome Outcome
	// Unobservable: the kill named a cgroup that could not be observed.
	Unobservable bool
}

// Cgroups reads cgroup state (cgroupstate.Observer).
type Cgroups interface {
	Look(path string) (cgroupstate.Observation, error)
	GroupKill(path, domain string) (bool, error)
	EventsFile(path string) string
}

// Processes reads what became of a victim (hostproc.Procfs).
type Processes interface {
	Status(pid int64, comm string) (hostproc.Status, error)
}

// Notifier wakes the watcher when a watched cgroup.events file changes
// (cgroupstate.Notifier).
type Notifier interface {
	Watch(path string) error
	Close() error
}

// Polling while victims exit: first every minPoll, then less often as the
// wait gets longer (a quarter of the time waited so far), at most maxPoll.
const (
	minPoll = time.Millisecond
	maxPoll = 50 * time.Millisecond
)

// Watcher holds the kills whose outcome is not decided yet.
type Watcher struct {
	cfg    Config
	cg     Cgroups   // nil: no cgroup can be observed
	procs  Processes // nil: victims cannot be seen, so survived waits for Delay
	logger *zap.Logger
	// newNotifier makes the inotify instance; it exists only while some
	// watched cgroup has an events file.
	newNotifier func() (Notifier, <-chan struct{}, error)
	notifier    Notifier
	wake        <-chan struct{}

	nextID   uint64
	cgroups  map[string]*cgroupWatch
	pending  int
	decided  []Result
	notifyOK bool
	// woken: a watched file changed (Woken) since the last Poll.
	woken bool
}

// cgroupWatch is one cgroup's pending kills.
type cgroupWatch struct {
	path  string
	kills []*watched
	// settled is when every victim was first seen gone with the cgroup
	// still populated (zero: not yet, or not since).
	settled time.Time
	// next is when to look again.
	next time.Time
}

type watched struct {
	id       uint64
	kill     Kill
	added    time.Time
	deadline time.Time
	// group: the whole cgroup is being killed (the report, or
	// memory.oom.group read at once).
	group bool
}

// New makes a watcher. cg nil: every outcome is Unknown. procs nil:
// exited is still decided at once, survived only after Delay.
func New(cfg Config, cg Cgroups, procs Processes, logger *zap.Logger) *Watcher {
	return &Watcher{
		cfg: cfg, cg: cg, procs: procs, logger: logger,
		newNotifier: func() (Notifier, <-chan struct{}, error) {
			n, err := cgroupstate.NewNotifier()
			if err != nil {
				return nil, nil, err
			}
			return n, n.C, nil
		},
		cgroups:  map[string]*cgroupWatch{},
		notifyOK: true,
	}
}

// Add takes a kill read now and returns its ID. Its outcome may be known
// at once: call Poll.
func (w *Watcher) Add(k Kill, now time.Time) uint64 {
	w.nextID++
	id := w.nextID
	if w.cg == nil || k.Cgroup == "" {
		w.decided = append(w.decided, Result{ID: id, Outcome: Unknown, Unobservable: w.cg == nil && k.Cgroup != ""})
		return id
	}
	deadline := k.Time.Add(w.cfg.Delay)
	if d := now.Add(w.cfg.Delay); d.Before(deadline) {
		deadline = d // a kernel clock ahead of ours must not hold a kill longer
	}
	wk := &watched{id: id, kill: k, added: now, deadline: deadline, group: k.Group}
	if !wk.group {
		g, err := w.cg.GroupKill(k.Cgroup, k.Domain)
		if err != nil {
			w.logger.Debug("Cannot read memory.oom.group; the kill waits as a group kill would", zap.String("cgroup", k.Cgroup), zap.Error(err))
			g = true
		}
		wk.group = g
	}
	c := w.cgroups[k.Cgroup]
	if c == nil {
		c = &cgroupWatch{path: k.Cgroup}
		w.cgroups[k.Cgroup] = c
		w.watch(c)
	}
	c.kills = append(c.kills, wk)
	c.next = now
	// A new victim in the cgroup: it has to be gone too before survived.
	c.settled = time.Time{}
	w.pending++
	return id
}

// watch asks inotify for changes of the cgroup's populated flag, so an
// emptied cgroup is seen at once rather than at the next poll.
func (w *Watcher) watch(c *cgroupWatch) {
	f := w.cg.EventsFile(c.path)
	if f == "" || !w.notifyOK {
		return
	}
	if w.notifier == nil {
		n, wake, err := w.newNotifier()
		if err != nil {
			w.notifyOK = false
			w.logger.Warn("Cannot watch cgroup.events with inotify; cgroups are polled while an outcome is pending", zap.Error(err))
			return
		}
		w.notifier, w.wake = n, wake
	}
	if err := w.notifier.Watch(f); err != nil {
		w.logger.Debug("Cannot watch cgroup.events; polling it", zap.String("file", f), zap.Error(err))
	}
}

// Poll looks again at every cgroup that is due, or at all of them when
// woken (a watched file changed), and returns the kills decided since the
// last Poll.
func (w *Watcher) Poll(now time.Time) []Result {
	woken := w.woken
	w.woken = false
	select {
	case <-w.wake:
		woken = true
	default:
	}
	for path, c := range w.cgroups {
		if woken || !now.Before(c.next) {
			w.look(c, now)
			if len(c.kills) == 0 {
				delete(w.cgroups, path)
			}
		}
	}
	if len(w.cgroups) == 0 && w.notifier != nil {
		// Nothing pending: no inotify instance, no goroutine left.
		_ = w.notifier.Close()
		w.notifier, w.wake = nil, nil
	}
	out := w.decided
	w.decided = nil
	return out
}

// Next is when a pending kill is next due to be looked at; zero when none
// is pending.
func (w *Watcher) Next() time.Time {
	var next time.Time
	for _, c := range w.cgroups {
		if next.IsZero() || c.next.Before(next) {
			next = c.next
		}
	}
	return next
}

// Wake receives when a watched cgroup changed (nil: nothing watched). A
// caller that takes the value from it tells Woken.
func (w *Watcher) Wake() <-chan struct{} { return w.wake }

// Woken says a value was taken from Wake: the next Poll looks at every
// cgroup.
func (w *Watcher) Woken() { w.woken = true }

// Len is how many kills are pending.
func (w *Watcher) Len() int { return w.pending }

// Close stops watching; pending kills stay undecided.
func (w *Watcher) Close() {
	if w.notifier != nil {
		_ = w.notifier.Close()
		w.notifier, w.wake = nil, nil
	}
}

// look reads the cgroup and decides what it can.
func (w *Watcher) look(c *cgroupWatch, now time.Time) {
	ob, err := w.cg.Look(c.path)
	if err != nil {
		w.logger.Debug("Cannot observe the victim's cgroup", zap.String("cgroup", c.path), zap.Error(err))
	}
	switch ob.State {
	case cgroupstate.Unknown:
		w.decideAll(c, func(*watched) (Outcome, bool) { return Unknown, true })
		return
	case cgroupstate.Empty, cgroupstate.Gone:
		// No process left: the container exited, if seen right after the
		// kill; a kill read from history may have been followed by anything.
		w.decideAll(c, func(k *watched) (Outcome, bool) {
			if now.Sub(k.kill.Time) <= w.cfg.MaxAge {
				return Exited, false
			}
			return Unknown, false
		})
		return
	}
	// Populated. Processes left mean survived whenever they are seen once
	// the kill has taken effect: at once for a kill read from history, at
	// its deadline for one whose victims could not be seen gone.
	waiting := c.kills[:0]
	for _, k := range c.kills {
		if now.Sub(k.kill.Time) > w.cfg.MaxAge || !now.Before(k.deadline) {
			w.decide(k, Survived, false)
			continue
		}
		waiting = append(waiting, k)
	}
	c.kills = waiting
	if len(waiting) == 0 {
		return
	}
	if w.victimsGone(c, ob) {
		if c.settled.IsZero() {
			c.settled = now
		}
		if now.Sub(c.settled) >= w.cfg.Settle {
			w.decideAll(c, func(*watched) (Outcome, bool) { return Survived, false })
			return
		}
		c.next = c.settled.Add(w.cfg.Settle)
	} else {
		c.settled = time.Time{}
		c.next = now.Add(pollInterval(now.Sub(waiting[0].added)))
	}
	for _, k := range waiting {
		if k.deadline.Before(c.next) {
			c.next = k.deadline
		}
	}
}

// victimsGone: every victim still pending in the cgroup has left it, so
// the processes the cgroup holds are others.
func (w *Watcher) victimsGone(c *cgroupWatch, ob cgroupstate.Observation) bool {
	if w.procs == nil {
		return false
	}
	for _, k := range c.kills {
		if k.group {
			return false
		}
		st, err := w.procs.Status(k.kill.PID, k.kill.Comm)
		if err != nil {
			w.logger.Debug("Cannot read the victim's process", zap.Int64("pid", k.kill.PID), zap.Error(err))
		}
		switch {
		case st == hostproc.Gone:
		case st == hostproc.Exited && !ob.CountsExited:
		default:
			return false
		}
	}
	return true
}

func pollInterval(waited time.Duration) time.Duration {
	return min(max(waited/4, minPoll), maxPoll)
}

func (w *Watcher) decideAll(c *cgroupWatch, f func(*watched) (Outcome, bool)) {
	for _, k := range c.kills {
		o, unobservable := f(k)
		w.decide(k, o, unobservable)
	}
	c.kills = c.kills[:0]
}

func (w *Watcher) decide(k *watched, o Outcome, unobservable bool) {
	w.pending--
	w.decided = append(w.decided, Result{ID: k.id, Outcome: o, Unobservable: unobservable})
}
