package oomkillreceiver

import (
	"cmp"
	"context"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/cgroupstate"
	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/hostproc"
	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/oomparse"
	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/outcomewatch"
)

// outcomeObserver is the stage that decides, for each kill, whether its
// container lived on, as soon as the kernel shows it (outcomewatch), and
// holds the kills whose outcome is not visible yet, at most outcome.delay.
// A held kill is not delivered; it is saved with the checkpoint, so the
// position can move past it without losing it.
type outcomeObserver struct {
	cfg    OutcomeConfig
	obs    *cgroupstate.Observer // nil: observation off or impossible
	watch  *outcomewatch.Watcher
	logger *zap.Logger
	now    func() time.Time
	// held are the kills whose outcome is pending, by watcher ID (IDs grow
	// in the order kills were read).
	held map[uint64]killRecord
	// changed: held changed since the checkpoint last saved it.
	changed bool
	// known are kills admitted with their outcome set already (those known
	// only from the kernel's counters: unknown), handed on at the next
	// ready without being watched.
	known []killRecord
}

func newOutcomeObserver(cfg OutcomeConfig, logger *zap.Logger) *outcomeObserver {
	o := &outcomeObserver{cfg: cfg, logger: logger, now: time.Now, held: map[uint64]killRecord{}}
	var cg outcomewatch.Cgroups
	var procs outcomewatch.Processes
	if o.obs = cgroupObserver(cfg, logger); o.obs != nil {
		cg = o.obs
		procs = victimProcesses(cfg, logger)
		logger.Info("Observing OOM victims' cgroups for oom.container.outcome",
			zap.String("cgroup_root", cfg.CgroupRoot), zap.Stringer("layout", o.obs.Layout()),
			zap.String("method", o.obs.Method()), zap.String("proc_root", cfg.ProcRoot), zap.Bool("victims_seen", procs != nil),
			zap.Duration("delay", cfg.Delay), zap.Duration("settle", cfg.Settle))
	}
	o.watch = outcomewatch.New(outcomewatch.Config{Delay: cfg.Delay, MaxAge: cfg.MaxAge, Settle: cfg.Settle}, cg, procs, logger)
	return o
}

// cgroupObserver reads the node's cgroup filesystem, or nil (outcomes unknown).
func cgroupObserver(cfg OutcomeConfig, logger *zap.Logger) *cgroupstate.Observer {
	if cfg.CgroupRoot == "" {
		logger.Info("outcome.cgroup_root is empty: container outcomes are not observed (oom.container.outcome=unknown)")
		return nil
	}
	obs, err := cgroupstate.New(cfg.CgroupRoot)
	switch {
	case err != nil:
		logger.Warn("Cannot read the cgroup filesystem: every oom.container.outcome will be unknown; mount the host's /sys/fs/cgroup read-only and set outcome.cgroup_root to it",
			zap.String("cgroup_root", cfg.CgroupRoot), zap.Error(err))
	case obs.Layout() == cgroupstate.LayoutNone:
		logger.Warn("No cgroup filesystem under outcome.cgroup_root: every oom.container.outcome will be unknown; mount the host's /sys/fs/cgroup read-only and set outcome.cgroup_root to it",
			zap.String("cgroup_root", cfg.CgroupRoot))
	default:
		return obs
	}
	return nil
}

// victimProcesses reads victims in the host's procfs, or nil: then a
// container that lived on is known only at outcome.delay.
func victimProcesses(cfg OutcomeConfig, logger *zap.Logger) outcomewatch.Processes {
	if cfg.ProcRoot == "" {
		logger.Info("outcome.proc_root is empty: OOM victims are not looked up, so a container that lived on is known only outcome.delay after the kill (an emptied one at once)")
		return nil
	}
	p, err := hostproc.Open(cfg.ProcRoot)
	if err != nil {
		logger.Info("OOM victims cannot be looked up: a container that lived on is known only outcome.delay after the kill (an emptied one at once); mount the host's /proc read-only and set outcome.proc_root to it to know as soon as the victim is gone",
			zap.String("proc_root", cfg.ProcRoot), zap.Error(err))
		return nil
	}
	return p
}

// admit takes kills just read (or restored from the checkpoint); their
// outcome may be visible at once: see ready.
func (o *outcomeObserver) admit(kills []killRecord) {
	now := o.now()
	for _, k := range kills {
		if k.Outcome != "" {
			o.known = append(o.known, k)
			continue
		}
		id := o.watch.Add(victimOf(k), now)
		o.held[id] = k
		o.changed = true
	}
}

// victimOf is what the watcher needs of a kill.
func victimOf(k killRecord) outcomewatch.Kill {
	v := outcomewatch.Kill{
		PID: k.PID, Comm: k.Comm, Domain: k.OOMMemcg, Time: k.Time,
		Group: k.GroupKill || k.Group != (oomparse.GroupRef{}),
	}
	if k.Attributed {
		v.Cgroup = k.TaskMemcg
	}
	return v
}

// ready returns the kills whose outcome is now decided, in the order they
// were read, and how many of them named a cgroup that could not be
// observed.
func (o *outcomeObserver) ready() (kills []killRecord, unobservable int) {
	kills, o.known = o.known, nil
	res := o.watch.Poll(o.now())
	if len(res) == 0 {
		return kills, 0
	}
	slices.SortFunc(res, func(a, b outcomewatch.Result) int { return cmp.Compare(a.ID, b.ID) })
	for _, r := range res {
		k := o.held[r.ID]
		delete(o.held, r.ID)
		k.Outcome = outcomeValue(r.Outcome)
		if r.Unobservable {
			unobservable++
		}
		kills = append(kills, k)
	}
	o.changed = true
	return kills, unobservable
}

func outcomeValue(o outcomewatch.Outcome) string {
	switch o {
	case outcomewatch.Survived:
		return outcomeSurvived
	case outcomewatch.Exited:
		return outcomeExited
	default:
		return outcomeUnknown
	}
}

// pending are the kills whose outcome is not decided yet, in the order
// they were read: the checkpoint saves them.
func (o *outcomeObserver) pending() []killRecord {
	ids := make([]uint64, 0, len(o.held))
	for id := range o.held {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]killRecord, 0, len(ids))
	for _, id := range ids {
		out = append(out, o.held[id])
	}
	return out
}

// full: outcome.max_pending kills wait; reading pauses until one is
// decided.
func (o *outcomeObserver) full() bool { return len(o.held) >= o.cfg.MaxPending }

// dueAt is when a held kill is next looked at (zero: none is held).
func (o *outcomeObserver) dueAt() time.Time { return o.watch.Next() }

// interrupt ends the loop's idle wait (cancel) as soon as a held kill's
// cgroup changes (an emptied cgroup is decided at once). The returned
// func, called once the wait is over, stops it. Nothing is started while
// no cgroup is watched.
func (o *outcomeObserver) interrupt(ctx context.Context, cancel context.CancelFunc) (stop func()) {
	changed := o.watch.Wake()
	if changed == nil {
		return func() {}
	}
	woken := make(chan bool, 1)
	go func() {
		select {
		case <-changed:
			woken <- true
			cancel()
		case <-ctx.Done():
			woken <- false
		}
	}()
	return func() {
		cancel()
		if <-woken {
			o.watch.Woken() // the next ready looks at every held cgroup
		}
	}
}

func (o *outcomeObserver) close() { o.watch.Close() }

// alive says whether processes still run in a series' cgroup: such a
// series is kept past its retention.
func (o *outcomeObserver) alive(k resourceKey) bool {
	if o.obs == nil {
		return false
	}
	state, err := o.obs.Observe(k.CgroupPath)
	if err != nil {
		o.logger.Debug("Cannot observe the series' cgroup", zap.String("cgroup", k.CgroupPath), zap.Error(err))
	}
	return state == cgroupstate.Populated
}
